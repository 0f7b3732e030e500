import type { TallyMigration } from '../../storage/migrate.ts';

/**
 * `GET /v1/messages` pages newest first by `(created_at, id)` (cursor or page), and retention
 * deletes the oldest messages first: both walk this index instead of sorting the table.
 */
export const messagingCreatedIndexMigration: TallyMigration = {
  name: '0290_messaging_created_index',
  async up(db) {
    await db.schema.createIndex('msg_messages_created').on('msg_messages').columns(['created_at', 'id']).execute();
  },
};
