import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { ManualClock } from '../../src/lib/clock.ts';
import { buildServer } from '../../src/server.ts';
import { serveChild } from '../helpers/child-server.ts';
import { createMember, createProgram, startTestServer, testSecretKey, type TestServer } from '../helpers/server.ts';
import { allEvents, assertEventsMatchCatalog, customer, ok } from '../vouchers/helpers.ts';

// The time engine over HTTP with the manual clock: anniversaries and reminders fire once at their
// moment (`fireDue` is what the worker runs every second), catch up after downtime within the
// look-back, and are recorded as skipped beyond it.

const TIME_TYPES = [
  'subscription_month_anniversary',
  'subscription_year_anniversary',
  'tier_association_month_anniversary',
  'tier_association_year_anniversary',
  'membership_anniversary_reminder',
  'tier_anniversary_reminder',
  'balance_expiration_reminder',
  'voucher_expiration_reminder',
];

describe('time engine', () => {
  let t: TestServer;
  let clock: ManualClock;
  const fire = () => t.server.services.time.fireDue();
  /** The time engine's events of one card since the last call, all validated by the catalog. */
  const seen = new Set<string>();
  const newEvents = async (memberId?: string) => {
    const all = (await allEvents(t)).filter((e) => !seen.has(e.id));
    for (const e of all) seen.add(e.id);
    assertEventsMatchCatalog(all);
    return all.filter((e) => TIME_TYPES.includes(e.type) && (!memberId || e.resource_id === memberId));
  };
  const schedule = async (query: string) => (await ok(t, 'GET', `/v1/schedule?${query}`)).data as any[];

  before(async () => {
    clock = new ManualClock(new Date('2025-01-31T10:00:00.000Z'));
    t = await startTestServer({ clock });
  });
  after(() => t.close());

  it('month anniversaries clamp to the month end from the original date; month 12 is the year too', async () => {
    clock.set('2025-01-31T10:00:00.000Z');
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    await newEvents();
    const due = await schedule(`type=subscription_anniversary&from=2025-01-31T10:00:00Z&to=2025-03-01T00:00:00Z`);
    assert.deepEqual(
      due.filter((d) => d.membership_id === member.id).map((d) => d.due_at),
      ['2025-02-28T10:00:00.000Z'],
    );

    clock.set('2025-02-28T09:59:59.000Z');
    await fire();
    assert.equal((await newEvents(member.id)).length, 0, 'not before its moment');
    clock.set('2025-02-28T10:00:00.000Z');
    await fire();
    await fire();
    let events = await newEvents(member.id);
    assert.deepEqual(
      events.map((e) => [e.type, e.data.due_at]),
      [['subscription_month_anniversary', '2025-02-28T10:00:00.000Z']],
    );
    assert.deepEqual(events[0].data.subscription, {
      created_at: member.created_at,
      loyalty_subscription_id: member.id,
    });
    assert.deepEqual(events[0].data.loyalty_program, { id: program.id, name: program.name });

    // 31 March, not 28 March: counted from 31 January.
    clock.set('2025-03-31T10:00:05.000Z');
    await fire();
    events = await newEvents(member.id);
    assert.deepEqual(
      events.map((e) => e.data.due_at),
      ['2025-03-31T10:00:00.000Z'],
    );

    // Down from April to 2 February 2026: the 9 anniversaries older than 7 days are skipped, the
    // last two (31 December is older; 31 January 2026, month 12) fire once.
    clock.set('2026-02-02T00:00:00.000Z');
    await fire();
    events = await newEvents(member.id);
    assert.deepEqual(
      events.map((e) => [e.type, e.data.due_at]),
      [
        ['subscription_month_anniversary', '2026-01-31T10:00:00.000Z'],
        ['subscription_year_anniversary', '2026-01-31T10:00:00.000Z'],
      ],
    );
    const skipped = (await ok(t, 'GET', '/v1/schedule/skipped?limit=100')).data.filter(
      (s: any) => s.subject_id === member.id,
    );
    assert.deepEqual(
      skipped.map((s: any) => s.due_at).reverse(),
      [4, 5, 6, 7, 8, 9, 10, 11, 12].map(
        (m) => `2025-${String(m).padStart(2, '0')}-${[4, 6, 9, 11].includes(m) ? 30 : 31}T10:00:00.000Z`,
      ),
    );
    // Once: a second pass fires nothing.
    await fire();
    assert.equal((await newEvents(member.id)).length, 0);
    // Next: 28 February 2026.
    const next = await schedule(
      `type=subscription_month_anniversary&from=2026-02-02T00:00:00Z&to=2026-03-01T00:00:00Z`,
    );
    assert.ok(next.some((d) => d.membership_id === member.id && d.due_at === '2026-02-28T10:00:00.000Z'));
  });

  it("in the program's time zone, across DST; a leap day", async () => {
    // 31 January 23:30 in Zagreb (22:30Z): 28 February 23:30 (22:30Z), 30 April 23:30 CEST (21:30Z).
    clock.set('2025-01-31T22:30:00.000Z');
    const program = await createProgram(t, { timezone: 'Europe/Zagreb' });
    const member = await createMember(t, program.id);
    clock.set('2025-02-28T22:30:00.000Z');
    await fire();
    clock.set('2025-03-31T21:30:00.000Z');
    await fire();
    clock.set('2025-04-30T21:30:00.000Z');
    await fire();
    const events = await newEvents(member.id);
    assert.deepEqual(
      events.map((e) => e.data.due_at),
      ['2025-02-28T22:30:00.000Z', '2025-03-31T21:30:00.000Z', '2025-04-30T21:30:00.000Z'],
    );

    // A card made on 29 February 2024: its year anniversary is 28 February 2025.
    clock.set('2024-02-29T12:00:00.000Z');
    const leap = await createMember(t, (await createProgram(t)).id);
    const year = await schedule(`type=subscription_anniversary&from=2025-02-27T00:00:00Z&to=2025-03-01T00:00:00Z`);
    assert.equal(year.find((d) => d.membership_id === leap.id)?.due_at, undefined, 'not due yet: month 1 first');
    const items = await t.server.services.time.schedule(t.server.ctx.database.db, {
      from: '2024-01-01T00:00:00.000Z',
      to: '2030-01-01T00:00:00.000Z',
      type: 'subscription_anniversary',
      limit: 1000,
      page: 1,
    });
    assert.equal(items.rows.find((r) => r.subject_id === leap.id)?.next_at, '2024-03-29T12:00:00.000Z');
    // Moved to 25 February 2025 (later items older than the look-back are skipped, not sent).
    clock.set('2025-02-27T12:00:00.000Z');
    await fire();
    clock.set('2025-02-28T12:00:00.000Z');
    await fire();
    const leapEvents = (await newEvents(leap.id)).filter((e) => e.data.due_at === '2025-02-28T12:00:00.000Z');
    assert.deepEqual(leapEvents.map((e) => e.type).sort(), [
      'subscription_month_anniversary',
      'subscription_year_anniversary',
    ]);
  });

  it('membership anniversary reminders (program), none for a revoked card', async () => {
    clock.set('2025-03-10T08:00:00.000Z');
    const program = await createProgram(t, { reminders: [{ unit: 'week', value: 1 }] });
    assert.deepEqual(program.reminders, [{ unit: 'week', value: 1 }]);
    const member = await createMember(t, program.id);
    const revoked = await createMember(t, program.id);
    await ok(t, 'DELETE', `/v1/loyalties/${program.id}/members/${revoked.id}`);
    const due = await schedule(
      `type=membership_anniversary_reminder&from=2026-03-01T00:00:00Z&to=2026-03-05T00:00:00Z`,
    );
    assert.deepEqual(
      due.filter((d) => d.membership_id === member.id).map((d) => d.due_at),
      ['2026-03-03T08:00:00.000Z'],
    );
    clock.set('2026-03-03T08:00:00.000Z');
    await fire();
    const events = (await newEvents()).filter((e) => e.type === 'membership_anniversary_reminder');
    assert.deepEqual(
      events.map((e) => [e.resource_id, e.data.reminder, e.data.membership.card_id, e.data.due_at]),
      [[member.id, { unit: 'week', value: 1 }, member.code, '2026-03-03T08:00:00.000Z']],
    );

    // Reminders set later reach the cards already there (a re-planning job).
    const later = await createProgram(t);
    const m2 = await createMember(t, later.id);
    await ok(t, 'PUT', `/v1/loyalties/${later.id}`, { reminders: [{ unit: 'day', value: 2 }] });
    await t.server.ctx.scheduler.runDue();
    const planned = await schedule(`type=membership_reminder&from=2027-03-01T00:00:00Z&to=2027-03-02T00:00:00Z`);
    assert.deepEqual(
      planned.filter((d) => d.membership_id === m2.id).map((d) => d.due_at),
      ['2027-03-01T08:00:00.000Z'],
    );
  });

  it('balance expiration reminders (balance definition): amount and date; nothing for zero points', async () => {
    clock.set('2025-05-01T00:00:00.000Z');
    const program = await createProgram(t);
    const def = await ok(t, 'PUT', `/v1/loyalties/${program.id}/balance-definitions/points`, {
      reminders: [{ unit: 'day', value: 3 }],
    });
    assert.deepEqual(def.reminders, [{ unit: 'day', value: 3 }]);
    const member = await createMember(t, program.id);
    const spender = await createMember(t, program.id);
    const credit = (code: string, points: number, expiration_date: string) =>
      ok(t, 'POST', `/v1/loyalties/members/${code}/balance`, {
        points,
        expiration_type: 'CUSTOM_DATE',
        expiration_date,
      });
    await credit(member.code, 100, '2025-06-01T00:00:00.000Z');
    await credit(member.code, 50, '2025-06-01T00:00:00.000Z');
    await credit(member.code, 20, '2025-07-01T00:00:00.000Z');
    await credit(spender.code, 30, '2025-06-01T00:00:00.000Z');
    await ok(t, 'POST', `/v1/loyalties/members/${spender.code}/balance`, { points: -30 });

    clock.set('2025-05-29T00:00:00.000Z');
    await fire();
    const events = (await newEvents()).filter((e) => e.type === 'balance_expiration_reminder');
    assert.deepEqual(
      events.map((e) => [e.resource_id, e.data.amount, e.data.expires_at, e.data.reminder.value]),
      [[member.id, 150, '2025-06-01T00:00:00.000Z', 3]],
    );
    assert.equal(events[0].data.balance_definition.name, 'points');
    // The next one: 3 days before 1 July.
    const next = await schedule(`type=balance_reminder&from=2025-05-29T00:00:01Z&to=2025-08-01T00:00:00Z`);
    assert.deepEqual(
      next.filter((d) => d.membership_id === member.id).map((d) => d.due_at),
      ['2025-06-28T00:00:00.000Z'],
    );
  });

  it('tier anniversaries restart when the tier changes; tier reminders; strategies at the anniversary', async () => {
    clock.set('2025-01-15T12:00:00.000Z');
    const program = await createProgram(t);
    await ok(t, 'POST', `/v1/loyalties/${program.id}/tiers`, [
      { name: 'Bronze', points: { from: 0, to: 99 } },
      { name: 'Gold', points: { from: 100 } },
    ]);
    const member = await createMember(t, program.id);
    clock.set('2025-02-15T12:00:00.000Z');
    await fire();
    let events = await newEvents(member.id);
    assert.deepEqual(
      events
        .filter((e) => e.type === 'tier_association_month_anniversary')
        .map((e) => [e.data.tier.name, e.data.created_at]),
      [['Bronze', '2025-01-15T12:00:00.000Z']],
    );
    // Gold on 20 February: the tier anniversaries now count from then.
    clock.set('2025-02-20T09:00:00.000Z');
    await ok(t, 'POST', `/v1/loyalties/members/${member.code}/balance`, { points: 150 });
    const due = await schedule(`type=tier_anniversary&from=2025-02-20T09:00:00Z&to=2025-04-01T00:00:00Z`);
    assert.deepEqual(
      due.filter((d) => d.membership_id === member.id).map((d) => [d.due_at, d.anchor_at]),
      [['2025-03-20T09:00:00.000Z', '2025-02-20T09:00:00.000Z']],
    );
    clock.set('2025-03-15T12:00:00.000Z');
    await fire();
    assert.equal(
      (await newEvents(member.id)).filter((e) => e.type.startsWith('tier_association')).length,
      0,
      'no anniversary of the old tier',
    );

    // A tier group that moves members only at the tier's year anniversary, with a reminder a day before.
    clock.set('2025-01-10T00:00:00.000Z');
    const p2 = await createProgram(t);
    await ok(t, 'POST', `/v1/loyalties/${p2.id}/tiers`, [
      { name: 'Base', points: { from: 0, to: 99 } },
      { name: 'Top', points: { from: 100 } },
    ]);
    const groups = await ok(t, 'GET', `/v1/loyalties/${p2.id}/tier-groups`);
    const group = groups.data[0];
    const updated = await ok(t, 'PUT', `/v1/loyalties/${p2.id}/tier-groups/${group.id}`, {
      upgrade_strategy: 'tier_anniversary',
      downgrade_strategy: 'tier_anniversary',
      reminders: [{ unit: 'day', value: 1 }],
    });
    assert.equal(updated.upgrade_strategy, 'tier_anniversary');
    const m = await createMember(t, p2.id);
    await ok(t, 'POST', `/v1/loyalties/members/${m.code}/balance`, { points: 500 });
    let tiers = await ok(t, 'GET', `/v1/loyalties/members/${m.code}/tiers`);
    assert.deepEqual(
      tiers.data.map((x: any) => x.name),
      ['Base'],
      'the upgrade waits for the anniversary',
    );
    clock.set('2026-01-09T00:00:00.000Z');
    await fire();
    events = await newEvents(m.id);
    const reminder = events.find((e) => e.type === 'tier_anniversary_reminder');
    assert.deepEqual(
      [reminder?.data.tier.name, reminder?.data.attributed_at, reminder?.data.due_at],
      ['Base', '2025-01-10T00:00:00.000Z', '2026-01-09T00:00:00.000Z'],
    );
    clock.set('2026-01-10T00:00:00.000Z');
    await fire();
    events = await newEvents(m.id);
    // The card's own year anniversary is the same day (it joined with its entry tier).
    assert.deepEqual(events.map((e) => e.type).sort(), [
      'subscription_month_anniversary',
      'subscription_year_anniversary',
      'tier_association_month_anniversary',
      'tier_association_year_anniversary',
    ]);
    const moved = (await allEvents(t)).filter((e) => e.type === 'tier_association_updated' && e.resource_id === m.id);
    assert.deepEqual(
      moved.map((e) => [e.data.from_tier?.name ?? null, e.data.to_tier?.name]),
      [
        [null, 'Base'],
        ['Base', 'Top'],
      ],
    );
    tiers = await ok(t, 'GET', `/v1/loyalties/members/${m.code}/tiers`);
    assert.deepEqual(
      tiers.data.map((x: any) => x.name),
      ['Top'],
    );
    // Its anniversaries restart from the new tier.
    const restarted = await schedule(`type=tier_anniversary&from=2026-01-10T00:00:00Z&to=2026-03-01T00:00:00Z`);
    assert.deepEqual(
      restarted.filter((d) => d.membership_id === m.id).map((d) => d.due_at),
      ['2026-02-10T00:00:00.000Z'],
    );
  });

  it('voucher expiration reminders (voucher campaign): before the expiry, once', async () => {
    clock.set('2025-08-01T00:00:00.000Z');
    const holder = await customer(t, 'time-voucher-holder');
    const campaign = await ok(t, 'POST', '/v1/campaigns', {
      name: 'Summer 10',
      campaign_type: 'DISCOUNT_COUPONS',
      expiration_date: '2025-09-01T00:00:00.000Z',
      reminders: [{ unit: 'day', value: 2 }],
      voucher: { type: 'DISCOUNT_VOUCHER', discount: { type: 'AMOUNT', amount_off: 1000 } },
    });
    const pub = await ok(t, 'POST', '/v1/publications', { campaign: campaign.id, customer: holder.id });
    const due = await schedule(`type=voucher_expiration_reminder&from=2025-08-01T00:00:00Z&to=2025-09-01T00:00:00Z`);
    assert.deepEqual(
      due.filter((d) => d.subject_id === pub.voucher.id).map((d) => d.due_at),
      ['2025-08-30T00:00:00.000Z'],
    );
    clock.set('2025-08-30T00:00:01.000Z');
    await fire();
    await fire();
    const events = (await newEvents()).filter((e) => e.type === 'voucher_expiration_reminder');
    assert.deepEqual(
      events.map((e) => [e.data.code, e.data.expired_at, e.data.reminder, e.data.customer_id, e.data.due_at]),
      [
        [
          pub.voucher.code,
          '2025-09-01T00:00:00.000Z',
          { unit: 'day', value: 2 },
          holder.id,
          '2025-08-30T00:00:00.000Z',
        ],
      ],
    );
  });

  it('a voucher issued by a reward redemption gets the expiration reminders of its campaign', async () => {
    clock.set('2025-08-01T00:00:00.000Z');
    const program = await createProgram(t);
    const campaign = await ok(t, 'POST', '/v1/campaigns', {
      name: 'Reward coupons with reminders',
      campaign_type: 'DISCOUNT_COUPONS',
      expiration_date: '2025-09-01T00:00:00.000Z',
      reminders: [{ unit: 'week', value: 1 }],
      voucher: { type: 'DISCOUNT_VOUCHER', discount: { type: 'AMOUNT', amount_off: 500 } },
    });
    const reward = await ok(t, 'POST', '/v1/rewards', {
      name: 'Five off',
      parameters: { campaign: { id: campaign.id } },
    });
    await ok(t, 'POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 10 } } },
    ]);
    const member = await createMember(t, program.id);
    await ok(t, 'POST', `/v1/loyalties/members/${member.code}/balance`, { points: 10 });
    const redeemed = await ok(t, 'POST', `/v1/loyalties/members/${member.code}/redemption`, {
      reward: { id: reward.id },
    });
    const due = await schedule(`type=voucher_expiration_reminder&from=2025-08-01T00:00:00Z&to=2025-09-01T00:00:00Z`);
    assert.deepEqual(
      due.filter((d) => d.subject_id === redeemed.reward.voucher.id).map((d) => d.due_at),
      ['2025-08-25T00:00:00.000Z'],
    );
  });

  it("an imported card's past anniversaries are not sent", async () => {
    clock.set('2025-08-01T00:00:00.000Z');
    const program = await createProgram(t);
    // An import from another system: the card existed since 31 March 2023 (28 months of anniversaries).
    const member = await ok(t, 'POST', `/v1/loyalties/${program.id}/members`, {
      customer: { source_id: 'time-imported', name: 'Imported' },
      loyalty_subscription_id: 'legacy-42',
      created_at: '2023-03-31T06:00:00.000Z',
    });
    await fire();
    assert.equal((await newEvents(member.id)).length, 0);
    const due = await schedule(`type=subscription_anniversary&from=2025-08-01T00:00:00Z&to=2025-09-01T00:00:00Z`);
    assert.deepEqual(
      due.filter((d) => d.membership_id === member.id).map((d) => d.due_at),
      ['2025-08-31T06:00:00.000Z'],
    );
    clock.set('2025-08-31T06:00:01.000Z');
    await fire();
    const fired = await newEvents(member.id);
    assert.deepEqual(
      fired.map((e) => [e.type, e.data.subscription.loyalty_subscription_id]),
      [['subscription_month_anniversary', 'legacy-42']],
    );
  });

  it('the catalog marks every time event emitted', async () => {
    const types = (await ok(t, 'GET', '/v1/event-types')).data as { type: string; emitted: boolean }[];
    for (const type of TIME_TYPES) assert.equal(types.find((x) => x.type === type)?.emitted, true, type);
  });

  it('the schedule refuses a range that ends before it starts, and an unknown type', async () => {
    const res = await t.api('GET', '/v1/schedule?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z');
    assert.equal(res.status, 400);
    assert.equal(res.body.key, 'invalid_range');
    const unknown = await t.api('GET', '/v1/schedule?type=birthday');
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.key, 'invalid_type');
  });
});

