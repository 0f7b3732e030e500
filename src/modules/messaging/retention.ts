import type { AppContext } from '../../context.ts';
import { DAY_MS, type RetentionPolicy } from '../scheduler/retention.ts';

/** Statuses of a message still on its way out: never old enough to delete. */
const IN_FLIGHT = ['queued', 'retrying', 'sending'];

/**
 * Stored messages older than config.messageRetentionDays, oldest first (index msg_messages_created,
 * migration 0290). Consent and its history live in their own tables and are kept.
 */
export function messageRetention(ctx: AppContext): RetentionPolicy {
  return {
    name: 'msg_messages',
    keepMs: ctx.config.messageRetentionDays * DAY_MS,
    async deleteBatch(trx, cutoff, limit) {
      const res = await trx
        .deleteFrom('msg_messages')
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('msg_messages')
            .select('id')
            .where('created_at', '<', cutoff)
            .where('status', 'not in', IN_FLIGHT)
            .orderBy('created_at')
            .limit(limit),
        )
        .executeTakeFirst();
      return Number(res.numDeletedRows ?? 0);
    },
  };
}
