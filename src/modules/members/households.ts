import type { AppContext } from '../../context.ts';
import { conflict, notFound } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson, toJson } from '../../lib/json.ts';
import type { Executor } from '../../storage/database.ts';
import { lostRaceOn } from '../../storage/race.ts';
import { programRef, type ProgramRow } from '../loyalties/service.ts';
import { assertActive, type MembershipRow, subscriptionIdOf } from './service.ts';
import type { MembershipContactsTable } from './tables.ts';

// Households (subscriptions with members): a membership (loyalty card) is the subscription, held by
// its owner (`memberships.customer_id`); member contacts share its balances, tier and vouchers. A
// contact's activity earns into the shared card and its phone number finds the card in keyword
// flows. A contact belongs to at most one subscription per program, and not to one in a program
// where it holds a card of its own (the partial unique index on (program_id, customer_id) makes the
// first hold under concurrency: the loser's transaction rolls back and its retry sees the conflict).

export type ContactRow = MembershipContactsTable;

/**
 * A member contact answered as Voucherify's redeemable holder (`holder_role` MEMBER, Tally's role
 * for a household member; the card's owner is its `holder_id`). `member_id` is the events' number.
 */
export function presentHolder(c: ContactRow, m: MembershipRow) {
  return {
    id: c.id,
    member_id: c.member_no,
    created_at: c.created_at,
    redeemable_id: m.id,
    redeemable_code: m.code,
    redeemable_object: 'voucher' as const,
    customer_id: c.customer_id,
    holder_role: 'MEMBER' as const,
    campaign_id: m.program_id,
    campaign_type: 'LOYALTY_PROGRAM' as const,
    voucher_type: 'LOYALTY_CARD' as const,
    metadata: fromJson(c.metadata, {}),
    object: 'redeemable_holder' as const,
  };
}

export class HouseholdService {
  constructor(private ctx: AppContext) {}

  /** The card's current member contacts, by member number. */
  async contacts(db: Executor, membershipId: string): Promise<ContactRow[]> {
    return db
      .selectFrom('membership_contacts')
      .selectAll()
      .where('membership_id', '=', membershipId)
      .where('removed_at', 'is', null)
      .orderBy('member_no')
      .execute();
  }

  /** The cards the customer shares as a member contact (not those it holds), optionally in one program. */
  async sharedCards(db: Executor, customerId: string, programId?: string): Promise<MembershipRow[]> {
    let q = db
      .selectFrom('membership_contacts as mc')
      .innerJoin('memberships as m', 'm.id', 'mc.membership_id')
      .selectAll('m')
      .where('mc.customer_id', '=', customerId)
      .where('mc.removed_at', 'is', null);
    if (programId) q = q.where('mc.program_id', '=', programId);
    return q.orderBy('mc.created_at').execute();
  }

  /** Whether the customer is a current member contact of the card. */
  async isContact(db: Executor, membershipId: string, customerId: string): Promise<boolean> {
    const row = await db
      .selectFrom('membership_contacts')
      .select('id')
      .where('customer_id', '=', customerId)
      .where('membership_id', '=', membershipId)
      .where('removed_at', 'is', null)
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Adds the customer to the card's household; emits `subscription_member_added`. A customer who is
   * a member of this card already is answered as it is (nothing emitted): adding is idempotent.
   */
  async add(
    db: Executor,
    program: ProgramRow,
    m: MembershipRow,
    customerId: string,
    metadata: Record<string, unknown> | null | undefined,
  ): Promise<{ contact: ContactRow; added: boolean }> {
    assertActive(m);
    if (m.customer_id === customerId) {
      throw conflict('holder_is_owner', 'Customer holds this card', `Customer ${customerId} holds card ${m.code}`);
    }
    const current = await db
      .selectFrom('membership_contacts')
      .selectAll()
      .where('program_id', '=', program.id)
      .where('customer_id', '=', customerId)
      .where('removed_at', 'is', null)
      .executeTakeFirst();
    if (current?.membership_id === m.id) return { contact: current, added: false };
    if (current) {
      throw conflict(
        'member_of_other_subscription',
        'Customer is a member of another subscription of this program',
        `Customer ${customerId} is a member contact of another loyalty card of campaign ${program.id}; ` +
          'a contact belongs to at most one subscription per program (remove it there first)',
      );
    }
    const own = await db
      .selectFrom('memberships')
      .select('code')
      .where('customer_id', '=', customerId)
      .where('program_id', '=', program.id)
      .where('status', '=', 'ACTIVE')
      .executeTakeFirst();
    if (own) {
      throw conflict(
        'holds_own_subscription',
        'Customer holds a card of this program',
        `Customer ${customerId} holds loyalty card ${own.code} of campaign ${program.id}; ` +
          'a contact belongs to at most one subscription per program',
      );
    }
    // Numbers are never given twice (removed contacts keep theirs): the next after every row's.
    const last = await db
      .selectFrom('membership_contacts')
      .select((eb) => eb.fn.max('member_no').as('n'))
      .where('membership_id', '=', m.id)
      .executeTakeFirst();
    const contact: ContactRow = {
      id: newId('mc'),
      membership_id: m.id,
      program_id: program.id,
      customer_id: customerId,
      member_no: Number(last?.n ?? 0) + 1,
      metadata: toJson(metadata ?? {}),
      created_at: this.ctx.clock.nowIso(),
      removed_at: null,
    };
    try {
      await db.insertInto('membership_contacts').values(contact).execute();
    } catch (err) {
      // The same number or the same contact taken by a concurrent add: the caller runs again.
      lostRaceOn(err);
    }
    await this.emit(db, 'subscription_member_added', program, m, contact);
    return { contact, added: true };
  }

  /** Removes a member contact (by its `mc_` id) from the card; emits `subscription_member_removed`. */
  async remove(db: Executor, program: ProgramRow, m: MembershipRow, holderId: string): Promise<ContactRow> {
    const contact = await db
      .selectFrom('membership_contacts')
      .selectAll()
      .where('id', '=', holderId)
      .where('membership_id', '=', m.id)
      .where('removed_at', 'is', null)
      .executeTakeFirst();
    if (!contact) throw notFound('redeemable_holder', holderId);
    const removed = { ...contact, removed_at: this.ctx.clock.nowIso() };
    await db
      .updateTable('membership_contacts')
      .set({ removed_at: removed.removed_at })
      .where('id', '=', contact.id)
      .execute();
    await this.emit(db, 'subscription_member_removed', program, m, contact);
    return removed;
  }

  private async emit(db: Executor, type: string, program: ProgramRow, m: MembershipRow, c: ContactRow) {
    await this.ctx.outbox.emit(db, {
      type,
      data: {
        loyalty_program: programRef(program),
        member_id: c.member_no,
        loyalty_subscription_id: subscriptionIdOf(m),
        customer_id: c.customer_id,
      },
      resource_type: 'membership',
      resource_id: m.id,
      program_id: program.id,
    });
  }
}
