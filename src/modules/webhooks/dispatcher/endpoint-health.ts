import type { AppContext } from '../../../context.ts';
import type { Executor } from '../../../storage/database.ts';
import { ENDPOINT_DISABLED } from '../../events/catalog.ts';
import type { Endpoints } from './endpoints.ts';
import { DISABLE_AFTER_MS } from './types.ts';

export interface HealthChange {
  ok: boolean;
  /** The receiver answered 410 Gone. */
  gone: boolean;
  now: string;
  nowMs: number;
}

/**
 * An endpoint's health after an outcome, in the caller's transaction: success clears the failing
 * streak; 410 or DISABLE_AFTER_MS of failures disable the endpoint (with an `endpoint_disabled`
 * event in the same transaction). Keeps the cached row in step. Returns true when it disabled it.
 */
export async function updateHealth(
  ctx: AppContext,
  trx: Executor,
  endpoints: Endpoints,
  endpointId: string,
  { ok, gone, now, nowMs }: HealthChange,
): Promise<boolean> {
  const cached = endpoints.get(endpointId);
  if (ok && !gone) {
    if (cached && cached.failing_since === null) return false;
    await trx
      .updateTable('webhook_endpoints')
      .set({ failing_since: null })
      .where('id', '=', endpointId)
      .where('failing_since', 'is not', null)
      .execute();
    if (cached) cached.failing_since = null;
    return false;
  }
  let q = trx.selectFrom('webhook_endpoints').selectAll().where('id', '=', endpointId);
  if (ctx.database.forUpdate) q = q.forUpdate();
  const ep = await q.executeTakeFirst();
  if (!ep) return false;
  const failingSince = ep.failing_since ?? now;
  const tooLong = nowMs - Date.parse(failingSince) >= DISABLE_AFTER_MS;
  if (ep.active === 1 && (gone || tooLong)) {
    const reason = gone ? 'gone' : 'failing';
    await trx
      .updateTable('webhook_endpoints')
      .set({ active: 0, disabled_reason: reason, failing_since: failingSince, updated_at: now })
      .where('id', '=', endpointId)
      .execute();
    await ctx.outbox.emit(trx, {
      type: ENDPOINT_DISABLED,
      data: {
        endpoint_id: ep.id,
        target_url: ep.target_url,
        description: ep.description,
        reason,
        failing_since: failingSince,
        disabled_at: now,
      },
      resource_type: 'webhook_endpoint',
      resource_id: ep.id,
    });
    if (cached) Object.assign(cached, { active: 0, disabled_reason: reason, failing_since: failingSince });
    ctx.log.warn({ endpoint: ep.id, reason }, 'webhook endpoint disabled');
    return true;
  }
  if (ep.failing_since === null) {
    await trx
      .updateTable('webhook_endpoints')
      .set({ failing_since: failingSince })
      .where('id', '=', endpointId)
      .execute();
    if (cached) cached.failing_since = failingSince;
  }
  return false;
}
