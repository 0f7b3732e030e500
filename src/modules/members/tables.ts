// Tables of the members module's households. Types only; see migrations.ts.

/** A member contact of a membership (the subscription): shares its balances, tier and vouchers. */
export interface MembershipContactsTable {
  /** `mc_…`: the holder id of the holders routes. */
  id: string;
  membership_id: string;
  program_id: string;
  customer_id: string;
  /** The events' numeric `member_id`: 1, 2, 3 … per membership, never given twice. */
  member_no: number;
  metadata: string | null;
  created_at: string;
  /** Set when the contact leaves the household (the row stays, its number is not reused). */
  removed_at: string | null;
}

declare module '../../storage/schema.ts' {
  interface DB {
    membership_contacts: MembershipContactsTable;
  }
}

/**
 * A program's membership count, split in slots (src/storage/counters.ts): the sum of `n` over the
 * program's rows is its number of memberships, the sum of `active` its ACTIVE ones.
 */
export interface ProgramMemberCountsTable {
  program_id: string;
  slot: number;
  n: number;
  active: number;
}

declare module '../../storage/schema.ts' {
  interface DB {
    program_member_counts: ProgramMemberCountsTable;
  }
}
