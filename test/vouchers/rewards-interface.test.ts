import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Offer } from '../../src/modules/vouchers/service.ts';
import { createProgram, startTestServer, type TestServer } from '../helpers/server.ts';
import { allEvents, assertEventsMatchCatalog, customer, ok } from './helpers.ts';

// The service interface the rewards workflow uses (no HTTP route of its own in this module):
// issue, addGiftBalance, revoke and the shared redemptions table, called in one transaction.
describe('vouchers: the interface for reward redemptions', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  const offer: Offer = {
    id: 'rew_coffee',
    name: 'Free coffee',
    public_name: 'A coffee on us',
    public_description: 'Any size',
    public_image: null,
  };

  it('issue, addGiftBalance, revoke, recordRedemption, markRolledBack; a dry pool refuses', async () => {
    const program = await createProgram(t, { name: 'VIP Club' });
    const lee = await customer(t, 'rw-lee');
    const coupons = await ok(t, 'POST', '/v1/campaigns', {
      name: 'Reward coupons',
      type: 'STATIC',
      voucher: { type: 'DISCOUNT_VOUCHER', discount: { type: 'UNIT', unit_off: 1, unit_type: 'coffee' } },
    });
    await ok(t, 'POST', `/v1/campaigns/${coupons.id}/import`, ['RW-1']);
    const gifts = await ok(t, 'POST', '/v1/campaigns', { name: 'Reward gifts', voucher: { type: 'GIFT_VOUCHER' } });
    const svc = t.server.services.vouchers;
    const tx = t.server.ctx.transaction;

    const voucher = await tx((trx) =>
      svc.issue(trx, {
        campaignId: coupons.id,
        customerId: lee.id,
        sourceEventId: 'r_test1',
        offer,
        programId: program.id,
      }),
    );
    assert.equal(voucher.code, 'RW-1');
    assert.equal(voucher.holder_id, lee.id);

    const dry = await tx((trx) =>
      svc.issue(trx, {
        campaignId: coupons.id,
        customerId: lee.id,
        sourceEventId: 'r_test2',
        offer,
        programId: program.id,
      }),
    ).catch((e) => e);
    assert.equal(dry.kind, 'refused');
    assert.equal(dry.key, 'no_voucher_suitable_for_publication');
    await tx((trx) => svc.recordRefusal(trx, dry));

    const card = await tx((trx) =>
      svc.addGiftBalance(trx, { campaignId: gifts.id, customerId: lee.id, amount: 700, sourceEventId: 'r_test3' }),
    );
    const same = await tx((trx) =>
      svc.addGiftBalance(trx, { campaignId: gifts.id, customerId: lee.id, amount: 300, sourceEventId: 'r_test4' }),
    );
    assert.equal(same.id, card.id);
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${card.code}`)).gift.balance, 1000);

    await tx((trx) =>
      svc.recordRedemption(trx, {
        id: 'r_reward_test',
        kind: 'reward',
        voucher_id: voucher.id,
        voucher_code: voucher.code,
        campaign_id: null,
        program_id: program.id,
        customer_id: lee.id,
        reward_id: 'rew_coffee',
        assignment_id: 'rewa_1',
        membership_id: null,
        points: 100,
        amount: null,
        order: null,
        metadata: null,
        tracking_id: null,
        details: null,
        result: 'SUCCESS',
        status: 'SUCCEEDED',
        rollback_id: null,
        rollback_reason: null,
        rolled_back_at: null,
        created_at: new Date().toISOString(),
      }),
    );
    const listed = await ok(t, 'GET', '/v1/redemptions/r_reward_test');
    assert.equal(listed.related_object_type, 'reward');
    assert.equal(listed.points, 100);
    await tx(async (trx) => {
      await svc.markRolledBack(trx, 'r_reward_test', 'rr_test');
      await svc.revoke(trx, voucher.id, { sourceEventId: 'r_reward_test' });
    });
    assert.equal((await svc.getRedemption(t.server.ctx.database.db, 'r_reward_test')).status, 'ROLLED_BACK');
    const again = await tx((trx) => svc.markRolledBack(trx, 'r_reward_test', 'rr_test2')).catch((e) => e);
    assert.equal(again.key, 'already_rolled_back');
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${voucher.code}`)).active, false);

    const events = (await allEvents(t)).filter((e) => e.type.startsWith('voucher_'));
    assertEventsMatchCatalog(events);
    const created = events.find((e) => e.type === 'voucher_created' && e.data.code === 'RW-1');
    assert.deepEqual(created.data.offer, offer);
    assert.deepEqual(created.data.loyalty_program, { id: program.id, name: 'VIP Club' });
    assert.equal(created.data.source_event_id, 'r_test1');
    const failed = events.filter((e) => e.type === 'voucher_attribution_failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0].data.voucher_offer_id, 'rew_coffee');
    assert.deepEqual(failed[0].data.loyalty_program, { id: program.id, name: 'VIP Club' });
    const revoked = events.find((e) => e.type === 'voucher_revoked');
    assert.equal(revoked.data.source_event_id, 'r_reward_test');
    assert.equal(revoked.data.customer_id, lee.id);
  });
});
