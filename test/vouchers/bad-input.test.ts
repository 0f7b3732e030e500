import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ManualClock } from '../../src/lib/clock.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { allEvents, assertEventsMatchCatalog, customer, ok } from './helpers.ts';

// Each refusal: a 4xx with Voucherify's key, nothing changed (the voucher, its redemptions), and
// one voucher_redeem_unauthorized event with the reason.
describe('vouchers: refused redemptions', () => {
  let t: TestServer;
  let clock: ManualClock;
  before(async () => {
    t = await startTestServer({ manualClock: true });
    clock = t.clock as ManualClock;
    clock.set('2031-03-01T00:00:00.000Z');
  });
  after(async () => {
    await t.close();
  });

  async function refusedWith(code: string, body: Record<string, unknown>, status: number, key: string) {
    const before = await t.api('GET', `/v1/vouchers/${code}`);
    const eventsBefore = (await allEvents(t)).length;
    const res = await t.api('POST', `/v1/vouchers/${code}/redemption`, body);
    assert.equal(res.status, status, JSON.stringify(res.body));
    assert.equal(res.body.key, key);
    assert.ok(res.body.details, 'the answer says why');
    const afterRes = await t.api('GET', `/v1/vouchers/${code}`);
    assert.equal(afterRes.status, before.status);
    if (before.status === 200) assert.deepEqual(afterRes.body, before.body, 'the voucher did not change');
    const events = (await allEvents(t)).slice(eventsBefore);
    assert.deepEqual(
      events.map((e) => e.type),
      ['voucher_redeem_unauthorized'],
    );
    assert.equal(events[0].data.reason, key);
    assert.equal(events[0].data.code, code);
    assertEventsMatchCatalog(events);
    return events[0];
  }

  it('unknown, expired, disabled, not yet active, and another customer’s voucher', async () => {
    const owner = await customer(t, 'bad-owner');
    const other = await customer(t, 'bad-other');
    const unknown = await refusedWith('NO-SUCH', { order: { amount: 100 } }, 404, 'resource_not_found');
    assert.equal(unknown.data.offer, null);

    await ok(t, 'POST', '/v1/vouchers/OLD-1', {
      discount: { type: 'AMOUNT', amount_off: 100 },
      expiration_date: '2031-02-01T00:00:00.000Z',
    });
    await refusedWith('OLD-1', { order: { amount: 100 } }, 422, 'voucher_expired');

    await ok(t, 'POST', '/v1/vouchers/OFF-1', { discount: { type: 'AMOUNT', amount_off: 100 }, active: false });
    await refusedWith('OFF-1', { order: { amount: 100 } }, 422, 'voucher_disabled');

    await ok(t, 'POST', '/v1/vouchers/SOON-1', {
      discount: { type: 'AMOUNT', amount_off: 100 },
      start_date: '2031-04-01T00:00:00.000Z',
    });
    await refusedWith('SOON-1', { order: { amount: 100 } }, 422, 'voucher_not_active');

    await ok(t, 'POST', '/v1/campaigns', {
      name: 'Personal',
      voucher: { type: 'DISCOUNT_VOUCHER', discount: { type: 'AMOUNT', amount_off: 300 } },
    });
    const pub = await ok(t, 'POST', '/v1/publications', { campaign: 'Personal', customer: owner.id });
    const ev = await refusedWith(
      pub.voucher.code,
      { customer: other.id, order: { amount: 1000 } },
      422,
      'customer_rules_violated',
    );
    assert.equal(ev.data.customer_id, other.id);
    // The holder can.
    await ok(t, 'POST', `/v1/vouchers/${pub.voucher.code}/redemption`, { customer: owner.id, order: { amount: 1000 } });

    // Each refusal left a FAILURE record (Voucherify's failure_code / failure_message) and nothing else.
    assert.equal((await ok(t, 'GET', '/v1/redemptions?result=SUCCESS')).total, 1);
    const failed = await ok(t, 'GET', '/v1/redemptions?result=FAILURE');
    assert.deepEqual(
      failed.redemptions.map((r: any) => [r.voucher?.code ?? r.voucher?.id ?? null, r.failure_code]).reverse(),
      [
        [null, 'resource_not_found'],
        ['OLD-1', 'voucher_expired'],
        ['OFF-1', 'voucher_disabled'],
        ['SOON-1', 'voucher_not_active'],
        [pub.voucher.code, 'customer_rules_violated'],
      ],
    );
    const refusal = failed.redemptions[0];
    assert.equal(refusal.result, 'FAILURE');
    assert.equal(refusal.status, 'FAILED');
    assert.equal(refusal.customer_id, other.id);
    assert.match(refusal.failure_message, /belongs to another customer/);
    assert.equal((await ok(t, 'GET', `/v1/redemptions/${refusal.id}`)).failure_code, 'customer_rules_violated');
    // A refused redemption has nothing to roll back.
    const noRollback = await t.api('POST', `/v1/redemptions/${refusal.id}/rollback`);
    assert.equal(noRollback.status, 422);
    assert.equal(noRollback.body.key, 'redemption_failed');
    assert.equal((await ok(t, 'GET', '/v1/redemptions')).total, 6);

    // Validation answers valid: false with the reason (Voucherify's shape) and records the event too.
    const v = await ok(t, 'POST', '/v1/vouchers/OLD-1/validate', { order: { amount: 100 } });
    assert.equal(v.valid, false);
    assert.equal(v.error.key, 'voucher_expired');
    const stack = await ok(t, 'POST', '/v1/validations', {
      redeemables: [
        { object: 'voucher', id: 'OFF-1' },
        { object: 'voucher', id: pub.voucher.code },
      ],
      customer: owner.id,
      order: { amount: 1000 },
    });
    assert.equal(stack.valid, false);
    assert.equal(stack.redeemables.length, 1);
    assert.equal(stack.inapplicable_redeemables[0].result.error.key, 'voucher_disabled');
    // A stacked redemption with one refused voucher redeems none.
    const all = await t.api('POST', '/v1/redemptions', {
      redeemables: [
        { object: 'voucher', id: pub.voucher.code },
        { object: 'voucher', id: 'OFF-1' },
      ],
      customer: owner.id,
      order: { amount: 1000 },
    });
    assert.equal(all.status, 422);
    assert.equal((await ok(t, 'GET', '/v1/redemptions?result=FAILURE&limit=1')).redemptions[0].voucher.code, 'OFF-1');
    assert.equal((await ok(t, 'GET', '/v1/redemptions?result=SUCCESS')).total, 1, 'validations record nothing');
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${pub.voucher.code}`)).redemption.redeemed_quantity, 1);

    const badBody = await t.api('POST', '/v1/vouchers/OFF-1/redemption', { order: { amount: -5 } });
    assert.equal(badBody.status, 400);
    const badCampaign = await t.api('POST', '/v1/campaigns', { name: 'X', voucher: { discount: { type: 'NOPE' } } });
    assert.equal(badCampaign.status, 400);
    assert.equal((await t.api('GET', '/v1/campaigns/nope')).status, 404);
    assert.equal((await t.api('POST', '/v1/redemptions/r_nope/rollback')).status, 404);
  });
});
