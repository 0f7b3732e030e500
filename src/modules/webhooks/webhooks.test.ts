import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { Webhook } from 'standardwebhooks';
import { startReceiver, verifyDelivery, voucherifySignatureOf, type Receiver } from '../../../test/helpers/receiver.ts';
import {
  backend,
  createMember,
  createProgram,
  startTestServer,
  type TestServer,
} from '../../../test/helpers/server.ts';
import type { ManualClock } from '../../lib/clock.ts';
import { EVENT_TYPES } from '../events/catalog.ts';
import { Dispatcher } from './dispatcher/dispatcher.ts';
import { Endpoints } from './dispatcher/endpoints.ts';
import { fanOut } from './dispatcher/fan-out.ts';
import { MAX_ATTEMPTS, RETRY_DELAYS_MS } from './dispatcher/retry-schedule.ts';

const addFormats = (addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule;
function newAjv() {
  const ajv = new Ajv({ strict: false, allErrors: true });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  return ajv;
}

describe('webhooks', () => {
  let t: TestServer;
  let clock: ManualClock;
  const receivers: Receiver[] = [];
  const receiver = async (...args: Parameters<typeof startReceiver>) => {
    const r = await startReceiver(...args);
    receivers.push(r);
    return r;
  };
  const run = () => t.server.services.webhooks.dispatcher.runOnce();

  before(async () => {
    t = await startTestServer({ manualClock: true });
    clock = t.clock as ManualClock;
    t.server.services.webhooks.dispatcher.random = () => 0.5; // no jitter: exact delays
  });
  after(async () => {
    for (const r of receivers) await r.close();
    await t.close();
  });

  const createHook = async (url: string, events: string[] = ['*'], extra: Record<string, unknown> = {}) => {
    const res = await t.api('POST', '/v1/webhooks', { target_url: url, events, description: 'test hook', ...extra });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  const addPoints = async (card: string, points: number) => {
    const r = await t.api('POST', `/v1/loyalties/members/${card}/balance`, { points });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };

  it('creates endpoints with a secret shown once; validates URLs and event types', async () => {
    const rx = await receiver();
    const hook = await createHook(rx.url, ['balance_value_updated', 'subscription_created']);
    assert.match(hook.id, /^whep_/);
    assert.match(hook.secret, /^whsec_[A-Za-z0-9+/=]{32}$/);
    assert.equal(hook.active, true);
    const got = await t.api('GET', `/v1/webhooks/${hook.id}`);
    assert.equal(got.status, 200);
    assert.equal(got.body.secret, undefined, 'the secret is not shown again');
    assert.deepEqual(got.body.events, ['balance_value_updated', 'subscription_created']);
    const list = await t.api('GET', '/v1/webhooks');
    assert.ok(list.body.data.some((h: any) => h.id === hook.id && h.secret === undefined));

    const unknown = await t.api('POST', '/v1/webhooks', {
      target_url: rx.url,
      events: ['balance_value_updated', 'points_teleported'],
    });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.key, 'unknown_event_type');
    const ftp = await t.api('POST', '/v1/webhooks', { target_url: 'ftp://example.com/x', events: ['*'] });
    assert.equal(ftp.status, 400);
    assert.equal(ftp.body.key, 'invalid_target_url');
    const missing = await t.api('POST', '/v1/webhooks', { target_url: rx.url });
    assert.equal(missing.status, 400);

    const put = await t.api('PUT', `/v1/webhooks/${hook.id}`, { events: ['*'], description: 'all', active: false });
    assert.equal(put.status, 200);
    assert.deepEqual([put.body.events, put.body.description, put.body.active], [['*'], 'all', false]);
    assert.equal((await t.api('PUT', `/v1/webhooks/${hook.id}`, { events: ['nope'] })).status, 400);
    assert.equal((await t.api('DELETE', `/v1/webhooks/${hook.id}`)).status, 204);
    assert.equal((await t.api('GET', `/v1/webhooks/${hook.id}`)).status, 404);
  });

  it('refuses private and loopback targets unless the operator allows them', async () => {
    const strict = await startTestServer({ config: { allowPrivateTargets: false } });
    try {
      for (const url of ['http://127.0.0.1:9/x', 'http://localhost/x', 'http://10.1.2.3/x', 'http://[::1]/x']) {
        const res = await strict.api('POST', '/v1/webhooks', { target_url: url, events: ['*'] });
        assert.equal(res.status, 400, url);
        assert.equal(res.body.key, 'invalid_target_url');
      }
    } finally {
      await strict.close();
    }
  });

  it('delivers signed {id, type, created_at, data} bodies that standardwebhooks verifies', async () => {
    const rx = await receiver();
    const hook = await createHook(rx.url, ['balance_value_updated', 'customer.voucher.loyalty_card.points_added']);
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    await addPoints(member.code, 25);
    await run();
    assert.equal(rx.received.length, 2, 'subscribed types only');
    const ajv = newAjv();
    for (const r of rx.received) {
      const payload = verifyDelivery(hook.secret, r);
      assert.deepEqual(Object.keys(payload), ['id', 'type', 'created_at', 'data']);
      assert.equal(r.headers['webhook-id'], payload.id);
      assert.equal(r.headers['x-voucherify-signature'], voucherifySignatureOf(hook.secret, r.body));
      assert.equal(r.headers['content-type'], 'application/json');
      assert.ok(ajv.validate(EVENT_TYPES.get(payload.type)!.schema, payload.data));
      const stored = await t.api('GET', `/v1/events/${payload.id}`);
      assert.deepEqual(stored.body.data, payload.data);
    }
    // Independent check with the package's verify(): a tampered body or another secret fails.
    const r = rx.received[0];
    const headers = {
      'webhook-id': r.headers['webhook-id'],
      'webhook-timestamp': r.headers['webhook-timestamp'],
      'webhook-signature': r.headers['webhook-signature'],
    };
    assert.throws(() => new Webhook(hook.secret).verify(r.body.replace('25', '26'), headers));
    assert.throws(() => new Webhook(`whsec_${Buffer.alloc(24, 1).toString('base64')}`).verify(r.body, headers));

    const attempts = await t.api('GET', `/v1/webhooks/${hook.id}/attempts`);
    assert.equal(attempts.status, 200);
    assert.equal(attempts.body.data.length, 2);
    assert.deepEqual(
      attempts.body.data.map((a: any) => [
        a.status,
        a.status_code,
        a.attempt,
        a.trigger,
        a.next_attempt_at,
        a.response,
      ]),
      [
        ['succeeded', 200, 1, 'scheduled', null, 'ok'],
        ['succeeded', 200, 1, 'scheduled', null, 'ok'],
      ],
    );
    await run();
    assert.equal(rx.received.length, 2, 'a delivered event is not sent again');
    await t.api('DELETE', `/v1/webhooks/${hook.id}`);
  });

  it('delivers the events of a transaction that commits after a later one (none left behind the fan-out cursor)', {
    skip: backend === 'sqlite' && 'SQLite has one writer at a time: events commit in seq order',
  }, async () => {
    const rx = await receiver();
    const hook = await createHook(rx.url, ['balance_value_updated']);
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    const { database, outbox } = t.server.ctx;
    // Transaction A writes its event first (lower seq, lower transaction id) and stays open...
    let commitA!: () => void;
    const held = new Promise<void>((r) => (commitA = r));
    let written!: () => void;
    const wroteA = new Promise<void>((r) => (written = r));
    const txA = database.transaction(async (trx) => {
      await outbox.emit(trx, {
        type: 'balance_value_updated',
        data: { marker: 'A' },
        resource_type: 'test',
        resource_id: 'A',
      });
      written();
      await held;
    });
    await wroteA;
    // ...while B (a balance change) commits after it with higher seqs, and the fan-out runs.
    await addPoints(member.code, 7);
    await run();
    const beforeA = rx.received.map((r) => r.json.data.marker ?? r.json.data.balance?.balance);
    commitA();
    await txA;
    await run();
    const all = rx.received.map((r) => r.json.data.marker ?? 'B');
    assert.deepEqual(
      [...all].sort(),
      ['A', 'B'],
      `both events delivered once (before A committed: ${JSON.stringify(beforeA)})`,
    );
    await run();
    assert.equal(rx.received.length, 2, 'nothing is delivered twice');
    await t.api('DELETE', `/v1/webhooks/${hook.id}`);
  });

  it('an endpoint receives only the events created after it, however far the fan-out moved', async () => {
    // With no active endpoint the dispatcher does not fan out after every commit (the cursor moves
    // once a second); the events left unread meanwhile must not reach an endpoint created later.
    for (const ep of (await t.api('GET', '/v1/webhooks')).body.data) await t.api('DELETE', `/v1/webhooks/${ep.id}`);
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    await addPoints(member.code, 3);
    clock.advance(1000);
    const rx = await receiver();
    const hook = await createHook(rx.url, ['balance_value_updated']);
    clock.advance(1000);
    await addPoints(member.code, 4);
    await run();
    assert.deepEqual(
      rx.received.map((r) => r.json.data.transaction.value),
      [4],
      'only the event created after the endpoint',
    );
    await t.api('DELETE', `/v1/webhooks/${hook.id}`);
  });

  it('exposes the backlog in /metrics: unread events; per endpoint, waiting deliveries and oldest age', async () => {
    const rx = await receiver(() => ({ status: 503, body: 'down' }));
    const hook = await createHook(rx.url, ['balance_value_updated', 'customer.voucher.loyalty_card.points_added']);
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    await run(); // the set-up's events are read
    const gauge = async (name: string, labels = '') => {
      const text = (await t.api('GET', '/metrics')).body as string;
      const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
    };
    const of = `{endpoint_id="${hook.id}"}`;
    assert.equal(await gauge('tally_outbox_unread_events'), 0);
    await addPoints(member.code, 3);
    assert.equal(
      await gauge('tally_outbox_unread_events'),
      2,
      'balance_value_updated and points_added wait for the fan-out',
    );
    await run(); // read, sent, refused (503): both wait for their retry
    assert.equal(await gauge('tally_outbox_unread_events'), 0);
    assert.equal(await gauge('tally_webhook_deliveries_waiting', of), 2);
    clock.advance(90_000);
    const age = await gauge('tally_webhook_oldest_waiting_seconds', of);
    assert.ok(age !== undefined && age >= 90 && age < 100, `oldest waiting delivery is ${age} s old`);
    await t.api('DELETE', `/v1/webhooks/${hook.id}`);
    assert.equal(await gauge('tally_webhook_deliveries_waiting', of), undefined, 'a deleted endpoint has no series');
  });

  it('retries on the schedule, honours Retry-After, logs attempts with excerpts, then gives up', async () => {
    let mode: 'fail' | 'retry-after' = 'retry-after';
    const rx = await receiver(() =>
      mode === 'retry-after'
        ? { status: 429, headers: { 'retry-after': '120' }, body: 'slow down' }
        : { status: 500, body: 'x'.repeat(5000) },
    );
    const hook = await createHook(rx.url, ['subscription_created']);
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    const start = clock.nowMs();
    await run();
    assert.equal(rx.received.length, 1, 'first attempt immediately');
    const eventId = rx.received[0].headers['webhook-id'];
    let log = await t.api('GET', `/v1/events/${eventId}/attempts`);
    assert.equal(log.body.data[0].status_code, 429);
    assert.equal(
      Date.parse(log.body.data[0].next_attempt_at) - start,
      120_000,
      'Retry-After (120 s) beats the 5 s step',
    );
    clock.advance(119_000);
    await run();
    assert.equal(rx.received.length, 1, 'not before Retry-After');
    clock.advance(1000);
    mode = 'fail';
    await run();
    assert.equal(rx.received.length, 2);
    // Then the schedule: 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the second attempt on.
    for (let attempt = 2; attempt < MAX_ATTEMPTS; attempt++) {
      const delay = RETRY_DELAYS_MS[attempt - 1];
      clock.advance(delay - 1000);
      await run();
      assert.equal(rx.received.length, attempt, `attempt ${attempt + 1} not before its delay`);
      clock.advance(1000);
      await run();
      assert.equal(rx.received.length, attempt + 1, `attempt ${attempt + 1} after ${delay} ms`);
    }
    clock.advance(48 * 3600_000);
    await run();
    assert.equal(rx.received.length, MAX_ATTEMPTS, 'eight attempts in all');
    assert.ok(
      rx.received.every((r) => r.headers['webhook-id'] === eventId),
      'same webhook-id on every retry',
    );
    log = await t.api('GET', `/v1/events/${eventId}/attempts?limit=100`);
    assert.equal(log.body.data.length, MAX_ATTEMPTS);
    const last = log.body.data[0];
    assert.deepEqual(
      [last.attempt, last.status, last.status_code, last.next_attempt_at],
      [MAX_ATTEMPTS, 'failed', 500, null],
    );
    assert.equal(Buffer.byteLength(last.response), 1024, 'response excerpt is capped at 1 KB');
    assert.ok(last.duration_ms >= 0);
    const failedOnly = await t.api('GET', `/v1/webhooks/${hook.id}/attempts?status=failed&limit=3`);
    assert.equal(failedOnly.body.data.length, 3);
    assert.equal(failedOnly.body.has_more, true);

    // Recover: the failed delivery is sent once more when asked.
    mode = 'retry-after';
    rx.respond = () => ({ status: 204 });
    const rec = await t.api('POST', `/v1/webhooks/${hook.id}/recover`, { since: new Date(start - 1000).toISOString() });
    assert.equal(rec.status, 200);
    assert.equal(rec.body.recovering, 1);
    await run();
    assert.equal(rx.received.length, MAX_ATTEMPTS + 1);
    log = await t.api('GET', `/v1/events/${eventId}/attempts?limit=1`);
    assert.deepEqual(
      [log.body.data[0].status, log.body.data[0].trigger, log.body.data[0].status_code],
      ['succeeded', 'manual', 204],
    );
    const again = await t.api('POST', `/v1/webhooks/${hook.id}/recover`, {
      since: new Date(start - 1000).toISOString(),
    });
    assert.equal(again.body.recovering, 0, 'nothing failed is left');
    void member;
    await t.api('DELETE', `/v1/webhooks/${hook.id}`);
  });

  it('spreads retries with ±20 % jitter', async () => {
    const rx = await receiver(() => ({ status: 500 }));
    const hook = await createHook(rx.url, ['subscription_created']);
    const program = await createProgram(t);
    const dispatcher = t.server.services.webhooks.dispatcher;
    const delays: number[] = [];
    try {
      for (const r of [0, 0.999999]) {
        dispatcher.random = () => r;
        const at = clock.nowMs();
        await createMember(t, program.id);
        await run();
        const last = await t.server.ctx.database.db
          .selectFrom('webhook_attempts')
          .select('next_attempt_at')
          .where('endpoint_id', '=', hook.id)
          .orderBy('seq', 'desc')
          .limit(1)
          .executeTakeFirstOrThrow();
        delays.push(Date.parse(last.next_attempt_at!) - at);
      }
    } finally {
      dispatcher.random = () => 0.5;
    }
    assert.equal(delays[0], 4000, '5 s - 20 %');
    assert.ok(Math.abs(delays[1] - 6000) <= 1, `5 s + 20 % (${delays[1]})`);
    await t.api('DELETE', `/v1/webhooks/${hook.id}`);
  });

  it('resends one event on request and sends a test event from the catalog', async () => {
    const rx = await receiver();
    const hook = await createHook(rx.url, ['subscription_created']);
    const program = await createProgram(t);
    await createMember(t, program.id);
    await run();
    assert.equal(rx.received.length, 1);
    const eventId = rx.received[0].headers['webhook-id'];
    const resend = await t.api('POST', `/v1/webhooks/${hook.id}/events/${eventId}/resend`);
    assert.equal(resend.status, 200, JSON.stringify(resend.body));
    assert.deepEqual([resend.body.trigger, resend.body.status, resend.body.attempt], ['manual', 'succeeded', 2]);
    assert.equal(rx.received.length, 2);
    assert.equal(rx.received[1].headers['webhook-id'], eventId);
    assert.equal((await t.api('POST', `/v1/webhooks/${hook.id}/events/evt_missing/resend`)).status, 404);

    const test = await t.api('POST', `/v1/webhooks/${hook.id}/test`, { event_type: 'tier_association_updated' });
    assert.equal(test.status, 200, JSON.stringify(test.body));
    assert.equal(test.body.attempt.trigger, 'test');
    assert.equal(test.body.attempt.status, 'succeeded');
    const sample = verifyDelivery(hook.secret, rx.received[2]);
    assert.equal(sample.type, 'tier_association_updated');
    assert.deepEqual(sample.data, EVENT_TYPES.get('tier_association_updated')!.example);
    assert.equal((await t.api('POST', `/v1/webhooks/${hook.id}/test`, { event_type: 'nope' })).status, 400);
    const bare = await t.api('POST', `/v1/webhooks/${hook.id}/test`);
    assert.equal(bare.status, 200, JSON.stringify(bare.body));
    assert.equal(bare.body.event.type, 'subscription_created', 'the first subscribed type by default');
    await run();
    assert.equal(rx.received.length, 4, 'a test event is not fanned out');
    await t.api('DELETE', `/v1/webhooks/${hook.id}`);
  });

  it('rotates the secret: both sign for 24 hours, then only the new one', async () => {
    const rx = await receiver();
    const hook = await createHook(rx.url, ['subscription_created']);
    const rotated = await t.api('POST', `/v1/webhooks/${hook.id}/rotate-secret`);
    assert.equal(rotated.status, 200);
    assert.match(rotated.body.secret, /^whsec_/);
    assert.notEqual(rotated.body.secret, hook.secret);
    const program = await createProgram(t);
    await createMember(t, program.id);
    await run();
    const r = rx.received[0];
    assert.equal(r.headers['webhook-signature'].split(' ').length, 2);
    verifyDelivery(hook.secret, r);
    verifyDelivery(rotated.body.secret, r);
    assert.equal(r.headers['x-voucherify-signature'], voucherifySignatureOf(rotated.body.secret, r.body));
    assert.equal(r.headers['x-voucherify-signature-previous'], voucherifySignatureOf(hook.secret, r.body));
    clock.advance(24 * 3600_000 + 1000);
    await createMember(t, program.id);
    await run();
    const r2 = rx.received[1];
    assert.equal(r2.headers['webhook-signature'].split(' ').length, 1);
    verifyDelivery(rotated.body.secret, r2);
    assert.throws(() => verifyDelivery(hook.secret, r2));
    await t.api('DELETE', `/v1/webhooks/${hook.id}`);
  });

  it('disables an endpoint that answers 410, and says so with an operational event', async () => {
    const gone = await receiver(() => ({ status: 410 }));
    const ops = await receiver();
    const hook = await createHook(gone.url, ['subscription_created']);
    const opsHook = await createHook(ops.url, ['webhook_endpoint_disabled']);
    const program = await createProgram(t);
    await createMember(t, program.id);
    await run();
    assert.equal(gone.received.length, 1);
    const got = await t.api('GET', `/v1/webhooks/${hook.id}`);
    assert.deepEqual([got.body.active, got.body.disabled_reason], [false, 'gone']);
    assert.equal(ops.received.length, 1);
    const op = verifyDelivery(opsHook.secret, ops.received[0]);
    assert.equal(op.type, 'webhook_endpoint_disabled');
    assert.deepEqual([op.data.endpoint_id, op.data.reason], [hook.id, 'gone']);
    assert.ok(newAjv().validate(EVENT_TYPES.get('webhook_endpoint_disabled')!.schema, op.data));
    await createMember(t, program.id);
    await run();
    assert.equal(gone.received.length, 1, 'a disabled endpoint gets nothing');
    await t.api('DELETE', `/v1/webhooks/${hook.id}`);
    await t.api('DELETE', `/v1/webhooks/${opsHook.id}`);
  });

  it('disables an endpoint failing for 5 days; any success resets the failing clock', async () => {
    let ok = false;
    const rx = await receiver(() => ({ status: ok ? 200 : 503 }));
    const hook = await createHook(rx.url, ['subscription_created']);
    const program = await createProgram(t);
    await createMember(t, program.id);
    await run();
    let got = await t.api('GET', `/v1/webhooks/${hook.id}`);
    assert.ok(got.body.failing_since);
    ok = true;
    clock.advance(5000);
    await run();
    got = await t.api('GET', `/v1/webhooks/${hook.id}`);
    assert.equal(got.body.failing_since, null, 'a success resets it');
    ok = false;
    for (let day = 0; day < 5; day++) {
      await createMember(t, program.id);
      await run();
      got = await t.api('GET', `/v1/webhooks/${hook.id}`);
      assert.equal(got.body.active, true, `still active on day ${day}`);
      clock.advance(24 * 3600_000);
    }
    await createMember(t, program.id);
    await run();
    got = await t.api('GET', `/v1/webhooks/${hook.id}`);
    assert.deepEqual([got.body.active, got.body.disabled_reason], [false, 'failing']);
    const events = await t.api('GET', `/v1/events?type=webhook_endpoint_disabled&resource_id=${hook.id}`);
    assert.equal(events.body.data.length, 1);
    assert.equal(events.body.data[0].data.reason, 'failing');
    // Re-enabling clears the state; pending deliveries resume.
    ok = true;
    const before = rx.received.length;
    const put = await t.api('PUT', `/v1/webhooks/${hook.id}`, { active: true });
    assert.deepEqual([put.body.active, put.body.disabled_reason, put.body.failing_since], [true, null, null]);
    clock.advance(11 * 3600_000);
    await run();
    assert.ok(rx.received.length > before);
    await t.api('DELETE', `/v1/webhooks/${hook.id}`);
  });

  it('resends a delivery whose sender died (lease expired); two dispatchers never send one twice', async () => {
    const rx = await receiver();
    const hook = await createHook(rx.url, ['subscription_created']);
    const program = await createProgram(t);
    const db = t.server.ctx.database.db;
    // Simulate a process that fanned out and claimed, then died before sending.
    const second = new Dispatcher(t.server.ctx);
    for (let i = 0; i < 5; i++) await createMember(t, program.id);
    const endpoints = new Endpoints();
    await endpoints.load(db, true);
    const { database } = t.server.ctx;
    const fanned = await database.transaction((trx) =>
      fanOut(trx, database.outboxProgress, endpoints.all(), 500, clock.nowIso()),
    );
    assert.equal(fanned, 5);
    // ... and claimed them on another host, then died before sending.
    await db
      .updateTable('webhook_deliveries')
      .set({
        status: 'sending',
        leased_by: 'elsewhere:1:dead',
        lease_until: new Date(clock.nowMs() + 30_000).toISOString(),
      })
      .where('endpoint_id', '=', hook.id)
      .execute();
    await run();
    assert.equal(rx.received.length, 0, 'leased by the dead sender: not yet');
    clock.advance(31_000);
    await run();
    assert.equal(rx.received.length, 5, 'sent once the lease expired');
    const states = await db
      .selectFrom('webhook_deliveries')
      .select('status')
      .where('endpoint_id', '=', hook.id)
      .execute();
    assert.ok(states.every((s) => s.status === 'succeeded'));

    // Two dispatchers racing over the same database.
    const third = new Dispatcher(t.server.ctx);
    for (let i = 0; i < 40; i++) await createMember(t, program.id);
    await Promise.all([run(), third.runOnce(), second.runOnce()]);
    const ids = rx.received.slice(5).map((r) => r.headers['webhook-id']);
    assert.equal(ids.length, 40);
    assert.equal(new Set(ids).size, 40, 'no attempt sent twice');
    await second.stop();
    await third.stop();
    await t.api('DELETE', `/v1/webhooks/${hook.id}`);
  });

  it('times out a hanging endpoint without delaying the others', async () => {
    const hang = await receiver(() => ({ hang: true }));
    const fast = await receiver();
    const slowHook = await createHook(hang.url, ['subscription_created']);
    const fastHook = await createHook(fast.url, ['subscription_created']);
    const d = new Dispatcher(t.server.ctx, { timeoutMs: 3000, pollMs: 50 });
    const stop = d.start();
    try {
      const program = await createProgram(t);
      const t0 = Date.now();
      for (let i = 0; i < 10; i++) await createMember(t, program.id);
      while (fast.received.length < 10 && Date.now() - t0 < 2800) await new Promise((r) => setTimeout(r, 10));
      assert.equal(fast.received.length, 10, 'the fast endpoint got everything');
      const slowSoFar = await t.server.ctx.database.db
        .selectFrom('webhook_attempts')
        .select('id')
        .where('endpoint_id', '=', slowHook.id)
        .execute();
      assert.equal(slowSoFar.length, 0, `while the other one still hangs (${Date.now() - t0} ms)`);
      assert.ok(hang.received.length > 0, 'the hanging endpoint was called');
      while (Date.now() - t0 < 8000) {
        const rows = await t.server.ctx.database.db
          .selectFrom('webhook_attempts')
          .select('error')
          .where('endpoint_id', '=', slowHook.id)
          .execute();
        if (rows.length > 0) {
          assert.match(rows[0].error!, /timeout/);
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      const rows = await t.server.ctx.database.db
        .selectFrom('webhook_attempts')
        .select('error')
        .where('endpoint_id', '=', slowHook.id)
        .execute();
      assert.ok(rows.length > 0, 'the hanging endpoint timed out');
    } finally {
      await stop();
    }
    await t.api('DELETE', `/v1/webhooks/${slowHook.id}`);
    await t.api('DELETE', `/v1/webhooks/${fastHook.id}`);
  });
});
