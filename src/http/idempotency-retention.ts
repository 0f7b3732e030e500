import type { RetentionPolicy } from '../modules/scheduler/retention.ts';
import { IDEMPOTENCY_TTL_MS } from './idempotency.ts';

/**
 * Idempotency records live as long as a key is honoured (IDEMPOTENCY_TTL_MS, a day), oldest first
 * (index idempotency_created); a claim still open is older than its request only if its process died.
 */
export const idempotencyRetention: RetentionPolicy = {
  name: 'idempotency_keys',
  keepMs: IDEMPOTENCY_TTL_MS,
  async deleteBatch(trx, cutoff, limit) {
    const res = await trx
      .deleteFrom('idempotency_keys')
      .where(({ eb, refTuple, selectFrom }) =>
        eb(
          refTuple('scope', 'key'),
          'in',
          selectFrom('idempotency_keys')
            .select(['scope', 'key'])
            .where('created_at', '<', cutoff)
            .orderBy('created_at')
            .limit(limit)
            .$asTuple('scope', 'key'),
        ),
      )
      .executeTakeFirst();
    return Number(res.numDeletedRows ?? 0);
  },
};
