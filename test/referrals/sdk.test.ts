import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdkModule from '@voucherify/sdk';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { createProgram, startTestServer, type TestServer } from '../helpers/server.ts';

// The official Voucherify SDK, unchanged, on the referral methods it has: a REFERRAL_PROGRAM
// campaign (campaigns.create), a referrer's code (distributions.publications.create, join_once),
// conversions (redemptions.redeem, redemptions.redeemStackable, events.create with `referral`) and
// the referrer refused on their own code. (Referral tiers and holders have no SDK method: HTTP.)
const { VoucherifyServerSide } = ((sdkModule as any).default ?? sdkModule) as typeof import('@voucherify/sdk');

describe('official @voucherify/sdk: referrals', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  it('creates a referral campaign, publishes a code, converts by redemption and by event', async () => {
    const client = VoucherifyServerSide({ applicationId: t.appId, secretKey: t.token, apiUrl: t.url });
    const program = await createProgram(t);
    const referrer: any = await client.customers.create({ source_id: 'sdk-referrer', name: 'Robin' });

    const campaign: any = await client.campaigns.create({
      name: 'SDK friends',
      campaign_type: 'REFERRAL_PROGRAM',
      type: 'AUTO_UPDATE',
      voucher: {
        type: 'DISCOUNT_VOUCHER',
        discount: { type: 'PERCENT', percent_off: 10 },
        code_config: { pattern: 'REF-####', charset: '0123456789' },
      },
      referral_program: {
        conversion_event_type: 'redemption',
        referee_reward: {
          related_object_parent: { id: program.id, name: program.name, object: 'CAMPAIGN' },
          type: 'LOYALTY_CARD',
          amount: 25,
        },
      },
    } as any);
    assert.equal(campaign.campaign_type, 'REFERRAL_PROGRAM');
    assert.equal(campaign.referral_program.conversion_event_type, 'redemption');
    assert.equal((await client.campaigns.get(campaign.id)).id, campaign.id);

    const pub: any = await client.distributions.publications.create({
      campaign: { name: 'SDK friends' },
      customer: { id: referrer.id },
      join_once: true,
    } as any);
    const code = pub.voucher.code;
    assert.match(code, /^REF-\d{4}$/);
    assert.equal(pub.voucher.referrer_id, referrer.id);

    const own = await client.redemptions
      .redeem(code, { customer: { id: referrer.id }, order: { amount: 1000 } } as any)
      .catch((e) => e);
    assert.equal(own.code, 422);
    assert.equal(own.key, 'referrer_not_permitted_to_redeem');

    const r: any = await client.redemptions.redeem(code, {
      customer: { source_id: 'sdk-friend-1' },
      order: { amount: 1000 },
    } as any);
    assert.equal(r.result, 'SUCCESS');
    assert.equal(r.amount, 100);

    // A second friend through the stackable endpoint (POST /v1/redemptions).
    const stacked: any = await client.redemptions.redeemStackable({
      redeemables: [{ object: 'voucher', id: code }],
      customer: { source_id: 'sdk-friend-2' },
      order: { amount: 500 },
    } as any);
    assert.equal(stacked.redemptions.length, 1);

    // A custom-event program: events.create with `referral`.
    await client.campaigns.create({
      name: 'SDK sign-ups',
      campaign_type: 'REFERRAL_PROGRAM',
      referral_program: { conversion_event_type: 'custom_event', custom_event: { name: 'signed_up' } },
    } as any);
    const signup: any = await client.distributions.publications.create({
      campaign: { name: 'SDK sign-ups' },
      customer: { id: referrer.id },
    } as any);
    const event: any = await client.events.create('signed_up', {
      event: 'signed_up',
      customer: { source_id: 'sdk-friend-3' },
      referral: { code: signup.voucher.code, referrer_id: referrer.id },
    });
    assert.equal(event.object, 'event');
    assert.equal((event as any).referral.converted, true);

    const after: any = await client.customers.get(referrer.id);
    assert.equal(after.loyalty.referred_customers, 3);
    const friend: any = await client.customers.get('sdk-friend-1');
    assert.equal(friend.referrals.total, 1);
    assert.equal(friend.referrals.campaigns[0].referrer_id, referrer.id);
    assert.equal(friend.loyalty.points, 25, 'the referee reward, on a card issued for it');

    // A stack of the referral code and a coupon: the SDK reads its parent redemption, and rolls the
    // whole stack back through rollbackStackable (the conversion undone with it), once.
    await client.vouchers.create({
      code: 'SDK-STACK-OFF',
      type: 'DISCOUNT_VOUCHER',
      discount: { type: 'AMOUNT', amount_off: 50 },
    } as any);
    const pair = await client.redemptions.redeemStackable({
      redeemables: [
        { object: 'voucher', id: code },
        { object: 'voucher', id: 'SDK-STACK-OFF' },
      ],
      customer: { source_id: 'sdk-friend-4' },
      order: { amount: 1000 },
    } as any);
    const parentId = pair.parent_redemption.id;
    assert.match(parentId, /^r_/);
    assert.equal(pair.redemptions.length, 2);
    assert.ok(pair.redemptions.every((r: any) => r.parent_redemption_id === parentId && r.redemption === parentId));
    assert.equal(pair.order?.total_amount, 1000 - 100 - 50);
    const parent: any = await client.redemptions.get(parentId);
    assert.equal(parent.related_object_type, 'redemption');
    assert.equal(((await client.customers.get(referrer.id)) as any).loyalty.referred_customers, 4);
    assert.equal(((await client.customers.get('sdk-friend-4')) as any).loyalty.points, 25);

    const rolled = await client.redemptions.rollbackStackable(parentId, undefined, { reason: 'returned' });
    assert.equal(rolled.rollbacks.length, 2);
    assert.equal(rolled.parent_rollback.redemption, parentId);
    assert.deepEqual(
      rolled.rollbacks.map((r: any) => r.redemption),
      pair.redemptions.map((r: any) => r.id),
    );
    assert.equal(((await client.redemptions.get(parentId)) as any).status, 'ROLLED_BACK');
    assert.equal(((await client.customers.get(referrer.id)) as any).loyalty.referred_customers, 3, 'conversion undone');
    assert.equal(((await client.customers.get('sdk-friend-4')) as any).loyalty.points, 0, 'referee points taken back');
    const twice = await client.redemptions.rollbackStackable(parentId).catch((e) => e);
    assert.equal(twice.code, 422);
    assert.equal(twice.key, 'already_rolled_back');
  });
});
