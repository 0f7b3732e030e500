import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { modules } from '../../src/modules/index.ts';
import { RETENTION_JOB } from '../../src/modules/scheduler/retention.ts';
import { migrateToLatest } from '../../src/storage/migrate.ts';
import { backend, startTestServer, type TestServer } from '../helpers/server.ts';
import { clockOf, reportWorld, simulate } from './setup.ts';

// The flow report's running figures (msg_flow_live_days): the recent days are read from rows kept
// as messages and redemptions are written (folded from what changed), not counted from their
// messages on every report. Every figure must equal the one counted from the messages, which the
// report still does for days written before the running figures began (msg_report_state).

const DAY = 86_400_000;

describe('flow report running figures: equal to the count from messages, whatever changed', () => {
  let t: TestServer;
  let n = 0;

  before(async () => {
    t = await startTestServer({ manualClock: true });
  });
  after(async () => {
    await t.server.services.messaging.outbound.drain();
    await t.close();
  });

  const db = () => t.server.ctx.database.db;
  const live = () => t.server.services.messaging.reports.live;
  const report = async (flowId: string, q = '') => {
    // A moment after the last write: a window ends before `to`, and a message at `to` exactly
    // would be in the day's running row but not in the count from messages.
    clockOf(t).advance(1);
    const res = await t.api('GET', `/v1/flows/${flowId}/report?${q}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  /** The same report counted from the messages (as for days before the running figures began). */
  const counted = async (flowId: string, q = '') => {
    const state = await db().selectFrom('msg_report_state').selectAll().executeTakeFirstOrThrow();
    await db().updateTable('msg_report_state').set({ live_from: '2999-01-01' }).execute();
    try {
      return await report(flowId, q);
    } finally {
      await db().updateTable('msg_report_state').set({ live_from: state.live_from }).execute();
    }
  };
  /** Two reports asked a moment apart: equal but for `to`. */
  const sameFigures = (a: Record<string, unknown>, b: Record<string, unknown>) =>
    assert.deepEqual({ ...a, to: null }, { ...b, to: null });
  const liveRows = (flowId: string) =>
    db().selectFrom('msg_flow_live_days').selectAll().where('flow_id', '=', flowId).orderBy('day').execute();

  /** A flow of its own, with `members` members (setup.ts). */
  async function setUp(members: number) {
    const k = ++n;
    const phones = Array.from({ length: members }, (_, i) => `+38592${k}8${String(i).padStart(5, '0')}`);
    return reportWorld(t, `live ${k}`, phones, `+1000000${k}777`);
  }

  /** A flow message to member `i` that waits in the queue (sent `inMs` from now). */
  async function queueFlowMessage(s: Awaited<ReturnType<typeof setUp>>, i: number, inMs: number) {
    const { outbound, channels } = t.server.services.messaging;
    const channel = await channels.find(db(), s.ch.id);
    await t.server.ctx.transaction((trx) =>
      outbound.queue(trx, {
        channel: channel!,
        to: s.phones[i],
        text: 'Your points are waiting',
        flow_id: s.flow.id,
        program_id: s.program.id,
        customer_id: s.cards[i].customer_id,
        membership_id: s.cards[i].id,
        sendAt: new Date(clockOf(t).nowMs() + inMs).toISOString(),
      }),
    );
  }

  const flowMessages = (flowId: string, direction: string) =>
    db()
      .selectFrom('msg_messages')
      .selectAll()
      .where('flow_id', '=', flowId)
      .where('direction', '=', direction)
      .orderBy('created_at')
      .execute();

  it('counts, members, keywords, delivery reports, cancels, redemptions, rollbacks: as from messages', async () => {
    const s = await setUp(5);
    const { outbound } = t.server.services.messaging;
    await s.ask(0);
    await s.ask(1);
    await s.ask(1, 'help');
    await s.ask(2, 'points');
    const first = await report(s.flow.id);
    assert.equal(first.totals.inbound, 3, "'help' matches no flow");
    assert.equal(first.totals.members_messaged, 3);
    assert.equal((await liveRows(s.flow.id)).length, 1, 'one running row for the day');

    // Delivery reports after the report folded the sends: delivered, failed, delivered twice.
    const sent = await flowMessages(s.flow.id, 'out');
    await outbound.applyReport(s.ch.id, sent[0].id, 'delivered');
    await outbound.applyReport(s.ch.id, sent[1].id, 'failed', 'EC_ABSENT');
    await outbound.applyReport(s.ch.id, sent[2].id, 'delivered');
    await outbound.applyReport(s.ch.id, sent[2].id, 'delivered');

    // A flow message still queued for member 3, then member 3 opts out: it is cancelled, and
    // member 3, messaged by nothing else that day, is no longer counted as messaged.
    await queueFlowMessage(s, 3, DAY);
    const queued = await report(s.flow.id);
    assert.equal(queued.totals.members_messaged, 4);
    await s.ask(3, 'STOP');
    const afterStop = await report(s.flow.id);
    assert.equal(afterStop.totals.members_messaged, 3, 'the cancelled message no longer counts its member');

    // Redemptions: member 0 the next day (credited to day 0), member 1 twice, one rolled back
    // after it was folded; member 4, never messaged, credits nothing.
    clockOf(t).advance(DAY);
    await s.redeem(0);
    const r1 = await s.redeem(1);
    await s.redeem(1);
    await s.redeem(4);
    await s.ask(2); // day 1: member 2 again
    const beforeRollback = await report(s.flow.id);
    assert.equal(beforeRollback.totals.redemptions_within_7_days, 3);
    const rb = await t.api('POST', `/v1/redemptions/${r1.id}/rollback`, {});
    assert.equal(rb.status, 200, JSON.stringify(rb.body));

    const running = await report(s.flow.id);
    assert.equal(running.totals.redemptions_within_7_days, 2);
    assert.equal(running.totals.points_redeemed_within_7_days, 200);
    assert.equal(running.days[0].delivered, 2);
    assert.equal(running.days[0].failed, 1);
    assert.deepEqual(running.days[0].keyword_matches, { POINTS: 3 });
    assert.equal(running.totals.members_estimated, false);
    sameFigures(running, await counted(s.flow.id));
    // A window of explicit date-times (partial first and last days, counted from messages) too.
    const from = new Date(clockOf(t).nowMs() - DAY - 3600_000).toISOString();
    const to = new Date(clockOf(t).nowMs() - 60_000).toISOString();
    const q = `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
    assert.deepEqual(await report(s.flow.id, q), await counted(s.flow.id, q));
  });

  it("merges a past day's members again only when the fold changed them (their revision)", async () => {
    const s = await setUp(3);
    const { outbound } = t.server.services.messaging;
    const revisions = async () => (await liveRows(s.flow.id)).map((r) => Number(r.sketch_revision));
    // Day 0: member 0 asks; a flow message to member 1 waits in the queue (it counts member 1).
    await s.ask(0);
    await queueFlowMessage(s, 1, 3 * DAY);
    // Day 1 (the report's last day, read with its figures): member 2 asks.
    clockOf(t).advance(DAY);
    await s.ask(2);
    const first = await report(s.flow.id);
    assert.equal(first.totals.members_messaged, 3);
    const [day0] = await revisions();

    // A delivery report of day 0's reply moves counts only: day 0's sketches, and their revision, stay.
    const reply = (await flowMessages(s.flow.id, 'out')).find((m) => m.to_number === s.phones[0]);
    await outbound.applyReport(s.ch.id, reply!.id, 'delivered');
    const delivered = await report(s.flow.id);
    assert.equal(delivered.days[0].delivered, 1);
    assert.equal((await revisions())[0], day0, 'no new revision for counts');
    assert.equal(delivered.totals.members_messaged, 3);

    // Member 1 opts out: day 0's queued message is cancelled and member 1 leaves day 0's members.
    // The union merged for the first report holds member 1; the new revision makes a new one.
    await s.ask(1, 'STOP');
    const stopped = await report(s.flow.id);
    assert.equal((await revisions())[0], day0 + 1);
    assert.equal(stopped.days[0].members_messaged, 1);
    assert.equal(stopped.totals.members_messaged, 2, 'the union of day 0 as it is now');
    sameFigures(stopped, await counted(s.flow.id));
  });

  it("counts aliases that are names of an object's own machinery (constructor, __proto__) as any other", async () => {
    const k = ++n;
    const phones = [0, 1].map((i) => `+38592${k}9${String(i).padStart(5, '0')}`);
    const s = await reportWorld(t, `live ${k}`, phones, `+1000000${k}778`);
    const res = await t.api('PUT', `/v1/flows/${s.flow.id}`, {
      ...(await t.api('GET', `/v1/flows/${s.flow.id}`)).body.definition,
      triggers: [{ keywords: ['constructor', '__proto__', 'toString'] }],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await s.ask(0, 'constructor');
    await s.ask(1, '__proto__');
    await s.ask(1, 'toString');
    await s.ask(0, 'constructor');
    const expected = { constructor: 2, toString: 1, ['__proto__']: 1 };
    const running = await report(s.flow.id);
    assert.deepEqual(running.totals.keyword_matches, expected);
    assert.deepEqual(running.days[0].keyword_matches, expected);
    sameFigures(running, await counted(s.flow.id));
  });

  it('concurrent messages and folds count every message and member once', async () => {
    const s = await setUp(12);
    const { reports } = t.server.services.messaging;
    // Members write several times each, in parallel with folds of both kinds (the worker's, which
    // passes over what another fold holds, and a report's, which waits for it).
    const writes = [];
    for (let round = 0; round < 3; round++)
      for (let i = 0; i < s.phones.length; i++)
        writes.push(simulate(t, s.phones[i], i % 3 ? 'POINTS' : 'points', s.ch.id));
    const folds = Array.from({ length: 6 }, (_, i) => reports.live.fold({ skipLocked: i % 2 === 0 }));
    await Promise.all([...writes, ...folds]);
    await Promise.all([reports.live.fold({ skipLocked: true }), reports.live.fold({ skipLocked: false })]);
    const running = await report(s.flow.id);
    assert.equal(running.totals.inbound, 36);
    assert.equal(running.totals.members_messaged, 12);
    assert.equal(running.totals.members_replied, 12);
    sameFigures(running, await counted(s.flow.id));
    const queued = await db().selectFrom('msg_flow_report_queue').select('message_id').execute();
    assert.deepEqual(queued, [], `nothing left queued (${backend})`);
  });

  it("the worker has the queue's deleted rows reclaimed (PostgreSQL: a VACUUM of the queue)", async () => {
    const vacuums = async () => {
      if (backend !== 'postgres') return 0;
      const r = await sql<{ n: string }>`select vacuum_count as n from pg_stat_user_tables
        where relname = 'msg_flow_report_queue'`.execute(db());
      return Number(r.rows[0].n);
    };
    const before = await vacuums();
    // Queued messages that no longer exist: the fold only deletes them.
    const rows = Array.from({ length: 2_100 }, (_, i) => ({ message_id: `msg_gone_${i}` }));
    for (let i = 0; i < rows.length; i += 500)
      await db()
        .insertInto('msg_flow_report_queue')
        .values(rows.slice(i, i + 500))
        .execute();
    await live().fold({ skipLocked: false }); // a report's fold: it does not reclaim
    await live().fold({ skipLocked: true }); // the worker's
    const left = await db().selectFrom('msg_flow_report_queue').select('seq').execute();
    assert.deepEqual(left, []);
    if (backend === 'postgres') {
      assert.ok((await vacuums()) > before, 'vacuumed');
      const plan = await sql<{ 'QUERY PLAN': string }>`explain (analyze, buffers, format text)
        select exists (select seq from msg_flow_report_queue order by seq limit 1)`.execute(db());
      const hits = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
      const buffers = Math.max(...[...hits.matchAll(/shared hit=(\d+)/g)].map((m) => Number(m[1])), 0);
      assert.ok(buffers < 20, `a check for pending work steps over no deleted rows: ${hits}`);
    }
  });

  it('a day that becomes final is read from the roll-up, and retention removes its running rows', async () => {
    const s = await setUp(2);
    await s.ask(0);
    clockOf(t).advance(DAY);
    await s.redeem(0);
    const recent = await report(s.flow.id);
    assert.equal(recent.totals.redemptions_within_7_days, 1);
    assert.equal((await liveRows(s.flow.id)).length, 1);
    const counted = await db()
      .selectFrom('msg_flow_member_days')
      .selectAll()
      .where('flow_id', '=', s.flow.id)
      .execute();
    assert.equal(counted.length, 1, 'member 0 on day 0');
    assert.deepEqual([counted[0].messaged, counted[0].writing].map(Number), [1, 1]);

    const ids = [...(await flowMessages(s.flow.id, 'out')), ...(await flowMessages(s.flow.id, 'in'))].map((m) => m.id);
    const heldOf = (messageIds: string[]) =>
      db().selectFrom('msg_flow_message_figures').select('message_id').where('message_id', 'in', messageIds).execute();
    assert.equal((await heldOf(ids)).length, ids.length, 'each message of the day is held');

    clockOf(t).advance(12 * DAY);
    const { scheduler } = t.server.ctx;
    await scheduler.schedule(db(), { kind: RETENTION_JOB, runAt: clockOf(t).now() });
    while ((await scheduler.runDue()) > 0);
    assert.deepEqual(await liveRows(s.flow.id), [], 'running rows of final days removed');
    const credits = await db()
      .selectFrom('msg_flow_redemptions')
      .select('redemption_id')
      .where('flow_id', '=', s.flow.id)
      .execute();
    assert.deepEqual(credits, []);
    const members = await db()
      .selectFrom('msg_flow_member_days')
      .select('membership_id')
      .where('flow_id', '=', s.flow.id)
      .execute();
    assert.deepEqual(members, []);
    assert.deepEqual(await heldOf(ids), [], 'what the final day held of each message');
    // The final day, rolled up from its messages: the same figures.
    const final = await report(s.flow.id);
    assert.deepEqual(final.days, recent.days);
  });

  it('a status change to a message of a final day is not folded into a running row', async () => {
    const s = await setUp(1);
    await s.ask(0);
    await report(s.flow.id);
    clockOf(t).advance(10 * DAY);
    const [sent] = await flowMessages(s.flow.id, 'out');
    await t.server.services.messaging.outbound.applyReport(s.ch.id, sent.id, 'delivered');
    await live().fold({ skipLocked: false });
    const rows = await liveRows(s.flow.id);
    assert.equal(rows.length, 1);
    assert.equal(Number(rows[0].delivered), 0, 'the day was final: its roll-up counts it, not this row');
    const queued = await db()
      .selectFrom('msg_flow_report_queue')
      .selectAll()
      .where('message_id', '=', sent.id)
      .execute();
    assert.deepEqual(queued, [], 'the fold took it off the queue');
    assert.equal((await report(s.flow.id)).days[0].delivered, 1);
  });
  it('a database that kept the fold in its messages (0293) moves it to the queue (0294)', async () => {
    const s = await setUp(2);
    await s.ask(0);
    await s.ask(1);
    await report(s.flow.id);
    // A delivery report not folded yet: queued.
    const [sent] = await flowMessages(s.flow.id, 'out');
    await t.server.services.messaging.outbound.applyReport(s.ch.id, sent.id, 'delivered');

    // As 0293 left it: each message's flag and counted bits in its row, the queue not there. (No
    // report before the migration: it would fold the delivery.)
    const held = await db().selectFrom('msg_flow_message_figures').selectAll().execute();
    const queued = await db().selectFrom('msg_flow_report_queue').select('message_id').execute();
    assert.deepEqual(
      queued.map((q) => q.message_id),
      [sent.id],
    );
    await sql`alter table msg_messages add column report_pending integer not null default 0`.execute(db());
    await sql`alter table msg_messages add column report_counted integer`.execute(db());
    await sql`create index msg_messages_report_pending on msg_messages (report_pending, created_at)
      where report_pending = 1`.execute(db());
    for (const h of held)
      await sql`update msg_messages set report_counted = ${h.counted} where id = ${h.message_id}`.execute(db());
    await sql`update msg_messages set report_pending = 1 where id = ${sent.id}`.execute(db());
    await sql`drop table msg_flow_report_queue`.execute(db());
    await sql`drop table msg_flow_message_figures`.execute(db());
    const name = '0294_messaging_flow_report_queue';
    await db()
      .deleteFrom('tally_migrations' as never)
      .where(sql.ref('name'), '=', name)
      .execute();

    const ran = await migrateToLatest(
      db(),
      backend,
      modules.flatMap((m) => m.migrations ?? []),
    );
    assert.deepEqual(
      ran.results?.map((r) => r.migrationName),
      [name],
    );
    const moved = await db().selectFrom('msg_flow_message_figures').selectAll().execute();
    assert.deepEqual(
      moved.map((m) => [m.message_id, Number(m.counted)]).sort(),
      held.map((h) => [h.message_id, Number(h.counted)]).sort(),
    );
    const columns = await sql<Record<string, unknown>>`select * from msg_messages where id = ${sent.id}`.execute(db());
    assert.ok(!('report_pending' in columns.rows[0]) && !('report_counted' in columns.rows[0]), 'columns dropped');
    // The queued delivery is folded by the next report, as if nothing had happened.
    sameFigures(await report(s.flow.id), await counted(s.flow.id));
    assert.equal((await report(s.flow.id)).totals.delivered, 1);
  });
});