describe('time engine: the worker of a running server', () => {
  it('fires a due item within 5 seconds of its moment, once', async () => {
    const t = await startTestServer({ config: { workers: true } });
    try {
      const program = await createProgram(t);
      const member = await createMember(t, program.id);
      // Its first anniversary is a month away: brought forward to 1.5 s from now.
      const dueAt = new Date(Date.now() + 1500).toISOString();
      await t.server.ctx.database.db
        .updateTable('due_items')
        .set({ next_at: dueAt })
        .where('subject_id', '=', member.id)
        .where('kind', '=', 'subscription_anniversary')
        .execute();
      let fired: any[] = [];
      while (fired.length === 0 && Date.now() < Date.parse(dueAt) + 5000) {
        await new Promise((r) => setTimeout(r, 100));
        fired = (await allEvents(t)).filter((e) => e.type === 'subscription_month_anniversary');
      }
      assert.equal(fired.length, 1, 'fired within 5 s');
      assert.equal(fired[0].data.due_at, dueAt);
      assert.ok(Date.parse(fired[0].created_at) >= Date.parse(dueAt), 'not before its moment');
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await allEvents(t)).filter((e) => e.type === 'subscription_month_anniversary').length, 1);
    } finally {
      await t.close();
    }
  });
});

describe('time engine: two servers on one database fire each item once', () => {
  it('concurrent passes of two servers: every anniversary once', async () => {
    const clockA = new ManualClock(new Date('2025-01-01T00:00:00.000Z'));
    const a = await startTestServer({ clock: clockA, config: { timeBatchSize: 7 } });
    const clockB = new ManualClock(new Date('2025-01-01T00:00:00.000Z'));
    const b = await buildServer(
      {
        ...loadConfig({}, {}),
        port: 0,
        host: '127.0.0.1',
        databaseUrl: a.databaseUrl,
        logLevel: 'warn',
        workers: false,
        secretKey: testSecretKey,
        timeBatchSize: 7,
      },
      { logger: false, clock: clockB },
    );
    try {
      const program = await createProgram(a);
      const ids = new Set<string>();
      for (let i = 0; i < 40; i++) ids.add((await createMember(a, program.id)).id);
      for (const day of ['2025-02-01T00:00:00.000Z', '2025-03-01T00:00:00.000Z']) {
        clockA.set(day);
        clockB.set(day);
        const fired = await Promise.all([
          a.server.services.time.fireDue(),
          b.services.time.fireDue(),
          a.server.services.time.fireDue(),
          b.services.time.fireDue(),
        ]);
        assert.ok(fired.reduce((x, y) => x + y, 0) >= 40);
      }
      const events = (await allEvents(a)).filter((e) => e.type === 'subscription_month_anniversary');
      assert.equal(events.length, 80);
      const perMember = new Map<string, number>();
      for (const e of events) perMember.set(e.resource_id, (perMember.get(e.resource_id) ?? 0) + 1);
      assert.deepEqual([...new Set(perMember.values())], [2]);
      assert.equal(perMember.size, ids.size);
    } finally {
      await b.close();
      await a.close();
    }
  });
});

