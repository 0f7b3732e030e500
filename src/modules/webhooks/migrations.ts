import { sql, type Kysely } from 'kysely';
import { autoIncrementKey, autoIncrementType, type TallyMigration } from '../../storage/migrate.ts';
import { resealAll } from '../../storage/sealed.ts';
import { outboxProgressOf } from '../../storage/outbox-progress.ts';
import { endpointSealedColumns } from './secrets.ts';

export const webhooksMigration: TallyMigration = {
  name: '0100_webhooks',
  async up(db: Kysely<any>, dialect) {
    const seq = autoIncrementType(dialect);
    const pk = autoIncrementKey(dialect);

    // The dispatcher's "delivered to the endpoints" flag on each outbox row. Events of the past
    // (before any endpoint could exist) count as dispatched.
    await db.schema
      .alterTable('outbox_events')
      .addColumn('dispatched', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
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
    await db.schema
      .createIndex('webhook_deliveries_endpoint')
      .on('webhook_deliveries')
      .columns(['endpoint_id', 'status', 'next_attempt_at'])
      .execute();

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
    await db.schema
      .createIndex('webhook_attempts_endpoint')
      .on('webhook_attempts')
      .columns(['endpoint_id', 'seq'])
      .execute();
    await db.schema.createIndex('webhook_attempts_event').on('webhook_attempts').columns(['event_id', 'seq']).execute();
  },
};

/** Fan-out progress without a per-event flag (see storage/outbox-progress.ts). */
export const outboxProgressMigration: TallyMigration = {
  name: '0101_outbox_progress',
  up: (db, dialect) => outboxProgressOf(dialect).install(db),
};

/** Signing secrets stored in clear until now are encrypted with the secret key (secrets.ts). */
export const sealedSecretsMigration: TallyMigration = {
  name: '0102_webhooks_sealed_secrets',
  async up(db, _dialect, env) {
    for (const column of endpointSealedColumns) await resealAll(db, env.secrets, column);
  },
};
