import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { DialectName, Executor } from '../../storage/database.ts';

// Which outbox events the webhook fan-out has not read yet, without ever rewriting an event row.
//
// Before `0101_outbox_progress` each event row carried a `dispatched` flag that the fan-out set:
// an UPDATE of every event (2-3 KB rows), which on PostgreSQL is never a HOT update (the partial
// index on the flag changes), so it wrote a new row version and new entries in all of the row's
// indexes and left dead tuples to VACUUM: about a fifth of PostgreSQL's CPU per point addition
// (`npm run bench:ledger`). Now:
//
// - SQLite: a cursor (`outbox_cursors`, the last seq read). SQLite has one writer at a time (the
//   write lock, across processes too) and AUTOINCREMENT seqs, so events become visible in seq
//   order and nothing can appear behind the cursor. The fan-out moves it in its own transaction.
//   Cost per event: nothing.
// - PostgreSQL: seqs are taken at insert time and transactions commit in any order (seq 105 can be
//   visible while 104 is still in flight), so a cursor could skip an event. A statement trigger
//   adds each new event's seq to `outbox_pending` (a narrow table) in the writing transaction; the
//   fan-out deletes the rows it takes (`FOR UPDATE SKIP LOCKED`: processes sharing the database
//   take different events) in the transaction that creates their deliveries. An event of a
//   transaction that commits late is simply pending later. (A cursor bounded by the snapshot's
//   xmin would also be safe, but xmin is cluster-wide: one long writing transaction in any
//   database of the cluster would hold every webhook back.)
//
// Events inserted with `dispatched = 1` (an endpoint's test event) are never fanned out.

export const WEBHOOK_CURSOR = 'webhooks';

/** Replaces the per-event `dispatched` flag: the pending table and its trigger (PostgreSQL), the cursor (SQLite). */
export async function migrateToOutboxProgress(db: Kysely<any>, dialect: DialectName): Promise<void> {
  if (dialect === 'postgres') {
    await sql`create table outbox_pending (seq bigint primary key)`.execute(db);
    await sql`insert into outbox_pending (seq) select seq from outbox_events where dispatched = 0`.execute(db);
    await sql`
      create function tally_outbox_pending() returns trigger language plpgsql as $$
      begin
        insert into outbox_pending (seq) select seq from inserted where dispatched = 0;
        return null;
      end $$`.execute(db);
    await sql`
      create trigger outbox_pending_after_insert after insert on outbox_events
      referencing new table as inserted for each statement execute function tally_outbox_pending()`.execute(db);
  } else {
    await db.schema
      .createTable('outbox_cursors')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('last_seq', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    const firstOpen = await db
      .selectFrom('outbox_events')
      .select(sql<number | null>`min(seq)`.as('seq'))
      .where('dispatched', '=', 0)
      .executeTakeFirst();
    const last = await db.selectFrom('outbox_events').select(sql<number | null>`max(seq)`.as('seq')).executeTakeFirst();
    const behind = firstOpen?.seq != null ? Number(firstOpen.seq) - 1 : Number(last?.seq ?? 0);
    await db
      .insertInto('outbox_cursors')
      .values({ name: WEBHOOK_CURSOR, last_seq: behind, updated_at: new Date().toISOString() })
      .execute();
  }
  await db.schema.dropIndex('outbox_undispatched').execute();
}

/**
 * Takes up to `limit` events the fan-out has not read, in seq order, for the caller's transaction:
 * on PostgreSQL they leave `outbox_pending` (back if the transaction rolls back; rows another
 * process is taking are skipped); on SQLite the cursor moves past them.
 */
export async function takeUnread(trx: Executor, dialect: DialectName, limit: number, now: string): Promise<number[]> {
  if (dialect === 'postgres') {
    // The picked rows in a MATERIALIZED CTE, evaluated once: as `seq IN (subquery)` the planner may
    // rescan the locking subquery for every outer row (see the dispatcher's claimDue).
    const { rows } = await sql<{ seq: number }>`
      with picked as materialized (select seq from outbox_pending order by seq limit ${limit} for update skip locked)
      delete from outbox_pending p using picked where p.seq = picked.seq returning p.seq`.execute(trx);
    return rows.map((r) => Number(r.seq)).sort((a, b) => a - b);
  }
  const cursor = await trx
    .selectFrom('outbox_cursors')
    .select('last_seq')
    .where('name', '=', WEBHOOK_CURSOR)
    .executeTakeFirst();
  const from = Number(cursor?.last_seq ?? 0);
  const rows = await trx
    .selectFrom('outbox_events')
    .select('seq')
    .where('seq', '>', from)
    .orderBy('seq')
    .limit(limit)
    .execute();
  const seqs = rows.map((r) => Number(r.seq));
  if (seqs.length > 0) {
    await trx
      .updateTable('outbox_cursors')
      .set({ last_seq: seqs[seqs.length - 1], updated_at: now })
      .where('name', '=', WEBHOOK_CURSOR)
      .execute();
  }
  return seqs;
}

/**
 * The seqs of the events that wait for the fan-out: listed in `outbox_pending` on PostgreSQL, past
 * the cursor on SQLite (test events, never fanned out, left aside).
 */
function unread(db: Executor, dialect: DialectName) {
  return dialect === 'postgres'
    ? db.selectFrom('outbox_pending').select('seq').as('u')
    : db
        .selectFrom('outbox_events')
        .select('seq')
        .where('seq', '>', (eb) =>
          eb.selectFrom('outbox_cursors').select('last_seq').where('name', '=', WEBHOOK_CURSOR),
        )
        .where('dispatched', '=', 0)
        .as('u');
}

/** Whether any event waits for the fan-out (a cheap read, no lock). */
export async function hasUnread(db: Executor, dialect: DialectName): Promise<boolean> {
  return (await db.selectFrom(unread(db, dialect)).select('u.seq').limit(1).executeTakeFirst()) !== undefined;
}

/** How many events wait for the fan-out (a backlog gauge of /metrics). */
export async function countUnread(db: Executor, dialect: DialectName): Promise<number> {
  const row = await db
    .selectFrom(unread(db, dialect))
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** SQL condition on `outbox_events`: the fan-out has read the row (so the purge may delete it). */
export function alreadyRead(dialect: DialectName): RawBuilder<boolean> {
  return dialect === 'postgres'
    ? sql<boolean>`not exists (select 1 from outbox_pending p where p.seq = outbox_events.seq)`
    : sql<boolean>`seq <= (select last_seq from outbox_cursors where name = ${WEBHOOK_CURSOR})`;
}
