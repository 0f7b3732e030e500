import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { basePoints, compileConditions, periodKey, windowOpen, type ActivityFacts } from './evaluate.ts';

const at = (iso: string) => new Date(iso);
const facts = (over: Partial<ActivityFacts> = {}): ActivityFacts => ({
  event: 'x',
  metadata: {},
  customer: { id: 'cust_1', source_id: 'c1', metadata: {} },
  tierIds: [],
  ...over,
});

describe('time windows in the program time zone', () => {
  it('reads the day of week on the local wall clock, across the date line', () => {
    const weekend = { validity_day_of_week: [0, 6] };
    // Friday 23:30 UTC is already Saturday in Auckland, still Friday in New York.
    assert.equal(windowOpen(weekend, at('2026-11-20T23:30:00Z'), 'Pacific/Auckland'), true);
    assert.equal(windowOpen(weekend, at('2026-11-20T23:30:00Z'), 'America/New_York'), false);
    assert.equal(windowOpen(weekend, at('2026-11-20T23:30:00Z'), 'UTC'), false);
    // Saturday 02:00 UTC is Friday evening in New York.
    assert.equal(windowOpen(weekend, at('2026-11-21T02:00:00Z'), 'America/New_York'), false);
    assert.equal(windowOpen(weekend, at('2026-11-21T02:00:00Z'), 'UTC'), true);
  });

  it('keeps happy hours at local time across a daylight-saving change', () => {
    const happy = { validity_hours: { daily: [{ start_time: '18:00', expiration_time: '21:00' }] } };
    // Zagreb: CEST (UTC+2) until 2026-10-25 03:00, then CET (UTC+1).
    assert.equal(windowOpen(happy, at('2026-10-24T16:30:00Z'), 'Europe/Zagreb'), true); // 18:30 CEST
    assert.equal(windowOpen(happy, at('2026-10-24T15:30:00Z'), 'Europe/Zagreb'), false); // 17:30 CEST
    assert.equal(windowOpen(happy, at('2026-10-26T16:30:00Z'), 'Europe/Zagreb'), false); // 17:30 CET
    assert.equal(windowOpen(happy, at('2026-10-26T17:30:00Z'), 'Europe/Zagreb'), true); // 18:30 CET
    assert.equal(windowOpen(happy, at('2026-10-26T20:00:00Z'), 'Europe/Zagreb'), false); // 21:00 CET: closed
  });

  it('wraps hours past midnight, crediting the day the window opened', () => {
    const late = { validity_hours: { daily: [{ start_time: '22:00', expiration_time: '02:00', days_of_week: [5] }] } };
    assert.equal(windowOpen(late, at('2026-11-20T23:00:00Z'), 'UTC'), true); // Friday 23:00
    assert.equal(windowOpen(late, at('2026-11-21T01:00:00Z'), 'UTC'), true); // Saturday 01:00, Friday's window
    // Sunday 01:00, Saturday's window: not listed.
    assert.equal(windowOpen(late, at('2026-11-22T01:00:00Z'), 'UTC'), false);
  });

  it('repeats a validity_timeframe on calendar days across DST', () => {
    const tf = { start_date: '2026-10-20T18:00:00+02:00', validity_timeframe: { interval: 'P1D', duration: 'PT3H' } };
    assert.equal(windowOpen(tf, at('2026-10-22T16:30:00Z'), 'Europe/Zagreb'), true); // 18:30 CEST
    assert.equal(windowOpen(tf, at('2026-10-28T17:30:00Z'), 'Europe/Zagreb'), true); // 18:30 CET
    assert.equal(windowOpen(tf, at('2026-10-28T16:30:00Z'), 'Europe/Zagreb'), false); // 17:30 CET
    assert.equal(windowOpen(tf, at('2026-10-19T16:30:00Z'), 'Europe/Zagreb'), false); // before start_date
  });

  it('honours start_date and expiration_date as instants', () => {
    const w = { start_date: '2026-12-01T00:00:00Z', expiration_date: '2026-12-02T00:00:00Z' };
    assert.equal(windowOpen(w, at('2026-11-30T23:59:59Z'), 'UTC'), false);
    assert.equal(windowOpen(w, at('2026-12-01T12:00:00Z'), 'UTC'), true);
    assert.equal(windowOpen(w, at('2026-12-02T00:00:00Z'), 'UTC'), false);
  });

  it('keys cap periods on the local calendar', () => {
    const t = at('2026-11-22T23:30:00Z'); // Sunday in UTC, Monday in Auckland
    assert.equal(periodKey('DAY', t, 'UTC'), '2026-11-22');
    assert.equal(periodKey('DAY', t, 'Pacific/Auckland'), '2026-11-23');
    assert.notEqual(periodKey('WEEK', t, 'UTC'), periodKey('WEEK', t, 'Pacific/Auckland'));
    assert.equal(periodKey('MONTH', at('2026-11-30T23:30:00Z'), 'Pacific/Auckland'), '2026-12');
    assert.equal(periodKey('FOREVER', t, 'UTC'), 'forever');
  });
});

