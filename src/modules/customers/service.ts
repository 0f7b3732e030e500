import { sql } from 'kysely';
import { counterSlot } from '../../storage/counters.ts';
import { pageByCreated, type TotalOf } from '../../storage/paging.ts';
import './tables.ts';
import type { CustomerInput, CustomerListQuery } from './schemas.ts';
import type { AppContext } from '../../context.ts';
import { invalid, notFound } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson, toJson } from '../../lib/json.ts';
import { toE164 } from '../../lib/phone.ts';
import type { Executor } from '../../storage/database.ts';
import { perUtcDay } from '../../lib/days.ts';
import { hot } from '../../storage/hot.ts';
import type { CustomersTable } from '../../storage/schema.ts';

export type CustomerRow = CustomersTable;

const ADDRESS_FIELDS = ['city', 'state', 'line_1', 'line_2', 'country', 'postal_code'] as const;

function normalisePhone(phone: string | null | undefined): string | null | undefined {
  if (phone === undefined || phone === null || phone === '') return phone === '' ? null : phone;
  const e164 = toE164(phone);
  if (!e164)
    throw invalid(
      'invalid_phone',
      'Invalid phone number',
      `"${phone}" is not a valid phone number; use E.164 (+385916242493)`,
      [{ field: 'phone', message: 'must be a valid phone number' }],
    );
  return e164;
}

/** Voucherify's customer object, with the loyalty summary across the customer's memberships. */
export function presentCustomer(row: CustomerRow, loyalty?: CustomerLoyalty) {
  return {
    id: row.id,
    source_id: row.source_id,
    name: row.name,
    description: row.description,
    email: row.email,
    phone: row.phone,
    birthdate: row.birthdate,
    birthday: row.birthdate,
    address: fromJson(row.address, null),
    metadata: fromJson(row.metadata, {}),
    loyalty: loyalty ?? { points: 0, referred_customers: 0, campaigns: {} },
    created_at: row.created_at,
    updated_at: row.updated_at,
    object: 'customer' as const,
  };
}

/** The short customer object events carry (seed 001). */
export function presentCustomerRef(row: CustomerRow) {
  return {
    id: row.id,
    name: row.name,
    source_id: row.source_id,
    metadata: fromJson(row.metadata, {}),
    object: 'customer' as const,
  };
}

export interface CustomerLoyalty {
  points: number;
  referred_customers: number;
  campaigns: Record<
    string,
    { points: number; loyalty_tier: string | null; referred_customers: number; card_code: string }
  >;
}

export class CustomerService {
  constructor(private ctx: AppContext) {}

  private get db() {
    return this.ctx.database.db;
  }

  async find(db: Executor, idOrSourceId: string): Promise<CustomerRow | undefined> {
    if (idOrSourceId.startsWith('cust_')) {
      const byId = await db.selectFrom('customers').selectAll().where('id', '=', idOrSourceId).executeTakeFirst();
      if (byId) return byId;
    }
    // Every ingested activity names its customer: the statement is compiled once.
    const [row] = await hot(db, 'customers.bySourceId', [idOrSourceId], () =>
      db.selectFrom('customers').selectAll().where('source_id', '=', idOrSourceId),
    );
    return row;
  }

  async get(db: Executor, idOrSourceId: string): Promise<CustomerRow> {
    const row = await this.find(db, idOrSourceId);
    if (!row) throw notFound('customer', idOrSourceId);
    return row;
  }

  async findByPhone(db: Executor, phone: string): Promise<CustomerRow[]> {
    const e164 = toE164(phone);
    if (!e164) return [];
    return hot(db, 'customers.byPhone', [e164], () =>
      db.selectFrom('customers').selectAll().where('phone', '=', e164).orderBy('created_at'),
    );
  }

  /**
   * Creates a customer, or updates the one with the same source_id (Voucherify's create is an
   * upsert by source_id). Returns the row and whether it was created.
   */
  async upsert(db: Executor, input: CustomerInput): Promise<{ row: CustomerRow; created: boolean }> {
    if (input.source_id) {
      const existing = await db
        .selectFrom('customers')
        .selectAll()
        .where('source_id', '=', input.source_id)
        .executeTakeFirst();
      if (existing) return { row: await this.update(db, existing, input), created: false };
    }
    const now = this.ctx.clock.nowIso();
    const row: CustomerRow = {
      id: newId('cust'),
      source_id: input.source_id ?? null,
      name: input.name ?? null,
      email: input.email ?? null,
      phone: normalisePhone(input.phone) ?? null,
      description: input.description ?? null,
      birthdate: input.birthdate ?? input.birthday ?? null,
      address: toJson(pickAddress(input.address)),
      metadata: toJson(input.metadata ?? {}),
      created_at: now,
      updated_at: null,
    };
    await db.insertInto('customers').values(row).execute();
    // The customers' count, in the insert's transaction (every customer is made here).
    await this.countChange(db, 1);
    return { row, created: true };
  }

