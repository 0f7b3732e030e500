import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdkModule from '@voucherify/sdk';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { allEvents, assertEventsMatchCatalog } from './helpers.ts';

// The official Voucherify SDK, unchanged, driving Tally's voucher API: only apiUrl points elsewhere.
const { VoucherifyServerSide } = ((sdkModule as any).default ?? sdkModule) as typeof import('@voucherify/sdk');

describe('official @voucherify/sdk: campaigns, vouchers, publications, validation, redemption', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  it('drives the voucher lifecycle through the SDK', async () => {
    const client = VoucherifyServerSide({ applicationId: t.appId, secretKey: t.token, apiUrl: t.url });
    const customer: any = await client.customers.create({ source_id: 'sdk-vouchers', name: 'Robin' });

    const campaign: any = await client.campaigns.create({
      name: 'SDK coupons',
      campaign_type: 'DISCOUNT_COUPONS',
      type: 'AUTO_UPDATE',
      voucher: {
        type: 'DISCOUNT_VOUCHER',
        discount: { type: 'PERCENT', percent_off: 20 },
        code_config: { pattern: 'SDK-####-##', charset: 'ABCDEFGH' },
        redemption: { quantity: 2 },
      },
    } as any);
    assert.match(campaign.id, /^camp_/);
    assert.equal(campaign.object, 'campaign');
    assert.equal((await client.campaigns.get('SDK coupons')).id, campaign.id);
    const updated: any = await client.campaigns.update(campaign.id, { description: 'Twenty percent' } as any);
    assert.equal(updated.description, 'Twenty percent');
    const listed: any = await client.campaigns.list();
    assert.ok(listed.campaigns.some((c: any) => c.id === campaign.id));
    const imported: any = await client.campaigns.importVouchers(campaign.id, [{ code: 'SDK-IMPORTED' }] as any);
    assert.equal(imported.imported, 1);

    const pub: any = await client.distributions.publications.create({
      campaign: { name: 'SDK coupons' },
      customer: { id: customer.id },
      join_once: true,
    } as any);
    assert.equal(pub.object, 'publication');
    assert.equal(pub.voucher.code, 'SDK-IMPORTED', 'a free imported code goes out before a generated one');
    const again: any = await client.distributions.publications.create({
      campaign: { name: 'SDK coupons' },
      customer: { id: customer.id },
      join_once: true,
    } as any);
    assert.equal(again.voucher.code, pub.voucher.code);
    const pubs: any = await client.distributions.publications.list({ customer: customer.id } as any);
    assert.equal(pubs.total, 1);

    const valid: any = await client.validations.validateVoucher(pub.voucher.code, {
      customer: { id: customer.id },
      order: { amount: 10000 },
    } as any);
    assert.equal(valid.valid, true);
    assert.equal(valid.order.discount_amount, 2000);

    const redemption: any = await client.redemptions.redeem(pub.voucher.code, {
      customer: { id: customer.id },
      order: { amount: 10000 },
    } as any);
    assert.equal(redemption.result, 'SUCCESS');
    assert.equal(redemption.amount, 2000);
    assert.equal((await client.redemptions.get(redemption.id)).id, redemption.id);
    const forVoucher: any = await client.redemptions.getForVoucher(pub.voucher.code);
    assert.equal(forVoucher.redeemed_quantity, 1);
    const rollback: any = await client.redemptions.rollback(redemption.id, { reason: 'customer returned the order' });
    assert.equal(rollback.result, 'SUCCESS');
    assert.equal(rollback.reason, 'customer returned the order');
    const rlist: any = await client.redemptions.list({ customer: customer.id } as any);
    assert.equal(rlist.redemptions[0].status, 'ROLLED_BACK');

    // Vouchers by code: create, get, update, disable, enable, list, delete; a generated code too.
    const gift: any = await client.vouchers.create({
      code: 'SDK-GIFT',
      type: 'GIFT_VOUCHER',
      gift: { amount: 2500 },
      expiration_date: '2099-01-01T00:00:00.000Z',
    } as any);
    assert.equal(gift.code, 'SDK-GIFT');
    assert.equal(gift.gift.balance, 2500);
    const generated: any = await client.vouchers.create({
      type: 'DISCOUNT_VOUCHER',
      discount: { type: 'AMOUNT', amount_off: 100 },
    } as any);
    assert.match(generated.code, /^[0-9A-Za-z]{8}$/);
    assert.equal((await client.vouchers.get('SDK-GIFT')).id, gift.id);
    const upd: any = await client.vouchers.update({ code: 'SDK-GIFT', metadata: { note: 'sdk' } } as any);
    assert.deepEqual(upd.metadata, { note: 'sdk' });
    assert.equal(((await client.vouchers.disable('SDK-GIFT')) as any).active, false);
    const refused = await client.redemptions.redeem('SDK-GIFT', { order: { amount: 100 } } as any).catch((e) => e);
    assert.equal(refused.code, 422);
    assert.equal(refused.key, 'voucher_disabled');
    assert.equal(((await client.vouchers.enable('SDK-GIFT')) as any).active, true);
    const spent: any = await client.redemptions.redeem('SDK-GIFT', { order: { amount: 1000 } } as any);
    assert.equal(spent.voucher.gift.balance, 1500);
    const vlist: any = await client.vouchers.list({ campaign: 'SDK coupons' } as any);
    assert.ok(vlist.vouchers.some((v: any) => v.code === 'SDK-IMPORTED'));
    await client.vouchers.delete('SDK-GIFT');
    const gone = await client.vouchers.get('SDK-GIFT').catch((e) => e);
    assert.equal(gone.code, 404);
    await client.campaigns.delete(campaign.id);
    assert.equal(((await client.campaigns.get(campaign.id).catch((e) => e)) as any).code, 404);

    assertEventsMatchCatalog(await allEvents(t));
  });
});
