import { performance } from 'node:perf_hooks';
import type { AppContext } from '../../../context.ts';
import { randomString } from '../../../lib/ids.ts';
import type { Database, Executor } from '../../../storage/database.ts';
import { anyDue, claimDue, newWorkerId, releaseDeadLeases, requeueExpiredLeases } from './claim.ts';
import { Endpoints } from './endpoints.ts';
import { fanOut } from './fan-out.ts';
import { attemptNow } from './manual.ts';
import { recordOutcomes } from './record.ts';
import { Sender } from './send.ts';
import { Slots } from './slots.ts';
import {
  LEASE_MS,
  REQUEST_TIMEOUT_MS,
  type AttemptRecord,
  type Claimed,
  type OutEvent,
  type Outcome,
} from './types.ts';

// The webhook dispatcher: turns outbox events into per-endpoint deliveries and sends them. This
// file runs the passes; each step is its own file: fan-out.ts (events to deliveries), claim.ts
// (leases), send.ts (the signed POST), record.ts (attempts, next retry: retry-schedule.ts),
// endpoint-health.ts (failing, disabled), manual.ts (resend, test), slots.ts (concurrency).
//
// Never lost: an event row is written by the transaction of its change (the outbox). The
// dispatcher takes the events it has not read (storage/outbox-progress.ts) and fans them out into
// `webhook_deliveries` rows in ONE transaction, so a crash either leaves the events unread (done
// again after restart) or leaves their deliveries persisted. A delivery is claimed with a lease
// before it is sent: at least once (claim.ts).
//
// Fast: every committed transaction that wrote events wakes the dispatcher ('events-committed'
// signal; the others have nothing for it); a poll (250 ms) covers events committed by other
// processes and retries coming due. Passes are coalesced: under load one pass (one commit) serves
// many changes and records many answers; when idle the first change is served at once.
//
// Isolated: each endpoint has its own concurrency limit (slots.ts), so a slow or dead endpoint
// only ever occupies its own slots.

/** Passes start at least this far apart. */
const MIN_PASS_GAP_MS = 5;
/** After a send completes, the next pass waits this long so that answers arriving together are recorded together. */
const ANSWER_BATCH_MS = 2;

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

