import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ManualClock } from '../../lib/clock.ts';
import { assertLedgerInvariants } from '../../../test/helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from '../../../test/helpers/server.ts';

const uid = () => randomBytes(5).toString('hex');

describe('tiers', () => {
  let t: TestServer;
  let clock: ManualClock;
  before(async () => {
    t = await startTestServer({ manualClock: true });
    clock = t.clock as ManualClock;
    clock.set('2026-11-10T12:00:00Z');
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  const tierEvents = async (membershipId: string) =>
    (
      await t.server.ctx.database.db
        .selectFrom('outbox_events')
        .select(['data'])
        .where('type', '=', 'tier_association_updated')
        .where('resource_id', '=', membershipId)
        .orderBy('seq')
        .execute()
    ).map((r) => JSON.parse(r.data));
  const points = (code: string, n: number) => t.api('POST', `/v1/loyalties/members/${code}/balance`, { points: n });
  const currentTier = async (code: string) =>
    (await t.api('GET', `/v1/loyalties/members/${code}/tiers`)).body.data.map((x: any) => x.name);

  const setup = async (program: Record<string, unknown> = {}) => {
    const p = await createProgram(t, program);
    const res = await t.api('POST', `/v1/loyalties/${p.id}/tiers`, [
      { name: 'Bronze', points: { from: 0, to: 99 } },
      { name: 'Silver', points: { from: 100, to: 499 } },
      { name: 'Gold', points: { from: 500 } },
    ]);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const [bronze, silver, gold] = res.body;
    return { p, bronze, silver, gold };
  };

  it('creates tiers in the default group and lists them', async () => {
    const { p, silver } = await setup();
    assert.match(silver.id, /^ltr_/);
    assert.deepEqual(silver.points, { from: 100, to: 499 });
    assert.deepEqual(silver.config.points, { from: 100, to: 499 });
    assert.equal(silver.object, 'loyalty_tier');
    const list = await t.api('GET', `/v1/loyalties/${p.id}/tiers`);
    assert.deepEqual(
      list.body.data.map((x: any) => x.name),
      ['Bronze', 'Silver', 'Gold'],
    );
    assert.equal((await t.api('GET', `/v1/loyalties/${p.id}/tiers/${silver.id}`)).body.name, 'Silver');
    const groups = await t.api('GET', `/v1/loyalties/${p.id}/tier-groups`);
    assert.equal(groups.body.data.length, 1);
    assert.equal(groups.body.data[0].default, true);
    assert.equal(groups.body.data[0].tiers.length, 3);
    const overlap = await t.api('POST', `/v1/loyalties/${p.id}/tiers`, [
      { name: 'Platinum', points: { from: 400, to: 900 } },
    ]);
    assert.equal(overlap.status, 409);
  });

  it('moves up in the transaction that crosses the threshold and down on a balance drop', async () => {
    const { p } = await setup();
    const m = await createMember(t, p.id);
    await points(m.code, 50);
    assert.deepEqual(await currentTier(m.code), ['Bronze']);
    const up = await points(m.code, 500);
    assert.equal(up.status, 200);
    assert.deepEqual(await currentTier(m.code), ['Gold']);
    await points(m.code, -200); // 350: Silver
    assert.deepEqual(await currentTier(m.code), ['Silver']);
    const events = await tierEvents(m.id);
    assert.deepEqual(
      events.map((e) => [e.from_tier?.name ?? null, e.to_tier?.name ?? null, e.upgraded]),
      [
        [null, 'Bronze', true],
        ['Bronze', 'Gold', true],
        ['Gold', 'Silver', false],
      ],
    );
    assert.equal(events[1].loyalty_program.id, p.id);
    assert.equal(events[1].tier_group.name, 'Default');
    assert.ok(events[1].source_event_id);
    const member = (await t.api('GET', `/v1/loyalties/members/${m.code}/tiers`)).body.data[0];
    assert.ok(member.expiration.start_date);
    const customer = await t.api('GET', `/v1/customers/${m.holder_id}`);
    assert.equal(customer.body.loyalty.campaigns[p.name].loyalty_tier, member.id);
  });

  it('gives a member added through the API its base tier at once, with its event', async () => {
    const { p } = await setup();
    const member = await createMember(t, p.id);
    assert.deepEqual(await currentTier(member.code), ['Bronze']);
    const events = await tierEvents(member.id);
    assert.deepEqual(
      events.map((e) => [e.from_tier?.name ?? null, e.to_tier.name, e.upgraded]),
      [[null, 'Bronze', true]],
    );
    // A program without tiers: nothing to attribute, no event.
    const plain = await createProgram(t);
    const other = await createMember(t, plain.id);
    assert.deepEqual(await currentTier(other.code), []);
    assert.deepEqual(await tierEvents(other.id), []);
  });

  it('gives a member who auto-joins through an event its base tier at once', async () => {
    const { p } = await setup();
    const ev = `join-${uid()}`;
    await t.api('POST', `/v1/loyalties/${p.id}/earning-rules`, [
      { event: ev, loyalty: { type: 'FIXED', points: 120 }, loyalty_tier: { id: '__ANY__' } },
    ]);
    const r = await t.api('POST', '/v1/events', {
      event: ev,
      customer: { source_id: `j-${uid()}` },
      source_event_id: `src-${uid()}`,
    });
    assert.equal(r.body.earned.points, 120); // the __ANY__ tier requirement holds: Bronze was attributed on joining
    const code = r.body.earned.accruals[0].code;
    assert.deepEqual(await currentTier(code), ['Silver']);
    const events = await tierEvents(r.body.earned.accruals[0].voucher_id);
    assert.deepEqual(
      events.map((e) => [e.from_tier?.name ?? null, e.to_tier.name]),
      [
        [null, 'Bronze'],
        ['Bronze', 'Silver'],
      ],
    );
    assert.equal(events[1].source_event_id, r.body.source_event_id);
  });

  it('gives tier benefits: multipliers and custom points per earning rule, and tier conditions', async () => {
    const { p, silver, gold } = await setup();
    const ev = `tierbuy-${uid()}`;
    const [rule, goldOnly] = (
      await t.api('POST', `/v1/loyalties/${p.id}/earning-rules`, [
        { event: ev, loyalty: { type: 'FIXED', points: 10 } },
        { event: ev, loyalty: { type: 'FIXED', points: 1 }, loyalty_tier: { id: gold.id } },
      ])
    ).body;
    const mapped = await t.api('POST', `/v1/loyalties/${p.id}/tiers`, [
      {
        name: 'Diamond',
        points: { from: 10000 },
        tier_group_id: undefined,
        earning_rules: { [rule.id]: { type: 'CUSTOM', points: 100 } },
      },
    ]);
    assert.equal(mapped.status, 409); // overlaps Gold (500+)
    // Silver doubles the rule; Gold members also get the gold-only rule.
    const put = await t.api('PUT', `/v1/loyalties/${p.id}/tiers/${silver.id}`, {
      earning_rules: { [rule.id]: { type: 'MULTIPLY', multiplier: 2 } },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body.points, { from: 100, to: 499 });
    assert.equal(
      (
        await t.api('PUT', `/v1/loyalties/${p.id}/tiers/${silver.id}`, {
          earning_rules: { ern_nope: { type: 'CUSTOM', points: 1 } },
        })
      ).status,
      400,
    );
    assert.equal(
      (await t.api('PUT', `/v1/loyalties/${p.id}/tiers/${silver.id}`, { points: { from: 100, to: 600 } })).status,
      409,
    );
    const mappedRules = await t.api('GET', `/v1/loyalties/${p.id}/tiers/${silver.id}/earning-rules`);
    assert.deepEqual(
      mappedRules.body.data.map((r: any) => r.id),
      [rule.id],
    );
    const sid = `tb-${uid()}`;
    const m = await createMember(t, p.id, { source_id: sid });
    const track = async () =>
      (await t.api('POST', '/v1/events', { event: ev, customer: { source_id: sid } })).body.earned;
    assert.equal((await track()).points, 10); // Bronze
    await points(m.code, 100);
    const silverEarn = await track();
    assert.equal(silverEarn.points, 20);
    assert.match(silverEarn.accruals[0].explanation, /× 2 \(tier Silver\)/);
    const tx = (await t.api('GET', `/v1/loyalties/members/${m.code}/transactions`)).body.data[0];
    assert.equal(tx.details.loyalty_tier.name, 'Silver');
    assert.equal(tx.details.multipliers[0].type, 'TIER');
    await points(m.code, 400);
    const byRule = (e: any) => Object.fromEntries(e.accruals.map((a: any) => [a.earning_rule_id, a.points]));
    const goldEarn = await track();
    assert.deepEqual(byRule(goldEarn), { [rule.id]: 10, [goldOnly.id]: 1 });
    // CUSTOM replaces the rule's points for the tier.
    assert.equal(
      (
        await t.api('PUT', `/v1/loyalties/${p.id}/tiers/${gold.id}`, {
          earning_rules: { [rule.id]: { type: 'CUSTOM', points: 100 } },
        })
      ).status,
      200,
    );
    assert.deepEqual(byRule(await track()), { [rule.id]: 100, [goldOnly.id]: 1 });
  });

  it('qualifies on points earned in the period and downgrades at the end of the period', async () => {
    clock.set('2026-11-10T12:00:00Z');
    const { p } = await setup({
      timezone: 'Europe/Zagreb',
      loyalty_tiers_expiration: {
        qualification_type: 'POINTS_IN_PERIOD',
        qualification_period: 'MONTH',
        start_date: { type: 'IMMEDIATE' },
        expiration_date: { type: 'END_OF_PERIOD' },
      },
    });
    const m = await createMember(t, p.id);
    await points(m.code, 150);
    assert.deepEqual(await currentTier(m.code), ['Silver']);
    const tiers = (await t.api('GET', `/v1/loyalties/members/${m.code}/tiers`)).body.data;
    assert.equal(tiers[0].expiration.expiration_date, '2026-11-30T23:00:00.000Z'); // end of November in Zagreb
    await points(m.code, -100); // spending does not lower points earned in the period
    assert.deepEqual(await currentTier(m.code), ['Silver']);
    clock.set('2026-11-30T22:59:00Z');
    await t.server.ctx.scheduler.runDue();
    assert.deepEqual(await currentTier(m.code), ['Silver']);
    clock.set('2026-11-30T23:00:30Z');
    await t.server.ctx.scheduler.runDue();
    assert.deepEqual(await currentTier(m.code), ['Bronze']);
    const last = (await tierEvents(m.id)).at(-1);
    assert.deepEqual([last.from_tier.name, last.to_tier.name, last.upgraded], ['Silver', 'Bronze', false]);
    clock.set('2026-11-10T12:00:00Z');
  });

  it('keeps the tier for the next period under END_OF_NEXT_PERIOD', async () => {
    clock.set('2026-01-15T12:00:00Z');
    const { p } = await setup({
      loyalty_tiers_expiration: {
        qualification_type: 'POINTS_IN_PERIOD',
        qualification_period: 'QUARTER',
        expiration_date: { type: 'END_OF_NEXT_PERIOD' },
      },
    });
    const m = await createMember(t, p.id);
    await points(m.code, 600);
    assert.deepEqual(await currentTier(m.code), ['Gold']);
    clock.set('2026-04-10T00:00:00Z');
    await t.server.ctx.scheduler.runDue();
    await points(m.code, 10); // Q2: 10 points, but Q1's Gold holds through Q2
    assert.deepEqual(await currentTier(m.code), ['Gold']);
    clock.set('2026-07-01T00:00:01Z');
    await t.server.ctx.scheduler.runDue();
    assert.deepEqual(await currentTier(m.code), ['Bronze']);
    clock.set('2026-11-10T12:00:00Z');
  });

  it('starts a tier with the next period under NEXT_PERIOD', async () => {
    clock.set('2026-11-10T12:00:00Z');
    const { p } = await setup({
      loyalty_tiers_expiration: {
        qualification_type: 'POINTS_IN_PERIOD',
        qualification_period: 'MONTH',
        start_date: { type: 'NEXT_PERIOD' },
        expiration_date: { type: 'END_OF_PERIOD' },
      },
    });
    const m = await createMember(t, p.id);
    await points(m.code, 150);
    assert.deepEqual(await currentTier(m.code), ['Bronze']); // Silver is earned now, starts in December
    clock.set('2026-12-01T00:00:01Z');
    await t.server.ctx.scheduler.runDue();
    assert.deepEqual(await currentTier(m.code), ['Silver']);
    const tiers = (await t.api('GET', `/v1/loyalties/members/${m.code}/tiers`)).body.data;
    assert.equal(tiers[0].expiration.expiration_date, '2027-01-01T00:00:00.000Z');
    clock.set('2027-01-01T00:00:01Z');
    await t.server.ctx.scheduler.runDue();
    assert.deepEqual(await currentTier(m.code), ['Bronze']);
    clock.set('2026-11-10T12:00:00Z');
  });

  it('holds the tier for the CUSTOM extension after a balance drop', async () => {
    const { p } = await setup({
      loyalty_tiers_expiration: { qualification_type: 'BALANCE', expiration_date: { type: 'CUSTOM', extend: 'P7D' } },
    });
    const m = await createMember(t, p.id);
    await points(m.code, 200);
    assert.deepEqual(await currentTier(m.code), ['Silver']);
    await points(m.code, -150);
    assert.deepEqual(await currentTier(m.code), ['Silver']);
    clock.advance(6 * 86400_000);
    await t.server.ctx.scheduler.runDue();
    assert.deepEqual(await currentTier(m.code), ['Silver']);
    clock.advance(86400_000 + 1000);
    await t.server.ctx.scheduler.runDue();
    assert.deepEqual(await currentTier(m.code), ['Bronze']);
    clock.set('2026-11-10T12:00:00Z');
  });

  it('runs several tier groups side by side, each on its own policy', async () => {
    const { p } = await setup();
    const g = await t.api('POST', `/v1/loyalties/${p.id}/tier-groups`, {
      name: 'Monthly stars',
      loyalty_tiers_expiration: {
        qualification_type: 'POINTS_IN_PERIOD',
        qualification_period: 'MONTH',
        expiration_date: { type: 'END_OF_PERIOD' },
      },
    });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    assert.match(g.body.id, /^tgrp_/);
    const st = await t.api('POST', `/v1/loyalties/${p.id}/tiers`, [
      { name: 'Star', points: { from: 300 }, tier_group_id: g.body.id },
    ]);
    assert.equal(st.status, 200, JSON.stringify(st.body));
    const m = await createMember(t, p.id);
    await points(m.code, 320);
    assert.deepEqual((await currentTier(m.code)).sort(), ['Silver', 'Star']);
    await points(m.code, -300);
    assert.deepEqual((await currentTier(m.code)).sort(), ['Bronze', 'Star']);
    const groups = (await tierEvents(m.id)).map((e) => e.tier_group.name);
    assert.ok(groups.includes('Monthly stars') && groups.includes('Default'));
    const bad = await t.api('POST', `/v1/loyalties/${p.id}/tier-groups`, {
      name: 'x',
      loyalty_tiers_expiration: { qualification_type: 'POINTS_IN_PERIOD' },
    });
    assert.equal(bad.status, 400);
  });
});
