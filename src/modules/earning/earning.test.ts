import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ManualClock } from '../../lib/clock.ts';
import { assertLedgerInvariants } from '../../../test/helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from '../../../test/helpers/server.ts';

const uid = () => randomBytes(5).toString('hex');

describe('earning rules and ingestion', () => {
  let t: TestServer;
  let clock: ManualClock;
  before(async () => {
    t = await startTestServer({ manualClock: true });
    clock = t.clock as ManualClock;
    clock.set('2026-11-18T10:00:00Z'); // a Wednesday
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  const rules = async (programId: string, body: unknown[]) => {
    const r = await t.api('POST', `/v1/loyalties/${programId}/earning-rules`, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as any[];
  };
  const track = async (body: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const r = await t.api('POST', '/v1/events', body, headers);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  // Every auto-join program with order.paid rules credits an order: look at one program's share.
  const mine = (earned: any, programId: string) => {
    const list = earned.accruals.filter((a: any) => a.campaign_id === programId);
    return {
      points: list.filter((a: any) => a.status === 'ACCRUED').reduce((s: number, a: any) => s + a.points, 0),
      pending: list.filter((a: any) => a.status === 'PENDING').reduce((s: number, a: any) => s + a.points, 0),
      code: list[0]?.code,
    };
  };
  const card = async (code: string) => (await t.api('GET', `/v1/loyalties/members/${code}`)).body;

  it('manages rules: array create, get, list, update, disable, enable, delete', async () => {
    const p = await createProgram(t);
    const [a, b] = await rules(p.id, [
      { event: 'signup', loyalty: { type: 'FIXED', points: 10 }, source: { banner: 'Welcome' } },
      {
        event: 'order.paid',
        loyalty: {
          type: 'PROPORTIONAL',
          calculation_type: 'ORDER_AMOUNT',
          order: { amount: { every: 100, points: 1 } },
        },
      },
    ]);
    assert.match(a.id, /^ern_/);
    assert.equal(a.object, 'earning_rule');
    assert.equal(a.source.banner, 'Welcome');
    assert.equal(a.source.object_id, p.id);
    assert.equal(b.loyalty.calculation_type, 'ORDER_AMOUNT');
    const list = await t.api('GET', `/v1/loyalties/${p.id}/earning-rules`);
    assert.equal(list.body.total, 2);
    const upd = await t.api('PUT', `/v1/loyalties/${p.id}/earning-rules/${a.id}`, {
      loyalty: { type: 'FIXED', points: 15 },
    });
    assert.equal(upd.body.loyalty.points, 15);
    assert.equal((await t.api('POST', `/v1/loyalties/${p.id}/earning-rules/${a.id}/disable`)).body.active, false);
    const off = await track({ event: 'signup', customer: { source_id: `c-${uid()}` } });
    assert.equal(off.earned.points, 0);
    assert.equal((await t.api('POST', `/v1/loyalties/${p.id}/earning-rules/${a.id}/enable`)).body.active, true);
    const on = await track({ event: 'signup', customer: { source_id: `c-${uid()}` } });
    assert.equal(on.earned.points, 15);
    assert.equal((await t.api('DELETE', `/v1/loyalties/${p.id}/earning-rules/${a.id}`)).status, 204);
    assert.equal((await t.api('GET', `/v1/loyalties/${p.id}/earning-rules/${a.id}`)).status, 404);
    // Bad input is a 400, never a 500.
    const bad1 = await t.api('POST', `/v1/loyalties/${p.id}/earning-rules`, [
      {
        event: 'x',
        loyalty: {
          type: 'PROPORTIONAL',
          calculation_type: 'ORDER_METADATA',
          order: { metadata: { every: 1, points: 1 } },
        },
      },
    ]);
    assert.equal(bad1.status, 400);
    const bad2 = await t.api('POST', `/v1/loyalties/${p.id}/earning-rules`, [
      { event: 'x', loyalty: { type: 'FIXED', points: '5' } },
    ]);
    assert.equal(bad2.status, 400);
    const bad3 = await t.api('POST', `/v1/loyalties/${p.id}/earning-rules`, [
      { event: 'x', loyalty: { type: 'FIXED', points: 5 }, conditions: { 'order.nope': { $is: 1 } } },
    ]);
    assert.equal(bad3.status, 400);
  });

  it('creates the customer and auto-joins on first sight; explains the accrual in the ledger', async () => {
    const p = await createProgram(t);
    const [rule] = await rules(p.id, [
      {
        event: 'km_run',
        loyalty: {
          type: 'PROPORTIONAL',
          calculation_type: 'CUSTOM_EVENT_METADATA',
          custom_event: { metadata: { every: 5, points: 3, property: 'km' } },
        },
        source: { banner: '3 points per 5 km' },
      },
    ]);
    const sid = `runner-${uid()}`;
    const res = await track({ event: 'km_run', customer: { source_id: sid, name: 'Ana' }, metadata: { km: 21 } });
    assert.equal(res.object, 'event');
    assert.equal(res.customer.source_id, sid);
    assert.equal(res.earned.points, 12);
    const code = res.earned.accruals[0].code;
    const c = await card(code);
    assert.equal(c.loyalty_card.balance, 12);
    const txs = await t.api('GET', `/v1/loyalties/members/${code}/transactions`);
    const tx = txs.body.data[0];
    assert.equal(tx.type, 'POINTS_ACCRUAL');
    assert.equal(tx.details.earning_rule.id, rule.id);
    assert.equal(tx.details.calculation.calculation_type, 'CUSTOM_EVENT_METADATA');
    assert.equal(tx.details.calculation.value, 21);
    assert.equal(tx.details.balance.operation_type, 'AUTOMATIC');
    assert.match(tx.details.explanation, /3 points for every 5/);
    // A program that does not auto-join credits only existing members.
    const closed = await createProgram(t, { auto_join: false });
    await rules(closed.id, [{ event: 'km_run', loyalty: { type: 'FIXED', points: 1 } }]);
    const stranger = await track({ event: 'km_run', customer: { source_id: `s-${uid()}` }, metadata: { km: 5 } });
    assert.equal(stranger.earned.accruals.filter((a: any) => a.campaign_id === closed.id).length, 0);
    const m = await createMember(t, closed.id, { source_id: sid });
    const member = await track({
      event: 'km_run',
      customer: { source_id: sid },
      metadata: { km: 5 },
      loyalty: { code: m.code },
    });
    assert.deepEqual(
      member.earned.accruals.map((a: any) => a.code),
      [m.code],
    );
  });

  it('earns on orders for each order calculation type, once per paid order', async () => {
    const p = await createProgram(t);
    await rules(p.id, [
      {
        event: 'order.paid',
        loyalty: {
          type: 'PROPORTIONAL',
          calculation_type: 'ORDER_AMOUNT',
          order: { amount: { every: 1000, points: 1 } },
        },
      },
      {
        event: 'order.paid',
        loyalty: {
          type: 'PROPORTIONAL',
          calculation_type: 'ORDER_TOTAL_AMOUNT',
          order: { total_amount: { every: 1000, points: 10 } },
        },
      },
      {
        event: 'order.paid',
        loyalty: {
          type: 'PROPORTIONAL',
          calculation_type: 'ORDER_METADATA',
          order: { metadata: { every: 1, points: 100, property: 'stars' } },
        },
      },
      {
        event: 'order.paid',
        loyalty: {
          type: 'PROPORTIONAL',
          calculation_type: 'ORDER_ITEMS_QUANTITY',
          order_items: { quantity: { every: 1, points: 1000, object: 'product', id: 'prod_shoe' } },
        },
      },
      {
        event: 'order.paid',
        loyalty: {
          type: 'PROPORTIONAL',
          calculation_type: 'CUSTOMER_METADATA',
          customer: { metadata: { every: 1, points: 10000, property: 'children' } },
        },
      },
    ]);
    const sid = `buyer-${uid()}`;
    const created = await t.api('POST', '/v1/orders', {
      source_id: `o-${sid}`,
      status: 'CREATED',
      customer: { source_id: sid, metadata: { children: 2 } },
      amount: 5500,
      discount_amount: 2000,
      metadata: { stars: 3 },
      items: [
        { product_id: 'prod_shoe', quantity: 2, amount: 5000 },
        { product_id: 'prod_sock', quantity: 5, amount: 500 },
      ],
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.equal(created.body.object, 'order');
    assert.equal(created.body.total_amount, 3500);
    assert.equal(created.body.earned, undefined);
    const paid = await t.api('PUT', `/v1/orders/${created.body.id}`, { status: 'PAID' });
    assert.equal(paid.status, 200, JSON.stringify(paid.body));
    // 5 (amount 5500/1000) + 30 (total 3500/1000×10) + 300 (3 stars) + 2000 (2 shoes) + 20000 (2 children)
    assert.equal(mine(paid.body.earned, p.id).points, 5 + 30 + 300 + 2000 + 20000);
    const again = await t.api('POST', '/v1/orders', { source_id: `o-${sid}`, status: 'PAID' });
    assert.equal(again.status, 200);
    assert.equal(again.body.earned, undefined);
    const code = mine(paid.body.earned, p.id).code;
    assert.equal((await card(code)).loyalty_card.balance, 22335);
    // One ledger entry for the order, whose details list each rule's share.
    const txs = (await t.api('GET', `/v1/loyalties/members/${code}/transactions`)).body.data;
    assert.equal(txs.length, 1);
    assert.equal(txs[0].details.calculation.type, 'SUM');
    assert.deepEqual(
      txs[0].details.earning_rules.map((r: any) => r.points).sort((a: number, b: number) => a - b),
      [5, 30, 300, 2000, 20000],
    );
    assert.equal(txs[0].details.order.id, created.body.id);
    const direct = await t.api('POST', '/v1/orders', {
      source_id: `o2-${sid}`,
      status: 'PAID',
      customer: sid,
      amount: 1000,
    });
    assert.equal(mine(direct.body.earned, p.id).points, 1 + 10 + 20000);
    assert.equal((await t.api('GET', `/v1/orders/o2-${sid}`)).body.status, 'PAID');
  });

  it('is idempotent by source_event_id and by Idempotency-Key', async () => {
    const p = await createProgram(t);
    await rules(p.id, [{ event: 'checkin', loyalty: { type: 'FIXED', points: 7 } }]);
    const sid = `idem-${uid()}`;
    const body = { event: 'checkin', customer: { source_id: sid }, source_event_id: `evt-${sid}` };
    const [a, b] = await Promise.all([track(body), track(body)]);
    const c = await track(body);
    assert.equal([a, b].filter((x) => x.duplicate).length, 1);
    assert.equal(c.duplicate, true);
    assert.equal(c.id, a.duplicate ? b.id : a.id);
    const code = c.earned.accruals[0].code;
    assert.equal((await card(code)).loyalty_card.balance, 7);
    const key = { 'idempotency-key': `k-${sid}` };
    const k1 = await track({ event: 'checkin', customer: { source_id: sid } }, key);
    const k2 = await t.api('POST', '/v1/events', { event: 'checkin', customer: { source_id: sid } }, key);
    assert.equal(k2.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(k2.body, k1);
    assert.equal((await card(code)).loyalty_card.balance, 14);
  });

  it('handles concurrent first sightings of one customer: one customer, one card, every event earns', async () => {
    const p = await createProgram(t);
    const ev = `burst-${uid()}`;
    await rules(p.id, [{ event: ev, loyalty: { type: 'FIXED', points: 3 } }]);
    const sid = `burst-${uid()}`;
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        t.api('POST', '/v1/events', { event: ev, customer: { source_id: sid }, source_event_id: `${sid}-${i}` }),
      ),
    );
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200, 200, 200],
    );
    const codes = new Set(answers.map((a) => a.body.earned.accruals[0].code));
    assert.equal(codes.size, 1);
    assert.equal((await card([...codes][0])).loyalty_card.balance, 18);
    const orders = await Promise.all(
      [1, 2].map(() =>
        t.api('POST', '/v1/orders', { source_id: `o-${sid}`, status: 'PAID', customer: sid, amount: 100 }),
      ),
    );
    assert.deepEqual(
      orders.map((o) => o.status),
      [200, 200],
    );
    assert.equal(orders[0].body.id, orders[1].body.id);
  });

  it('earns once for one source_event_id sent several times at once; every answer is the first result', async () => {
    const p = await createProgram(t);
    const ev = `dup-${uid()}`;
    await rules(p.id, [{ event: ev, loyalty: { type: 'FIXED', points: 4 } }]);
    const sid = `dup-${uid()}`;
    const code = (await track({ event: ev, customer: { source_id: sid } })).earned.accruals[0].code;
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        t.api('POST', '/v1/events', { event: ev, customer: { source_id: sid }, source_event_id: `once-${sid}` }),
      ),
    );
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200, 200, 200],
    );
    assert.equal(answers.filter((a) => !a.body.duplicate).length, 1);
    assert.equal(new Set(answers.map((a) => a.body.id)).size, 1);
    for (const a of answers) assert.deepEqual(a.body.earned, answers[0].body.earned);
    assert.equal((await card(code)).loyalty_card.balance, 8);
  });

  it('applies conditions on customer and event metadata', async () => {
    const p = await createProgram(t);
    await rules(p.id, [
      {
        event: 'purchase',
        loyalty: { type: 'FIXED', points: 10 },
        conditions: {
          'customer.metadata.vip': { $is: true },
          'event.metadata.channel': { $in: ['web', 'app'] },
          'event.metadata.value': { $more_than_or_equal: 100, $less_than: 1000 },
        },
      },
    ]);
    const sid = `cond-${uid()}`;
    await t.api('POST', '/v1/customers', { source_id: sid, metadata: { vip: true } });
    assert.equal(
      (await track({ event: 'purchase', customer: { source_id: sid }, metadata: { channel: 'web', value: 150 } }))
        .earned.points,
      10,
    );
    const no = await track({
      event: 'purchase',
      customer: { source_id: sid },
      metadata: { channel: 'pos', value: 150 },
    });
    assert.equal(no.earned.points, 0);
    assert.match(no.earned.skipped[0].reason, /event\.metadata\.channel/);
    assert.equal(
      (await track({ event: 'purchase', customer: { source_id: sid }, metadata: { channel: 'app', value: 1000 } }))
        .earned.points,
      0,
    );
  });

  it('multiplies points in windows of the program time zone (weekends in Auckland)', async () => {
    const p = await createProgram(t, { timezone: 'Pacific/Auckland' });
    await rules(p.id, [
      {
        event: 'visit',
        loyalty: { type: 'FIXED', points: 10 },
        multipliers: [{ multiplier: 2, name: 'double weekend', validity_day_of_week: [0, 6] }],
      },
      {
        event: 'visit',
        loyalty: { type: 'FIXED', points: 5 },
        validity_hours: { daily: [{ start_time: '18:00', expiration_time: '21:00' }] },
        source: { banner: 'evening bonus' },
      },
    ]);
    const sid = `tz-${uid()}`;
    clock.set('2026-11-20T10:00:00Z'); // Friday 23:00 in Auckland (NZDT, UTC+13)
    assert.equal((await track({ event: 'visit', customer: { source_id: sid } })).earned.points, 10);
    clock.set('2026-11-20T11:30:00Z'); // Saturday 00:30 in Auckland, still Friday in UTC
    const sat = await track({ event: 'visit', customer: { source_id: sid } });
    assert.equal(sat.earned.points, 20);
    const tx = (await t.api('GET', `/v1/loyalties/members/${sat.earned.accruals[0].code}/transactions`)).body.data[0];
    assert.deepEqual(tx.details.multipliers, [{ type: 'TIME', name: 'double weekend', multiplier: 2 }]);
    clock.set('2026-11-23T05:30:00Z'); // Monday 18:30 in Auckland
    assert.equal((await track({ event: 'visit', customer: { source_id: sid } })).earned.points, 15);
    clock.set('2026-11-18T10:00:00Z');
  });

  it('caps points per customer per day and per week in the program time zone', async () => {
    const p = await createProgram(t, { timezone: 'America/New_York' });
    await rules(p.id, [
      {
        event: 'scan',
        loyalty: { type: 'FIXED', points: 10 },
        limits: [
          { period: 'DAY', max_points: 25 },
          { period: 'WEEK', max_points: 60 },
        ],
      },
    ]);
    const sid = `cap-${uid()}`;
    clock.set('2026-11-16T15:00:00Z'); // Monday 10:00 in New York
    const got = [];
    for (let i = 0; i < 4; i++) got.push((await track({ event: 'scan', customer: { source_id: sid } })).earned.points);
    assert.deepEqual(got, [10, 10, 5, 0]);
    clock.set('2026-11-17T03:00:00Z'); // Monday 22:00 in New York: same local day although Tuesday in UTC
    assert.equal((await track({ event: 'scan', customer: { source_id: sid } })).earned.points, 0);
    clock.set('2026-11-17T15:00:00Z'); // Tuesday
    const tue = [];
    for (let i = 0; i < 3; i++) tue.push((await track({ event: 'scan', customer: { source_id: sid } })).earned.points);
    assert.deepEqual(tue, [10, 10, 5]);
    clock.set('2026-11-18T15:00:00Z'); // Wednesday: the week cap (60) leaves 10
    const wed = [];
    for (let i = 0; i < 2; i++) wed.push((await track({ event: 'scan', customer: { source_id: sid } })).earned.points);
    assert.deepEqual(wed, [10, 0]);
    clock.set('2026-11-23T15:00:00Z'); // next Monday
    assert.equal((await track({ event: 'scan', customer: { source_id: sid } })).earned.points, 10);
    clock.set('2026-11-18T10:00:00Z');
  });

  it('holds pending points and activates them on time', async () => {
    const p = await createProgram(t);
    await rules(p.id, [
      {
        event: 'order.paid',
        loyalty: {
          type: 'PROPORTIONAL',
          calculation_type: 'ORDER_AMOUNT',
          order: { amount: { every: 100, points: 1 } },
        },
        pending_points: { period_type: 'DAY', period_value: 3 },
      },
    ]);
    const sid = `pend-${uid()}`;
    const o = await t.api('POST', '/v1/orders', { source_id: `o-${sid}`, status: 'PAID', customer: sid, amount: 4200 });
    assert.equal(mine(o.body.earned, p.id).points, 0);
    assert.equal(mine(o.body.earned, p.id).pending, 42);
    const code = mine(o.body.earned, p.id).code;
    let c = await card(code);
    assert.equal(c.loyalty_card.balance, 0);
    assert.equal(c.loyalty_card.pending_points, 42);
    const list = await t.api('GET', `/v1/loyalties/members/${code}/pending-points`);
    assert.equal(list.body.data.length, 1);
    assert.equal(list.body.data[0].order_id, o.body.id);
    assert.equal((await t.api('GET', `/v1/loyalties/${p.id}/pending-points`)).body.data.length, 1);
    // Not yet.
    clock.advance(2 * 86400_000);
    await t.server.ctx.scheduler.runDue();
    assert.equal((await card(code)).loyalty_card.balance, 0);
    clock.advance(86400_000 + 1000);
    await t.server.ctx.scheduler.runDue();
    c = await card(code);
    assert.equal(c.loyalty_card.balance, 42);
    assert.equal(c.loyalty_card.pending_points, 0);
    assert.equal((await t.api('GET', `/v1/loyalties/members/${code}/pending-points`)).body.data[0].status, 'ACTIVATED');
    const tx = (await t.api('GET', `/v1/loyalties/members/${code}/transactions`)).body.data[0];
    assert.equal(tx.type, 'POINTS_ACCRUAL');
    assert.equal(tx.details.pending_points.id, list.body.data[0].id);

    // By hand: adjust, activate early, cancel.
    const o2 = await t.api('POST', '/v1/orders', {
      source_id: `o2-${sid}`,
      status: 'PAID',
      customer: sid,
      amount: 1000,
    });
    const o3 = await t.api('POST', '/v1/orders', {
      source_id: `o3-${sid}`,
      status: 'PAID',
      customer: sid,
      amount: 2000,
    });
    const pp2 = (await t.api('GET', `/v1/loyalties/members/${code}/pending-points`, undefined)).body.data.find(
      (x: any) => x.order_id === o2.body.id,
    );
    const pp3 = (await t.api('GET', `/v1/loyalties/members/${code}/pending-points?limit=100`)).body.data.find(
      (x: any) => x.order_id === o3.body.id,
    );
    const adj = await t.api('POST', `/v1/loyalties/members/${code}/pending-points/${pp2.id}/balance`, { points: 5 });
    assert.equal(adj.status, 200);
    assert.deepEqual([adj.body.points, adj.body.total], [5, 35]);
    assert.equal(
      (await t.api('POST', `/v1/loyalties/members/${code}/pending-points/${pp2.id}/balance`, { points: -15 })).status,
      400,
    );
    const act = await t.api('POST', `/v1/loyalties/members/${code}/pending-points/${pp2.id}/activate`);
    assert.equal(act.status, 200);
    assert.equal(act.body.balance, 57);
    assert.equal((await t.api('POST', `/v1/loyalties/members/${code}/pending-points/${pp2.id}/activate`)).status, 400);
    assert.equal((await t.api('POST', `/v1/loyalties/members/${code}/pending-points/${pp3.id}/cancel`)).status, 204);
    c = await card(code);
    assert.deepEqual([c.loyalty_card.balance, c.loyalty_card.pending_points], [57, 0]);
    clock.advance(10 * 86400_000);
    await t.server.ctx.scheduler.runDue();
    assert.equal((await card(code)).loyalty_card.balance, 57);
    clock.set('2026-11-18T10:00:00Z');
  });

  it('uses an earning rule expiration_rules for the lot it credits', async () => {
    const p = await createProgram(t, { timezone: 'UTC' });
    await rules(p.id, [
      {
        event: 'promo',
        loyalty: { type: 'FIXED', points: 9 },
        expiration_rules: { period_type: 'MONTH', period_value: 1, rounding_type: 'END_OF_MONTH' },
      },
    ]);
    const r = await track({ event: 'promo', customer: { source_id: `exp-${uid()}` } });
    const lots = await t.api('GET', `/v1/loyalties/${p.id}/members/${r.earned.accruals[0].code}/points-expiration`);
    assert.equal(lots.body.data[0].expires_at, '2026-12-31T23:59:59.999Z');
  });
});