export class Dispatcher {
  readonly workerId = newWorkerId(randomString(6));
  /** Random source of the jitter, in [0, 1) (tests set () => 0.5 for exact delays). */
  random: () => number;
  private readonly pollMs: number;
  private readonly batch: number;
  private readonly slots: Slots;
  private readonly sender: Sender;
  private readonly endpoints = new Endpoints();
  /** Sends under way. */
  private sends = new Set<Promise<void>>();
  /** Answers received, recorded by the next pass (or flush). */
  private outcomes: Outcome[] = [];
  private running: Promise<number> | null = null;
  private again = false;
  private stopped = true;
  private scheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private lastPassAt = 0;
  private lastLeaseScan = 0;
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
    this.slots = new Slots(opts.perEndpoint ?? 64, opts.perFailingEndpoint ?? 4, opts.global ?? 512);
    this.pollMs = opts.pollMs ?? 250;
    this.batch = opts.batch ?? 500;
    this.random = opts.random ?? Math.random;
    this.sender = new Sender(ctx, this.slots.perEndpoint, opts.timeoutMs ?? REQUEST_TIMEOUT_MS);
  }

  // ---- lifecycle and wake-ups ----

  start(): () => Promise<void> {
    this.ownDatabase ??= this.ctx.database.openSidePool?.(3) ?? null;
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
   * not wait for their leases to expire (claim.ts). Returns how many were released.
   */
  async releaseDeadLeases(): Promise<number> {
    const { deliveries, holders } = await releaseDeadLeases(this.database.db, this.workerId, this.ctx.clock.nowMs());
    if (deliveries > 0)
      this.ctx.log.warn({ deliveries, holders }, 'released webhook deliveries claimed by a dead process');
    return deliveries;
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
    await this.sender.close().catch(() => undefined);
    if (this.ownDatabase) {
      await this.ownDatabase.close().catch(() => undefined);
      this.ownDatabase = null;
    }
  }

  /**
   * Runs a pass soon, coalesced: a wake during a pass runs one more pass after it. `batch` (after a
   * send completes) waits ANSWER_BATCH_MS so that the answers arriving together are recorded together.
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
    if (batch || gap > 0) setTimeout(go, Math.max(batch ? ANSWER_BATCH_MS : 0, gap));
    else setImmediate(go);
  }

  /** Endpoints were created or changed: read them again before the next fan-out. */
  invalidate(): void {
    this.endpoints.invalidate();
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

  // ---- one pass ----

  /**
   * One pass, in ONE transaction (one commit): record the answers received since the last pass,
   * fan out the undispatched events, put deliveries of dead senders back (once a second), claim
   * what is due for every endpoint with free slots. The claimed deliveries are sent after the commit.
   */
  private async pass(force = false): Promise<number> {
    await this.endpoints.load(this.database.db, force);
    const batch = this.outcomes.splice(0, this.outcomes.length);
    const scanLeases = force || performance.now() - this.lastLeaseScan > 1000;
    if (scanLeases) this.lastLeaseScan = performance.now();
    if (batch.length === 0 && !scanLeases) {
      // With no active endpoint there is nobody to fan events out to: the cursor over the outbox
      // moves on once a second (the lease-scan pass) instead of after every commit. An endpoint
      // only ever receives events created after it, so the ones skipped meanwhile are nobody's.
      // (A pass per commit has a cost: docs/performance.md.)
      if (!this.endpoints.anyActive()) return 0;
      if (!(await this.hasWork())) return 0;
    }
    let claims: Claimed[] = [];
    let reserved: [string, number][] = [];
    let done: (() => void) | undefined;
    try {
      await this.database.transaction(async (trx) => {
        // PostgreSQL may run this again after a serialization failure: start from a clean slate.
        for (const [id, n] of reserved) this.slots.release(id, n);
        claims = [];
        reserved = [];
        if (batch.length > 0) done = await this.record(trx, batch);
        for (;;) {
          const now = this.ctx.clock.nowIso();
          const events = await fanOut(trx, this.database.outboxProgress, this.endpoints.all(), this.batch, now);
          if (events < this.batch) break;
        }
        if (scanLeases) await requeueExpiredLeases(trx, this.endpoints, this.ctx.clock.nowIso());
        const claimOpts = {
          endpoints: this.endpoints,
          slots: this.slots,
          forUpdate: this.database.forUpdate,
          workerId: this.workerId,
          now: this.ctx.clock.nowIso(),
          leaseUntil: new Date(this.ctx.clock.nowMs() + LEASE_MS).toISOString(),
        };
        await claimDue(trx, claimOpts, claims, reserved);
      });
    } catch (err) {
      this.outcomes.unshift(...batch);
      for (const [id, n] of reserved) this.slots.release(id, n);
      throw err;
    }
    done?.();
    for (const c of claims) this.launch(c);
    return claims.length;
  }

  /**
   * Cheap reads (no write transaction, no commit): is anything undispatched, or due for an endpoint
   * with free slots?
   */
  private async hasWork(): Promise<boolean> {
    const { db, outboxProgress } = this.database;
    if (await outboxProgress.hasUnread(db)) return true;
    const now = this.ctx.clock.nowIso();
    for (const ep of this.endpoints.active()) {
      if (this.slots.free(ep) <= 0) continue;
      if (await anyDue(db, ep.id, now)) return true;
    }
    return false;
  }

  // ---- sending and recording ----

  /** Sends a reserved delivery in the background; its outcome is recorded by the next pass or flush. */
  private launch(c: Claimed, resolve?: (a: AttemptRecord) => void): Promise<void> {
    const endpoint = this.endpoints.get(c.endpoint_id)!;
    const p = this.sender
      .send(endpoint, c)
      .then((o) => {
        this.outcomes.push({ ...o, resolve });
      })
      .catch((err) => this.ctx.log.error({ err }, 'webhook send crashed'))
      .finally(() => {
        this.slots.release(c.endpoint_id);
        this.sends.delete(p);
        this.wake(true);
      });
    this.sends.add(p);
    return p;
  }

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
   * Records `batch` in the caller's transaction (record.ts). Returns what to do once it committed:
   * answer the waiting manual attempts, wake for the operational events.
   */
  private async record(trx: Executor, batch: Outcome[]): Promise<() => void> {
    const opts = { ctx: this.ctx, endpoints: this.endpoints, workerId: this.workerId, random: this.random };
    const { records, disabledAny } = await recordOutcomes(trx, batch, opts);
    return () => {
      for (let i = 0; i < batch.length; i++) batch[i].resolve?.(records[i]);
      if (disabledAny) this.wake();
    };
  }

  // ---- manual attempts ----

  /**
   * One attempt of `event` to `endpointId` now, outside the retry schedule (resend, test). Waits for
   * the answer and returns the recorded attempt.
   */
  attemptNow(endpointId: string, event: OutEvent, trigger: 'manual' | 'test'): Promise<AttemptRecord> {
    const host = {
      db: this.database.db,
      endpoints: this.endpoints,
      slots: this.slots,
      launch: (c: Claimed, resolve: (a: AttemptRecord) => void) => this.launch(c, resolve),
      recordIfStopped: async () => {
        if (this.stopped) await this.flush();
      },
    };
    return attemptNow(host, endpointId, event, trigger);
  }
}
