import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { sql, type Selectable } from 'kysely';
import { request, type Agent } from 'undici';
import type { AppContext } from '../../context.ts';
import { newId, randomString } from '../../lib/ids.ts';
import { fromJson } from '../../lib/json.ts';
import { openDatabase, type Database, type Executor } from '../../storage/database.ts';
import { ENDPOINT_DISABLED } from '../events/catalog.ts';
import { hasUnread, takeUnread } from './outbox-progress.ts';
import { openEndpointSecret } from './secrets.ts';
import { signedHeaders } from './signing.ts';
import type { WebhookEndpointsTable } from './tables.ts';

// The webhook dispatcher: turns outbox events into per-endpoint deliveries and sends them.
//
// Never lost: an event row is written by the transaction of its change (the outbox). The
// dispatcher takes the events it has not read (outbox-progress.ts) and fans them out into
// `webhook_deliveries` rows in ONE transaction, so a crash either leaves the events unread (done
// again after restart) or leaves their deliveries persisted. A delivery is claimed with a lease
// (status "sending", lease_until) before it is sent; a process that dies mid-send leaves a lease
// that expires, and the delivery is claimed and sent again: at least once. On PostgreSQL the fan-out
// and the claims use FOR UPDATE SKIP LOCKED, so several processes share the work without sending
// the same attempt twice while their leases hold.
//
// Fast: every committed transaction that wrote events wakes the dispatcher ('events-committed'
// signal; the others have nothing for it); a poll (250 ms)
// covers events committed by other processes and retries coming due. A delivery that the fan-out
// can send at once is created already leased by this process and sent right after the commit.
//
// Isolated: each endpoint has its own concurrency limit (fewer slots while it is failing), under
// a global bound, so a slow or dead endpoint only ever occupies its own slots.

export type EndpointRow = Selectable<WebhookEndpointsTable>;

/** Delays after attempt 1, 2, ... 7 (Svix's schedule): 8 attempts over about 27.6 hours. */
export const RETRY_DELAYS_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000];
export const MAX_ATTEMPTS = RETRY_DELAYS_MS.length + 1;
export const REQUEST_TIMEOUT_MS = 15_000;
/** A claim outlives the request timeout; an expired lease means the sender died. */
export const LEASE_MS = 30_000;
export const DISABLE_AFTER_MS = 5 * 24 * 3600_000;
export const RESPONSE_EXCERPT_BYTES = 1024;
const MAX_RETRY_AFTER_MS = 24 * 3600_000;
const MIN_PASS_GAP_MS = 5;

export interface DispatcherOptions {
  /** Concurrent requests per healthy endpoint. */
  perEndpoint?: number;
  /** Concurrent requests per endpoint while it is failing. */
  perFailingEndpoint?: number;
  /** Concurrent requests in all. */
  global?: number;
  pollMs?: number;
  batch?: number;
  timeoutMs?: number;
  /** Random source of the ±20 % jitter, in [0, 1). Tests pass () => 0.5 for exact delays. */
  random?: () => number;
}

interface OutEvent {
  id: string;
  type: string;
  created_at: string;
  data: string;
}

interface Claimed {
  seq: number | null;
  endpoint_id: string;
  event: OutEvent;
  attempt: number;
  manual: boolean;
  trigger: 'scheduled' | 'manual' | 'test';
  /** Direct attempts (resend/test) do not hold the delivery's lease and do not reschedule it. */
  direct: boolean;
}

export interface AttemptRecord {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  attempt: number;
  trigger: string;
  status: 'succeeded' | 'failed';
  status_code: number | null;
  duration_ms: number;
  response: string | null;
  error: string | null;
  next_attempt_at: string | null;
  created_at: string;
}

interface Outcome {
  claimed: Claimed;
  endpoint: EndpointRow;
  statusCode: number | null;
  durationMs: number;
  response: string | null;
  error: string | null;
  retryAfterMs: number | null;
  at: string;
  resolve?: (a: AttemptRecord) => void;
}

/** The delivery body: `{id, type, created_at, data}` (data is stored as JSON text already). */
export function deliveryBody(e: OutEvent): string {
  return `{"id":${JSON.stringify(e.id)},"type":${JSON.stringify(e.type)},"created_at":${JSON.stringify(e.created_at)},"data":${e.data}}`;
}

