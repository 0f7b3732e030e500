import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { createProgram, startTestServer, type TestServer } from '../helpers/server.ts';
import { allEvents, assertEventsMatchCatalog } from '../vouchers/helpers.ts';

// Referral programs end to end over HTTP: a referral campaign, a code per referrer (publication,
// join_once), two referees converting (one by redeeming the code, one by a custom event), the
// referee and referrer rewards (points, a card issued when missing, a catalogue reward at a tier),
// the abuse refusals, retries, and the referral status read model.

describe('referrals', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  const ok = async (method: string, path: string, body?: unknown, headers?: Record<string, string>) => {
    const res = await t.api(method, path, body, headers);
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as any;
  };
  const refused = async (method: string, path: string, body: unknown, status: number, key: string) => {
    const res = await t.api(method, path, body);
    assert.equal(res.status, status, `${method} ${path}: ${JSON.stringify(res.body)}`);
    assert.equal((res.body as any).key, key);
    assert.ok((res.body as any).details);
    return res.body as any;
  };
  /** The customer's card in the program (from the customer's loyalty summary). */
  const cardOf = async (customerId: string, _programId: string) => {
    const c = await ok('GET', `/v1/customers/${customerId}`);
    const code = c.loyalty.campaigns['Coffee Club']?.card_code;
    assert.ok(code, `customer ${customerId} has a card`);
    return { id: code as string };
  };

  let program: any;
  let campaign: any;
  let referrer: any;
  let code: string;

  it('a referral campaign, its tiers, and a code per referrer', async () => {
    program = await createProgram(t, { name: 'Coffee Club' });
    const coupons = await ok('POST', '/v1/campaigns', {
      name: 'Thank-you coupons',
      campaign_type: 'DISCOUNT_COUPONS',
      voucher: { type: 'DISCOUNT_VOUCHER', discount: { type: 'AMOUNT', amount_off: 1000 } },
    });
    const reward = await ok('POST', '/v1/rewards', {
      name: '10 off for bringing 2 friends',
      parameters: { campaign: { id: coupons.id } },
    });
    campaign = await ok('POST', '/v1/campaigns', {
      name: 'Bring a friend',
      campaign_type: 'REFERRAL_PROGRAM',
      voucher: {
        type: 'DISCOUNT_VOUCHER',
        discount: { type: 'AMOUNT', amount_off: 500 },
        code_config: { prefix: 'FRIEND-', length: 6 },
      },
      referral_program: {
        conversion_event_type: 'redemption',
        referee_reward: {
          related_object_parent: { id: program.id, object: 'CAMPAIGN' },
          type: 'LOYALTY_CARD',
          amount: 50,
        },
      },
    });
    assert.equal(campaign.campaign_type, 'REFERRAL_PROGRAM');
    assert.equal(campaign.is_referral_code, true);
    assert.equal(campaign.join_once, true);
    assert.deepEqual(campaign.referral_program.referee_reward, {
      related_object_parent: { id: program.id, name: 'Coffee Club', object: 'CAMPAIGN' },
      type: 'LOYALTY_CARD',
      amount: 50,
    });

    const each = await ok('POST', `/v1/referrals/${campaign.id}/tiers`, {
      name: '100 points per friend',
      event: 'EACH_REFEREE',
      reward: { type: 'POINTS', points: 100, campaign_id: program.id },
    });
    assert.equal(each.object, 'referral_tier');
    const two = await ok('POST', `/v1/referrals/${campaign.id}/tiers`, {
      name: 'Two friends: 10 off',
      event: 'MIN_REFEREES',
      referees: 2,
      reward: { type: 'REWARD', id: reward.id },
    });
    assert.equal(two.referees, 2);
    assert.equal((await ok('GET', `/v1/referrals/${campaign.id}/tiers`)).total, 2);
    await refused(
      'POST',
      `/v1/referrals/${campaign.id}/tiers`,
      { name: 'x', event: 'MIN_REFEREES', reward: { type: 'POINTS', points: 1, campaign_id: program.id } },
      400,
      'invalid_referral_tier',
    );

    referrer = await ok('POST', '/v1/customers', { source_id: 'ana', name: 'Ana' });
    const pub = await ok('POST', '/v1/publications?join_once=true', { campaign: campaign.id, customer: 'ana' });
    code = pub.voucher.code;
    assert.match(code, /^FRIEND-[A-Za-z0-9]{6}$/);
    assert.equal(pub.voucher.is_referral_code, true);
    assert.equal(pub.voucher.referrer_id, referrer.id);
    // join_once: the same code again.
    const again = await ok('POST', '/v1/publications', { campaign: campaign.id, customer: 'ana' });
    assert.equal(again.voucher.code, code);
  });

  it('the referrer cannot redeem their own code', async () => {
    const seen = new Set((await allEvents(t)).map((e) => e.id));
    await refused(
      'POST',
      `/v1/vouchers/${code}/redemption`,
      { customer: 'ana', order: { amount: 2000 } },
      422,
      'referrer_not_permitted_to_redeem',
    );
    const events = (await allEvents(t)).filter((e) => !seen.has(e.id));
    assert.deepEqual(
      events.map((e) => [e.type, e.data.reason]),
      [['voucher_redeem_unauthorized', 'referrer_not_permitted_to_redeem']],
    );
    assertEventsMatchCatalog(events);
  });

  it('a referee redeems the code: discount, points on a new card, the referrer earns the EACH tier', async () => {
    const seen = new Set((await allEvents(t)).map((e) => e.id));
    const r = await ok('POST', `/v1/vouchers/${code}/redemption`, {
      customer: { source_id: 'maja', name: 'Maja' },
      order: { amount: 2000 },
    });
    assert.equal(r.order.discount_amount ?? r.amount, 500);
    const maja = await ok('GET', '/v1/customers/maja');
    const majaCard = await cardOf(maja.id, program.id);
    assert.equal((await ok('GET', `/v1/loyalties/members/${majaCard.id}`)).loyalty_card.balance, 50);
    const anaCard = await cardOf(referrer.id, program.id);
    assert.equal((await ok('GET', `/v1/loyalties/members/${anaCard.id}`)).loyalty_card.balance, 100);

    const events = (await allEvents(t)).filter((e) => !seen.has(e.id));
    assertEventsMatchCatalog(events);
    const types = events.map((e) => e.type);
    for (const type of ['voucher_redeemed', 'customer.referred', 'customer.rewarded', 'balance_value_updated']) {
      assert.ok(types.includes(type), `${type} in ${types}`);
    }
    assert.ok(types.includes('customer.voucher.loyalty_card.points_added'));
    const referred = events.find((e) => e.type === 'customer.referred');
    assert.equal(referred.data.customer.id, maja.id);
    assert.equal(referred.data.referrer.id, referrer.id);
    assert.equal(referred.data.redemption.id, r.id);
    const rewarded = events.filter((e) => e.type === 'customer.rewarded');
    assert.deepEqual(rewarded.map((e) => e.data.role).sort(), ['REFEREE', 'REFERRER']);
    const tierReward = rewarded.find((e) => e.data.role === 'REFERRER');
    assert.equal(tierReward.data.referral_tier.campaign_id, campaign.id);
    assert.deepEqual(tierReward.data.balance, { points: 100 });

    // The referee's rewards: the points, and the code's discount on the order.
    const majaStatus = await ok('GET', '/v1/customers/maja/referrals');
    assert.deepEqual(
      // Both rewards are written in one transaction (same created_at): compared in type order.
      majaStatus.rewards.map((x: any) => [x.role, x.type, x.amount]).sort((a: any, b: any) => b[1].localeCompare(a[1])),
      [
        ['REFEREE', 'POINTS', 50],
        ['REFEREE', 'DISCOUNT', 500],
      ],
    );

    // The ledger entry names the referee and the campaign.
    const tx = await ok('GET', `/v1/loyalties/members/${anaCard.id}/transactions`);
    const entry = tx.data.find((e: any) => e.details?.referral);
    assert.equal(entry.details.referral.referee_id, maja.id);
    assert.equal(entry.details.referral.campaign_id, campaign.id);
    assert.equal(entry.details.referral.role, 'REFERRER');
  });

  it('a customer is referred once per campaign', async () => {
    await refused(
      'POST',
      `/v1/vouchers/${code}/redemption`,
      { customer: 'maja', order: { amount: 2000 } },
      422,
      'customer_already_referred',
    );
    // Validation says so before anyone redeems, and the refused redemption is kept as a FAILURE record.
    const v = await ok('POST', `/v1/vouchers/${code}/validate`, { customer: 'maja', order: { amount: 2000 } });
    assert.equal(v.valid, false);
    assert.equal(v.error.key, 'customer_already_referred');
    const failed = await ok('GET', `/v1/redemptions?voucher=${code}&result=FAILURE`);
    assert.equal(failed.redemptions[0].failure_code, 'customer_already_referred');
    // Someone not yet referred is valid.
    const fresh = await ok('POST', '/v1/customers', { source_id: 'not-yet-referred' });
    assert.equal(
      (await ok('POST', `/v1/vouchers/${code}/validate`, { customer: fresh.id, order: { amount: 2000 } })).valid,
      true,
    );
  });

  it('the second referee converts by custom event; the referrer reaches the 2-referee tier', async () => {
    const events2 = await ok('POST', '/v1/campaigns', {
      name: 'Friend signs up',
      campaign_type: 'REFERRAL_PROGRAM',
      referral_program: { conversion_event_type: 'custom_event', custom_event: { name: 'signed_up' } },
    });
    assert.equal(events2.referral_program.conversion_event_type, 'custom_event');
    // The original campaign converts by redemption; switch it to the event to test the event path.
    const updated = await ok('PUT', `/v1/campaigns/${campaign.id}`, {
      referral_program: {
        conversion_event_type: 'custom_event',
        custom_event: { name: 'signed_up' },
        referee_reward: {
          related_object_parent: { id: program.id, object: 'CAMPAIGN' },
          type: 'LOYALTY_CARD',
          amount: 50,
        },
      },
    });
    assert.equal(updated.referral_program.conversion_event_type, 'custom_event');

    const body = {
      event: 'signed_up',
      customer: { source_id: 'luka', name: 'Luka' },
      referral: { code, referrer_id: referrer.id },
      source_event_id: 'signup-luka',
    };
    const seen = new Set((await allEvents(t)).map((e) => e.id));
    const first = await ok('POST', '/v1/events', body);
    assert.deepEqual(first.referral, { code, referrer_id: referrer.id, converted: true });
    // Retried with the same source_event_id: rewarded once.
    const retry = await ok('POST', '/v1/events', body);
    assert.equal(retry.referral.converted, true);

    const luka = await ok('GET', '/v1/customers/luka');
    const lukaCard = await cardOf(luka.id, program.id);
    assert.equal((await ok('GET', `/v1/loyalties/members/${lukaCard.id}`)).loyalty_card.balance, 50);
    const anaCard = await cardOf(referrer.id, program.id);
    assert.equal((await ok('GET', `/v1/loyalties/members/${anaCard.id}`)).loyalty_card.balance, 200);

    // The 2-referee tier gave Ana a coupon of the catalogue reward.
    const status = await ok('GET', `/v1/customers/${referrer.id}/referrals`);
    assert.equal(status.referred_customers, 2);
    assert.equal(status.campaigns[0].code, code);
    assert.equal(status.campaigns[0].referred_customers, 2);
    assert.deepEqual(
      status.rewards.map((r: any) => r.type),
      ['POINTS', 'POINTS', 'REWARD'],
    );
    assert.ok(status.rewards[2].details.voucher, 'the coupon code');
    // The coupon came with its own seed event, the catalogue reward as offer.
    const created = (await allEvents(t)).filter((e) => !seen.has(e.id) && e.type === 'voucher_created');
    assert.equal(created.length, 1);
    assert.equal(created[0].data.customer_id, referrer.id);
    assert.equal(created[0].data.code, status.rewards[2].details.voucher);
    assert.equal(status.campaigns[0].next_tier.referees_needed, 1);
    assert.equal(status.campaigns[0].next_tier.reward_text, '100 points');
    assert.equal(status.referrals.total, 0);

    // The customer objects carry Voucherify's referral fields.
    const ana = await ok('GET', '/v1/customers/ana');
    assert.equal(ana.loyalty.referred_customers, 2);
    assert.deepEqual(ana.referrals, { total: 0, campaigns: [] });
    const lukaObject = await ok('GET', '/v1/customers/luka');
    assert.equal(lukaObject.referrals.total, 1);
    assert.equal(lukaObject.referrals.campaigns[0].campaign_id, campaign.id);

    const lukaStatus = await ok('GET', '/v1/customers/luka/referrals');
    assert.equal(lukaStatus.referrals.total, 1);
    assert.equal(lukaStatus.referrals.campaigns[0].referrer_id, referrer.id);
    assert.equal(lukaStatus.referrals.campaigns[0].related_object_type, 'event');
    assertEventsMatchCatalog(await allEvents(t));
  });

  it('an event that is not the conversion event converts nothing; an unknown code is refused', async () => {
    const other = await ok('POST', '/v1/events', {
      event: 'page_viewed',
      customer: { source_id: 'ivo' },
      referral: { code },
    });
    assert.equal(other.referral.converted, false);
    await refused(
      'POST',
      '/v1/events',
      { event: 'signed_up', customer: { source_id: 'ivo' }, referral: { code: 'NOPE' } },
      404,
      'referral_code_not_found',
    );
    await refused(
      'POST',
      '/v1/events',
      { event: 'signed_up', customer: 'ana', referral: { code } },
      422,
      'referrer_not_permitted_to_redeem',
    );
  });

  it('holders: the referrer and the referees; referees are added and removed', async () => {
    const list = await ok('GET', `/v1/referrals/${campaign.id}/members/${code}/holders`);
    assert.deepEqual(
      list.data.map((h: any) => h.holder_role),
      ['REFERRER', 'REFEREE', 'REFEREE'],
    );
    const added = await ok('POST', `/v1/referrals/members/${code}/holders`, {
      holders: [{ source_id: 'petra', name: 'Petra' }],
    });
    assert.equal(added.holders[0].holder_role, 'REFEREE');
    assert.equal((await ok('GET', `/v1/referrals/members/${code}/holders`)).total, 4);
    await ok('DELETE', `/v1/referrals/${campaign.id}/members/${code}/holders/${added.holders[0].id}`);
    assert.equal((await ok('GET', `/v1/referrals/members/${code}/holders`)).total, 3);
    await refused(
      'DELETE',
      `/v1/referrals/members/${code}/holders/${referrer.id}`,
      undefined,
      422,
      'referrer_not_removable',
    );
  });

  it('new customers only: an existing member is refused', async () => {
    const strict = await ok('POST', '/v1/campaigns', {
      name: 'New friends only',
      campaign_type: 'REFERRAL_PROGRAM',
      referral_program: { conversion_event_type: 'redemption', new_customers_only: true },
    });
    const pub = await ok('POST', '/v1/publications', { campaign: strict.id, customer: 'ana' });
    // Maja has a card (her referee reward).
    await refused(
      'POST',
      `/v1/vouchers/${pub.voucher.code}/redemption`,
      { customer: 'maja', order: { amount: 100 } },
      422,
      'customer_not_new',
    );
    const notNew = await ok('POST', `/v1/vouchers/${pub.voucher.code}/validate`, {
      customer: 'maja',
      order: { amount: 100 },
    });
    assert.equal(notNew.valid, false);
    assert.equal(notNew.error.key, 'customer_not_new');
    await ok('POST', `/v1/vouchers/${pub.voucher.code}/redemption`, {
      customer: { source_id: 'brand-new' },
      order: { amount: 100 },
    });
  });

  it('tiers: update, conditions on the referee, delete; the event types are in the catalog', async () => {
    const program2 = await createProgram(t, { name: 'Tea Club' });
    const c = await ok('POST', '/v1/campaigns', {
      name: 'VIP friends',
      campaign_type: 'REFERRAL_PROGRAM',
      referral_program: { conversion_event_type: 'redemption' },
    });
    const vip = await ok('POST', `/v1/referrals/${c.id}/tiers`, {
      name: 'VIP friend',
      event: 'EACH_REFEREE',
      reward: { type: 'POINTS', points: 10, campaign_id: program2.id },
      conditions: { referee: { metadata: { vip: true } } },
    });
    const changed = await ok('PUT', `/v1/referrals/${c.id}/tiers/${vip.id}`, {
      reward: { type: 'POINTS', points: 40, campaign_id: program2.id },
    });
    assert.equal(changed.reward.points, 40);
    assert.equal(changed.event, 'EACH_REFEREE');
    const owner = await ok('POST', '/v1/customers', { source_id: 'vip-owner' });
    const pub = await ok('POST', '/v1/publications', { campaign: c.id, customer: owner.id });
    // Not a VIP: referred, but the tier gives nothing.
    await ok('POST', `/v1/vouchers/${pub.voucher.code}/redemption`, { customer: { source_id: 'plain' } });
    await ok('POST', `/v1/vouchers/${pub.voucher.code}/redemption`, {
      customer: { source_id: 'vip', metadata: { vip: true } },
    });
    const status = await ok('GET', `/v1/customers/${owner.id}/referrals`);
    assert.equal(status.referred_customers, 2);
    assert.deepEqual(
      status.rewards.map((r: any) => r.amount),
      [40],
    );
    await ok('DELETE', `/v1/referrals/${c.id}/tiers/${vip.id}`);
    assert.equal((await ok('GET', `/v1/referrals/${c.id}/tiers`)).total, 0);
    assert.equal((await t.api('GET', `/v1/referrals/${c.id}/tiers/${vip.id}`)).status, 404);

    for (const type of ['customer.referred', 'customer.rewarded']) {
      const info = await ok('GET', `/v1/event-types/${type}`);
      assert.equal(info.emitted, true);
    }
    // Subscribable: a webhook endpoint takes them.
    const hook = await ok('POST', '/v1/webhooks', {
      target_url: 'https://crm.example.com/referrals',
      events: ['customer.referred', 'customer.rewarded'],
    });
    assert.deepEqual(hook.events, ['customer.referred', 'customer.rewarded']);
    // The referrer's code among their redeemables, as a REFERRER.
    const redeemables = await ok('GET', `/v1/customers/${owner.id}/redeemables`);
    const ref = redeemables.data.find((r: any) => r.redeemable_id === pub.voucher.id);
    assert.equal(ref.holder_role, 'REFERRER');
    assert.equal(ref.campaign_type, 'REFERRAL_PROGRAM');
  });

  it('rolling back a conversion takes the rewards back; gift credit cannot be', async () => {
    const club = await createProgram(t, { name: 'Juice Club' });
    const c = await ok('POST', '/v1/campaigns', {
      name: 'Undo friends',
      campaign_type: 'REFERRAL_PROGRAM',
      referral_program: {
        conversion_event_type: 'redemption',
        referee_reward: { type: 'LOYALTY_CARD', amount: 30, related_object_parent: { id: club.id } },
      },
    });
    await ok('POST', `/v1/referrals/${c.id}/tiers`, {
      name: 'per friend',
      event: 'EACH_REFEREE',
      reward: { type: 'POINTS', points: 70, campaign_id: club.id },
    });
    const owner = await ok('POST', '/v1/customers', { source_id: 'undo-owner' });
    const pub = await ok('POST', '/v1/publications', { campaign: c.id, customer: owner.id });
    const r = await ok('POST', `/v1/vouchers/${pub.voucher.code}/redemption`, {
      customer: { source_id: 'undo-friend' },
    });
    assert.equal((await ok('GET', '/v1/customers/undo-owner')).loyalty.points, 70);
    await ok('POST', `/v1/redemptions/${r.id}/rollback`);
    assert.equal((await ok('GET', '/v1/customers/undo-owner')).loyalty.points, 0);
    assert.equal((await ok('GET', '/v1/customers/undo-friend')).loyalty.points, 0);
    const status = await ok('GET', '/v1/customers/undo-owner/referrals');
    assert.equal(status.referred_customers, 0);
    assert.deepEqual(status.rewards, []);
    assert.equal((await ok('GET', '/v1/customers/undo-friend')).referrals.total, 0);
    // Referred again, rewarded again.
    await ok('POST', `/v1/vouchers/${pub.voucher.code}/redemption`, { customer: 'undo-friend' });
    assert.equal((await ok('GET', '/v1/customers/undo-owner')).loyalty.points, 70);

    const giftCampaign = await ok('POST', '/v1/campaigns', {
      name: 'Friend credit',
      campaign_type: 'GIFT_VOUCHERS',
      voucher: { type: 'GIFT_VOUCHER', gift: { amount: 0 } },
    });
    const g = await ok('POST', '/v1/campaigns', {
      name: 'Gift friends',
      campaign_type: 'REFERRAL_PROGRAM',
      referral_program: {
        referee_reward: { type: 'GIFT_VOUCHER', amount: 500, related_object_parent: { id: giftCampaign.id } },
      },
    });
    const gpub = await ok('POST', '/v1/publications', { campaign: g.id, customer: owner.id });
    const gr = await ok('POST', `/v1/vouchers/${gpub.voucher.code}/redemption`, {
      customer: { source_id: 'gift-friend' },
    });
    const gift = (await ok('GET', '/v1/customers/gift-friend/referrals')).rewards[0];
    assert.equal(gift.type, 'GIFT_CREDITS');
    assert.equal(gift.amount, 500);
    await refused('POST', `/v1/redemptions/${gr.id}/rollback`, undefined, 422, 'rollback_not_supported');
  });

  it('bad referral programs are refused with the field', async () => {
    await refused(
      'POST',
      '/v1/campaigns',
      { name: 'bad1', campaign_type: 'REFERRAL_PROGRAM', referral_program: { conversion_event_type: 'sms' } },
      400,
      'invalid_referral_program',
    );
    await refused(
      'POST',
      '/v1/campaigns',
      {
        name: 'bad2',
        campaign_type: 'REFERRAL_PROGRAM',
        referral_program: {
          referee_reward: { type: 'LOYALTY_CARD', amount: 5, related_object_parent: { id: 'nope' } },
        },
      },
      404,
      'campaign_not_found',
    );
    assert.equal((await t.api('GET', '/v1/campaigns/bad2')).status, 404, 'nothing half-made');
  });
});
