import { hostname } from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../lib/clock.ts';
import { newId, randomString } from '../../lib/ids.ts';
import { fromJson, toJson } from '../../lib/json.ts';
import type { Database, Executor } from '../../storage/database.ts';
import { writeAtCommit } from '../../storage/hot.ts';

// Timed work (expiries, pending-points activation, anniversaries, reminders) as rows in
// `scheduled_jobs`. A job with a `unique_key` is scheduled at most once, ever; its handler runs in
// the same transaction that marks it done, so its effect happens exactly once even when several
// processes poll the same database or one dies mid-run (the lease expires and another retries).

export interface Job {
  id: string;
  kind: string;
  run_at: string;
  /** The JSON object the job was scheduled with; its handler knows its fields. */
  payload: Record<string, unknown>;
  unique_key: string | null;
  attempts: number;
}

export type JobHandler = (job: Job, trx: Executor) => Promise<void>;

export interface ScheduleInput {
  kind: string;
  runAt: Date | string;
  payload?: unknown;
  uniqueKey?: string;
}

const LEASE_MS = 60_000;
const MAX_ATTEMPTS = 10;

export class Scheduler {
  private handlers = new Map<string, JobHandler>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  readonly workerId = `${hostname()}:${process.pid}:${randomString(6)}`;

  constructor(
    private database: Database,
    private clock: Clock,
    private log: FastifyBaseLogger,
    private transaction: <T>(fn: (trx: Executor) => Promise<T>) => Promise<T>,
  ) {}

  register(kind: string, handler: JobHandler): void {
    this.handlers.set(kind, handler);
  }

  /** Schedules a job; with a uniqueKey that was ever scheduled before, does nothing and returns false. */
  async schedule(db: Executor, input: ScheduleInput): Promise<boolean> {
    const res = await db
      .insertInto('scheduled_jobs')
      .values(this.jobRow(input))
      .onConflict((oc) => oc.column('unique_key').doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 1n) > 0;
  }

  /**
   * `schedule` as one of the transaction's last writes (writeAtCommit: on PostgreSQL sent with the
   * others just before COMMIT), for callers that do not need to know whether the job existed.
   */
  async scheduleAtCommit(trx: Executor, input: ScheduleInput): Promise<void> {
    const row = this.jobRow(input);
    await writeAtCommit(trx, [
      {
        key: 'scheduler.insert',
        params: Object.values(row),
        build: () =>
          trx
            .insertInto('scheduled_jobs')
            .values(row)
            .onConflict((oc) => oc.column('unique_key').doNothing()),
      },
    ]);
  }

  private jobRow(input: ScheduleInput) {
    const now = this.clock.nowIso();
    return {
      id: newId('job'),
      kind: input.kind,
      run_at: typeof input.runAt === 'string' ? input.runAt : input.runAt.toISOString(),
      payload: toJson(input.payload ?? null),
      unique_key: input.uniqueKey ?? null,
      state: 'pending',
      attempts: 0,
      locked_by: null,
      locked_until: null,
      last_error: null,
      created_at: now,
      updated_at: now,
    };
  }

