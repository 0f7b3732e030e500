import { sql, type RawBuilder } from 'kysely';
import type { DialectName, Executor } from '../../storage/db.ts';

// How far the webhook fan-out has read the outbox: one cursor row, moved forward by each fan-out in
// the same transaction as the deliveries it creates. Before it, each event row carried a
// `dispatched` flag that the fan-out set: an UPDATE of every event (2-3 KB rows), which on
// PostgreSQL is never a HOT update (the partial index on the flag changes), so it wrote a new row
// version and new entries in all six indexes, and left dead tuples for VACUUM. That update cost
// PostgreSQL about a fifth of its CPU per point addition (`npm run bench:ledger`).
//
// A cursor is only safe if no event can become visible behind it later:
// - SQLite has one writer at a time (the write lock, across processes too) and AUTOINCREMENT seqs,
//   so events commit in `seq` order: the cursor is the last seq read.
// - On PostgreSQL seqs are taken at insert time and transactions commit in any order: seq 105 can
//   be visible while 104 is still in flight. Each event row therefore records the id of the
//   transaction that wrote it (`txid`, xid8, a column default), and the fan-out reads only events of
//   transactions below the current snapshot's xmin: every such transaction has ended, so whatever
//   they wrote is visible and final. The cursor is the last (txid, seq) read, in that order; a
//   transaction still running has an xid at or above xmin, hence above the cursor, and is read once
//   it ends. A long-running writing transaction delays the fan-out until it ends (it never loses
//   an event).
//
// Events inserted with `dispatched = 1` (a webhook endpoint's test event) are never fanned out.

export const WEBHOOK_CURSOR = 'webhooks';

export interface OutboxCursor {
  /** PostgreSQL: the xid8 of the last event's transaction, as text; SQLite: '0'. */
  xid: string;
  seq: number;
}

export interface OutboxPosition {
  seq: number;
  xid: string;
}

/**
 * Reads the cursor for a fan-out. PostgreSQL locks its row (SKIP LOCKED): another process fanning
 * out at the same moment holds it, and this one answers undefined and leaves the work to it.
 */
export async function lockCursor(trx: Executor, dialect: DialectName, name = WEBHOOK_CURSOR): Promise<OutboxCursor | undefined> {
  let q = trx.selectFrom('outbox_cursors').select(['last_xid', 'last_seq']).where('name', '=', name);
  if (dialect === 'postgres') q = q.forUpdate().skipLocked();
  const row = await q.executeTakeFirst();
  return row ? { xid: row.last_xid, seq: Number(row.last_seq) } : undefined;
}

/** Reads the cursor without a lock (for a cheap "is there anything new?" check). */
export async function readCursor(db: Executor, name = WEBHOOK_CURSOR): Promise<OutboxCursor | undefined> {
  const row = await db.selectFrom('outbox_cursors').select(['last_xid', 'last_seq']).where('name', '=', name).executeTakeFirst();
  return row ? { xid: row.last_xid, seq: Number(row.last_seq) } : undefined;
}

export async function moveCursor(trx: Executor, to: OutboxCursor, now: string, name = WEBHOOK_CURSOR): Promise<void> {
  await trx.updateTable('outbox_cursors').set({ last_xid: to.xid, last_seq: to.seq, updated_at: now }).where('name', '=', name).execute();
}

/**
 * Up to `limit` events after `cursor` that can no longer be preceded by another (see the top of
 * this file), in cursor order.
 */
export async function eventsAfter(db: Executor, dialect: DialectName, cursor: OutboxCursor, limit: number): Promise<OutboxPosition[]> {
  if (dialect === 'postgres') {
    const rows = await sql<{ seq: number; xid: string }>`
      select seq, txid::text as xid from outbox_events
      where (txid, seq) > (${cursor.xid}::xid8, ${cursor.seq}) and txid < pg_snapshot_xmin(pg_current_snapshot())
      order by txid, seq limit ${limit}`.execute(db);
    return rows.rows.map((r) => ({ seq: Number(r.seq), xid: r.xid }));
  }
  const rows = await db.selectFrom('outbox_events').select('seq').where('seq', '>', cursor.seq).orderBy('seq').limit(limit).execute();
  return rows.map((r) => ({ seq: Number(r.seq), xid: '0' }));
}

/** SQL condition on `outbox_events`: the row is at or behind the cursor `name` (already fanned out). */
export function behindCursor(dialect: DialectName, name = WEBHOOK_CURSOR): RawBuilder<boolean> {
  return dialect === 'postgres'
    ? sql<boolean>`(txid, seq) <= (select last_xid::xid8, last_seq from outbox_cursors where name = ${name})`
    : sql<boolean>`seq <= (select last_seq from outbox_cursors where name = ${name})`;
}
