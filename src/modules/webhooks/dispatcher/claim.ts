import { hostname } from 'node:os';
import type { Executor } from '../../../storage/database.ts';
import type { Endpoints } from './endpoints.ts';
import type { Slots } from './slots.ts';
import type { Claimed } from './types.ts';

// Claims: a delivery is leased (status "sending", lease_until, leased_by) before it is sent. A
// process that dies mid-send leaves a lease that expires, and the delivery is claimed and sent
// again: at least once. On PostgreSQL the claims use FOR UPDATE SKIP LOCKED, so several processes
// share the work without sending the same attempt twice while their leases hold.

export interface ClaimOptions {
  endpoints: Endpoints;
  slots: Slots;
  /** Lock the picked rows (PostgreSQL; SQLite already serialises writers). */
  forUpdate: boolean;
  workerId: string;
  now: string;
  leaseUntil: string;
}

/**
 * Claims the deliveries due now, per active endpoint, as many as it has free slots, in the
 * caller's transaction; reserves their slots (noted in `reserved`, to be released if the
 * transaction fails) and appends them to `out`. Deliveries whose event was purged meanwhile fail.
 */
export async function claimDue(
  trx: Executor,
  { endpoints, slots, forUpdate, workerId, now, leaseUntil }: ClaimOptions,
  out: Claimed[],
  reserved: [string, number][],
): Promise<void> {
  for (const ep of endpoints.active()) {
    const cap = slots.free(ep);
    if (cap <= 0) continue;
    // The picked rows come from a MATERIALIZED CTE, evaluated once. Written as
    // `seq IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`, PostgreSQL's planner (with a plan made
    // while the table was nearly empty) may run a nested-loop semi-join that re-runs the locking
    // subquery for every pending row, locking far more rows than it claims (docs/performance.md).
    const claimed = await trx
      .with(
        (w) => w('picked').materialized(),
        (db) => {
          const pick = db
            .selectFrom('webhook_deliveries')
            .select('seq')
            .where('endpoint_id', '=', ep.id)
            .where('status', '=', 'pending')
            .where('next_attempt_at', '<=', now)
            .orderBy('next_attempt_at')
            .limit(cap);
          return forUpdate ? pick.forUpdate().skipLocked() : pick;
        },
      )
      .updateTable('webhook_deliveries')
      .from('picked')
      .set({ status: 'sending', lease_until: leaseUntil, leased_by: workerId, updated_at: now })
      .whereRef('webhook_deliveries.seq', '=', 'picked.seq')
      .where('webhook_deliveries.status', '=', 'pending')
      .returning([
        'webhook_deliveries.seq',
        'webhook_deliveries.event_id',
        'webhook_deliveries.attempts',
        'webhook_deliveries.manual',
      ])
      .execute();
    if (claimed.length === 0) continue;
    const events = await trx
      .selectFrom('outbox_events')
      .select(['id', 'type', 'data', 'created_at'])
      .where(
        'id',
        'in',
        claimed.map((c) => c.event_id),
      )
      .execute();
    const byId = new Map(events.map((e) => [e.id, e]));
    const gone: number[] = [];
    let n = 0;
    for (const c of claimed) {
      const event = byId.get(c.event_id);
      if (!event) {
        gone.push(c.seq); // purged by retention: nothing left to send
        continue;
      }
      out.push({
        seq: c.seq,
        endpoint_id: ep.id,
        event,
        attempt: c.attempts + 1,
        manual: c.manual === 1,
        trigger: c.manual === 1 ? 'manual' : 'scheduled',
        direct: false,
      });
      n++;
    }
    slots.reserve(ep.id, n);
    reserved.push([ep.id, n]);
    if (gone.length > 0) {
      await trx
        .updateTable('webhook_deliveries')
        .set({ status: 'failed', next_attempt_at: null, lease_until: null, leased_by: null, updated_at: now })
        .where('seq', 'in', gone)
        .execute();
    }
  }
}

/** Whether a delivery of `endpointId` is due at `now` (a cheap read, no lock). */
export async function anyDue(db: Executor, endpointId: string, now: string): Promise<boolean> {
  const due = await db
    .selectFrom('webhook_deliveries')
    .select('seq')
    .where('endpoint_id', '=', endpointId)
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .limit(1)
    .executeTakeFirst();
  return due !== undefined;
}

/** Deliveries whose sender's lease expired (the sender died) go back to pending, due now. */
export async function requeueExpiredLeases(trx: Executor, endpoints: Endpoints, now: string): Promise<number> {
  let n = 0;
  for (const ep of endpoints.all()) {
    const res = await trx
      .updateTable('webhook_deliveries')
      .set({ status: 'pending', next_attempt_at: now, lease_until: null, leased_by: null, updated_at: now })
      .where('endpoint_id', '=', ep.id)
      .where('status', '=', 'sending')
      .where('lease_until', '<', now)
      .executeTakeFirst();
    n += Number(res.numUpdatedRows ?? 0);
  }
  return n;
}

/** The lease holder name of this process: `host:pid:random`. */
export function newWorkerId(random: string): string {
  return `${hostname()}:${process.pid}:${random}`;
}

/**
 * The holders among `holders` that are processes of this host that no longer exist (their
 * leases can be released at once; leases of other hosts always run to their end).
 */
export function deadHolders(holders: (string | null)[], self: string): string[] {
  const host = hostname();
  return holders.filter((by): by is string => {
    if (!by || by === self) return false;
    const [h, pid] = by.split(':');
    if (h !== host || !/^\d+$/.test(pid ?? '')) return false;
    try {
      process.kill(Number(pid), 0);
      return false;
    } catch (err) {
      return (err as { code?: string }).code === 'ESRCH';
    }
  });
}

/**
 * After a crash and restart on the same host, the deliveries the dead process had claimed need
 * not wait for their leases to expire: a lease held by a process of this host that no longer
 * exists is released at once. Returns the holders released and how many deliveries.
 */
export async function releaseDeadLeases(
  db: Executor,
  self: string,
  nowMs: number,
): Promise<{ deliveries: number; holders: string[] }> {
  const holders = await db
    .selectFrom('webhook_deliveries')
    .select('leased_by')
    .distinct()
    .where('status', '=', 'sending')
    .execute();
  const dead = deadHolders(
    holders.map((h) => h.leased_by),
    self,
  );
  if (dead.length === 0) return { deliveries: 0, holders: dead };
  const res = await db
    .updateTable('webhook_deliveries')
    .set({ lease_until: new Date(nowMs - 1).toISOString() })
    .where('status', '=', 'sending')
    .where('leased_by', 'in', dead)
    .executeTakeFirst();
  return { deliveries: Number(res.numUpdatedRows ?? 0), holders: dead };
}