  /**
   * Runs `kind` about every `everyMs` (housekeeping such as purges). Each period's job has a unique
   * key, so several processes on one database schedule it once. Returns how to stop scheduling.
   */
  recurring(kind: string, everyMs: number): () => void {
    const schedule = () =>
      this.schedule(this.database.db, {
        kind,
        runAt: this.clock.now(),
        uniqueKey: `${kind}:${Math.floor(this.clock.nowMs() / everyMs)}`,
      }).catch((err) => this.log.warn({ err, kind }, 'cannot schedule a recurring job'));
    void schedule();
    const timer = setInterval(schedule, everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** Cancels a pending job by its unique key (e.g. a pending-points job when the points are cancelled). */
  async cancel(db: Executor, uniqueKey: string): Promise<void> {
    await db
      .updateTable('scheduled_jobs')
      .set({ state: 'cancelled', updated_at: this.clock.nowIso() })
      .where('unique_key', '=', uniqueKey)
      .where('state', '=', 'pending')
      .execute();
  }

  /** Runs every job due now. Returns how many ran. Safe to call from several processes. */
  runDue(limit = 200): Promise<number> {
    // One pass at a time per process; a second caller waits for the running pass, then runs its own.
    const prev = this.running ?? Promise.resolve(0);
    const next = prev.then(() => this.pass(limit));
    this.running = next.finally(() => {
      if (this.running === next) this.running = null;
    }) as Promise<number>;
    return next;
  }

  private async claim(limit: number): Promise<Job[]> {
    const now = this.clock.nowIso();
    const until = new Date(this.clock.nowMs() + LEASE_MS).toISOString();
    // The due jobs come from a MATERIALIZED CTE, evaluated once (as `id IN (subquery)` the planner
    // may re-run the locking subquery for every outer row; see the webhook dispatcher's claimDue).
    const rows = await this.database.db
      .with(
        (w) => w('due').materialized(),
        (db) => {
          const due = db
            .selectFrom('scheduled_jobs')
            .select('id')
            .where((eb) =>
              eb.or([
                eb.and([eb('state', '=', 'pending'), eb('run_at', '<=', now)]),
                eb.and([eb('state', '=', 'running'), eb('locked_until', '<', now)]),
              ]),
            )
            .orderBy('run_at')
            .limit(limit);
          return this.database.forUpdate ? due.forUpdate().skipLocked() : due;
        },
      )
      .updateTable('scheduled_jobs')
      .from('due')
      .set({ state: 'running', locked_by: this.workerId, locked_until: until, updated_at: now })
      .whereRef('scheduled_jobs.id', '=', 'due.id')
      .returning([
        'scheduled_jobs.id',
        'scheduled_jobs.kind',
        'scheduled_jobs.run_at',
        'scheduled_jobs.payload',
        'scheduled_jobs.unique_key',
        'scheduled_jobs.attempts',
      ])
      .execute();
    return rows.map((r) => ({ ...r, payload: fromJson<Record<string, unknown>>(r.payload, {}) }));
  }

  private async pass(limit: number): Promise<number> {
    let total = 0;
    for (;;) {
      const jobs = await this.claim(limit);
      if (jobs.length === 0) return total;
      jobs.sort((a, b) => (a.run_at < b.run_at ? -1 : a.run_at > b.run_at ? 1 : 0));
      for (const job of jobs) await this.runOne(job);
      total += jobs.length;
      if (jobs.length < limit) return total;
    }
  }

  private async runOne(job: Job): Promise<void> {
    const handler = this.handlers.get(job.kind);
    try {
      if (!handler) throw new Error(`no handler for job kind ${job.kind}`);
      await this.transaction(async (trx) => {
        await handler(job, trx);
        await trx
          .updateTable('scheduled_jobs')
          .set({ state: 'done', attempts: job.attempts + 1, locked_until: null, updated_at: this.clock.nowIso() })
          .where('id', '=', job.id)
          .execute();
      });
    } catch (err) {
      const attempts = job.attempts + 1;
      const backoff = Math.min(3600_000, 1000 * 2 ** attempts);
      this.log.warn({ err, job: job.id, kind: job.kind, attempts }, 'scheduled job failed');
      await this.database.db
        .updateTable('scheduled_jobs')
        .set({
          state: attempts >= MAX_ATTEMPTS ? 'failed' : 'pending',
          attempts,
          run_at: new Date(this.clock.nowMs() + backoff).toISOString(),
          locked_until: null,
          last_error: String((err as Error)?.message ?? err).slice(0, 1000),
          updated_at: this.clock.nowIso(),
        })
        .where('id', '=', job.id)
        .execute();
    }
  }

  start(intervalMs = 1000): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.runDue().catch((err) => this.log.error({ err }, 'scheduler pass failed'));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }
}
