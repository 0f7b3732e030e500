import { counterSlot } from '../../storage/counters.ts';
import { pageByCreated, type TotalOf } from '../../storage/paging.ts';
import './tables.ts';
import { sql } from 'kysely';
import { DateTime } from 'luxon';
import type { AppContext } from '../../context.ts';
import { conflict, invalid, notFound, refused } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson, toJson } from '../../lib/json.ts';
import type { Executor } from '../../storage/database.ts';
import { hot } from '../../storage/hot.ts';
import { lostRaceOn } from '../../storage/race.ts';
import type { BalancesTable, MembershipsTable } from '../../storage/schema.ts';
import type { CustomerRow } from '../customers/service.ts';
import { allCodes, codeSpace, generateCode } from '../../lib/codes.ts';
import { programRef, programVoucher, type ProgramRow } from '../loyalties/service.ts';

export type MembershipRow = MembershipsTable;
export type BalanceRow = BalancesTable;

export interface CardSummary {
  points: number;
  balance: number;
  next_expiration_date: string | null;
  next_expiration_points: number | null;
  pending_points: number;
  expired_points: number;
  subtracted_points: number;
}

/** A member is Voucherify's loyalty card: a voucher of type LOYALTY_CARD. */
export function presentMember(
  m: MembershipRow,
  program: ProgramRow,
  card: CardSummary,
  extra: Record<string, unknown> = {},
) {
  return {
    id: m.id,
    code: m.code,
    campaign: program.name,
    campaign_id: program.id,
    category: null,
    category_id: null,
    type: 'LOYALTY_CARD' as const,
    discount: null,
    gift: null,
    loyalty_card: card,
    start_date: null,
    expiration_date: null,
    validity_timeframe: null,
    validity_day_of_week: null,
    active: m.status === 'ACTIVE',
    status: m.status,
    additional_info: null,
    metadata: fromJson(m.metadata, {}),
    is_referral_code: false,
    holder_id: m.customer_id,
    /** Tally: the subscription's id in another system (an import), or null. */
    loyalty_subscription_id: m.loyalty_subscription_id,
    publish: { object: 'list' as const, count: 1 },
    redemption: { quantity: null, redeemed_quantity: 0, redeemed_points: 0, object: 'list' as const },
    ...extra,
    created_at: m.created_at,
    updated_at: m.updated_at,
    object: 'voucher' as const,
  };
}

/**
 * The card's household on the member object, as Voucherify shows a voucher's publications
 * (`publish: {object, count, url}`): how many member contacts share it, and where they are listed.
 */
export const holdersRef = (m: MembershipRow, count: number) => ({
  object: 'list' as const,
  count,
  url: `/v1/loyalties/members/${m.code}/holders`,
});

const oldestFirst = (a: MembershipRow, b: MembershipRow) =>
  a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

export class MemberService {
  constructor(private ctx: AppContext) {}

  /** Finds a member by card code or `v_` id, optionally within one program. */
  async find(db: Executor, memberId: string, programId?: string): Promise<MembershipRow | undefined> {
    let q = db.selectFrom('memberships').selectAll();
    q = memberId.startsWith('v_')
      ? q.where((eb) => eb.or([eb('id', '=', memberId), eb('code', '=', memberId)]))
      : q.where('code', '=', memberId);
    if (programId) q = q.where('program_id', '=', programId);
    return q.executeTakeFirst();
  }

  async get(db: Executor, memberId: string, programId?: string): Promise<MembershipRow> {
    const m = await this.find(db, memberId, programId);
    if (!m) throw notFound('loyalty card', memberId);
    return m;
  }

  /** The customer's cards (every status), oldest first. */
  async ofCustomer(db: Executor, customerId: string, programId?: string): Promise<MembershipRow[]> {
    // By customer only (its index), filtered and sorted here: with a program filter in SQL, SQLite
    // may walk the program's index in created_at order instead, past every member of the program.
    const rows = await hot(db, 'members.ofCustomer', [customerId], () =>
      db.selectFrom('memberships').selectAll().where('customer_id', '=', customerId),
    );
    return rows.filter((m) => !programId || m.program_id === programId).sort(oldestFirst);
  }

