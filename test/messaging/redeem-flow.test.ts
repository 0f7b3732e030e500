import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeInfobip, infobipSms } from '../fakes/infobip.ts';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { basicHeader, clockOf, createChannel, createFlow, INFOBIP_BASIC, seedMember, simulate } from './setup.ts';

// The redeem step: REDEEM <n> (a position in rewards.affordable, as a REWARDS reply lists them) or
// REDEEM <reward id> redeems for the member and replies with the voucher code; a provider delivering
// the same inbound message twice (one after the other, or at once) redeems once; refusals answer a
// clear text and change nothing; the flow report counts the redemption. The `vouchers` variable
// lists the member's vouchers.

describe('redeeming a reward by message', () => {
  let t: TestServer;
  let infobip: FakeInfobip;
  before(async () => {
    t = await startTestServer({ manualClock: true });
    infobip = new FakeInfobip();
    await infobip.start();
    await createChannel(t, { provider: 'simulator', sender: '+10000000888' });
  });
  after(async () => {
    await t.server.services.messaging.outbound.drain();
    await assertLedgerInvariants(t.server.ctx.database.db);
    await infobip.close();
    await t.close();
  });

  const ok = async (method: string, path: string, body?: unknown) => {
    const res = await t.api(method, path, body);
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const balanceOf = async (code: string) => (await ok('GET', `/v1/loyalties/members/${code}`)).loyalty_card.balance;
  const redemptionsOf = async (customerId: string, result = 'SUCCESS') =>
    (await ok('GET', `/v1/redemptions?customer=${customerId}&result=${result}&limit=100`)).redemptions as any[];

  /** A program with a member (`points`), a coupon reward (100 points) and a mug (250), a REDEEM flow. */
  async function setup(phone: string, points: number, codes: string[]) {
    const { program, member } = await seedMember(t, { phone, points });
    const campaign = await ok('POST', '/v1/campaigns', {
      name: `Ten off ${phone}`,
      campaign_type: 'DISCOUNT_COUPONS',
      type: 'STATIC',
      voucher: { type: 'DISCOUNT_VOUCHER', discount: { type: 'PERCENT', percent_off: 10 } },
    });
    await ok('POST', `/v1/campaigns/${campaign.id}/import`, codes);
    const coupon = await ok('POST', '/v1/rewards', { name: '10% off', parameters: { campaign: { id: campaign.id } } });
    const mug = await ok('POST', '/v1/rewards', { name: 'Mug', stock: 5, parameters: { product: { id: 'mug' } } });
    await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: coupon.id, parameters: { loyalty: { points: 100 } } },
      { reward: mug.id, parameters: { loyalty: { points: 250 } } },
    ]);
    const flow = await createFlow(t, {
      name: 'Redeem',
      program_id: program.id,
      triggers: [{ keywords: ['REDEEM'], match: 'first_word' }],
      steps: [
        { id: 'find', type: 'find_member', next: 'redeem' },
        { id: 'redeem', type: 'redeem', next: 'done', refused: 'sorry' },
        {
          id: 'done',
          type: 'reply',
          template: 'Enjoy {{ redemption.reward.name }}! Code {{ redemption.code }}, {{ points }} points left.',
        },
        { id: 'sorry', type: 'reply', template: '{{ redemption.message }} ({{ redemption.reason }})' },
      ],
    });
    return { program, member, campaign, coupon, mug, flow };
  }

  it('REDEEM 1 by SMS answers the voucher code; the balance drops once; the report counts it', async () => {
    const phone = '+385917000001';
    const { member, mug, flow } = await setup(phone, 300, ['TEN-A']);
    // The member asks first (an interaction of the flow), then redeems a day later.
    assert.match((await simulate(t, phone, 'REDEEM'))[0], /followed by the number .*\(missing\)/);
    clockOf(t).advance(86_400_000);
    assert.deepEqual(await simulate(t, phone, 'REDEEM 1'), ['Enjoy 10% off! Code TEN-A, 200 points left.']);
    assert.equal(await balanceOf(member.code), 200);
    const [r] = await redemptionsOf(member.holder_id);
    assert.equal(r.reward.voucher.code, 'TEN-A');

    // The mug costs 250: not on the affordable list (REDEEM 2 names nothing), refused by its id.
    assert.deepEqual(await simulate(t, phone, 'REDEEM 2'), [
      'Sorry, there is no such reward on your list. Reply REWARDS to see what you can redeem. (unknown_reward)',
    ]);
    assert.deepEqual(await simulate(t, phone, `redeem ${mug.id}`), [
      'Sorry, you do not have enough points for that reward yet. Nothing was redeemed. (not_enough_points)',
    ]);
    assert.match((await simulate(t, phone, 'REDEEM rew_nope'))[0], /\(unknown_reward\)/);
    assert.equal(await balanceOf(member.code), 200);
    assert.equal((await redemptionsOf(member.holder_id)).length, 1);
    // The two that reached the card are kept as FAILURE records (the list's refusal never got there).
    assert.deepEqual((await redemptionsOf(member.holder_id, 'FAILURE')).map((r) => r.failure_code).reverse(), [
      'loyalty_card_points_exceeded',
      'reward_not_found',
    ]);
    assert.equal((await ok('GET', `/v1/rewards/${mug.id}`)).redeemed, 0);

    const report = await ok('GET', `/v1/flows/${flow.id}/report`);
    assert.equal(report.totals.redemptions_within_7_days, 1);
    assert.equal(report.totals.points_redeemed_within_7_days, 100);
  });

  it('the same inbound message delivered twice (in turn, then at once) redeems once', async () => {
    const phone = '+385917000002';
    const { member } = await setup(phone, 1000, ['DUP-A', 'DUP-B', 'DUP-C']);
    const ch = await createChannel(t, {
      provider: 'infobip',
      sender: 'Tally',
      credentials: { base_url: infobip.url, api_key: infobip.apiKey },
      inbound_auth: INFOBIP_BASIC,
    });
    const inbound = (id: string) =>
      fetch(`${t.url}/v1/channels/${ch.id}/inbound`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: basicHeader(INFOBIP_BASIC.username, INFOBIP_BASIC.password),
        },
        body: JSON.stringify(infobipSms(phone, '385921004026', 'REDEEM 1', id)),
      });
    assert.equal((await inbound('redeem-msg-1')).status, 200);
    assert.equal((await inbound('redeem-msg-1')).status, 200);
    await t.server.services.messaging.outbound.drain();
    assert.equal(await balanceOf(member.code), 900);
    const texts = () => infobip.sent.filter((s) => s.to.endsWith(phone.slice(1))).map((s) => s.text);
    assert.equal(texts().length, 1);
    assert.match(texts()[0], /^Enjoy 10% off! Code DUP-[ABC], 900 points left\.$/);

    const [a, b] = await Promise.all([inbound('redeem-msg-2'), inbound('redeem-msg-2')]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    await t.server.services.messaging.outbound.drain();
    assert.equal(await balanceOf(member.code), 800);
    assert.equal((await redemptionsOf(member.holder_id)).length, 2);
    assert.equal(texts().length, 2);
    assert.match(texts()[1], /^Enjoy 10% off! Code DUP-[ABC], 800 points left\.$/);
    assert.notEqual(texts()[0].slice(0, 30), texts()[1].slice(0, 30));
    const codes = (await redemptionsOf(member.holder_id)).map((r) => r.reward.voucher.code).sort();
    assert.equal(new Set(codes).size, 2);
  });

  it('the vouchers variable lists the member’s vouchers; a redeem step without next replies the code', async () => {
    const phone = '+385917000003';
    const { program, member } = await setup(phone, 500, ['VAR-A']);
    await createFlow(t, {
      name: 'Vouchers',
      program_id: program.id,
      triggers: [{ keywords: ['VOUCHERS'], match: 'first_word' }],
      steps: [
        { id: 'find', type: 'find_member', next: 'list' },
        {
          id: 'list',
          type: 'reply',
          template:
            '{% if vouchers.size > 0 %}{% for v in vouchers %}{{ v.code }} ({{ v.campaign }}, ' +
            '{{ v.discount.percent_off }}% off, active {{ v.active }}){% endfor %}{% else %}No vouchers.{% endif %}',
        },
      ],
    });
    await createFlow(t, {
      name: 'Claim',
      program_id: program.id,
      triggers: [{ keywords: ['CLAIM'], match: 'first_word' }],
      steps: [
        { id: 'find', type: 'find_member', next: 'redeem' },
        { id: 'redeem', type: 'redeem' },
      ],
    });
    assert.deepEqual(await simulate(t, phone, 'VOUCHERS'), ['No vouchers.']);
    assert.deepEqual(await simulate(t, phone, 'CLAIM 1'), [
      'You redeemed 10% off for 100 points. Your code: VAR-A. Points left: 400.',
    ]);
    assert.deepEqual(await simulate(t, phone, 'VOUCHERS'), [`VAR-A (Ten off ${phone}, 10% off, active true)`]);
    // The pool is dry now: refused with the default text, nothing changed.
    assert.deepEqual(await simulate(t, phone, 'CLAIM 1'), [
      'Sorry, that reward is out of stock. Reply REWARDS to see what else you can redeem.',
    ]);
    assert.equal(await balanceOf(member.code), 400);
  });

  it('a tapped WhatsApp button (REDEEM 1) redeems and answers the code', async () => {
    const phone = '+385917000005';
    const { member } = await setup(phone, 300, ['WA-A']);
    const wa = await createChannel(t, { provider: 'simulator', type: 'whatsapp', sender: '+10000000889' });
    const res = await t.api('POST', '/v1/simulator/messages', {
      from: phone,
      channel_id: wa.id,
      button: { title: 'REDEEM 1', id: 'redeem-first' },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(
      res.body.replies.map((r: { text: string }) => r.text),
      ['Enjoy 10% off! Code WA-A, 200 points left.'],
    );
    assert.equal(await balanceOf(member.code), 200);
  });

  it('refuses a redeem step whose refused names no step', async () => {
    const { program } = await seedMember(t, { phone: '+385917000004', points: 1 });
    const res = await t.api('POST', '/v1/flows', {
      name: 'Bad',
      program_id: program.id,
      triggers: [{ keywords: ['REDEEM'] }],
      steps: [{ id: 'r', type: 'redeem', refused: 'nowhere' }],
    });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.match(res.body.message + res.body.details, /steps\[0\]\.refused/);
  });
});
