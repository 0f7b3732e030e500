import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ManualClock } from '../../src/lib/clock.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { allEvents, assertEventsMatchCatalog, customer, ok } from './helpers.ts';

describe('vouchers: campaigns, publications, validation, redemption, rollback, events', () => {
  let t: TestServer;
  let clock: ManualClock;
  before(async () => {
    t = await startTestServer({ manualClock: true });
    clock = t.clock as ManualClock;
    clock.set('2031-01-10T12:00:00.000Z');
  });
  after(async () => {
    await t.close();
  });

  it('a discount campaign publishes generated codes, redeemed with a discount, rolled back', async () => {
    const alex = await customer(t, 'v-alex');
    const campaign = await ok(t, 'POST', '/v1/campaigns', {
      name: '10 off',
      description: 'Ten off your order',
      campaign_type: 'DISCOUNT_COUPONS',
      metadata: { image_url: 'https://img.example/10.png' },
      voucher: {
        type: 'DISCOUNT_VOUCHER',
        discount: { type: 'AMOUNT', amount_off: 1000 },
        code_config: { pattern: 'TEN-####', charset: '0123456789' },
        redemption: { quantity: 1 },
      },
    });
    assert.match(campaign.id, /^camp_/);
    assert.equal(campaign.campaign_type, 'DISCOUNT_COUPONS');
    assert.equal(campaign.type, 'AUTO_UPDATE');
    assert.equal(campaign.codes_left, 0);

    const list = await ok(t, 'GET', '/v1/campaigns');
    assert.deepEqual(
      list.campaigns.map((c: any) => c.id),
      [campaign.id],
    );

    const pub = await ok(t, 'POST', '/v1/publications', { campaign: { name: '10 off' }, customer: alex.id });
    assert.equal(pub.object, 'publication');
    assert.match(pub.voucher.code, /^TEN-\d{4}$/);
    assert.equal(pub.voucher.holder_id, alex.id);
    assert.deepEqual(pub.voucher.discount, { type: 'AMOUNT', amount_off: 1000, effect: 'APPLY_TO_ORDER' });
    const code = pub.voucher.code;

    const valid = await ok(t, 'POST', `/v1/vouchers/${code}/validate`, {
      customer: alex.id,
      order: { amount: 4500 },
    });
    assert.equal(valid.valid, true);
    assert.equal(valid.order.discount_amount, 1000);
    assert.equal(valid.order.total_amount, 3500);

    const r = await ok(t, 'POST', `/v1/vouchers/${code}/redemption`, {
      customer: alex.id,
      order: { amount: 4500, source_id: 'ord-1' },
    });
    assert.match(r.id, /^r_/);
    assert.equal(r.result, 'SUCCESS');
    assert.equal(r.status, 'SUCCEEDED');
    assert.equal(r.amount, 1000);
    assert.equal(r.order.total_amount, 3500);
    assert.equal(r.voucher.redemption.redeemed_quantity, 1);
    assert.equal((await ok(t, 'GET', `/v1/redemptions/${r.id}`)).id, r.id);

    // Used up: refused with the reason, and the refusal is an event.
    const again = await t.api('POST', `/v1/vouchers/${code}/redemption`, { customer: alex.id, order: { amount: 100 } });
    assert.equal(again.status, 422);
    assert.equal(again.body.key, 'quantity_exceeded');

    const rb = await ok(t, 'POST', `/v1/redemptions/${r.id}/rollback?reason=mistake`);
    assert.equal(rb.object, 'redemption_rollback');
    assert.match(rb.id, /^rr_/);
    assert.equal(rb.redemption, r.id);
    assert.equal(rb.reason, 'mistake');
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${code}`)).redemption.redeemed_quantity, 0);
    assert.equal((await ok(t, 'GET', `/v1/redemptions/${r.id}`)).status, 'ROLLED_BACK');
    const twice = await t.api('POST', `/v1/redemptions/${r.id}/rollback`);
    assert.equal(twice.status, 422);
    assert.equal(twice.body.key, 'already_rolled_back');

    const events = (await allEvents(t)).filter((e) => e.type.startsWith('voucher_'));
    assertEventsMatchCatalog(events);
    const created = events.find((e) => e.type === 'voucher_created');
    assert.equal(created.data.code, code);
    assert.equal(created.data.source_event_id, pub.id);
    assert.equal(created.data.customer_id, alex.id);
    assert.equal(created.data.loyalty_program, null);
    assert.deepEqual(created.data.offer, {
      id: campaign.id,
      name: '10 off',
      public_name: '10 off',
      public_description: 'Ten off your order',
      public_image: 'https://img.example/10.png',
    });
    const redeemed = events.filter((e) => e.type === 'voucher_redeemed');
    assert.equal(redeemed.length, 1);
    assert.equal(redeemed[0].data.id, pub.voucher.id);
    const unauthorized = events.filter((e) => e.type === 'voucher_redeem_unauthorized');
    assert.equal(unauthorized.length, 1);
    assert.equal(unauthorized[0].data.reason, 'quantity_exceeded');

    // Deleting the campaign revokes its published voucher, and only that one (free codes were nobody's).
    await ok(t, 'POST', `/v1/campaigns/${campaign.id}/import`, ['TEN-FREE']);
    await ok(t, 'DELETE', `/v1/campaigns/${campaign.id}`, undefined, 204);
    assert.equal((await t.api('GET', `/v1/vouchers/${code}`)).status, 404);
    const revoked = (await allEvents(t)).filter((e) => e.type === 'voucher_revoked');
    assert.deepEqual(
      revoked.map((e) => [e.data.code, e.data.source_event_id]),
      [[code, campaign.id]],
    );
  });

  it('percent and unit discounts, gift vouchers spending their balance, join_once', async () => {
    const sam = await customer(t, 'v-sam');
    const pct = await ok(t, 'POST', '/v1/vouchers/PCT-10', {
      type: 'DISCOUNT_VOUCHER',
      discount: { type: 'PERCENT', percent_off: 10, amount_limit: 500 },
    });
    assert.equal(pct.code, 'PCT-10');
    assert.equal(pct.redemption.quantity, null);
    const r1 = await ok(t, 'POST', '/v1/vouchers/PCT-10/redemption', { order: { amount: 3333 } });
    assert.equal(r1.amount, 333);
    const r2 = await ok(t, 'POST', '/v1/vouchers/PCT-10/redemption', { order: { amount: 100000 } });
    assert.equal(r2.amount, 500);

    await ok(t, 'POST', '/v1/vouchers/FREE-CUP', { discount: { type: 'UNIT', unit_off: 1, unit_type: 'prod_cup' } });
    const unit = await ok(t, 'POST', '/v1/redemptions', {
      redeemables: [{ object: 'voucher', id: 'FREE-CUP' }],
      order: { items: [{ product_id: 'prod_cup', price: 350, quantity: 2 }] },
    });
    assert.equal(unit.redemptions.length, 1);
    assert.equal(unit.redemptions[0].amount, 350);
    assert.equal(unit.order.total_amount, 350);

    const gift = await ok(t, 'POST', '/v1/campaigns', {
      name: 'Gift cards',
      voucher: { type: 'GIFT_VOUCHER', gift: { amount: 5000 } },
      join_once: true,
    });
    assert.equal(gift.campaign_type, 'GIFT_VOUCHERS');
    const p1 = await ok(t, 'POST', '/v1/publications', { campaign: 'Gift cards', customer: sam.id });
    const p2 = await ok(t, 'POST', '/v1/publications?join_once=true', { campaign: 'Gift cards', customer: sam.id });
    assert.equal(p2.voucher.code, p1.voucher.code, 'join_once gives the same card again');
    assert.equal(p1.voucher.gift.balance, 5000);
    const spend = await ok(t, 'POST', `/v1/vouchers/${p1.voucher.code}/redemption`, {
      customer: sam.id,
      order: { amount: 3000 },
    });
    assert.equal(spend.amount, 3000);
    assert.equal(spend.voucher.gift.balance, 2000);
    const rest = await ok(t, 'POST', `/v1/vouchers/${p1.voucher.code}/redemption`, {
      customer: sam.id,
      order: { amount: 9000 },
    });
    assert.equal(rest.amount, 2000);
    const empty = await t.api('POST', `/v1/vouchers/${p1.voucher.code}/redemption`, { order: { amount: 10 } });
    assert.equal(empty.status, 422);
    assert.equal(empty.body.key, 'gift_amount_exceeded');
    await ok(t, 'POST', `/v1/redemptions/${spend.id}/rollback`);
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${p1.voucher.code}`)).gift.balance, 3000);

    const redeemables = await ok(t, 'GET', `/v1/customers/${sam.id}/redeemables`);
    assert.equal(redeemables.data.length, 1);
    assert.equal(redeemables.data[0].redeemable.voucher.code, p1.voucher.code);
    assert.equal(redeemables.data[0].campaign_type, 'GIFT_VOUCHERS');
    assert.equal(redeemables.data[0].object, 'customer_redeemable');
    assertEventsMatchCatalog(await allEvents(t));
  });

  it('voucher CRUD: update, disable (voucher_revoked), enable, delete; GET /v1/vouchers by campaign', async () => {
    const v = await ok(t, 'POST', '/v1/vouchers', {
      discount: { type: 'AMOUNT', amount_off: 200 },
      code_config: { prefix: 'GEN-', length: 6 },
    });
    assert.match(v.code, /^GEN-[0-9a-zA-Z]{6}$/);
    const upd = await ok(t, 'PUT', `/v1/vouchers/${v.code}`, {
      metadata: { k: 1 },
      redemption: { quantity: 3 },
      expiration_date: '2031-12-31T00:00:00.000Z',
    });
    assert.deepEqual(upd.metadata, { k: 1 });
    assert.equal(upd.redemption.quantity, 3);
    assert.equal((await ok(t, 'POST', `/v1/vouchers/${v.code}/disable`)).active, false);
    assert.equal((await ok(t, 'POST', `/v1/vouchers/${v.code}/enable`)).active, true);
    await ok(t, 'DELETE', `/v1/vouchers/${v.code}`, undefined, 204);
    assert.equal((await t.api('GET', `/v1/vouchers/${v.code}`)).status, 404);
    const revoked = (await allEvents(t)).filter((e) => e.type === 'voucher_revoked' && e.data.code === v.code);
    assert.equal(revoked.length, 2, 'disable and delete each revoke');
    const dup = await t.api('POST', '/v1/vouchers/PCT-10', { discount: { type: 'AMOUNT', amount_off: 1 } });
    assert.equal(dup.status, 409);
    const bad = await t.api('POST', '/v1/vouchers/BAD-1', { discount: { type: 'AMOUNT' } });
    assert.equal(bad.status, 400);
  });
});