  /**
   * The customer with this source_id and all its cards (every status): those it holds, oldest
   * first, then those it shares as a member contact of a household (active contacts only), in one
   * statement: what ingesting an activity needs first.
   */
  async customerWithCards(
    db: Executor,
    sourceId: string,
  ): Promise<{ customer: CustomerRow; cards: MembershipRow[] } | undefined> {
    const cardColumns = [
      'm.id as m_id',
      'm.code as m_code',
      'm.program_id as m_program_id',
      'm.customer_id as m_customer_id',
      'm.status as m_status',
      'm.join_key as m_join_key',
      'm.metadata as m_metadata',
      'm.created_at as m_created_at',
      'm.updated_at as m_updated_at',
      'm.revoked_at as m_revoked_at',
      'm.loyalty_subscription_id as m_subscription_id',
    ] as const;
    // Two index lookups glued by UNION ALL (customers.source_id, then memberships.customer_id or
    // membership_contacts.customer_id): an OR in one join would read every membership.
    const rows = await hot(db, 'members.customerWithCards', [sourceId, sourceId], () =>
      db
        .selectFrom('customers as c')
        .leftJoin('memberships as m', 'm.customer_id', 'c.id')
        .selectAll('c')
        .select(cardColumns)
        .where('c.source_id', '=', sourceId)
        .unionAll(
          db
            .selectFrom('customers as c')
            .innerJoin('membership_contacts as mc', 'mc.customer_id', 'c.id')
            .innerJoin('memberships as m', 'm.id', 'mc.membership_id')
            .selectAll('c')
            .select(cardColumns)
            .where('c.source_id', '=', sourceId)
            .where('mc.removed_at', 'is', null),
        ),
    );
    if (rows.length === 0) return undefined;
    const {
      m_id: _id,
      m_code: _code,
      m_program_id: _p,
      m_customer_id: _h,
      m_status: _s,
      m_join_key: _j,
      m_metadata: _m,
      m_created_at: _c,
      m_updated_at: _u,
      m_revoked_at: _r,
      m_subscription_id: _sub,
      ...customer
    } = rows[0];
    const cards: MembershipRow[] = [];
    for (const r of rows) {
      if (r.m_id === null) continue;
      cards.push({
        id: r.m_id,
        code: r.m_code!,
        program_id: r.m_program_id!,
        customer_id: r.m_customer_id!,
        status: r.m_status!,
        join_key: r.m_join_key,
        metadata: r.m_metadata,
        created_at: r.m_created_at!,
        updated_at: r.m_updated_at,
        revoked_at: r.m_revoked_at,
        loyalty_subscription_id: r.m_subscription_id,
      });
    }
    // Its own cards first: where it holds a card and shares another in one program, its own earns.
    const own = (m: MembershipRow) => (m.customer_id === customer.id ? 0 : 1);
    return { customer, cards: cards.sort((a, b) => own(a) - own(b) || oldestFirst(a, b)) };
  }

  /** Card summary (loyalty_card) of the program's default balance for each membership. */
  async cards(
    db: Executor,
    members: MembershipRow[],
    programs: Map<string, ProgramRow>,
  ): Promise<Map<string, CardSummary>> {
    const out = new Map<string, CardSummary>();
    if (members.length === 0) return out;
    const ids = members.map((m) => m.id);
    const balances = await db
      .selectFrom('balances as b')
      .innerJoin('balance_definitions as d', 'd.id', 'b.balance_definition_id')
      .selectAll('b')
      .where('b.membership_id', 'in', ids)
      .where('d.is_default', '=', 1)
      .execute();
    const nextLots = await db
      .selectFrom('point_lots as l')
      .innerJoin('balance_definitions as d', 'd.id', 'l.balance_definition_id')
      .select(['l.membership_id', 'l.expires_at', 'l.remaining'])
      .where('l.membership_id', 'in', ids)
      .where('d.is_default', '=', 1)
      .where('l.remaining', '>', 0)
      .where('l.expires_at', 'is not', null)
      .orderBy('l.expires_at')
      .execute();
    const byMember = new Map(balances.map((b) => [b.membership_id, b]));
    for (const m of members) {
      const b = byMember.get(m.id);
      const program = programs.get(m.program_id)!;
      const lots = nextLots.filter((l) => l.membership_id === m.id);
      let nextDate: string | null = null;
      let nextPoints: number | null = null;
      if (lots.length > 0) {
        // Voucherify reports the next expiry as a calendar date in the program's time zone.
        nextDate = DateTime.fromISO(lots[0].expires_at!, { zone: program.timezone }).toISODate();
        nextPoints = lots
          .filter((l) => DateTime.fromISO(l.expires_at!, { zone: program.timezone }).toISODate() === nextDate)
          .reduce((s, l) => s + Number(l.remaining), 0);
      }
      out.set(m.id, {
        points: Number(b?.points ?? 0),
        balance: Number(b?.balance ?? 0),
        next_expiration_date: nextDate,
        next_expiration_points: nextPoints,
        pending_points: Number(b?.pending_points ?? 0),
        expired_points: Number(b?.expired_points ?? 0),
        subtracted_points: Number(b?.subtracted_points ?? 0),
      });
    }
    return out;
  }

