import type { TallyMigration } from '../../storage/migrate.ts';

/**
 * Retention deletes deliveries and attempts oldest first (by created_at), and keeps an event while
 * one of its deliveries is pending (by event_id): each walks one of these indexes, not the table.
 */
export const webhookRetentionIndexesMigration: TallyMigration = {
  name: '0110_webhooks_retention_indexes',
  async up(db) {
    await db.schema.createIndex('webhook_attempts_created').on('webhook_attempts').column('created_at').execute();
    await db.schema.createIndex('webhook_deliveries_created').on('webhook_deliveries').column('created_at').execute();
    await db.schema.createIndex('webhook_deliveries_event').on('webhook_deliveries').column('event_id').execute();
  },
};
