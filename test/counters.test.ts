import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { modules } from '../src/modules/index.ts';
import { migrateToLatest } from '../src/storage/migrate.ts';
import { backend, createMember, createProgram, startTestServer, type TestServer } from './helpers/server.ts';

// The page-number `total` of a program's members and of the customers comes from counters kept in
// the transactions that insert, revoke and delete (src/storage/counters.ts). Each scenario below
// changes the rows over HTTP, then checks the totals the lists answer against a count of the rows.

describe('list totals from counters (a program’s members, customers)', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  const db = () => t.server.ctx.database.db;
  async function rowsOf(programId: string) {
    const all = await db()
      .selectFrom('memberships')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('program_id', '=', programId)
      .executeTakeFirstOrThrow();
    const active = await db()
      .selectFrom('memberships')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('program_id', '=', programId)
      .where('status', '=', 'ACTIVE')
      .executeTakeFirstOrThrow();
    return { all: Number(all.n), active: Number(active.n) };
  }
  async function customerRows() {
    const r = await db()
      .selectFrom('customers')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }
  async function get(path: string) {
    const res = await t.api('GET', path);
    assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.body)}`);
    return res.body;
  }
  /** The totals the API answers equal the counted rows, and are `expected` when given. */
  async function assertTotals(programId: string, expected?: { all: number; active: number; customers?: number }) {
    const rows = await rowsOf(programId);
    if (expected) assert.deepEqual(rows, { all: expected.all, active: expected.active });
    assert.equal((await get(`/v1/loyalties/${programId}/members?limit=1`)).total, rows.all);
    assert.equal((await get(`/v1/loyalties/${programId}/members?limit=1&status=ACTIVE`)).total, rows.active);
    assert.equal(
      (await get(`/v1/loyalties/${programId}/members?limit=1&status=REVOKED`)).total,
      rows.all - rows.active,
    );
    assert.equal((await get(`/v1/loyalties/${programId}`)).vouchers_count, rows.active);
    const customers = await customerRows();
    if (expected?.customers !== undefined) assert.equal(customers, expected.customers);
    assert.equal((await get('/v1/customers?limit=1')).total, customers);
    assert.equal((await get('/v1/customers?limit=1&order=created_at')).total, customers);
  }

  it('stay exact after joins, imports, events that create and join, revocations and deletes', async () => {
    const program = await createProgram(t, { auto_join: true });
    const other = await createProgram(t);
    await assertTotals(program.id, { all: 0, active: 0, customers: 0 });

    const first = await createMember(t, program.id);
    await createMember(t, program.id);
    await createMember(t, other.id);
    await assertTotals(program.id, { all: 2, active: 2, customers: 3 });
    await assertTotals(other.id, { all: 1, active: 1 });

    // An existing customer joining adds a member, not a customer.
    await createMember(t, other.id, first.holder_id);
    await assertTotals(other.id, { all: 2, active: 2, customers: 3 });

    // An import: 5 members, 5 new customers, in one transaction.
    const imported = await t.api('POST', `/v1/loyalties/${program.id}/members/import`, {
      members: Array.from({ length: 5 }, (_, i) => ({
        customer: { source_id: `imp-${i}` },
        loyalty_subscription_id: `sub-${i}`,
        created_at: '2026-01-01T00:00:00.000Z',
      })),
    });
    assert.equal(imported.status, 200, JSON.stringify(imported.body));
    await assertTotals(program.id, { all: 7, active: 7, customers: 8 });

    // A refused import (a duplicate subscription id at item 2) adds nothing.
    const refused = await t.api('POST', `/v1/loyalties/${program.id}/members/import`, {
      members: [
        { customer: { source_id: 'imp-new-1' }, loyalty_subscription_id: 'sub-new-1' },
        { customer: { source_id: 'imp-new-2' }, loyalty_subscription_id: 'sub-0' },
      ],
    });
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    await assertTotals(program.id, { all: 7, active: 7, customers: 8 });

    // An event of an unknown customer: the customer is created and auto-joins the program (it has a rule).
    const rule = await t.api('POST', `/v1/loyalties/${program.id}/earning-rules`, [
      { event: 'visit', loyalty: { type: 'FIXED', points: 5 } },
    ]);
    assert.equal(rule.status, 200, JSON.stringify(rule.body));
    const ev = await t.api('POST', '/v1/events', { event: 'visit', customer: { source_id: 'by-event' } });
    assert.equal(ev.status, 200, JSON.stringify(ev.body));
    await assertTotals(program.id, { all: 8, active: 8, customers: 9 });

    // Upserting an existing customer adds none; a new one (no card) adds one.
    assert.equal((await t.api('POST', '/v1/customers', { source_id: 'imp-0', name: 'Renamed' })).status, 200);
    const loose = await t.api('POST', '/v1/customers', { source_id: 'loose', name: 'No card' });
    assert.equal(loose.status, 200);
    await assertTotals(program.id, { all: 8, active: 8, customers: 10 });

    // Revoking a card keeps it in the list (all) but not among the active; twice changes nothing more.
    const revoke = () => t.api('DELETE', `/v1/loyalties/${program.id}/members/${first.code}`);
    assert.equal((await revoke()).status, 200);
    assert.equal((await revoke()).status, 200);
    await assertTotals(program.id, { all: 8, active: 7, customers: 10 });

    // Deleting a customer: one customer fewer, its cards revoked (the other program's card too).
    assert.equal((await t.api('DELETE', `/v1/customers/${loose.body.id}`)).status, 204);
    assert.equal((await t.api('DELETE', `/v1/customers/${first.holder_id}`)).status, 204);
    await assertTotals(program.id, { all: 8, active: 7, customers: 8 });
    await assertTotals(other.id, { all: 2, active: 1 });

    // A filtered list still counts what it filters.
    const imp = await t.api('GET', '/v1/customers?source_id=imp-1');
    assert.equal(imp.body.total, 1);
  });

  it('a program answers its active members from the counter', async () => {
    const program = await createProgram(t);
    const a = await createMember(t, program.id);
    await createMember(t, program.id);
    assert.equal((await get(`/v1/loyalties/${program.id}`)).vouchers_count, 2);
    assert.equal((await t.api('DELETE', `/v1/loyalties/${program.id}/members/${a.code}`)).status, 200);
    assert.equal((await get(`/v1/loyalties/${program.id}`)).vouchers_count, 1);
  });

  it('N concurrent joins to one program leave total == N (no lost update)', async () => {
    const program = await createProgram(t);
    const customersBefore = await customerRows();
    const n = 50;
    const joins = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        t.api('POST', `/v1/loyalties/${program.id}/members`, { customer: { source_id: `par-${i}` } }),
      ),
    );
    for (const r of joins) assert.equal(r.status, 200, JSON.stringify(r.body));
    await assertTotals(program.id, { all: n, active: n, customers: customersBefore + n });
    // The counter spread the joins over its slots (no single hot row).
    const slots = await db()
      .selectFrom('program_member_counts')
      .select('slot')
      .where('program_id', '=', program.id)
      .execute();
    assert.ok(slots.length > 1, `joins went to ${slots.length} slot(s)`);
  });

  it('the migration backfills the counters from the rows there are', async () => {
    const program = await createProgram(t);
    for (let i = 0; i < 3; i++) await createMember(t, program.id);
    const [all, customers] = [await rowsOf(program.id), await customerRows()];
    // As before the counters existed: their tables and migrations gone, the rows kept.
    const names = ['0026_customers_counts', '0851_members_counts'];
    await sql`drop table program_member_counts`.execute(db());
    await sql`drop table customer_counts`.execute(db());
    await db()
      .deleteFrom('tally_migrations' as never)
      .where(sql.ref('name'), 'in', names)
      .execute();
    const ran = await migrateToLatest(
      db(),
      backend,
      modules.flatMap((m) => m.migrations ?? []),
    );
    assert.deepEqual(ran.results?.map((r) => r.migrationName).sort(), names);
    // Statements compiled against the dropped tables are prepared again (PostgreSQL plans by table oid).
    await assertTotals(program.id, { ...all, customers });
    await createMember(t, program.id);
    await assertTotals(program.id, { all: all.all + 1, active: all.active + 1, customers: customers + 1 });
  });
});
