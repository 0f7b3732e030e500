import type { TallyMigration, UntypedDb } from '../../storage/migrate.ts';

// Indexes found missing by test/plans.test.ts (issue #18): the messages of a phone number
// (`GET /v1/messages?phone=` matches the sender or the recipient: one index each, so both backends
// can combine them — SQLite's multi-index OR, PostgreSQL's BitmapOr — instead of reading every
// message). The unfiltered list, newest first, walks msg_messages_created (0290, migrations-scale.ts).
export const messagingPhoneIndexesMigration: TallyMigration = {
  name: '0280_messaging_phone_indexes',
  async up(db: UntypedDb) {
    await db.schema
      .createIndex('msg_messages_from')
      .on('msg_messages')
      .columns(['from_number', 'created_at'])
      .execute();
    await db.schema.createIndex('msg_messages_to').on('msg_messages').columns(['to_number', 'created_at']).execute();
  },
};

// The messages of a channel newest first (`GET /v1/messages?channel_id=`), a walk of this index
// (storage/paging.ts, KeyWalk). Before it, a page was either every message of the channel sorted
// or msg_messages_created walked back past every other channel's newer messages, both in
// proportion to the table (found by test/plans.test.ts with sorts disabled).
export const messagingChannelOrderMigration: TallyMigration = {
  name: '0296_messaging_channel_order',
  async up(db: UntypedDb) {
    await db.schema
      .createIndex('msg_messages_channel_created')
      .ifNotExists()
      .on('msg_messages')
      .columns(['channel_id', 'created_at', 'id'])
      .execute();
  },
};
