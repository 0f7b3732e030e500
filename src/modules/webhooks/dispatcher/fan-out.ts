import { sql } from 'kysely';
import { fromJson } from '../../../lib/json.ts';
import type { Executor } from '../../../storage/database.ts';
import type { OutboxProgress } from '../../../storage/outbox-progress.ts';
import type { EndpointRow } from './types.ts';

/**
 * Takes up to `batch` unread events (storage/outbox-progress.ts) and turns them into one pending
 * delivery per subscribed active endpoint (INSERT ... SELECT per endpoint), in the caller's
 * transaction: a crash leaves either the events unread or their deliveries persisted. An endpoint
 * only ever receives events created after it. Returns how many events it took.
 */
export async function fanOut(
  trx: Executor,
  progress: OutboxProgress,
  endpoints: Iterable<EndpointRow>,
  batch: number,
  now: string,
): Promise<number> {
  const seqs = await progress.takeUnread(trx, batch, now);
  if (seqs.length === 0) return 0;
  for (const ep of endpoints) {
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
