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
