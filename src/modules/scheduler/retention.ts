import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../lib/clock.ts';
import type { Executor } from '../../storage/database.ts';
import type { Scheduler } from './scheduler.ts';

// Retention keeps the hot tables small: rows older than their table's retention (events, webhook
// deliveries and attempts, messages, idempotency records) are deleted in batches, oldest first.
//
// Each batch is one scheduled job: one short transaction that deletes at most `batch` rows of
// each table, then, when some table had more, schedules the next batch (in the same transaction,
// under a unique key, so several processes never run the same batch twice). Other writers wait
// for one batch at most, never for the whole sweep; a crash mid-sweep leaves the done batches done
// and the next one scheduled. Each module says what of its tables may go (`TallyModule.retention`):
// rows still in flight (an event the webhook fan-out has not read, a delivery or message still
// being sent) are never old enough.

export interface RetentionPolicy {
  /** What goes (a table), for logs. */
  name: string;
  /** Retention in milliseconds; 0 keeps everything. */
  keepMs: number;
  /**
   * Deletes up to `limit` rows created before `cutoff` (ISO time), oldest first, that the module
   * no longer needs; returns how many it deleted. Must walk an index on its creation time.
   */
  deleteBatch(trx: Executor, cutoff: string, limit: number): Promise<number>;
}

export const RETENTION_JOB = 'retention.sweep';
/** How often a sweep starts (it continues in batches until nothing is old enough). */
export const RETENTION_EVERY_MS = 3600_000;

export class Retention {
  private policies: RetentionPolicy[] = [];

  constructor(
    private scheduler: Scheduler,
    private clock: Clock,
    private log: FastifyBaseLogger,
    /** Rows of one table deleted per batch (config.retentionBatch). */
    private batch: number,
  ) {
    scheduler.register(RETENTION_JOB, async (job, trx) => {
      const deleted = await this.sweepBatch(trx);
      const full = Object.values(deleted).some((n) => n >= this.batch);
      if (Object.keys(deleted).length > 0) this.log.info({ deleted, more: full }, 'retention: deleted old rows');
      if (full) {
        // The follow-up batch: its key derives from this job, so it is scheduled once.
        await this.scheduler.schedule(trx, {
          kind: RETENTION_JOB,
          runAt: this.clock.now(),
          uniqueKey: `${job.id}:next`,
        });
      }
    });
  }

  add(...policies: RetentionPolicy[]): void {
    this.policies.push(...policies);
  }

  /** One batch of every table; the counts of what went, by table (tables with nothing to delete left out). */
  async sweepBatch(trx: Executor): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const p of this.policies) {
      if (!p.keepMs) continue;
      const cutoff = new Date(this.clock.nowMs() - p.keepMs).toISOString();
      const n = await p.deleteBatch(trx, cutoff, this.batch);
      if (n > 0) out[p.name] = (out[p.name] ?? 0) + n;
    }
    return out;
  }

  /** Starts a sweep every `everyMs` (each period's sweep is scheduled once across processes). */
  start(everyMs = RETENTION_EVERY_MS): () => void {
    return this.scheduler.recurring(RETENTION_JOB, everyMs);
  }
}

export const DAY_MS = 24 * 3600_000;
