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

/**
 * The flow report's daily roll-up: per flow and UTC day, the figures the report returns per day,
 * stored for final days only (ended more than 8 days ago: report-days.ts), so a report reads at
 * most ~9 days of messages and days past message retention keep their figures. A row with
 * `messages` 0 records a final day without traffic (not computed again). The second index
 * covers the window's distinct members (count(distinct membership_id) per direction), which
 * are not sums of days.
 */
export const messagingFlowDaysMigration: TallyMigration = {
  name: '0291_messaging_flow_days',
  async up(db) {
    await db.schema
      .createTable('msg_flow_days')
      .addColumn('flow_id', 'text', (c) => c.notNull())
      .addColumn('day', 'text', (c) => c.notNull())
      .addColumn('messages', 'integer', (c) => c.notNull())
      .addColumn('messages_sent', 'integer', (c) => c.notNull())
      .addColumn('delivered', 'integer', (c) => c.notNull())
      .addColumn('failed', 'integer', (c) => c.notNull())
      .addColumn('inbound', 'integer', (c) => c.notNull())
      .addColumn('keyword_matches', 'text', (c) => c.notNull())
      .addColumn('members_messaged', 'integer', (c) => c.notNull())
      .addColumn('members_replied', 'integer', (c) => c.notNull())
      .addColumn('redemptions_within_7_days', 'integer', (c) => c.notNull())
      .addColumn('points_redeemed_within_7_days', 'bigint', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('msg_flow_days_pk', ['flow_id', 'day'])
      .execute();
    await db.schema
      .createIndex('msg_messages_flow_members')
      .on('msg_messages')
      .columns(['flow_id', 'direction', 'created_at', 'status', 'membership_id'])
      .execute();
  },
};

/**
 * Each rolled-up day keeps its members as sketches (member-sketch.ts): the members the flow
 * messaged that day and the members who wrote to it. A window's distinct members are the union
 * of its days' sketches, so a report no longer counts them over the window's messages, and days
 * past message retention keep their members. Days rolled up before have none (NULL): a window
 * holding one is counted from its messages as before.
 */
export const messagingFlowDaySketchesMigration: TallyMigration = {
  name: '0292_messaging_flow_day_sketches',
  async up(db) {
    await db.schema.alterTable('msg_flow_days').addColumn('messaged_sketch', 'text').execute();
    await db.schema.alterTable('msg_flow_days').addColumn('writing_sketch', 'text').execute();
  },
};
