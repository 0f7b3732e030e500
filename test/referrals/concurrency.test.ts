import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { createProgram, startTestServer, type TestServer } from '../helpers/server.ts';

// Ten simultaneous conversions of the same referee (by redemption, by custom event, and ten
// retries with one Idempotency-Key): the referee is referred once and everyone rewarded once.

describe('referrals under concurrency', () => {
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
    return res.body as any;
  };

  async function setUp(name: string, conversion: 'redemption' | 'custom_event') {
    const program = await createProgram(t);
    const campaign = await ok('POST', '/v1/campaigns', {
      name,
      campaign_type: 'REFERRAL_PROGRAM',
      referral_program: {
        conversion_event_type: conversion,
        ...(conversion === 'custom_event' ? { custom_event: { name: 'joined' } } : {}),
        referee_reward: { type: 'LOYALTY_CARD', amount: 30, related_object_parent: { id: program.id } },
      },
    });
    await ok('POST', `/v1/referrals/${campaign.id}/tiers`, {
      name: 'per friend',
      event: 'EACH_REFEREE',
      reward: { type: 'POINTS', points: 70, campaign_id: program.id },
    });
    const referrer = await ok('POST', '/v1/customers', { source_id: `${name}-referrer` });
    const referee = await ok('POST', '/v1/customers', { source_id: `${name}-referee` });
    const pub = await ok('POST', '/v1/publications', { campaign: campaign.id, customer: referrer.id });
    return { program, campaign, referrer, referee, code: pub.voucher.code as string };
  }

  async function assertRewardedOnce(s: Awaited<ReturnType<typeof setUp>>) {
    const referrer = await ok('GET', `/v1/customers/${s.referrer.id}/referrals`);
    assert.equal(referrer.referred_customers, 1);
    assert.deepEqual(
      referrer.rewards.map((r: any) => r.amount),
      [70],
    );
    const referee = await ok('GET', `/v1/customers/${s.referee.id}/referrals`);
    assert.equal(referee.referrals.total, 1);
    assert.deepEqual(
      referee.rewards.map((r: any) => r.amount),
      [30],
    );
    const c = await ok('GET', `/v1/customers/${s.referee.id}`);
    assert.equal(c.loyalty.points, 30);
    assert.equal((await ok('GET', `/v1/customers/${s.referrer.id}`)).loyalty.points, 70);
  }

  it('10 simultaneous redemptions of the code by one referee: one conversion', async () => {
    const s = await setUp('conc-redeem', 'redemption');
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        t.api('POST', `/v1/vouchers/${s.code}/redemption`, { customer: s.referee.id, order: { amount: 100 } }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, ...Array(9).fill(422)], JSON.stringify(results.map((r) => r.body)));
    for (const r of results.filter((x) => x.status === 422)) {
      assert.equal((r.body as any).key, 'customer_already_referred');
    }
    await assertRewardedOnce(s);
  });

  it('10 simultaneous custom events for one referee: one conversion', async () => {
    const s = await setUp('conc-event', 'custom_event');
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        t.api('POST', '/v1/events', {
          event: 'joined',
          customer: s.referee.id,
          referral: { code: s.code },
          source_event_id: `joined-${i}`,
        }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, ...Array(9).fill(422)], JSON.stringify(results.map((r) => r.body)));
    await assertRewardedOnce(s);
  });

  it('10 different referees of one referrer at once: the 5-referee tier is given once', async () => {
    const s = await setUp('conc-tier', 'custom_event');
    await ok('POST', `/v1/referrals/${s.campaign.id}/tiers`, {
      name: 'five friends',
      event: 'MIN_REFEREES',
      referees: 5,
      reward: { type: 'POINTS', points: 1000, campaign_id: s.program.id },
    });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        t.api('POST', '/v1/events', {
          event: 'joined',
          customer: { source_id: `conc-tier-friend-${i}` },
          referral: { code: s.code },
        }),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      Array(10).fill(200),
      JSON.stringify(results.map((r) => r.body)),
    );
    const status = await ok('GET', `/v1/customers/${s.referrer.id}/referrals`);
    assert.equal(status.referred_customers, 10);
    assert.equal(status.rewards.filter((r: any) => r.amount === 1000).length, 1);
    assert.equal((await ok('GET', `/v1/customers/${s.referrer.id}`)).loyalty.points, 10 * 70 + 1000);
  });

  it('10 simultaneous retries with one Idempotency-Key: one conversion, one answer', async () => {
    const s = await setUp('conc-key', 'redemption');
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        t.api(
          'POST',
          `/v1/vouchers/${s.code}/redemption`,
          { customer: s.referee.id, order: { amount: 100 } },
          { 'idempotency-key': 'referral-once' },
        ),
      ),
    );
    const ids = new Set(results.filter((r) => r.status === 200).map((r) => (r.body as any).id));
    assert.equal(ids.size, 1, JSON.stringify(results.map((r) => [r.status, r.body])));
    await assertRewardedOnce(s);
  });
});
