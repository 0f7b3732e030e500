import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ManualClock } from '../src/lib/clock.ts';
import { RETENTION_JOB } from '../src/modules/scheduler/retention.ts';
import { createMember, createProgram, startTestServer, type TestServer } from './helpers/server.ts';

const DAY = 86400_000;

describe('retention: old rows of the hot tables go in batches, rows in flight stay', () => {
  let t: TestServer;
  let clock: ManualClock;
  const count = async (table: 'outbox_events' | 'msg_messages' | 'idempotency_keys' | 'webhook_deliveries') =>
    Number(
      (
        await t.server.ctx.database.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  /** One sweep, as the hourly job starts it: batches follow one another until nothing is old enough. */
  const sweep = async () => {
    const { scheduler, database } = t.server.ctx;
    await scheduler.schedule(database.db, { kind: RETENTION_JOB, runAt: clock.now() });
    // Each batch schedules the next one, which the next pass (a second later, in a server) runs.
    while ((await scheduler.runDue()) > 0);
  };
  const message = (id: string, status: string) => {
    const now = clock.nowIso();
    return {
      id,
      channel_id: 'chn_test',
      direction: 'out',
      from_number: '+10000000000',
      to_number: '+385916242493',
      text: 'hi',
      status,
      attempts: 0,
      system: 0,
      created_at: now,
      updated_at: now,
    };
  };

  before(async () => {
    // Batches of 3 rows per table: the sweep below takes several.
    t = await startTestServer({ manualClock: true, config: { retentionBatch: 3 } });
    clock = t.clock as ManualClock;
  });
  after(async () => {
    await t.close();
  });

  it('keeps unread events, then removes read ones past 30 days except one still being delivered', async () => {
    const { ctx, services } = t.server;
    const program = await createProgram(t);
    for (let i = 0; i < 8; i++) await createMember(t, program.id);
    const r = await t.api('POST', '/v1/customers', { source_id: 'idem' }, { 'idempotency-key': 'retention-1' });
    assert.equal(r.status, 200);
    await ctx.database.db
      .insertInto('msg_messages')
      .values([1, 2, 3, 4, 5].map((i) => message(`msg_old${i}`, 'sent')).concat(message('msg_queued', 'queued')))
      .execute();
    const oldEvents = await count('outbox_events');
    assert.equal(oldEvents, 8);

    clock.advance(31 * DAY);
    await createMember(t, program.id); // a fresh event, kept
    await sweep();
    // The webhook fan-out has read none of them yet: nothing may go.
    assert.equal(await count('outbox_events'), oldEvents + 1);
    assert.equal(await count('idempotency_keys'), 0, 'idempotency records live a day');
    assert.equal(await count('msg_messages'), 6, 'messages live 90 days');

    await services.webhooks.dispatcher.runOnce(); // reads them all (no endpoints)
    // A delivery of the oldest event still pending (an endpoint retrying): that event stays.
    const oldest = await ctx.database.db
      .selectFrom('outbox_events')
      .select(['id', 'type', 'created_at'])
      .orderBy('seq')
      .executeTakeFirstOrThrow();
    const now = clock.nowIso();
    await ctx.database.db
      .insertInto('webhook_deliveries')
      .values({
        endpoint_id: 'whep_test',
        event_id: oldest.id,
        event_type: oldest.type,
        event_created_at: oldest.created_at,
        status: 'pending',
        attempts: 3,
        manual: 0,
        next_attempt_at: now,
        created_at: oldest.created_at,
        updated_at: now,
      })
      .execute();
    const jobsBefore = await ctx.database.db
      .selectFrom('scheduled_jobs')
      .select('id')
      .where('kind', '=', RETENTION_JOB)
      .execute();
    await sweep();
    const left = await ctx.database.db.selectFrom('outbox_events').select(['id', 'created_at']).execute();
    assert.equal(left.length, 2, 'the one still being delivered and the fresh one');
    assert.ok(left.some((e) => e.id === oldest.id));
    assert.equal(await count('webhook_deliveries'), 1);
    const jobs = await ctx.database.db
      .selectFrom('scheduled_jobs')
      .select(['id', 'state'])
      .where('kind', '=', RETENTION_JOB)
      .execute();
    // oldEvents - 1 rows in batches of 3 (and one last batch that finds fewer).
    assert.ok(jobs.length - jobsBefore.length >= Math.ceil((oldEvents - 1) / 3), `${jobs.length} batches`);
    assert.ok(jobs.every((j) => j.state === 'done'));
  });

  it('removes messages past 90 days, never one still queued', async () => {
    clock.advance(60 * DAY);
    await sweep();
    const left = await t.server.ctx.database.db.selectFrom('msg_messages').select('id').execute();
    assert.deepEqual(
      left.map((m) => m.id),
      ['msg_queued'],
    );
  });
});
