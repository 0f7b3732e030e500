import { pageBySeq } from '../../storage/paging.ts';
import type { Selectable } from 'kysely';
import type { AppContext } from '../../context.ts';
import { notFound } from '../../lib/errors.ts';
import type { Executor } from '../../storage/database.ts';
import type { OutboxEventsTable } from '../../storage/schema.ts';

// Reading the outbox as the event log (GET /v1/events) and keeping it to its retention.

export type EventRow = Selectable<OutboxEventsTable>;

export function presentEvent(
  row: Pick<EventRow, 'id' | 'type' | 'created_at' | 'data' | 'resource_type' | 'resource_id' | 'program_id'>,
) {
  return {
    id: row.id,
    object: 'event' as const,
    type: row.type,
    created_at: row.created_at,
    data: JSON.parse(row.data) as Record<string, unknown>,
    resource_type: row.resource_type,
    resource_id: row.resource_id,
    program_id: row.program_id,
  };
}

export interface EventFilter {
  type?: string;
  resource_id?: string;
  program_id?: string;
  created_after?: string;
  created_before?: string;
}

export class EventService {
  constructor(private ctx: AppContext) {}

  async get(db: Executor, id: string): Promise<EventRow> {
    const row = await db.selectFrom('outbox_events').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound('event', id);
    return row;
  }

  /** Newest first; `starting_after_id` is the last id of the previous page. */
  async list(db: Executor, filter: EventFilter, page: { limit: number; starting_after_id?: string }) {
    let q = db.selectFrom('outbox_events').selectAll();
    if (filter.type)
      q = q.where(
        'type',
        'in',
        filter.type
          .split(',')
          .map((t) => t.trim())
          .filter(Boolean),
      );
    if (filter.resource_id) q = q.where('resource_id', '=', filter.resource_id);
    if (filter.program_id) q = q.where('program_id', '=', filter.program_id);
    if (filter.created_after) q = q.where('created_at', '>=', new Date(filter.created_after).toISOString());
    if (filter.created_before) q = q.where('created_at', '<', new Date(filter.created_before).toISOString());
    return pageBySeq(
      page,
      'an event',
      async (id) => (await db.selectFrom('outbox_events').select('seq').where('id', '=', id).executeTakeFirst())?.seq,
      (before, n) => (before === undefined ? q : q.where('seq', '<', before)).orderBy('seq', 'desc').limit(n).execute(),
    );
  }

  /**
   * Deletes events older than the retention (config.eventRetentionDays; 0 keeps everything), with
   * their webhook deliveries and attempts. Events the webhook fan-out has not read yet are kept.
   */
  async purge(trx: Executor): Promise<number> {
    const days = this.ctx.config.eventRetentionDays;
    if (!days) return 0;
    const cutoff = new Date(this.ctx.clock.nowMs() - days * 24 * 3600_000).toISOString();
    await trx.deleteFrom('webhook_attempts').where('created_at', '<', cutoff).execute();
    await trx
      .deleteFrom('webhook_deliveries')
      .where('event_created_at', '<', cutoff)
      .where('status', 'in', ['succeeded', 'failed'])
      .execute();
    const res = await trx
      .deleteFrom('outbox_events')
      .where('created_at', '<', cutoff)
      .where(this.ctx.database.outboxProgress.alreadyRead())
      .executeTakeFirst();
    return Number(res.numDeletedRows ?? 0);
  }

  registerJobs(): void {
    this.ctx.scheduler.register('events.purge', async (_job, trx) => {
      const n = await this.purge(trx);
      if (n > 0)
        this.ctx.log.info({ deleted: n, retention_days: this.ctx.config.eventRetentionDays }, 'purged old events');
    });
  }

  /** Schedules the purge once an hour (several processes schedule it once). */
  startPurge(): () => void {
    return this.ctx.scheduler.recurring('events.purge', 3600_000);
  }
}