describe('conditions', () => {
  it('supports equals, in, ranges and exists on each source', () => {
    const check = compileConditions({
      'customer.metadata.vip': { $is: true },
      'event.metadata.channel': { $in: ['web', 'app'] },
      'metadata.value': { $more_than_or_equal: 10, $less_than: 100 },
      'customer.metadata.referrer': { $exists: false },
    });
    const ok = facts({
      customer: { id: 'c', source_id: null, metadata: { vip: true } },
      metadata: { channel: 'app', value: 50 },
    });
    assert.equal(check(ok), null);
    assert.equal(check({ ...ok, metadata: { channel: 'pos', value: 50 } }), 'event.metadata.channel');
    assert.equal(check({ ...ok, metadata: { channel: 'web', value: 100 } }), 'metadata.value');
    assert.equal(
      check({ ...ok, customer: { id: 'c', source_id: null, metadata: { vip: true, referrer: 'x' } } }),
      'customer.metadata.referrer',
    );
    const tier = compileConditions({ loyalty_tier: { $in: ['ltr_gold'] } });
    assert.equal(tier(facts({ tierIds: ['ltr_gold'] })), null);
    assert.equal(tier(facts({ tierIds: ['ltr_silver'] })), 'loyalty_tier');
  });
});

describe('calculations', () => {
  it('computes each proportional type', () => {
    const order = {
      id: 'ord_1',
      source_id: null,
      amount: 12_550,
      total_amount: 10_050,
      discount_amount: 2_500,
      status: 'PAID',
      metadata: { stars: '7' },
      items: [
        { product_id: 'prod_a', quantity: 3, amount: 3000 },
        { sku_id: 'sku_b', quantity: 2, price: 1000 },
      ],
    };
    const f = facts({ order, metadata: { km: 42 }, customer: { id: 'c', source_id: null, metadata: { age: 37 } } });
    const r = (calculation_type: string, where: Record<string, unknown>) =>
      basePoints({ type: 'PROPORTIONAL', calculation_type, ...where } as never, f).points;
    assert.equal(r('ORDER_AMOUNT', { order: { amount: { every: 1000, points: 2 } } }), 24);
    assert.equal(r('ORDER_TOTAL_AMOUNT', { order: { total_amount: { every: 1000, points: 2 } } }), 20);
    assert.equal(r('ORDER_METADATA', { order: { metadata: { every: 2, points: 5, property: 'stars' } } }), 15);
    assert.equal(r('ORDER_ITEMS_QUANTITY', { order_items: { quantity: { every: 1, points: 4 } } }), 20);
    assert.equal(
      r('ORDER_ITEMS_QUANTITY', {
        order_items: { quantity: { every: 1, points: 4, object: 'product', id: 'prod_a' } },
      }),
      12,
    );
    assert.equal(
      r('ORDER_ITEMS_AMOUNT', { order_items: { amount: { every: 100, points: 1, object: 'sku', id: 'sku_b' } } }),
      20,
    );
    assert.equal(r('CUSTOMER_METADATA', { customer: { metadata: { every: 10, points: 1, property: 'age' } } }), 3);
    assert.equal(
      r('CUSTOM_EVENT_METADATA', { custom_event: { metadata: { every: 5, points: 3, property: 'km' } } }),
      24,
    );
    assert.equal(
      r('CUSTOM_EVENT_METADATA', { custom_event: { metadata: { every: 5, points: 3, property: 'missing' } } }),
      0,
    );
  });
});
