import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RETENTION_JOB } from '../../src/modules/scheduler/retention.ts';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { clockOf, reportWorld } from './setup.ts';

// The flow report's daily roll-up (msg_flow_days): days that ended more than 8 days ago are read
// from it, computed once, and keep their figures (their members too, as sketches) after retention
// deletes their messages.

const DAY = 86_400_000;

describe('flow report roll-up: final days stored once, equal to the live count, past retention', () => {
  let t: TestServer;
  let n = 0;

  before(async () => {
    t = await startTestServer({ manualClock: true });
  });
  after(async () => {
    await t.server.services.messaging.outbound.drain();
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  const db = () => t.server.ctx.database.db;
  const report = async (flowId: string, q: string) => {
    const res = await t.api('GET', `/v1/flows/${flowId}/report?${q}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  const fold = () => t.server.services.messaging.reports.live.fold({ skipLocked: false });
  const rolledUp = async (flowId: string) =>
    db().selectFrom('msg_flow_days').selectAll().where('flow_id', '=', flowId).orderBy('day').execute();

  /**
   * Four days of traffic on a flow of its own (its own program, members and channel): members ask
   * for points on several days, two redeem a reward within 7 days of a flow message (one the day
   * after, one 3 days after), a third 8 days after (not counted). Returns the window as dates.
   */
  async function traffic() {
    const clock = clockOf(t);
    const k = ++n;
    const phones = [1, 2, 3].map((i) => `+38591${k}70000${i}`);
    const { flow, redeem, ask } = await reportWorld(t, `roll-up ${k}`, phones, `+1000000${k}999`);
    const day0 = clock.nowIso().slice(0, 10);
    await ask(0);
    await ask(1);
    await ask(1, 'help');
    clock.advance(DAY);
    await redeem(0); // the day after its message: counts on day 0
    await ask(2);
    await ask(0);
    clock.advance(DAY);
    await ask(1);
    clock.advance(DAY);
    await redeem(1); // a day after its latest message (day 2): counts on day 2, not day 0
    await ask(2);
    const last = clock.nowIso().slice(0, 10);
    // The days' running figures as the worker keeps them (a fold while the days are recent): the
    // reports below that move the clock back read them.
    await fold();
    clock.advance(8 * DAY);
    await redeem(2); // 8 days after its message: counts nowhere
    return { flow, window: `from=${day0}&to=${last}` };
  }

  it('a report over final days equals the one computed live, and is stored once', async () => {
    const { flow, window } = await traffic();
    // 8 days after the last message: the first three days are final, the last not yet.
    const mixed = await report(flow.id, window);
    assert.equal(mixed.totals.redemptions_within_7_days, 2);
    assert.equal(mixed.totals.points_redeemed_within_7_days, 200);
    assert.equal(mixed.totals.members_messaged, 3);
    assert.equal(mixed.totals.members_replied, 3);
    assert.equal(mixed.days.length, 4);
    const stored = (await rolledUp(flow.id)).map((r) => r.day);
    assert.deepEqual(
      stored,
      mixed.days.slice(0, 3).map((d: { date: string }) => d.date),
    );

    // The live computation of every day, against the roll-up's: equal.
    await db().deleteFrom('msg_flow_days').where('flow_id', '=', flow.id).execute();
    clockOf(t).advance(-8 * DAY); // no day final: all counted from messages
    const live = await report(flow.id, window);
    assert.equal((await rolledUp(flow.id)).length, 0, 'nothing stored while no day is final');
    clockOf(t).advance(20 * DAY); // every day final: all from the roll-up
    const final = await report(flow.id, window);
    assert.deepEqual(final, live);
    assert.deepEqual(mixed, live);
    assert.deepEqual(
      (await rolledUp(flow.id)).map((r) => [r.day, Number(r.messages) > 0]),
      live.days.map((d: { date: string }) => [d.date, true]),
      'a row per final day of the window',
    );
    const day0 = live.days[0];
    assert.equal(day0.redemptions_within_7_days, 1);
    assert.equal(live.days[2].redemptions_within_7_days, 1);
    // Read again: from the stored rows, nothing computed twice.
    const rows = await rolledUp(flow.id);
    assert.deepEqual(await report(flow.id, window), live);
    assert.deepEqual(await rolledUp(flow.id), rows);
  });

  it('two reports rolling up the same days at once neither fail nor count twice', async () => {
    const { flow, window } = await traffic();
    clockOf(t).advance(-8 * DAY);
    const live = await report(flow.id, window);
    clockOf(t).advance(20 * DAY);
    // One of the three computes the days; the others wait for it (in this process).
    const spied = t.server.services.messaging.reports as unknown as { rollUp: (...a: unknown[]) => Promise<void> };
    const rollUp = spied.rollUp;
    let rollUps = 0;
    spied.rollUp = function (this: unknown, ...a: unknown[]) {
      rollUps++;
      return rollUp.apply(this, a);
    };
    const q = new URLSearchParams(window);
    const service = t.server.services.messaging.reports;
    await Promise.all([0, 1, 2].map(() => service.flowReport(flow.id, q.get('from')!, q.get('to')!))).finally(() => {
      spied.rollUp = rollUp;
    });
    assert.equal(rollUps, 1);
    await db().deleteFrom('msg_flow_days').where('flow_id', '=', flow.id).execute();
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => report(flow.id, window)));
    assert.deepEqual(a, live);
    assert.deepEqual(b, live);
    assert.deepEqual(c, live);
    const rows = await rolledUp(flow.id);
    assert.equal(new Set(rows.map((r) => r.day)).size, rows.length);
    assert.equal(
      rows.reduce((s, r) => s + Number(r.redemptions_within_7_days), 0),
      2,
    );
    // Racing with itself through the service too: the second insert of a day is a no-op.
    await db().deleteFrom('msg_flow_days').where('flow_id', '=', flow.id).execute();
    const days = live.days.map((d: { date: string }) => d.date);
    const reports = t.server.services.messaging.reports;
    await Promise.all([reports.rollUpDays(db(), flow.id, days), reports.rollUpDays(db(), flow.id, days)]);
    assert.equal((await rolledUp(flow.id)).length, days.length);
    assert.deepEqual(await report(flow.id, window), live);
  });

  it("a final day's figures survive the retention sweep deleting its messages", async () => {
    const { flow, window } = await traffic();
    clockOf(t).advance(-8 * DAY);
    const live = await report(flow.id, window);
    assert.equal((await rolledUp(flow.id)).length, 0);

    // Past message retention (90 days): the hourly sweep rolls the days up, then deletes them.
    clockOf(t).advance(100 * DAY);
    const { scheduler } = t.server.ctx;
    await scheduler.schedule(db(), { kind: RETENTION_JOB, runAt: clockOf(t).now() });
    while ((await scheduler.runDue()) > 0);
    const left = await db()
      .selectFrom('msg_messages')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('flow_id', '=', flow.id)
      .executeTakeFirstOrThrow();
    assert.equal(Number(left.n), 0, 'the messages are gone');
    assert.deepEqual(
      (await rolledUp(flow.id)).map((r) => r.day),
      live.days.map((d: { date: string }) => d.date),
      'rolled up by the sweep, before any report asked',
    );

    // Every figure is kept, the window's distinct members too: the union of its days' sketches.
    const after = await report(flow.id, window);
    assert.deepEqual(after, live);
    assert.deepEqual([after.totals.members_messaged, after.totals.members_replied], [3, 3]);
    assert.equal(after.totals.members_estimated, false);
    assert.equal(after.members_counted_from, null);

    // Days rolled up before the sketches (migration 0292) keep no members: the window's are then
    // counted over its retained messages (none here), and the report says from when.
    await db().updateTable('msg_flow_days').set({ messaged_sketch: null }).where('flow_id', '=', flow.id).execute();
    const legacy = await report(flow.id, window);
    assert.deepEqual(legacy.days, live.days);
    const { members_messaged, members_replied, interaction_rate, ...counts } = legacy.totals;
    const { members_messaged: _m, members_replied: _r, interaction_rate: _i, ...liveCounts } = live.totals;
    assert.deepEqual(counts, liveCounts);
    assert.deepEqual([members_messaged, members_replied, interaction_rate], [0, 0, null]);
    assert.equal(typeof legacy.members_counted_from, 'string');
  });

  it('a window of more than 1,024 members is an estimate within 3 %, each of its days exact', async () => {
    const { flow } = await traffic();
    const template = await db()
      .selectFrom('msg_messages')
      .selectAll()
      .where('flow_id', '=', flow.id)
      .where('direction', '=', 'out')
      .executeTakeFirstOrThrow();
    // 20 days, 30 to 11 days ago (final; the flow is older), 100 members messaged a day, each
    // day's overlapping the day before's by 25: 1,525 members in all.
    clockOf(t).advance(40 * DAY);
    const today = Math.floor(clockOf(t).nowMs() / DAY) * DAY;
    const first = today - 30 * DAY;
    const rows = [];
    for (let d = 0; d < 20; d++)
      for (let i = 0; i < 100; i++)
        rows.push({
          ...template,
          id: `msg_sketch_${d}_${i}`,
          membership_id: `mem_sketch_${d * 75 + i}`,
          created_at: new Date(first + d * DAY + 3_600_000 + i * 1000).toISOString(),
        });
    for (let i = 0; i < rows.length; i += 100) {
      await db()
        .insertInto('msg_messages')
        .values(rows.slice(i, i + 100))
        .execute();
      // Queued for the running figures, as the writes of these messages would have.
      await db()
        .insertInto('msg_flow_report_queue')
        .values(rows.slice(i, i + 100).map((r) => ({ message_id: r.id })))
        .execute();
    }
    const date = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    const window = `from=${date(first)}&to=${date(first + 19 * DAY)}`;

    // Before any day of it is final, from the days' running figures (kept in the report's fold):
    // each day exact, the window's union of their sketches an estimate.
    clockOf(t).advance(-40 * DAY);
    const running = await report(flow.id, window);
    assert.equal(running.totals.members_estimated, true);
    assert.ok(Math.abs(running.totals.members_messaged - 1525) < 0.03 * 1525, String(running.totals.members_messaged));
    // The same days computed from their messages (as for days written before the running
    // figures began, msg_report_state): exact.
    const state = await db().selectFrom('msg_report_state').selectAll().executeTakeFirstOrThrow();
    await db().updateTable('msg_report_state').set({ live_from: '2999-01-01' }).execute();
    const live = await report(flow.id, window);
    await db().updateTable('msg_report_state').set({ live_from: state.live_from }).execute();
    clockOf(t).advance(40 * DAY);
    assert.equal(live.totals.members_estimated, false);
    assert.equal(live.totals.members_messaged, 1525);
    assert.deepEqual(running.days, live.days);

    const rolled = await report(flow.id, window);
    assert.equal(
      (await rolledUp(flow.id)).filter((r) => r.day >= new Date(first).toISOString().slice(0, 10)).length,
      20,
    );
    assert.deepEqual(
      rolled.days.map((d: { members_messaged: number }) => d.members_messaged),
      Array(20).fill(100),
    );
    assert.equal(rolled.totals.members_estimated, true);
    assert.ok(Math.abs(rolled.totals.members_messaged - 1525) < 0.03 * 1525, String(rolled.totals.members_messaged));
    assert.equal(rolled.totals.members_replied, 0);
    assert.deepEqual(live.days, rolled.days);
    // The union of the rolled-up days is merged once per window and flow (StoredUnions): the
    // same window again gives the same figures, a window of 10 of those days its own (775 members).
    assert.deepEqual(await report(flow.id, window), { ...rolled, to: (await report(flow.id, window)).to });
    const half = await report(flow.id, `from=${date(first)}&to=${date(first + 9 * DAY)}`);
    assert.ok(Math.abs(half.totals.members_messaged - 775) < 0.03 * 775, String(half.totals.members_messaged));
  });

  it("a window's members are counted once across its days, rolled up and live alike", async () => {
    const { flow, window } = await traffic();
    // Day 0 and day 1 final (from their sketches), days 2-3 live (from their messages): member 0
    // wrote on days 0 and 1, member 1 on days 0 and 2, member 2 on days 1 and 3.
    clockOf(t).advance(-DAY);
    const mixed = await report(flow.id, window);
    assert.equal((await rolledUp(flow.id)).length, 2);
    assert.deepEqual(
      mixed.days.map((d: { members_messaged: number }) => d.members_messaged),
      [2, 2, 1, 1],
    );
    assert.deepEqual([mixed.totals.members_messaged, mixed.totals.members_replied], [3, 3]);
    assert.equal(mixed.totals.interaction_rate, 1);
  });
});
