import { type CreateTableBuilder, sql } from 'kysely';
import { autoIncrementKey, autoIncrementType, type TallyMigration } from '../../storage/migrate.ts';

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

/** A flow's figures of a day (msg_flow_days, msg_flow_live_days): its key columns and its figures. */
const dayFigureColumns = (t: CreateTableBuilder<string, never>) =>
  t
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
    .addColumn('points_redeemed_within_7_days', 'bigint', (c) => c.notNull());

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
    await dayFigureColumns(db.schema.createTable('msg_flow_days'))
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

/**
 * The flow report's running figures of the days not yet final (live-days.ts), kept as messages and
 * redemptions are written instead of counted from messages on every report:
 * - msg_messages.report_pending / report_counted: a flow message whose figures changed, and what
 *   its day holds of it; a partial index finds the pending ones.
 * - msg_flow_live_days: per flow and UTC day, the report's figures and member sketches.
 * - msg_flow_redemptions: a redemption credited to a flow's day, kept so a rollback takes it back.
 * - msg_flow_member_days: per flow, day and member, how many messages count the member as
 *   messaged and as writing (the day's distinct members move when one crosses 0).
 * - msg_report_state.live_from: days before it were written without running figures (a database
 *   with recent flow traffic when this runs: from the next UTC day on); a report computes them
 *   from messages until they are final.
 * A partial index on flow messages serves a redemption's lookup (the flow messages the customer
 * got in the 7 days before it).
 */
