import type { AppContext } from '../../context.ts';
import { DAY_MS, type RetentionPolicy } from '../scheduler/retention.ts';

/**
 * Events older than config.eventRetentionDays, oldest first (index outbox_created). Never one the
 * webhook fan-out has not read yet, nor one with a webhook delivery still pending or being sent
 * (index webhook_deliveries_event): an event leaves the outbox only once nothing will send it.
 */
export function eventRetention(ctx: AppContext): RetentionPolicy {
  return {
    name: 'outbox_events',
    keepMs: ctx.config.eventRetentionDays * DAY_MS,
    async deleteBatch(trx, cutoff, limit) {
      const res = await trx
        .deleteFrom('outbox_events')
        .where('seq', 'in', (eb) =>
          eb
            .selectFrom('outbox_events')
            .select('seq')
            .where('created_at', '<', cutoff)
            .where(ctx.database.outboxProgress.alreadyRead())
            .where(({ not, exists, selectFrom }) =>
              not(
                exists(
                  selectFrom('webhook_deliveries as d')
                    .select('d.seq')
                    .whereRef('d.event_id', '=', 'outbox_events.id')
                    .where('d.status', 'not in', ['succeeded', 'failed']),
                ),
              ),
            )
            .orderBy('created_at')
            .limit(limit),
        )
        .executeTakeFirst();
      return Number(res.numDeletedRows ?? 0);
    },
  };
}