function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return null;
  if (/^\d+$/.test(v.trim())) return Math.min(Number(v.trim()) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.min(Math.max(0, at - nowMs), MAX_RETRY_AFTER_MS);
}

export class Dispatcher {
  readonly workerId = `${hostname()}:${process.pid}:${randomString(6)}`;
  private readonly perEndpoint: number;
  private readonly perFailingEndpoint: number;
  private readonly global: number;
  private readonly pollMs: number;
  private readonly batch: number;
  private readonly timeoutMs: number;
  /** Random source of the jitter, in [0, 1) (tests set () => 0.5 for exact delays). */
  random: () => number;
  private agent: Agent;
  private inflight = new Map<string, number>();
  private inflightTotal = 0;
  private sends = new Set<Promise<void>>();
  private outcomes: Outcome[] = [];
  private endpoints = new Map<string, EndpointRow>();
  private running: Promise<number> | null = null;
  private again = false;
  private stopped = true;
  private timer: NodeJS.Timeout | null = null;
  private lastLeaseScan = 0;
  private endpointsLoadedAt = 0;
  private endpointsDirty = true;
  private scheduled = false;
  private lastPassAt = 0;
  private onCommitted = () => this.wake();
  /** PostgreSQL: the dispatcher's own small pool, so API traffic queued for the main pool never delays deliveries. */
  private ownDatabase: Database | null = null;

  private get database(): Database {
    return this.ownDatabase ?? this.ctx.database;
  }

  constructor(
    private ctx: AppContext,
    opts: DispatcherOptions = {},
  ) {
    this.perEndpoint = opts.perEndpoint ?? 64;
    this.perFailingEndpoint = opts.perFailingEndpoint ?? 4;
    this.global = opts.global ?? 512;
    this.pollMs = opts.pollMs ?? 250;
    this.batch = opts.batch ?? 500;
    this.timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS;
    this.random = opts.random ?? Math.random;
    // Every connection's address is checked where it is made (private targets refused unless allowed).
    this.agent = ctx.egress.agent({ connections: this.perEndpoint, keepAliveTimeoutMs: 30_000, pipelining: 1 });
  }

  // ---- lifecycle ----

  start(): () => Promise<void> {
    if (
      this.ctx.database.dialect === 'postgres' &&
      /^postgres(ql)?:\/\//.test(this.ctx.config.databaseUrl) &&
      !this.ownDatabase
    ) {
      this.ownDatabase = openDatabase(this.ctx.config.databaseUrl, { poolSize: 3 });
    }
    this.stopped = false;
    this.ctx.signals.on('events-committed', this.onCommitted);
    this.timer = setInterval(() => this.wake(), this.pollMs);
    this.timer.unref();
    void this.releaseDeadLeases()
      .catch((err) => this.ctx.log.warn({ err }, 'cannot release the leases of dead processes'))
      .finally(() => this.wake());
    return () => this.stop();
  }

  /**
   * After a crash and restart on the same host, the deliveries the dead process had claimed need
   * not wait for their leases to expire: a lease held by a process of this host that no longer
   * exists is released at once. (Leases of other hosts always run to their end.)
   */
  async releaseDeadLeases(): Promise<number> {
    const { db } = this.database;
    const holders = await db
      .selectFrom('webhook_deliveries')
      .select('leased_by')
      .distinct()
      .where('status', '=', 'sending')
      .execute();
    const host = hostname();
    const dead = holders
      .map((h) => h.leased_by)
      .filter((by): by is string => {
        if (!by || by === this.workerId) return false;
        const [h, pid] = by.split(':');
        if (h !== host || !/^\d+$/.test(pid ?? '')) return false;
        try {
          process.kill(Number(pid), 0);
          return false;
        } catch (err) {
          return (err as { code?: string }).code === 'ESRCH';
        }
      });
    if (dead.length === 0) return 0;
    const res = await db
      .updateTable('webhook_deliveries')
      .set({ lease_until: new Date(this.ctx.clock.nowMs() - 1).toISOString() })
      .where('status', '=', 'sending')
      .where('leased_by', 'in', dead)
      .executeTakeFirst();
    const n = Number(res.numUpdatedRows ?? 0);
    if (n > 0)
      this.ctx.log.warn({ deliveries: n, holders: dead }, 'released webhook deliveries claimed by a dead process');
    return n;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.ctx.signals.off('events-committed', this.onCommitted);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
    // Give in-flight requests a moment; what does not finish is sent again after its lease expires.
    await Promise.race([Promise.allSettled([...this.sends]), new Promise((r) => setTimeout(r, 5000).unref())]);
    await this.flush().catch((err) => this.ctx.log.error({ err }, 'webhook results flush failed'));
    await this.agent.close().catch(() => undefined);
    if (this.ownDatabase) {
      await this.ownDatabase.close().catch(() => undefined);
      this.ownDatabase = null;
    }
  }

