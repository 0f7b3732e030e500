import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from '../helpers/server.ts';
import { allEvents, assertEventsMatchCatalog } from '../vouchers/helpers.ts';

// CAMPAIGN rewards that issue through the vouchers module: a discount voucher published to the
// member (voucher_created with the reward as offer), gift card value; a dry code pool refuses with
// voucher_attribution_failed and changes nothing; rollback revokes the voucher (voucher_revoked).

describe('rewards that issue vouchers', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  const ok = async (method: string, path: string, body?: unknown) => {
    const res = await t.api(method, path, body);
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const balanceOf = async (code: string) => (await ok('GET', `/v1/loyalties/members/${code}`)).loyalty_card.balance;

  it('a DISCOUNT_COUPONS reward publishes a voucher to the member; rollback revokes it', async () => {
    const program = await createProgram(t);
    const campaign = await ok('POST', '/v1/campaigns', {
      name: `Five off ${Math.random()}`,
      campaign_type: 'DISCOUNT_COUPONS',
      type: 'STATIC',
      voucher: { type: 'DISCOUNT_VOUCHER', discount: { type: 'AMOUNT', amount_off: 500 } },
    });
    await ok('POST', `/v1/campaigns/${campaign.id}/import`, ['FIVE-A']);
    const reward = await ok('POST', '/v1/rewards', {
      name: 'Five off',
      parameters: { campaign: { id: campaign.id } },
      attributes: { description: 'Five off your next order', image_url: 'https://img.example/5.png' },
      metadata: { public_name: '5 € off' },
    });
    assert.deepEqual(reward.parameters, { campaign: { id: campaign.id, type: 'DISCOUNT_COUPONS' } });
    await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 50 } } },
    ]);
    const alex = await createMember(t, program.id);
    const sam = await createMember(t, program.id);
    for (const m of [alex, sam]) await ok('POST', `/v1/loyalties/members/${m.code}/balance`, { points: 100 });

    const r = await ok('POST', `/v1/loyalties/${program.id}/members/${alex.code}/redemption`, {
      reward: { id: reward.id },
    });
    assert.equal(r.reward.voucher.code, 'FIVE-A');
    assert.equal(r.reward.voucher.type, 'DISCOUNT_VOUCHER');
    assert.equal(r.reward.voucher.holder_id, alex.holder_id);
    assert.equal(r.reward.voucher.publish.count, 1);
    assert.equal(await balanceOf(alex.code), 50);
    const stored = await ok('GET', `/v1/redemptions/${r.id}`);
    assert.equal(stored.reward.voucher.code, 'FIVE-A');
    assert.equal(stored.amount, 50);

    // The pool is dry: refused, voucher_attribution_failed, and nothing else changed.
    const seen = new Set((await allEvents(t)).map((e) => e.id));
    const dry = await t.api('POST', `/v1/loyalties/${program.id}/members/${sam.code}/redemption`, {
      reward: { id: reward.id },
    });
    assert.equal(dry.status, 422, JSON.stringify(dry.body));
    assert.equal(dry.body.key, 'no_voucher_suitable_for_publication');
    assert.equal(await balanceOf(sam.code), 100);
    const newEvents = (await allEvents(t)).filter((e) => !seen.has(e.id));
    assert.deepEqual(
      newEvents.map((e) => e.type),
      ['voucher_attribution_failed'],
    );
    assert.equal(newEvents[0].data.voucher_offer_id, reward.id);
    assert.equal(newEvents[0].data.loyalty_program.id, program.id);

    const rb = await ok('POST', `/v1/redemptions/${r.id}/rollback`);
    assert.equal(rb.redemption, r.id);
    assert.equal(await balanceOf(alex.code), 100);
    const voucher = await ok('GET', '/v1/vouchers/FIVE-A');
    assert.equal(voucher.active, false);

    const events = await allEvents(t);
    assertEventsMatchCatalog(events);
    const created = events.find((e) => e.type === 'voucher_created' && e.data.code === 'FIVE-A');
    assert.equal(created.data.source_event_id, r.id);
    assert.deepEqual(created.data.offer, {
      id: reward.id,
      name: 'Five off',
      public_name: '5 € off',
      public_description: 'Five off your next order',
      public_image: 'https://img.example/5.png',
    });
    assert.equal(created.data.loyalty_program.id, program.id);
    const revoked = events.find((e) => e.type === 'voucher_revoked' && e.data.code === 'FIVE-A');
    assert.equal(revoked.data.source_event_id, rb.id);
    const debit = events.find((e) => e.type === 'balance_value_updated' && e.data.source_event_id === r.id);
    assert.deepEqual(debit.data.transaction, { type: 'debit', value: 50 });
  });

  it('an AUTO_UPDATE campaign generates published codes; once it has imported codes, those go first', async () => {
    const program = await createProgram(t);
    const campaign = await ok('POST', '/v1/campaigns', {
      name: `Generated ${Math.random()}`,
      voucher: {
        type: 'DISCOUNT_VOUCHER',
        discount: { type: 'AMOUNT', amount_off: 300 },
        code_config: { pattern: 'GEN-####' },
      },
    });
    const reward = await ok('POST', '/v1/rewards', {
      name: 'Three off',
      parameters: { campaign: { id: campaign.id } },
    });
    await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 10 } } },
    ]);
    const m = await createMember(t, program.id);
    await ok('POST', `/v1/loyalties/members/${m.code}/balance`, { points: 100 });
    const redeem = () => ok('POST', `/v1/loyalties/members/${m.code}/redemption`, { reward: { id: reward.id } });
    const first = await redeem();
    assert.match(first.reward.voucher.code, /^GEN-[0-9A-Za-z]{4}$/);
    assert.equal(first.reward.voucher.holder_id, m.holder_id);
    const pubs = await ok('GET', `/v1/publications?campaign=${campaign.id}`);
    assert.equal(pubs.total, 1);
    assert.equal(pubs.publications[0].voucher.code, first.reward.voucher.code);
    assert.equal(pubs.publications[0].customer_id, m.holder_id);
    // Codes imported since (the cached campaign learns it has a pool) are published first.
    await ok('POST', `/v1/campaigns/${campaign.id}/import`, ['POOL-1']);
    assert.equal((await redeem()).reward.voucher.code, 'POOL-1');
    assert.match((await redeem()).reward.voucher.code, /^GEN-[0-9A-Za-z]{4}$/);
    const events = (await allEvents(t)).filter((e) => e.type === 'voucher_created' && e.data.offer?.id === reward.id);
    assert.equal(events.length, 3);
    assert.ok(events.every((e) => e.data.loyalty_program.id === program.id && e.data.customer_id === m.holder_id));
    assertEventsMatchCatalog(events);
    // A deactivated campaign refuses at once, even though the redemptions cached it.
    await ok('PUT', `/v1/campaigns/${campaign.id}`, { active: false });
    const off = await t.api('POST', `/v1/loyalties/members/${m.code}/redemption`, { reward: { id: reward.id } });
    assert.equal(off.status, 422, JSON.stringify(off.body));
    assert.equal(off.body.key, 'no_voucher_suitable_for_publication');
  });

  it("a GIFT_VOUCHERS reward adds its balance to the customer's gift card", async () => {
    const program = await createProgram(t);
    const campaign = await ok('POST', '/v1/campaigns', {
      name: `Gift ${Math.random()}`,
      campaign_type: 'GIFT_VOUCHERS',
      voucher: { type: 'GIFT_VOUCHER', gift: { amount: 0 } },
    });
    const reward = await ok('POST', '/v1/rewards', {
      name: 'Ten on your gift card',
      parameters: { campaign: { id: campaign.id, balance: 1000 } },
    });
    assert.equal(reward.parameters.campaign.type, 'GIFT_VOUCHERS');
    await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 20 } } },
    ]);
    const m = await createMember(t, program.id);
    await ok('POST', `/v1/loyalties/members/${m.code}/balance`, { points: 50 });
    const first = await ok('POST', `/v1/loyalties/members/${m.code}/redemption`, { reward: { id: reward.id } });
    assert.equal(first.reward.voucher.type, 'GIFT_VOUCHER');
    assert.equal(first.reward.voucher.gift.balance, 1000);
    const second = await ok('POST', `/v1/loyalties/members/${m.code}/redemption`, { reward: { id: reward.id } });
    assert.equal(second.reward.voucher.id, first.reward.voucher.id, 'the same gift card');
    assert.equal(second.reward.voucher.gift.balance, 2000);
    assert.equal(await balanceOf(m.code), 10);
    // Rolled back: the value comes off the card, the points back (test/rewards/rollback.test.ts).
    await ok('POST', `/v1/redemptions/${second.id}/rollback`);
    assert.equal(await balanceOf(m.code), 30);
  });
});
