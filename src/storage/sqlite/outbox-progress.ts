import { sql } from 'kysely';
import type { Executor } from '../database.ts';
import type { UntypedDb } from '../migrate.ts';
import type { OutboxProgress } from '../outbox-progress.ts';

// SQLite: a cursor (`outbox_cursors`, the last seq read). SQLite has one writer at a time (the
// write lock, across processes too) and AUTOINCREMENT seqs, so events become visible in seq order
// and nothing can appear behind the cursor. The fan-out moves it in its own transaction. Cost per
// event: nothing.

/** The name of the webhook fan-out's cursor. */
export const WEBHOOK_CURSOR = 'webhooks';

/** The seqs past the cursor (test events, never fanned out, left aside). */
function unread(db: Executor) {
  return db
    .selectFrom('outbox_events')
    .select('seq')
    .where('seq', '>', (eb) => eb.selectFrom('outbox_cursors').select('last_seq').where('name', '=', WEBHOOK_CURSOR))
    .where('dispatched', '=', 0)
    .as('u');
}

export const sqliteOutboxProgress: OutboxProgress = {
  async install(db: UntypedDb): Promise<void> {
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
    await db.schema.dropIndex('outbox_undispatched').execute();
  },

  async takeUnread(trx, limit, now) {
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
    return sql<boolean>`seq <= (select last_seq from outbox_cursors where name = ${WEBHOOK_CURSOR})`;
  },
};