  /**
   * Runs a pass soon, coalesced: a wake during a pass runs one more pass after it. `batch` (after a
   * send completes) waits 2 ms so that the answers arriving together are recorded together.
   */
  wake(batch = false): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    const go = () => {
      this.scheduled = false;
      this.startPass();
    };
    // Passes start at least MIN_PASS_GAP_MS apart: under load one pass (one commit) serves many
    // changes; when idle the first change is served at once.
    const gap = this.lastPassAt + MIN_PASS_GAP_MS - performance.now();
    if (batch || gap > 0) setTimeout(go, Math.max(batch ? 2 : 0, gap));
    else setImmediate(go);
  }

  private startPass(): void {
    if (this.stopped || this.running) return;
    this.lastPassAt = performance.now();
    this.running = this.pass()
      .catch((err) => {
        this.ctx.log.error({ err }, 'webhook dispatcher pass failed');
        return 0;
      })
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.wake(true);
        }
      });
  }

  /**
   * Tests and tools: fans out every pending event, sends every delivery due at the clock's now,
   * waits for the answers and records them; repeats until nothing is left to do. Returns the number
   * of attempts made.
   */
  async runOnce(): Promise<number> {
    await this.running?.catch(() => undefined);
    let total = 0;
    for (;;) {
      const launched = await this.pass(true);
      await Promise.allSettled([...this.sends]);
      await this.flush();
      total += launched;
      if (launched === 0 && this.outcomes.length === 0) return total;
    }
  }

  tick(): Promise<number> {
    return this.runOnce();
  }

  // ---- one pass ----

  /**
   * One pass, in ONE transaction (one commit): record the answers received since the last pass,
   * fan out the undispatched events, put deliveries of dead senders back (once a second), claim
   * what is due for every endpoint with free slots. The claimed deliveries are sent after the commit.
   */
  private async pass(force = false): Promise<number> {
    await this.loadEndpoints(force);
    const batch = this.outcomes.splice(0, this.outcomes.length);
    const scanLeases = force || performance.now() - this.lastLeaseScan > 1000;
    if (scanLeases) this.lastLeaseScan = performance.now();
    if (batch.length === 0 && !scanLeases) {
      // With no active endpoint there is nobody to fan events out to: the cursor over the outbox
      // moves on once a second (the lease-scan pass) instead of after every commit. An endpoint
      // only ever receives events created after it, so the ones skipped meanwhile are nobody's.
      // (Under `npm run bench:ledger` on SQLite the per-commit passes cost ~3% of the event loop.)
      if (!this.anyActiveEndpoint()) return 0;
      if (!(await this.hasWork())) return 0;
    }
    let claims: Claimed[] = [];
    let reserved: [string, number][] = [];
    let done: (() => void) | undefined;
    try {
      await this.database.transaction(async (trx) => {
        // PostgreSQL may run this again after a serialization failure: start from a clean slate.
        for (const [id, n] of reserved) this.release(id, n);
        claims = [];
        reserved = [];
        if (batch.length > 0) done = await this.record(trx, batch);
        for (;;) {
          const events = await this.fanOut(trx);
          if (events < this.batch) break;
        }
        if (scanLeases) await this.requeueExpiredLeases(trx);
        await this.claimDue(trx, claims, reserved);
      });
    } catch (err) {
      this.outcomes.unshift(...batch);
      for (const [id, n] of reserved) this.release(id, n);
      throw err;
    }
    done?.();
    for (const c of claims) this.launch(c);
    return claims.length;
  }

  private anyActiveEndpoint(): boolean {
    for (const ep of this.endpoints.values()) if (ep.active === 1) return true;
    return false;
  }

  /** Cheap reads (no write transaction, no commit): is anything undispatched, or due for an endpoint with free slots? */
  private async hasWork(): Promise<boolean> {
    const { db } = this.database;
    if (await hasUnread(db, this.database.dialect)) return true;
    const now = this.ctx.clock.nowIso();
    for (const ep of this.endpoints.values()) {
      if (ep.active !== 1 || this.capacity(ep) <= 0) continue;
      const due = await db
        .selectFrom('webhook_deliveries')
        .select('seq')
        .where('endpoint_id', '=', ep.id)
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .limit(1)
        .executeTakeFirst();
      if (due) return true;
    }
    return false;
  }

  private async loadEndpoints(force = false): Promise<void> {
    // Endpoints change rarely: re-read them every second (other processes' changes), at once after
    // a change through this process (invalidate), and on every runOnce.
    if (!force && !this.endpointsDirty && performance.now() - this.endpointsLoadedAt < 1000) return;
    const rows = await this.database.db.selectFrom('webhook_endpoints').selectAll().execute();
    this.endpoints = new Map(rows.map((r) => [r.id, r]));
    this.endpointsLoadedAt = performance.now();
    this.endpointsDirty = false;
  }

  /** Endpoints were created or changed: read them again before the next fan-out. */
  invalidate(): void {
    this.endpointsDirty = true;
  }

  private capacity(endpoint: EndpointRow): number {
    const limit = endpoint.failing_since ? this.perFailingEndpoint : this.perEndpoint;
    return Math.max(0, Math.min(limit - (this.inflight.get(endpoint.id) ?? 0), this.global - this.inflightTotal));
  }

  private reserve(endpointId: string, n = 1): void {
    this.inflight.set(endpointId, (this.inflight.get(endpointId) ?? 0) + n);
    this.inflightTotal += n;
  }

  private release(endpointId: string, n = 1): void {
    if (n <= 0) return;
    const left = (this.inflight.get(endpointId) ?? n) - n;
    if (left <= 0) this.inflight.delete(endpointId);
    else this.inflight.set(endpointId, left);
    this.inflightTotal -= n;
  }

  /**
   * Takes up to `batch` unread events (outbox-progress.ts) and turns them into one pending delivery
   * per subscribed endpoint (INSERT ... SELECT per endpoint), in the caller's transaction. Returns
   * how many events it took.
   */
  private async fanOut(trx: Executor): Promise<number> {
    const now = this.ctx.clock.nowIso();
    const seqs = await takeUnread(trx, this.database.dialect, this.batch, now);
    if (seqs.length === 0) return 0;
    for (const ep of this.endpoints.values()) {
      if (ep.active !== 1) continue;
      const types = fromJson<string[]>(ep.events, []);
      let select = trx
        .selectFrom('outbox_events')
        .select((eb) => [
          eb.val(ep.id).as('endpoint_id'),
          'id as event_id',
          'type as event_type',
          'created_at as event_created_at',
          eb.val('pending').as('status'),
          sql<number>`0`.as('attempts'),
          sql<number>`0`.as('manual'),
          eb.val(now).as('next_attempt_at'),
          eb.val(now).as('created_at'),
          eb.val(now).as('updated_at'),
        ])
        .where('seq', 'in', seqs)
        .where('dispatched', '=', 0)
        .where('created_at', '>=', ep.created_at);
      if (!types.includes('*')) select = select.where('type', 'in', types);
      await trx
        .insertInto('webhook_deliveries')
        .columns([
          'endpoint_id',
          'event_id',
          'event_type',
          'event_created_at',
          'status',
          'attempts',
          'manual',
          'next_attempt_at',
          'created_at',
          'updated_at',
        ])
        .expression(select)
        .onConflict((oc) => oc.columns(['endpoint_id', 'event_id']).doNothing())
        .execute();
    }
    return seqs.length;
  }

  /** Deliveries whose sender's lease expired (the sender died) go back to pending, due now. */
  private async requeueExpiredLeases(trx: Executor): Promise<number> {
    const now = this.ctx.clock.nowIso();
    let n = 0;
    for (const ep of this.endpoints.values()) {
      const res = await trx
        .updateTable('webhook_deliveries')
        .set({ status: 'pending', next_attempt_at: now, lease_until: null, leased_by: null, updated_at: now })
        .where('endpoint_id', '=', ep.id)
        .where('status', '=', 'sending')
        .where('lease_until', '<', now)
        .executeTakeFirst();
      n += Number(res.numUpdatedRows ?? 0);
    }
    return n;
  }

  /** Claims the deliveries due now, per active endpoint, as many as it has free slots. */
  private async claimDue(trx: Executor, out: Claimed[], reserved: [string, number][]): Promise<void> {
    const now = this.ctx.clock.nowIso();
    const lease = new Date(this.ctx.clock.nowMs() + LEASE_MS).toISOString();
    for (const ep of this.endpoints.values()) {
      if (ep.active !== 1) continue;
      const cap = this.capacity(ep);
      if (cap <= 0) continue;
      // The picked rows come from a MATERIALIZED CTE, evaluated once. Written as
      // `seq IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`, PostgreSQL's planner (with a plan
      // made while the table was nearly empty) ran a nested-loop semi-join that re-ran the locking
      // subquery for every pending row: one claim of 64 had locked 11,000 rows and ran for tens of
      // seconds (`npm run bench:webhooks` on PostgreSQL, 20,000 queued deliveries).
      const claimed = await trx
        .with(
          (w) => w('picked').materialized(),
          (db) => {
            const pick = db
              .selectFrom('webhook_deliveries')
              .select('seq')
              .where('endpoint_id', '=', ep.id)
              .where('status', '=', 'pending')
              .where('next_attempt_at', '<=', now)
              .orderBy('next_attempt_at')
              .limit(cap);
            return this.database.forUpdate ? pick.forUpdate().skipLocked() : pick;
          },
        )
        .updateTable('webhook_deliveries')
        .from('picked')
        .set({ status: 'sending', lease_until: lease, leased_by: this.workerId, updated_at: now })
        .whereRef('webhook_deliveries.seq', '=', 'picked.seq')
        .where('webhook_deliveries.status', '=', 'pending')
        .returning([
          'webhook_deliveries.seq',
          'webhook_deliveries.event_id',
          'webhook_deliveries.attempts',
          'webhook_deliveries.manual',
        ])
        .execute();
      if (claimed.length === 0) continue;
      const events = await trx
        .selectFrom('outbox_events')
        .select(['id', 'type', 'data', 'created_at'])
        .where(
          'id',
          'in',
          claimed.map((c) => c.event_id),
        )
        .execute();
      const byId = new Map(events.map((e) => [e.id, e]));
      const gone: number[] = [];
      let n = 0;
      for (const c of claimed) {
        const event = byId.get(c.event_id);
        if (!event) {
          gone.push(c.seq); // purged by retention: nothing left to send
          continue;
        }
        out.push({
          seq: c.seq,
          endpoint_id: ep.id,
          event,
          attempt: c.attempts + 1,
          manual: c.manual === 1,
          trigger: c.manual === 1 ? 'manual' : 'scheduled',
          direct: false,
        });
        n++;
      }
      this.reserve(ep.id, n);
      reserved.push([ep.id, n]);
      if (gone.length > 0) {
        await trx
          .updateTable('webhook_deliveries')
          .set({ status: 'failed', next_attempt_at: null, lease_until: null, leased_by: null, updated_at: now })
          .where('seq', 'in', gone)
          .execute();
      }
    }
  }

  // ---- sending ----

  /** Sends a reserved delivery in the background; its outcome is recorded by the next flush. */
  private launch(c: Claimed, resolve?: (a: AttemptRecord) => void): Promise<void> {
    const endpoint = this.endpoints.get(c.endpoint_id)!;
    const p = this.send(endpoint, c)
      .then((o) => {
        this.outcomes.push({ ...o, resolve });
      })
      .catch((err) => this.ctx.log.error({ err }, 'webhook send crashed'))
      .finally(() => {
        this.release(c.endpoint_id);
        this.sends.delete(p);
        this.wake(true);
      });
    this.sends.add(p);
    return p;
  }

  private secretsOf(endpoint: EndpointRow): string[] {
    const secrets = [this.openSecret(endpoint.id, endpoint.secret)];
    if (
      endpoint.previous_secret &&
      endpoint.previous_secret_expires_at &&
      endpoint.previous_secret_expires_at > this.ctx.clock.nowIso()
    ) {
      secrets.push(this.openSecret(endpoint.id, endpoint.previous_secret));
    }
    return secrets;
  }

  /** Signing secrets in clear by their stored (sealed) form: opened once, not per delivery. */
  private openedSecrets = new Map<string, string>();
  private openSecret(endpointId: string, stored: string): string {
    let secret = this.openedSecrets.get(stored);
    if (secret === undefined) {
      secret = openEndpointSecret(this.ctx.secrets, endpointId, stored);
      if (this.openedSecrets.size >= 10_000) this.openedSecrets.clear();
      this.openedSecrets.set(stored, secret);
    }
    return secret;
  }

  private async send(endpoint: EndpointRow, c: Claimed): Promise<Omit<Outcome, 'resolve'>> {
    const body = deliveryBody(c.event);
    const at = this.ctx.clock.nowIso();
    const timestamp = Math.floor(this.ctx.clock.nowMs() / 1000);
    const started = performance.now();
    let statusCode: number | null = null;
    let response: string | null = null;
    let error: string | null = null;
    let retryAfterMs: number | null = null;
    try {
      // Signed inside the try: a secret that cannot be opened (a tampered row) is a failed attempt
      // on record, not a send that never settles.
      const headers = {
        'content-type': 'application/json',
        'user-agent': 'Tally-Webhooks/1',
        ...signedHeaders(this.secretsOf(endpoint), c.event.id, timestamp, body),
      };
      const res = await request(endpoint.target_url, {
        method: 'POST',
        headers,
        body,
        dispatcher: this.agent,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      statusCode = res.statusCode;
      retryAfterMs = parseRetryAfter(res.headers['retry-after'], this.ctx.clock.nowMs());
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        if (size < RESPONSE_EXCERPT_BYTES) chunks.push(chunk as Buffer);
        size += (chunk as Buffer).length;
        if (size > 64 * 1024) {
          res.body.destroy();
          break;
        }
      }
      response = Buffer.concat(chunks).subarray(0, RESPONSE_EXCERPT_BYTES).toString('utf8');
    } catch (err) {
      const e = err as { name?: string; code?: string; message?: string };
      error =
        e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT'
          ? `timeout after ${this.timeoutMs} ms`
          : `${e.code ?? e.name ?? 'error'}: ${e.message ?? String(err)}`.slice(0, 500);
    }
    const durationMs = Math.round(performance.now() - started);
    this.ctx.metrics
      .counter('tally_webhook_attempts_total', 'Webhook delivery attempts by outcome', ['outcome'])
      .inc({ outcome: statusCode !== null && statusCode >= 200 && statusCode < 300 ? 'success' : 'failure' });
    return { claimed: c, endpoint, statusCode, durationMs, response, error, retryAfterMs, at };
  }

  // ---- recording ----

  /** Writes the buffered outcomes: attempts, delivery states, endpoint health; in one transaction. */
  async flush(): Promise<void> {
    if (this.outcomes.length === 0) return;
    const batch = this.outcomes.splice(0, this.outcomes.length);
    let done: (() => void) | undefined;
    try {
      await this.database.transaction(async (trx) => {
        done = await this.record(trx, batch);
      });
    } catch (err) {
      // Put them back: the next flush tries again (the leases keep others from resending meanwhile).
      this.outcomes.unshift(...batch);
      throw err;
    }
    done?.();
  }

  /**
   * Writes outcomes in the caller's transaction: attempts, delivery states, endpoint health.
   * Returns what to do once it committed (answer the waiting manual attempts, wake for the
   * operational events).
   */
  private async record(trx: Executor, batch: Outcome[]): Promise<() => void> {
    const records: AttemptRecord[] = [];
    let disabledAny = false;
    const nowMs = this.ctx.clock.nowMs();
    const now = new Date(nowMs).toISOString();
    const health = new Map<string, { ok: boolean; gone: boolean; endpoint: EndpointRow; at: string }>();
    const succeeded = new Map<string, number[]>();
    for (const o of batch) {
      const { claimed: c } = o;
      const ok = o.statusCode !== null && o.statusCode >= 200 && o.statusCode < 300;
      const gone = o.statusCode === 410;
      let next: string | null = null;
      if (!ok && !gone && !c.manual && !c.direct && c.attempt < MAX_ATTEMPTS) {
        const base = RETRY_DELAYS_MS[c.attempt - 1];
        const jittered = Math.round(base * (0.8 + 0.4 * this.random()));
        next = new Date(nowMs + Math.max(jittered, o.retryAfterMs ?? 0)).toISOString();
      }
      records.push({
        id: newId('whatt'),
        endpoint_id: c.endpoint_id,
        event_id: c.event.id,
        event_type: c.event.type,
        attempt: c.attempt,
        trigger: c.trigger,
        status: ok ? 'succeeded' : 'failed',
        status_code: o.statusCode,
        duration_ms: o.durationMs,
        response: o.response,
        error: o.error,
        next_attempt_at: next,
        created_at: o.at,
      });
      if (c.direct) {
        await this.recordDirect(trx, c, ok, o.statusCode, now);
      } else if (c.seq !== null) {
        if (ok) {
          const key = `${c.attempt}:${o.statusCode}`;
          const list = succeeded.get(key);
          if (list) list.push(c.seq);
          else succeeded.set(key, [c.seq]);
        } else {
          await trx
            .updateTable('webhook_deliveries')
            .set({
              status: next ? 'pending' : 'failed',
              attempts: c.attempt,
              next_attempt_at: next,
              lease_until: null,
              leased_by: null,
              last_status_code: o.statusCode,
              updated_at: now,
            })
            .where('seq', '=', c.seq)
            .where('leased_by', '=', this.workerId)
            .where('status', '=', 'sending')
            .execute();
        }
      }
      const h = health.get(c.endpoint_id);
      // The latest outcome per endpoint decides; a 410 anywhere in the batch disables.
      health.set(c.endpoint_id, { ok, gone: gone || (h?.gone ?? false), endpoint: o.endpoint, at: o.at });
    }
    for (const [key, seqs] of succeeded) {
      const [attempt, code] = key.split(':').map(Number);
      for (let i = 0; i < seqs.length; i += 500) {
        await trx
          .updateTable('webhook_deliveries')
          .set({
            status: 'succeeded',
            attempts: attempt,
            next_attempt_at: null,
            lease_until: null,
            leased_by: null,
            last_status_code: code,
            updated_at: now,
          })
          .where('seq', 'in', seqs.slice(i, i + 500))
          .where('leased_by', '=', this.workerId)
          .execute();
      }
    }
    for (let i = 0; i < records.length; i += 200) {
      await trx
        .insertInto('webhook_attempts')
        .values(records.slice(i, i + 200))
        .execute();
    }
    for (const [endpointId, h] of health) {
      if (await this.updateHealth(trx, endpointId, h.ok, h.gone, now, nowMs)) disabledAny = true;
    }
    return () => {
      for (let i = 0; i < batch.length; i++) batch[i].resolve?.(records[i]);
      if (disabledAny) this.wake();
    };
  }

  private async recordDirect(trx: Executor, c: Claimed, ok: boolean, code: number | null, now: string): Promise<void> {
    const existing = await trx
      .selectFrom('webhook_deliveries')
      .select(['seq', 'status', 'attempts'])
      .where('endpoint_id', '=', c.endpoint_id)
      .where('event_id', '=', c.event.id)
      .executeTakeFirst();
    if (!existing) {
      await trx
        .insertInto('webhook_deliveries')
        .values({
          endpoint_id: c.endpoint_id,
          event_id: c.event.id,
          event_type: c.event.type,
          event_created_at: c.event.created_at,
          status: ok ? 'succeeded' : 'failed',
          attempts: 1,
          manual: 1,
          next_attempt_at: null,
          lease_until: null,
          leased_by: null,
          last_status_code: code,
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) => oc.columns(['endpoint_id', 'event_id']).doNothing())
        .execute();
      return;
    }
    // A manual attempt counts; a success ends the delivery, a failure leaves its schedule as it was.
    await trx
      .updateTable('webhook_deliveries')
      .set(
        ok
          ? {
              status: 'succeeded',
              attempts: existing.attempts + 1,
              next_attempt_at: null,
              lease_until: null,
              leased_by: null,
              last_status_code: code,
              updated_at: now,
            }
          : { attempts: existing.attempts + 1, last_status_code: code, updated_at: now },
      )
      .where('seq', '=', existing.seq)
      .execute();
  }

  /** Success clears the failing streak; 410 or 5 days of failures disable the endpoint. Returns true when it disabled it. */
  private async updateHealth(
    trx: Executor,
    endpointId: string,
    ok: boolean,
    gone: boolean,
    now: string,
    nowMs: number,
  ): Promise<boolean> {
    const cached = this.endpoints.get(endpointId);
    if (ok && !gone) {
      if (cached && cached.failing_since === null) return false;
      await trx
        .updateTable('webhook_endpoints')
        .set({ failing_since: null })
        .where('id', '=', endpointId)
        .where('failing_since', 'is not', null)
        .execute();
      if (cached) cached.failing_since = null;
      return false;
    }
    let q = trx.selectFrom('webhook_endpoints').selectAll().where('id', '=', endpointId);
    if (this.database.forUpdate) q = q.forUpdate();
    const ep = await q.executeTakeFirst();
    if (!ep) return false;
    const failingSince = ep.failing_since ?? now;
    const tooLong = nowMs - Date.parse(failingSince) >= DISABLE_AFTER_MS;
    if (ep.active === 1 && (gone || tooLong)) {
      const reason = gone ? 'gone' : 'failing';
      await trx
        .updateTable('webhook_endpoints')
        .set({ active: 0, disabled_reason: reason, failing_since: failingSince, updated_at: now })
        .where('id', '=', endpointId)
        .execute();
      await this.ctx.outbox.emit(trx, {
        type: ENDPOINT_DISABLED,
        data: {
          endpoint_id: ep.id,
          target_url: ep.target_url,
          description: ep.description,
          reason,
          failing_since: failingSince,
          disabled_at: now,
        },
        resource_type: 'webhook_endpoint',
        resource_id: ep.id,
      });
      if (cached) Object.assign(cached, { active: 0, disabled_reason: reason, failing_since: failingSince });
      this.ctx.log.warn({ endpoint: ep.id, reason }, 'webhook endpoint disabled');
      return true;
    }
    if (ep.failing_since === null) {
      await trx
        .updateTable('webhook_endpoints')
        .set({ failing_since: failingSince })
        .where('id', '=', endpointId)
        .execute();
      if (cached) cached.failing_since = failingSince;
    }
    return false;
  }

  // ---- manual attempts ----

  /**
   * One attempt of `event` to `endpointId` now, outside the retry schedule (resend, test). Waits for
   * the answer and returns the recorded attempt.
   */
  async attemptNow(endpointId: string, event: OutEvent, trigger: 'manual' | 'test'): Promise<AttemptRecord> {
    const endpoint = await this.database.db
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('id', '=', endpointId)
      .executeTakeFirstOrThrow();
    this.endpoints.set(endpoint.id, { ...(this.endpoints.get(endpoint.id) ?? {}), ...endpoint });
    const delivery = await this.database.db
      .selectFrom('webhook_deliveries')
      .select('attempts')
      .where('endpoint_id', '=', endpointId)
      .where('event_id', '=', event.id)
      .executeTakeFirst();
    this.reserve(endpointId);
    let sent!: Promise<void>;
    const record = new Promise<AttemptRecord>((resolve) => {
      sent = this.launch(
        {
          seq: null,
          endpoint_id: endpointId,
          event,
          attempt: (delivery?.attempts ?? 0) + 1,
          manual: true,
          trigger,
          direct: true,
        },
        resolve,
      );
    });
    // Recorded by the next pass (workers on) or, with workers off, by this flush.
    await sent;
    if (this.stopped) await this.flush();
    return record;
  }
}
