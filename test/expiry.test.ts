import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ManualClock } from '../src/lib/clock.ts';
import { assertLedgerInvariants } from './helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from './helpers/server.ts';

const DAY = 24 * 3600 * 1000;

describe('point lots: expiry and consumption order', () => {
  let t: TestServer;
  let clock: ManualClock;
  before(async () => {
    t = await startTestServer({ manualClock: true });
    clock = t.clock as ManualClock;
    clock.set('2030-01-10T12:00:00.000Z');
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  const events = async (membershipId: string) =>
    (
      await t.server.ctx.database.db
        .selectFrom('outbox_events')
        .selectAll()
        .where('resource_id', '=', membershipId)
        .orderBy('seq')
        .execute()
    ).map((e) => ({
      type: e.type,
      data: JSON.parse(e.data),
    }));

  it('removals take the earliest-expiring points first, non-expiring last', async () => {
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    const path = `/v1/loyalties/members/${member.code}/balance`;
    const add = (points: number, extra: Record<string, unknown>) => t.api('POST', path, { points, ...extra });
    assert.equal((await add(100, { expiration_type: 'NON_EXPIRING' })).status, 200);
    assert.equal(
      (await add(30, { expiration_type: 'CUSTOM_DATE', expiration_date: '2030-06-01T00:00:00Z' })).status,
      200,
    );
    assert.equal(
      (await add(20, { expiration_type: 'CUSTOM_DATE', expiration_date: '2030-03-01T00:00:00+01:00' })).status,
      200,
    );
    assert.equal(
      (await add(10, { expiration_type: 'CUSTOM_DATE', expiration_date: '2030-12-01T00:00:00Z' })).status,
      200,
    );

    const lots = await t.api('GET', `/v1/loyalties/${program.id}/members/${member.code}/points-expiration`);
    assert.equal(lots.status, 200);
    assert.equal(lots.body.object, 'list');
    assert.deepEqual(
      lots.body.data.map((l: any) => [l.bucket.total_points, l.expires_at]),
      [
        [20, '2030-02-28T23:00:00.000Z'],
        [30, '2030-06-01T00:00:00.000Z'],
        [10, '2030-12-01T00:00:00.000Z'],
        [100, null],
      ],
    );
    assert.equal(lots.body.total, 4);
    const page2 = await t.api(
      'GET',
      `/v1/loyalties/${program.id}/members/${member.code}/points-expiration?limit=3&page=2`,
    );
    assert.deepEqual([page2.body.total, page2.body.data.map((l: any) => l.bucket.total_points)], [4, [100]]);
    assert.equal(lots.body.data[0].object, 'loyalty_points_bucket');
    assert.equal(lots.body.data[0].voucher_id, member.id);
    assert.equal(lots.body.data[0].campaign_id, program.id);
    const card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.next_expiration_date, '2030-02-28');
    assert.equal(card.body.loyalty_card.next_expiration_points, 20);

    assert.equal((await add(-45, {})).status, 200);
    const after = await t.api('GET', `/v1/loyalties/${program.id}/members/${member.code}/points-expiration`);
    assert.deepEqual(
      after.body.data.map((l: any) => [l.bucket.total_points, l.expires_at]),
      [
        [5, '2030-06-01T00:00:00.000Z'],
        [10, '2030-12-01T00:00:00.000Z'],
        [100, null],
      ],
    );
    assert.equal((await add(-110, {})).status, 200);
    const last = await t.api('GET', `/v1/loyalties/${program.id}/members/${member.code}/points-expiration`);
    assert.deepEqual(
      last.body.data.map((l: any) => [l.bucket.total_points, l.expires_at]),
      [[5, null]],
    );
    await assertLedgerInvariants(t.server.ctx.database.db);
  });

  it('a lot expires at its date: POINTS_EXPIRATION entry, balance, expired_points, events', async () => {
    const program = await createProgram(t, { timezone: 'Europe/Zagreb' });
    const member = await createMember(t, program.id);
    const path = `/v1/loyalties/members/${member.code}/balance`;
    await t.api('POST', path, { points: 40, expiration_type: 'CUSTOM_DATE', expiration_date: '2030-01-20T00:00:00Z' });
    await t.api('POST', path, { points: 60, expiration_type: 'NON_EXPIRING' });
    await t.api('POST', path, { points: -15 });

    // Nothing is due yet.
    await t.server.ctx.scheduler.runDue();
    let card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.balance, 85);

    clock.set('2030-01-20T00:00:01Z');
    const ran = await t.server.ctx.scheduler.runDue();
    assert.ok(ran >= 1);
    card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.balance, 60);
    assert.equal(card.body.loyalty_card.expired_points, 25);
    assert.equal(card.body.loyalty_card.points, 60);
    assert.equal(card.body.loyalty_card.next_expiration_date, null);

    const txs = await t.api('GET', `/v1/loyalties/members/${member.code}/transactions`);
    const exp = txs.body.data[0];
    assert.equal(exp.type, 'POINTS_EXPIRATION');
    assert.equal(exp.details.balance.points, -25);
    assert.equal(exp.details.balance.balance, 60);

    const evs = await events(member.id);
    const expired = evs.filter((e) => e.type === 'balance_value_expired');
    assert.equal(expired.length, 1);
    assert.equal(expired[0].data.value, 25);
    assert.equal(expired[0].data.loyalty_program.id, program.id);
    const pointsExpired = evs.filter((e) => e.type === 'customer.voucher.loyalty_card.points_expired');
    assert.equal(pointsExpired.length, 1);
    assert.equal(pointsExpired[0].data.transaction.type, 'POINTS_EXPIRATION');
    const updated = evs.filter((e) => e.type === 'balance_value_updated').at(-1)!;
    assert.deepEqual(
      [updated.data.transaction, updated.data.initial_value, updated.data.value],
      [{ type: 'debit', value: 25 }, 85, 60],
    );

    // Running again changes nothing (exactly once).
    clock.advance(DAY);
    await t.server.ctx.scheduler.runDue();
    card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.balance, 60);
    await assertLedgerInvariants(t.server.ctx.database.db);
  });

  it('a fully spent lot expires nothing', async () => {
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    const path = `/v1/loyalties/members/${member.code}/balance`;
    const now = clock.nowMs();
    await t.api('POST', path, {
      points: 10,
      expiration_type: 'CUSTOM_DATE',
      expiration_date: new Date(now + DAY).toISOString(),
    });
    await t.api('POST', path, { points: -10 });
    clock.advance(2 * DAY);
    await t.server.ctx.scheduler.runDue();
    const txs = await t.api('GET', `/v1/loyalties/members/${member.code}/transactions`);
    assert.deepEqual(
      txs.body.data.map((x: any) => x.type),
      ['POINTS_REMOVAL', 'POINTS_ADDITION'],
    );
  });

  const programRules =
    'PROGRAM_RULES follow the program expiration_rules in its timezone; NON_EXPIRING and CUSTOM_DATE override them';
  it(programRules, async () => {
    clock.set('2030-03-15T10:00:00Z');
    const program = await createProgram(t, {
      timezone: 'America/New_York',
      voucher: {
        loyalty_card: {
          points: 0,
          expiration_rules: { period_type: 'MONTH', period_value: 2, rounding_type: 'END_OF_MONTH' },
        },
      },
    });
    const member = await createMember(t, program.id);
    const path = `/v1/loyalties/members/${member.code}/balance`;
    await t.api('POST', path, { points: 5 }); // PROGRAM_RULES by default
    clock.advance(1000);
    await t.api('POST', path, { points: 6, expiration_type: 'PROGRAM_RULES' });
    await t.api('POST', path, { points: 7, expiration_type: 'NON_EXPIRING' });
    await t.api('POST', path, { points: 8, expiration_type: 'CUSTOM_DATE', expiration_date: '2030-04-01T00:00:00Z' });
    const lots = await t.api('GET', `/v1/loyalties/${program.id}/members/${member.code}/points-expiration`);
    // 2 months after 2030-03-15 is 2030-05-15; end of that month in New York (EDT, UTC-4).
    assert.deepEqual(
      lots.body.data.map((l: any) => [l.bucket.total_points, l.expires_at]),
      [
        [8, '2030-04-01T00:00:00.000Z'],
        [5, '2030-06-01T03:59:59.999Z'],
        [6, '2030-06-01T03:59:59.999Z'],
        [7, null],
      ],
    );
    // Expire the first two steps of time and check the order of expiries.
    clock.set('2030-04-01T00:00:00.001Z');
    await t.server.ctx.scheduler.runDue();
    let card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.balance, 18);
    assert.equal(card.body.loyalty_card.next_expiration_date, '2030-05-31');
    assert.equal(card.body.loyalty_card.next_expiration_points, 11);
    clock.set('2030-06-01T04:00:00Z');
    await t.server.ctx.scheduler.runDue();
    card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.balance, 7);
    assert.equal(card.body.loyalty_card.expired_points, 19);
    await assertLedgerInvariants(t.server.ctx.database.db);
  });

  it('a balance definition with its own expiry, min and max', async () => {
    clock.set('2030-07-01T00:00:00Z');
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    const def = await t.api('POST', `/v1/loyalties/${program.id}/balance-definitions`, {
      name: 'credits',
      unit: 'EUR',
      min: 5,
      max: 50,
      expiration_rules: { period_type: 'FIXED_DAY_OF_YEAR', fixed_month: 1, fixed_day: 31 },
      metadata: { kind: 'wallet' },
    });
    assert.equal(def.status, 200);
    assert.equal(def.body.object, 'balance_definition');
    const list = await t.api('GET', `/v1/loyalties/${program.id}/balance-definitions`);
    assert.deepEqual(
      list.body.data.map((d: any) => [d.name, d.default]),
      [
        ['points', true],
        ['credits', false],
      ],
    );
    const path = `/v1/loyalties/members/${member.code}/balance`;
    // A credit that stays below the minimum moves towards it: allowed.
    const low = await t.api('POST', path, { points: 4, balance_definition_id: 'credits' });
    assert.equal(low.status, 200);
    assert.equal(low.body.balance, 4);
    // A debit below the minimum is refused, even from below it.
    const lower = await t.api('POST', path, { points: -1, balance_definition_id: 'credits' });
    assert.equal(lower.status, 422);
    assert.equal(lower.body.key, 'insufficient_balance');
    clock.advance(1000);
    const ok = await t.api('POST', path, { points: 26, balance_definition_id: 'credits' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.balance, 30);
    assert.deepEqual(ok.body.balance_definition, { id: def.body.id, name: 'credits', unit: 'EUR' });
    const over = await t.api('POST', path, { points: 21, balance_definition_id: def.body.id });
    assert.equal(over.status, 422);
    assert.equal(over.body.key, 'balance_maximum_exceeded');
    const under = await t.api('POST', path, { points: -26, balance_definition_id: def.body.id });
    assert.equal(under.status, 422);
    assert.equal(under.body.key, 'insufficient_balance');
    clock.advance(1000);
    const edge = await t.api('POST', path, { points: 20, balance_definition_id: def.body.id });
    assert.equal(edge.body.balance, 50);
    const lots = await t.api(
      'GET',
      `/v1/loyalties/${program.id}/members/${member.code}/points-expiration?balance_definition_id=credits`,
    );
    assert.deepEqual(
      lots.body.data.map((l: any) => [l.bucket.total_points, l.expires_at]),
      [
        [4, '2031-01-31T23:59:59.999Z'],
        [26, '2031-01-31T23:59:59.999Z'],
        [20, '2031-01-31T23:59:59.999Z'],
      ],
    );
    const balances = await t.api('GET', `/v1/loyalties/members/${member.code}/balances`);
    assert.deepEqual(
      balances.body.data.map((b: any) => [b.balance_definition.name, b.balance]),
      [
        ['points', 0],
        ['credits', 50],
      ],
    );
    const evs = await events(member.id);
    assert.equal(evs.filter((e) => e.type === 'balance_transaction_unauthorized').length, 3);
    assert.equal(evs.filter((e) => e.type === 'balance_maximum_value_reached').length, 1);
    await assertLedgerInvariants(t.server.ctx.database.db);
  });
});