export const messagingFlowLiveDaysMigration: TallyMigration = {
  name: '0293_messaging_flow_live_days',
  async up(db) {
    await db.schema
      .alterTable('msg_messages')
      .addColumn('report_pending', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.alterTable('msg_messages').addColumn('report_counted', 'integer').execute();
    await db.schema
      .createIndex('msg_messages_report_pending')
      .on('msg_messages')
      // report_pending leads though constant: PostgreSQL then matches the fold's condition to the
      // index (as an index condition; on the partial predicate alone it keeps it as a filter).
      .columns(['report_pending', 'created_at'])
      .where(sql.ref('report_pending'), '=', 1)
      .execute();
    await db.schema
      .createIndex('msg_messages_flow_customer')
      .on('msg_messages')
      .columns(['customer_id', 'created_at'])
      .where(sql.ref('flow_id'), 'is not', null)
      .execute();
    await dayFigureColumns(db.schema.createTable('msg_flow_live_days'))
      .addColumn('messaged_sketch', 'text', (c) => c.notNull())
      .addColumn('writing_sketch', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('msg_flow_live_days_pk', ['flow_id', 'day'])
      .execute();
    await db.schema.createIndex('msg_flow_live_days_day').on('msg_flow_live_days').column('day').execute();
    await db.schema
      .createTable('msg_flow_redemptions')
      .addColumn('redemption_id', 'text', (c) => c.notNull())
      .addColumn('flow_id', 'text', (c) => c.notNull())
      .addColumn('day', 'text', (c) => c.notNull())
      .addColumn('points', 'bigint', (c) => c.notNull())
      .addColumn('rolled_back', 'integer', (c) => c.notNull())
      .addColumn('report_pending', 'integer', (c) => c.notNull())
      .addColumn('report_counted', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('msg_flow_redemptions_pk', ['redemption_id', 'flow_id'])
      .execute();
    await db.schema.createIndex('msg_flow_redemptions_day').on('msg_flow_redemptions').column('day').execute();
    await db.schema
      .createIndex('msg_flow_redemptions_pending')
      .on('msg_flow_redemptions')
      .columns(['report_pending', 'day'])
      .where(sql.ref('report_pending'), '=', 1)
      .execute();
    await db.schema
      .createTable('msg_flow_member_days')
      .addColumn('flow_id', 'text', (c) => c.notNull())
      .addColumn('day', 'text', (c) => c.notNull())
      .addColumn('membership_id', 'text', (c) => c.notNull())
      .addColumn('messaged', 'integer', (c) => c.notNull())
      .addColumn('writing', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('msg_flow_member_days_pk', ['flow_id', 'day', 'membership_id'])
      .execute();
    await db.schema.createIndex('msg_flow_member_days_day').on('msg_flow_member_days').column('day').execute();
    await db.schema
      .createTable('msg_report_state')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('live_from', 'text', (c) => c.notNull())
      .execute();
    // Recent flow messages were written without running figures: their days are computed from
    // messages until final. A new database (none) keeps running figures from the start.
    const now = Date.now();
    const recent = await db
      .selectFrom('msg_messages')
      .select('id')
      .where('created_at', '>=', new Date(now - 10 * 86_400_000).toISOString())
      .where('flow_id', 'is not', null)
      .limit(1)
      .executeTakeFirst();
    const liveFrom = recent
      ? new Date(Math.floor(now / 86_400_000 + 1) * 86_400_000).toISOString().slice(0, 10)
      : '1970-01-01';
    await db.insertInto('msg_report_state').values({ id: 1, live_from: liveFrom }).execute();
  },
};

/**
 * The fold no longer rewrites messages (0293 kept its flag and counted bits in msg_messages; each
 * fold then wrote a new version of the wide row into every index of the table, which cost
 * PostgreSQL a third more CPU on the keyword path, docs/performance.md):
 * - msg_flow_report_queue: a row per write that may change a flow message's figures (insert
 *   only; the fold deletes what it folded).
 * - msg_flow_message_figures: per flow message of a day not yet final, the bits its day holds of
 *   it (keyed by day first: retention deletes final days by range).
 * The state 0293 kept moves over; its index and columns go.
 */
export const messagingFlowReportQueueMigration: TallyMigration = {
  name: '0294_messaging_flow_report_queue',
  async up(db, dialect) {
    await db.schema
      .createTable('msg_flow_report_queue')
      .addColumn('seq', autoIncrementType(dialect), autoIncrementKey(dialect))
      .addColumn('message_id', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('msg_flow_message_figures')
      .addColumn('day', 'text', (c) => c.notNull())
      .addColumn('message_id', 'text', (c) => c.notNull())
      .addColumn('counted', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('msg_flow_message_figures_pk', ['day', 'message_id'])
      .execute();
    // Only days not final yet still have running figures (by msg_messages_created).
    const since = new Date(Date.now() - 11 * 86_400_000).toISOString();
    await db
      .insertInto('msg_flow_message_figures')
      .columns(['day', 'message_id', 'counted'])
      .expression((eb) =>
        eb
          .selectFrom('msg_messages')
          .select([sql<string>`substr(created_at, 1, 10)`.as('day'), 'id', 'report_counted'])
          .where('created_at', '>=', since)
          .where('report_counted', 'is not', null),
      )
      .execute();
    await db
      .insertInto('msg_flow_report_queue')
      .columns(['message_id'])
      .expression((eb) =>
        eb.selectFrom('msg_messages').select('id').where(sql<boolean>`report_pending = 1`).orderBy('created_at'),
      )
      .execute();
    await db.schema.dropIndex('msg_messages_report_pending').execute();
    await db.schema.alterTable('msg_messages').dropColumn('report_pending').execute();
    await db.schema.alterTable('msg_messages').dropColumn('report_counted').execute();
  },
};

/**
 * msg_flow_live_days.sketch_revision: raised by the fold each time it changes a day's sketches
 * (live-days.ts), so that a report's cached union of the days it already merged is known to be
 * current without reading the sketches again (reports.ts, StoredUnions).
 */
export const messagingFlowSketchRevisionMigration: TallyMigration = {
  name: '0295_messaging_flow_sketch_revision',
  async up(db) {
    await db.schema
      .alterTable('msg_flow_live_days')
      .addColumn('sketch_revision', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  },
};
