import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ManualClock } from '../../src/lib/clock.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { allEvents, assertEventsMatchCatalog, customer, ok } from './helpers.ts';

describe('voucher expiry', () => {
  let t: TestServer;
  let clock: ManualClock;
  before(async () => {
    t = await startTestServer({ manualClock: true });
    clock = t.clock as ManualClock;
    clock.set('2032-01-01T00:00:00.000Z');
  });
  after(async () => {
    await t.close();
  });

  const expiredEvents = async (code: string) =>
    (await allEvents(t)).filter((e) => e.type === 'voucher_expired' && e.data.code === code);

  it('fires voucher_expired once at expiration_date, even when the scheduler ran again only days later', async () => {
    const kim = await customer(t, 'exp-kim');
    await ok(t, 'POST', '/v1/campaigns', {
      name: 'Short-lived',
      expiration_date: '2032-01-05T00:00:00.000Z',
      voucher: { type: 'DISCOUNT_VOUCHER', discount: { type: 'AMOUNT', amount_off: 100 } },
    });
    const pub = await ok(t, 'POST', '/v1/publications', { campaign: 'Short-lived', customer: kim.id });
    const code = pub.voucher.code;
    assert.equal(pub.voucher.expiration_date, '2032-01-05T00:00:00.000Z');
    // Moved: the first date no longer fires; the new one does.
    // Given with an offset, stored in UTC (dates compare as strings in the scheduler).
    const moved = await ok(t, 'PUT', `/v1/vouchers/${code}`, { expiration_date: '2032-01-03T01:00:00+01:00' });
    assert.equal(moved.expiration_date, '2032-01-03T00:00:00.000Z');

    clock.set('2032-01-02T23:59:59.000Z');
    await t.server.ctx.scheduler.runDue();
    assert.equal((await expiredEvents(code)).length, 0, 'not before its date');
    await ok(t, 'POST', `/v1/vouchers/${code}/validate`, { customer: kim.id, order: { amount: 500 } });

    // Downtime: nothing ran for a week past the date.
    clock.set('2032-01-10T00:00:00.000Z');
    await t.server.ctx.scheduler.runDue();
    await t.server.ctx.scheduler.runDue();
    const events = await expiredEvents(code);
    assert.equal(events.length, 1, 'once');
    assert.equal(events[0].data.id, pub.voucher.id);
    assert.equal(events[0].data.customer_id, kim.id);
    assertEventsMatchCatalog(events);

    const refused = await t.api('POST', `/v1/vouchers/${code}/redemption`, {
      customer: kim.id,
      order: { amount: 500 },
    });
    assert.equal(refused.status, 422);
    assert.equal(refused.body.key, 'voucher_expired');
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${code}`)).redemption.redeemed_quantity, 0);
  });

  it('a voucher used up before its date does not expire', async () => {
    await ok(t, 'POST', '/v1/vouchers/USED-UP', {
      discount: { type: 'AMOUNT', amount_off: 100 },
      redemption: { quantity: 1 },
      expiration_date: '2032-02-01T00:00:00.000Z',
    });
    await ok(t, 'POST', '/v1/vouchers/USED-UP/redemption', { order: { amount: 500 } });
    clock.set('2032-02-02T00:00:00.000Z');
    await t.server.ctx.scheduler.runDue();
    assert.equal((await expiredEvents('USED-UP')).length, 0);
  });
});
