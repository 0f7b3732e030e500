import type { AppContext } from '../../../context.ts';
import { newId } from '../../../lib/ids.ts';
import type { Executor } from '../../../storage/database.ts';
import { updateHealth } from './endpoint-health.ts';
import type { Endpoints } from './endpoints.ts';
import { retryDelayMs } from './retry-schedule.ts';
import { succeeded, type AttemptRecord, type Claimed, type EndpointRow, type Outcome } from './types.ts';

export interface RecordOptions {
  ctx: AppContext;
  endpoints: Endpoints;
  /** Only deliveries this worker still holds the lease of are updated. */
  workerId: string;
  /** Random source of the retry jitter. */
  random: () => number;
}

/**
 * Writes outcomes in the caller's transaction: one attempt row each, the delivery's new state
 * (succeeded; pending with its next attempt; failed when none is left), endpoint health. Returns
 * the attempts in the order of `batch`, and whether an endpoint was disabled.
 */
export async function recordOutcomes(
  trx: Executor,
  batch: Outcome[],
  { ctx, endpoints, workerId, random }: RecordOptions,
): Promise<{ records: AttemptRecord[]; disabledAny: boolean }> {
  const records: AttemptRecord[] = [];
  let disabledAny = false;
  const nowMs = ctx.clock.nowMs();
  const now = new Date(nowMs).toISOString();
  const health = new Map<string, { ok: boolean; gone: boolean; endpoint: EndpointRow; at: string }>();
  const succeededSeqs = new Map<string, number[]>();
  for (const o of batch) {
    const { claimed: c } = o;
    const ok = succeeded(o.statusCode);
    const gone = o.statusCode === 410;
    let next: string | null = null;
    if (!ok && !gone && !c.manual && !c.direct) {
      const delay = retryDelayMs(c.attempt, random, o.retryAfterMs);
      if (delay !== null) next = new Date(nowMs + delay).toISOString();
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
      await recordDirect(trx, c, ok, o.statusCode, now);
    } else if (c.seq !== null) {
      if (ok) {
        const key = `${c.attempt}:${o.statusCode}`;
        const list = succeededSeqs.get(key);
        if (list) list.push(c.seq);
        else succeededSeqs.set(key, [c.seq]);
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
          .where('leased_by', '=', workerId)
          .where('status', '=', 'sending')
          .execute();
      }
    }
    const h = health.get(c.endpoint_id);
    // The latest outcome per endpoint decides; a 410 anywhere in the batch disables.
    health.set(c.endpoint_id, { ok, gone: gone || (h?.gone ?? false), endpoint: o.endpoint, at: o.at });
  }
  // Successes of one attempt number and status code are one UPDATE per 500 deliveries.
  for (const [key, seqs] of succeededSeqs) {
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
        .where('leased_by', '=', workerId)
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
    if (await updateHealth(ctx, trx, endpoints, endpointId, { ok: h.ok, gone: h.gone, now, nowMs })) disabledAny = true;
  }
  return { records, disabledAny };
}

/**
 * A manual attempt (resend, test) outside the schedule: it counts on the delivery (created if
 * the event never had one for this endpoint); a success ends the delivery, a failure leaves its
 * schedule as it was.
 */
async function recordDirect(trx: Executor, c: Claimed, ok: boolean, code: number | null, now: string): Promise<void> {
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