  /** Partial update: fields absent from `input` keep their value; metadata keys merge (null removes one). */
  async update(db: Executor, row: CustomerRow, input: CustomerInput): Promise<CustomerRow> {
    const patch: Partial<CustomerRow> = { updated_at: this.ctx.clock.nowIso() };
    if (input.name !== undefined) patch.name = input.name;
    if (input.email !== undefined) patch.email = input.email;
    if (input.phone !== undefined) patch.phone = normalisePhone(input.phone) ?? null;
    if (input.description !== undefined) patch.description = input.description;
    if (input.birthdate !== undefined || input.birthday !== undefined)
      patch.birthdate = input.birthdate ?? input.birthday ?? null;
    if (input.address !== undefined) {
      patch.address = toJson(
        input.address === null ? null : { ...fromJson(row.address, {}), ...pickAddress(input.address) },
      );
    }
    if (input.metadata !== undefined) {
      const merged: Record<string, unknown> =
        input.metadata === null ? {} : { ...fromJson<Record<string, unknown>>(row.metadata, {}) };
      for (const [k, v] of Object.entries(input.metadata ?? {})) {
        if (v === null) delete merged[k];
        else merged[k] = v;
      }
      patch.metadata = toJson(merged);
    }
    if (input.source_id !== undefined && input.source_id !== row.source_id) patch.source_id = input.source_id;
    await db.updateTable('customers').set(patch).where('id', '=', row.id).execute();
    return { ...row, ...patch };
  }

  async delete(db: Executor, row: CustomerRow): Promise<void> {
    const done = await db.deleteFrom('customers').where('id', '=', row.id).executeTakeFirst();
    // Only the delete that removed the row counts it (a concurrent delete of the same customer finds none).
    if (Number(done.numDeletedRows) === 1) await this.countChange(db, -1);
  }

  /**
   * Adds `delta` to the customers' count (customer_counts): one upsert that adds in SQL, in the
   * caller's transaction, on that transaction's slot (src/storage/counters.ts).
   */
  private async countChange(db: Executor, delta: number): Promise<void> {
    const slot = counterSlot(db);
    await hot(db, 'customers.countChange', [slot, delta], () =>
      db
        .insertInto('customer_counts')
        .values({ slot, n: delta })
        .onConflict((oc) => oc.column('slot').doUpdateSet({ n: sql<number>`customer_counts.n + excluded.n` })),
    );
  }

  /** The number of customers, from their counter (the sum of its slots). */
  async count(db: Executor): Promise<number> {
    const r = await db
      .selectFrom('customer_counts')
      .select((eb) => eb.fn.sum<number>('n').as('n'))
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  /** Newest first unless asked; the page number's `total` is the counter when unfiltered, else a count. */
  async list(q: CustomerListQuery) {
    let base = this.db.selectFrom('customers');
    if (q.email) base = base.where('email', '=', q.email);
    if (q.phone) base = base.where('phone', '=', toE164(q.phone) ?? q.phone);
    if (q.name) base = base.where('name', '=', q.name);
    if (q.source_id) base = base.where('source_id', '=', q.source_id);
    const filtered = Boolean(q.email || q.phone || q.name || q.source_id);
    const total: TotalOf | undefined = filtered ? undefined : () => this.count(this.db);
    const desc = q.order?.startsWith('-') ?? true;
    return pageByCreated(base, q, 'a customer', desc ? 'desc' : 'asc', { total });
  }

  /** Loyalty summary of many customers in one query each for memberships and balances. */
  async loyaltyOf(db: Executor, customerIds: string[]): Promise<Map<string, CustomerLoyalty>> {
    const out = new Map<string, CustomerLoyalty>();
    for (const id of customerIds) out.set(id, { points: 0, referred_customers: 0, campaigns: {} });
    if (customerIds.length === 0) return out;
    const rows = await db
      .selectFrom('memberships as m')
      .innerJoin('programs as p', 'p.id', 'm.program_id')
      .innerJoin('balance_definitions as d', (j) => j.onRef('d.program_id', '=', 'p.id').on('d.is_default', '=', 1))
      .leftJoin('balances as b', (j) =>
        j.onRef('b.membership_id', '=', 'm.id').onRef('b.balance_definition_id', '=', 'd.id'),
      )
      .select(['m.id as membership_id', 'm.customer_id', 'm.code', 'p.name as program_name', 'b.balance'])
      .where('m.customer_id', 'in', customerIds)
      .where('m.status', '=', 'ACTIVE')
      .where('p.deleted_at', 'is', null)
      .execute();
    // The member's tier in the program's default tier group (program rules module).
    const tiers = rows.length
      ? await db
          .selectFrom('member_tiers as mt')
          .innerJoin('tier_groups as g', (j) => j.onRef('g.id', '=', 'mt.tier_group_id').on('g.is_default', '=', 1))
          .select(['mt.membership_id', 'mt.tier_id'])
          .where(
            'mt.membership_id',
            'in',
            rows.map((r) => r.membership_id),
          )
          .execute()
      : [];
    const tierOf = new Map(tiers.map((t) => [t.membership_id, t.tier_id]));
    for (const r of rows) {
      const l = out.get(r.customer_id)!;
      const points = Number(r.balance ?? 0);
      l.points += points;
      l.campaigns[r.program_name] = {
        points,
        loyalty_tier: tierOf.get(r.membership_id) ?? null,
        referred_customers: 0,
        card_code: r.code,
      };
    }
    return out;
  }

  /** Customers created per UTC day since `sinceIso` (the console's overview; index customers_created). */
  async createdPerDay(db: Executor, sinceIso: string): Promise<{ day: string; created: number }[]> {
    return perUtcDay(sinceIso, this.ctx.clock.nowMs(), async (from, to) => {
      const r = await db
        .selectFrom('customers')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('created_at', '>=', from)
        .where('created_at', '<', to)
        .executeTakeFirstOrThrow();
      return { created: Number(r.n) };
    });
  }
}

function pickAddress(a: Record<string, unknown> | null | undefined): Record<string, unknown> | null {
  if (!a) return null;
  const out: Record<string, unknown> = {};
  for (const k of ADDRESS_FIELDS) if (a[k] !== undefined) out[k] = a[k];
  return out;
}
