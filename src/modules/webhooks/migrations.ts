import { sql, type Kysely } from 'kysely';
import { autoIncrementType, type TallyMigration } from '../../storage/migrate.ts';
import { WEBHOOK_CURSOR, type OutboxCursor } from './outbox-cursor.ts';

export const webhooksMigration: TallyMigration = {
  name: '0100_webhooks',
  async up(db: Kysely<any>, dialect) {
    const seq = autoIncrementType(dialect);
    const pk = (c: any) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey());

    // The dispatcher's "delivered to the endpoints" flag on each outbox row. Events of the past
    // (before any endpoint could exist) count as dispatched.
    await db.schema.alterTable('outbox_events').addColumn('dispatched', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    await db.updateTable('outbox_events').set({ dispatched: 1 }).execute();
    await db.schema
      .createIndex('outbox_undispatched')
      .on('outbox_events')
      .column('seq')
      .where(sql.ref('dispatched'), '=', 0)
      .execute();

    await db.schema
      .createTable('webhook_endpoints')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('target_url', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('events', 'text', (c) => c.notNull())
      .addColumn('active', 'integer', (c) => c.notNull())
      .addColumn('secret', 'text', (c) => c.notNull())
      .addColumn('previous_secret', 'text')
      .addColumn('previous_secret_expires_at', 'text')
      .addColumn('disabled_reason', 'text')
      .addColumn('failing_since', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('webhook_deliveries')
      .addColumn('seq', seq, pk)
      .addColumn('endpoint_id', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('event_created_at', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('manual', 'integer', (c) => c.notNull())
      .addColumn('next_attempt_at', 'text')
      .addColumn('lease_until', 'text')
      .addColumn('leased_by', 'text')
      .addColumn('last_status_code', 'integer')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('webhook_deliveries_endpoint_event', ['endpoint_id', 'event_id'])
      .execute();
    // The one index the hot path needs: claims (endpoint, pending, due first) and lease scans (endpoint, sending).
    await db.schema.createIndex('webhook_deliveries_endpoint').on('webhook_deliveries').columns(['endpoint_id', 'status', 'next_attempt_at']).execute();

    await db.schema
      .createTable('webhook_attempts')
      .addColumn('seq', seq, pk)
      .addColumn('id', 'text', (c) => c.notNull().unique())
      .addColumn('endpoint_id', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('attempt', 'integer', (c) => c.notNull())
      .addColumn('trigger', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('status_code', 'integer')
      .addColumn('duration_ms', 'integer', (c) => c.notNull())
      .addColumn('response', 'text')
      .addColumn('error', 'text')
      .addColumn('next_attempt_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('webhook_attempts_endpoint').on('webhook_attempts').columns(['endpoint_id', 'seq']).execute();
    await db.schema.createIndex('webhook_attempts_event').on('webhook_attempts').columns(['event_id', 'seq']).execute();
  },
};

/** The fan-out's cursor replaces the per-event `dispatched` flag (see outbox-cursor.ts). */
export const outboxCursorMigration: TallyMigration = {
  name: '0101_outbox_cursor',
  async up(db: Kysely<any>, dialect) {
    await db.schema
      .createTable('outbox_cursors')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('last_xid', 'text', (c) => c.notNull())
      .addColumn('last_seq', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    const firstOpen = await db.selectFrom('outbox_events').select(sql<number | null>`min(seq)`.as('seq')).where('dispatched', '=', 0).executeTakeFirst();
    const last = await db.selectFrom('outbox_events').select(sql<number | null>`max(seq)`.as('seq')).executeTakeFirst();
    let cursor: OutboxCursor;
    if (dialect === 'postgres') {
      // Events already fanned out get txid 0 (behind the cursor); those still waiting get this
      // migration's transaction id (after it). New rows take their writer's id by default.
      await sql`alter table outbox_events add column txid xid8`.execute(db);
      await sql`update outbox_events set txid = case when dispatched = 1 then '0'::xid8 else pg_current_xact_id() end`.execute(db);
      await sql`alter table outbox_events alter column txid set default pg_current_xact_id()`.execute(db);
      await sql`alter table outbox_events alter column txid set not null`.execute(db);
      await db.schema.createIndex('outbox_txid_seq').on('outbox_events').columns(['txid', 'seq']).execute();
      cursor = { xid: '1', seq: 0 };
    } else {
      const behind = firstOpen?.seq != null ? Number(firstOpen.seq) - 1 : Number(last?.seq ?? 0);
      cursor = { xid: '0', seq: behind };
    }
    await db.schema.dropIndex('outbox_undispatched').execute();
    await db
      .insertInto('outbox_cursors')
      .values({ name: WEBHOOK_CURSOR, last_xid: cursor.xid, last_seq: cursor.seq, updated_at: new Date().toISOString() })
      .execute();
  },
};
