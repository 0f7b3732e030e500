import { sql } from 'kysely';
import type { Executor } from '../database.ts';
import type { UntypedDb } from '../migrate.ts';
import type { OutboxProgress } from '../outbox-progress.ts';

// PostgreSQL: seqs are taken at insert time and transactions commit in any order (seq 105 can be
// visible while 104 is still in flight), so a cursor could skip an event. A statement trigger adds
// each new event's seq to `outbox_pending` (a narrow table) in the writing transaction; the fan-out
// deletes the rows it takes (`FOR UPDATE SKIP LOCKED`: processes sharing the database take
// different events) in the transaction that creates their deliveries. An event of a transaction
// that commits late is simply pending later. (A cursor bounded by the snapshot's xmin would also be
// safe, but xmin is cluster-wide: one long writing transaction in any database of the cluster
// would hold every webhook back.)

/** The seqs listed in `outbox_pending`. */
function unread(db: Executor) {
  return db.selectFrom('outbox_pending').select('seq').as('u');
}

export const postgresOutboxProgress: OutboxProgress = {
  async install(db: UntypedDb): Promise<void> {
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
    await db.schema.dropIndex('outbox_undispatched').execute();
  },

  async takeUnread(trx, limit) {
    // The picked rows in a MATERIALIZED CTE, evaluated once: as `seq IN (subquery)` the planner may
    // rescan the locking subquery for every outer row (see the dispatcher's claim).
    const { rows } = await sql<{ seq: number }>`
      with picked as materialized (select seq from outbox_pending order by seq limit ${limit} for update skip locked)
      delete from outbox_pending p using picked where p.seq = picked.seq returning p.seq`.execute(trx);
    return rows.map((r) => Number(r.seq)).sort((a, b) => a - b);
  },

  async hasUnread(db) {
    return (await db.selectFrom(unread(db)).select('u.seq').limit(1).executeTakeFirst()) !== undefined;
  },

  async countUnread(db) {
    const row = await db
      .selectFrom(unread(db))
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  },

  alreadyRead() {
    return sql<boolean>`not exists (select 1 from outbox_pending p where p.seq = outbox_events.seq)`;
  },
};