describe('time engine: two tally serve processes with their workers on', () => {
  it('fire each due item once', async () => {
    const t = await startTestServer();
    const children: Awaited<ReturnType<typeof serveChild>>[] = [];
    try {
      const program = await createProgram(t);
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) ids.push((await createMember(t, program.id)).id);
      // Both processes start, then the anniversaries of the 30 cards come due at once.
      const env = { NODE_ENV: 'production', DATABASE_URL: t.databaseUrl, TALLY_TIME_BATCH_SIZE: '4' };
      children.push(...(await Promise.all([serveChild(env), serveChild(env)])));
      const dueAt = new Date(Date.now() + 1000).toISOString();
      await t.server.ctx.database.db
        .updateTable('due_items')
        .set({ next_at: dueAt })
        .where('subject_id', 'in', ids)
        .where('kind', '=', 'subscription_anniversary')
        .execute();
      const fired = async () => (await allEvents(t)).filter((e) => e.type === 'subscription_month_anniversary');
      const deadline = Date.now() + 20_000;
      while ((await fired()).length < ids.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      await new Promise((r) => setTimeout(r, 1500));
      const events = await fired();
      assert.equal(events.length, ids.length, 'each card once');
      assert.deepEqual(new Set(events.map((e) => e.resource_id)), new Set(ids));
    } finally {
      for (const c of children) await c.stop();
      await t.close();
    }
  });
});