  async presentOne(db: Executor, m: MembershipRow, program: ProgramRow) {
    const cards = await this.cards(db, [m], new Map([[program.id, program]]));
    const holders = await this.holderCounts(db, [m.id]);
    return presentMember(m, program, cards.get(m.id)!, { holders: holdersRef(m, holders.get(m.id) ?? 0) });
  }

  /** How many member contacts (households) each card has; cards without any are absent. */
  async holderCounts(db: Executor, membershipIds: string[]): Promise<Map<string, number>> {
    if (membershipIds.length === 0) return new Map();
    const rows = await db
      .selectFrom('membership_contacts')
      .select(['membership_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('membership_id', 'in', membershipIds)
      .where('removed_at', 'is', null)
      .groupBy('membership_id')
      .execute();
    return new Map(rows.map((r) => [r.membership_id, Number(r.n)]));
  }

  /**
   * Creates a membership (a loyalty card) for the customer. Join-once programs refuse a second
   * card for the same customer (the unique join_key makes that hold under concurrency too).
   * Emits `subscription_created`.
   */
  async create(
    db: Executor,
    program: ProgramRow,
    customerId: string,
    opts: {
      code?: string;
      metadata?: Record<string, unknown> | null;
      /** An import: the subscription's id in the other system, and when it began there (not in the future). */
      loyaltySubscriptionId?: string;
      createdAt?: string;
    },
  ): Promise<MembershipRow> {
    if (program.active !== 1)
      throw refused('campaign_inactive', 'Campaign is inactive', `Campaign ${program.id} is not active`);
    const now = this.ctx.clock.nowIso();
    if (program.start_date && Date.parse(program.start_date) > Date.parse(now)) {
      throw refused(
        'campaign_not_started',
        'Campaign has not started yet',
        `Campaign ${program.id} starts at ${program.start_date}`,
      );
    }
    if (program.expiration_date && Date.parse(program.expiration_date) <= Date.parse(now)) {
      throw refused(
        'campaign_expired',
        'Campaign has expired',
        `Campaign ${program.id} expired at ${program.expiration_date}`,
      );
    }
    if (program.join_once === 1) {
      const existing = await db
        .selectFrom('memberships')
        .select(['id', 'code'])
        .where('program_id', '=', program.id)
        .where('customer_id', '=', customerId)
        .executeTakeFirst();
      if (existing) {
        throw conflict(
          'already_joined',
          'Customer already joined this campaign',
          `Customer ${customerId} already has loyalty card ${existing.code} in join-once campaign ${program.id}`,
        );
      }
    }
    await this.checkImport(db, program, opts, now);
    const config = programVoucher(program).code_config;
    let code = opts.code;
    if (code !== undefined) {
      if (await db.selectFrom('memberships').select('id').where('code', '=', code).executeTakeFirst()) {
        throw conflict('duplicate_code', 'Duplicated code', `A loyalty card with code ${code} already exists`);
      }
    } else {
      // Random codes: retry on collision; a nearly full code space is reported, not looped on.
      const space = codeSpace(config);
      for (let attempt = 0; attempt < 20 && code === undefined; attempt++) {
        const candidate = generateCode(config);
        const taken = await db.selectFrom('memberships').select('id').where('code', '=', candidate).executeTakeFirst();
        if (!taken) code = candidate;
      }
      if (code === undefined) {
        // A small, nearly full space: look for the free codes among all of them.
        const candidates = allCodes(config);
        if (candidates) {
          for (let i = candidates.length - 1; i > 0; i--) {
            const j = Math.floor(Math.random() * (i + 1));
            [candidates[i], candidates[j]] = [candidates[j], candidates[i]];
          }
          for (let i = 0; i < candidates.length && code === undefined; i += 500) {
            const chunk = candidates.slice(i, i + 500);
            const taken = new Set(
              (await db.selectFrom('memberships').select('code').where('code', 'in', chunk).execute()).map(
                (r) => r.code,
              ),
            );
            code = chunk.find((c) => !taken.has(c));
          }
        }
      }
      if (code === undefined) {
        throw refused(
          'code_space_exhausted',
          'No free card code',
          `code_config allows ${space} codes and random picks keep colliding; widen the pattern or charset`,
        );
      }
    }
    const row: MembershipRow = {
      id: newId('v', 32),
      code,
      program_id: program.id,
      customer_id: customerId,
      status: 'ACTIVE',
      join_key: program.join_once === 1 ? `${program.id}:${customerId}` : null,
      metadata: toJson(opts.metadata ?? {}),
      created_at: opts.createdAt ? new Date(opts.createdAt).toISOString() : now,
      updated_at: null,
      revoked_at: null,
      loyalty_subscription_id: opts.loyaltySubscriptionId ?? null,
    };
    try {
      await db.insertInto('memberships').values(row).execute();
    } catch (err) {
      // A generated code or the join-once key taken by a concurrent join: the caller runs again.
      lostRaceOn(err);
    }
    // The program's count, in the insert's transaction (every membership is made here).
    await this.countChange(db, program.id, 1, 1);
    await this.ctx.outbox.emit(db, {
      type: 'subscription_created',
      data: {
        created_at: row.created_at,
        loyalty_program: programRef(program),
        loyalty_subscription_id: subscriptionIdOf(row),
      },
      resource_type: 'membership',
      resource_id: row.id,
      program_id: program.id,
    });
    return row;
  }

  /** Revokes a membership: it keeps its history but accepts no more changes. Emits `subscription_revoked`. */
  async revoke(db: Executor, m: MembershipRow, program: ProgramRow): Promise<MembershipRow> {
    if (m.status !== 'ACTIVE') return m;
    const now = this.ctx.clock.nowIso();
    const done = await db
      .updateTable('memberships')
      .set({ status: 'REVOKED', revoked_at: now, updated_at: now })
      .where('id', '=', m.id)
      .where('status', '=', 'ACTIVE')
      .executeTakeFirst();
    // Only the revocation that changed the row counts it (`m` may have been read before a concurrent one).
    if (Number(done.numUpdatedRows) === 1) await this.countChange(db, m.program_id, 0, -1);
    await this.ctx.outbox.emit(db, {
      type: 'subscription_revoked',
      data: { loyalty_program: programRef(program), loyalty_subscription_id: subscriptionIdOf(m) },
      resource_type: 'membership',
      resource_id: m.id,
      program_id: program.id,
    });
    return { ...m, status: 'REVOKED', revoked_at: now, updated_at: now };
  }

  /** An import's external id is unused in the program, and its start date is not in the future. */
  private async checkImport(
    db: Executor,
    program: ProgramRow,
    opts: { loyaltySubscriptionId?: string; createdAt?: string },
    now: string,
  ): Promise<void> {
    if (opts.createdAt !== undefined && Date.parse(opts.createdAt) > Date.parse(now)) {
      throw invalid(
        'created_at_in_future',
        'created_at is in the future',
        `created_at ${opts.createdAt} is after ${now}`,
        [{ field: 'created_at', message: 'must not be in the future' }],
      );
    }
    if (opts.loyaltySubscriptionId === undefined) return;
    const taken = await db
      .selectFrom('memberships')
      .select('code')
      .where('program_id', '=', program.id)
      .where('loyalty_subscription_id', '=', opts.loyaltySubscriptionId)
      .executeTakeFirst();
    if (taken) {
      throw conflict(
        'duplicate_subscription_id',
        'Duplicated loyalty_subscription_id',
        `Loyalty card ${taken.code} of campaign ${program.id} already has loyalty_subscription_id ` +
          opts.loyaltySubscriptionId,
      );
    }
  }

  /**
   * Adds to a program's counts (program_member_counts): `all` memberships, `active` ones. One upsert
   * that adds in SQL, in the caller's transaction, on that transaction's slot (src/storage/counters.ts).
   */
  private async countChange(db: Executor, programId: string, all: number, active: number) {
    const slot = counterSlot(db);
    await hot(db, 'members.countChange', [programId, slot, all, active], () =>
      db
        .insertInto('program_member_counts')
        .values({ program_id: programId, slot, n: all, active })
        .onConflict((oc) =>
          oc.columns(['program_id', 'slot']).doUpdateSet({
            n: sql<number>`program_member_counts.n + excluded.n`,
            active: sql<number>`program_member_counts.active + excluded.active`,
          }),
        ),
    );
  }

  /** A program's memberships, all and ACTIVE, from its counter (the sum of its slots). */
  async counts(db: Executor, programId: string): Promise<{ all: number; active: number }> {
    const r = await db
      .selectFrom('program_member_counts')
      .select((eb) => [eb.fn.sum<number>('n').as('n'), eb.fn.sum<number>('active').as('active')])
      .where('program_id', '=', programId)
      .executeTakeFirst();
    return { all: Number(r?.n ?? 0), active: Number(r?.active ?? 0) };
  }

  /** Active cards of a program (a program answers with this count), from the program's counter. */
  async activeCount(db: Executor, programId: string): Promise<number> {
    return (await this.counts(db, programId)).active;
  }

  /**
   * Oldest first, by page number or by cursor (index memberships_program: program, created_at, id).
   * The page number's `total` is the program's counter (all, ACTIVE, or all − ACTIVE for REVOKED, the
   * only other status); filtered by customer it counts the filtered list.
   */
  async list(
    db: Executor,
    programId: string,
    q: { limit: number; page: number; starting_after_id?: string; customer?: string; status?: string },
  ) {
    let base = db.selectFrom('memberships').where('program_id', '=', programId);
    if (q.customer) base = base.where('customer_id', '=', q.customer);
    if (q.status) base = base.where('status', '=', q.status);
    const total: TotalOf | undefined = q.customer
      ? undefined
      : async () => {
          const c = await this.counts(db, programId);
          return q.status === 'ACTIVE' ? c.active : q.status === 'REVOKED' ? c.all - c.active : c.all;
        };
    return pageByCreated(base, q, 'a member', 'asc', { total });
  }

  /** Cards by id (the time engine's batches). */
  async byIds(db: Executor, ids: string[]): Promise<MembershipRow[]> {
    if (ids.length === 0) return [];
    return db.selectFrom('memberships').selectAll().where('id', 'in', ids).execute();
  }

  /**
   * The program's cards after `after` in (created_at, id) order, the order of its index: a chunked
   * walk over a program reads each chunk from where the last one ended.
   */
  async cardsAfter(
    db: Executor,
    programId: string,
    after: { created_at: string; id: string } | null,
    limit: number,
  ): Promise<MembershipRow[]> {
    let q = db.selectFrom('memberships').selectAll().where('program_id', '=', programId);
    if (after)
      q = q.where((eb) =>
        eb.or([
          eb('created_at', '>', after.created_at),
          eb.and([eb('created_at', '=', after.created_at), eb('id', '>', after.id)]),
        ]),
      );
    return q.orderBy('created_at').orderBy('id').limit(limit).execute();
  }
}

/** The subscription id of the events: the external one given at import, else the card's `v_` id. */
export const subscriptionIdOf = (m: MembershipRow): string => m.loyalty_subscription_id ?? m.id;

export function assertActive(m: MembershipRow): void {
  if (m.status !== 'ACTIVE') {
    throw refused(
      'loyalty_card_inactive',
      'Loyalty card is not active',
      `Loyalty card ${m.code} is ${m.status.toLowerCase()}`,
    );
  }
}
