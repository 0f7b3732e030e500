import type { AppContext } from '../../context.ts';
import { DAY_MS, type RetentionPolicy } from '../scheduler/retention.ts';

/**
 * An event's delivery log (deliveries and attempts) is kept as long as the event
 * (config.eventRetentionDays), oldest first by creation time (indexes *_created, migration 0110).
 * A delivery still pending or being sent stays, whatever its age.
 */
export function webhookRetention(ctx: AppContext): RetentionPolicy[] {
  const keepMs = ctx.config.eventRetentionDays * DAY_MS;
  return [
    {
      name: 'webhook_attempts',
      keepMs,
      async deleteBatch(trx, cutoff, limit) {
        const res = await trx
          .deleteFrom('webhook_attempts')
          .where('seq', 'in', (eb) =>
            eb
              .selectFrom('webhook_attempts')
              .select('seq')
              .where('created_at', '<', cutoff)
              .orderBy('created_at')
              .limit(limit),
          )
          .executeTakeFirst();
        return Number(res.numDeletedRows ?? 0);
      },
    },
    {
      name: 'webhook_deliveries',
      keepMs,
      async deleteBatch(trx, cutoff, limit) {
        const res = await trx
          .deleteFrom('webhook_deliveries')
          .where('seq', 'in', (eb) =>
            eb
              .selectFrom('webhook_deliveries')
              .select('seq')
              .where('created_at', '<', cutoff)
              .where('status', 'in', ['succeeded', 'failed'])
              .orderBy('created_at')
              .limit(limit),
          )
          .executeTakeFirst();
        return Number(res.numDeletedRows ?? 0);
      },
    },
  ];
}
