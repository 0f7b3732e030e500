import type { Kysely } from 'kysely';
import { autoIncrementKey, autoIncrementType, type TallyMigration } from '../../storage/migrate.ts';
import { resealAll } from '../../storage/sealed.ts';
import { channelSealedColumns } from './secrets.ts';

export const messagingMigration: TallyMigration = {
  name: '0200_messaging_core',
  async up(db: Kysely<any>, dialect) {
    const seq = autoIncrementType(dialect);
    await db.schema
      .createTable('msg_channels')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('provider', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('sender', 'text', (c) => c.notNull())
      .addColumn('credentials', 'text')
      .addColumn('inbound_auth', 'text')
      .addColumn('public_url', 'text')
      .addColumn('settings', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .addColumn('deleted_at', 'text')
      .execute();

    await db.schema
      .createTable('msg_flows')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('program_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('current_version', 'integer', (c) => c.notNull())
      .addColumn('active', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .addColumn('deleted_at', 'text')
      .execute();

    await db.schema
      .createTable('msg_flow_versions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('flow_id', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('definition', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('msg_flow_versions_flow_version', ['flow_id', 'version'])
      .execute();

    await db.schema
      .createTable('msg_triggers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('flow_id', 'text', (c) => c.notNull())
      .addColumn('program_id', 'text', (c) => c.notNull())
      .addColumn('keyword', 'text', (c) => c.notNull())
      .addColumn('alias', 'text', (c) => c.notNull())
      .addColumn('match', 'text', (c) => c.notNull())
      .addColumn('channel_id', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('msg_triggers_keyword').on('msg_triggers').columns(['keyword', 'channel_id']).execute();
    await db.schema.createIndex('msg_triggers_flow').on('msg_triggers').column('flow_id').execute();

    await db.schema
      .createTable('msg_messages')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('channel_id', 'text', (c) => c.notNull())
      .addColumn('direction', 'text', (c) => c.notNull())
      .addColumn('inbound_key', 'text', (c) => c.unique())
      .addColumn('provider_message_id', 'text')
      .addColumn('from_number', 'text', (c) => c.notNull())
      .addColumn('to_number', 'text', (c) => c.notNull())
      .addColumn('text', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('error', 'text')
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('next_attempt_at', 'text')
      .addColumn('locked_until', 'text')
      .addColumn('flow_id', 'text')
      .addColumn('flow_version', 'integer')
      .addColumn('keyword', 'text')
      .addColumn('conversation_id', 'text')
      .addColumn('broadcast_id', 'text')
      .addColumn('in_reply_to', 'text')
      .addColumn('program_id', 'text')
      .addColumn('customer_id', 'text')
      .addColumn('membership_id', 'text')
      .addColumn('system', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('sent_at', 'text')
      .addColumn('delivered_at', 'text')
      .execute();
    await db.schema.createIndex('msg_messages_due').on('msg_messages').columns(['status', 'next_attempt_at']).execute();
    await db.schema
      .createIndex('msg_messages_provider')
      .on('msg_messages')
      .columns(['channel_id', 'provider_message_id'])
      .execute();
    await db.schema.createIndex('msg_messages_flow').on('msg_messages').columns(['flow_id', 'created_at']).execute();

    await db.schema
      .createTable('msg_conversations')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('channel_id', 'text', (c) => c.notNull())
      .addColumn('phone', 'text', (c) => c.notNull())
      .addColumn('flow_id', 'text', (c) => c.notNull())
      .addColumn('flow_version', 'integer', (c) => c.notNull())
      .addColumn('step_id', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('vars', 'text')
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('msg_conversations_open')
      .on('msg_conversations')
      .columns(['channel_id', 'phone', 'state'])
      .execute();

    await db.schema
      .createTable('msg_consents')
      .addColumn('phone', 'text', (c) => c.primaryKey())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('channel_id', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('msg_consent_events')
      .addColumn('seq', seq, autoIncrementKey(dialect))
      .addColumn('id', 'text', (c) => c.notNull().unique())
      .addColumn('phone', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('channel_id', 'text')
      .addColumn('keyword', 'text')
      .addColumn('message_id', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('msg_consent_events_phone')
      .on('msg_consent_events')
      .columns(['phone', 'created_at'])
      .execute();

    await db.schema
      .createTable('msg_broadcasts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('flow_id', 'text', (c) => c.notNull())
      .addColumn('flow_version', 'integer', (c) => c.notNull())
      .addColumn('program_id', 'text', (c) => c.notNull())
      .addColumn('channel_id', 'text', (c) => c.notNull())
      .addColumn('filters', 'text')
      .addColumn('text', 'text', (c) => c.notNull())
      .addColumn('total', 'integer', (c) => c.notNull())
      .addColumn('queued', 'integer', (c) => c.notNull())
      .addColumn('skipped', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
  },
};

/** WhatsApp template messages (business-initiated, outside the 24 h window): the template sent. */
export const messagingTemplatesMigration: TallyMigration = {
  name: '0201_messaging_templates',
  async up(db) {
    await db.schema.alterTable('msg_messages').addColumn('template', 'text').execute();
    await db.schema.alterTable('msg_broadcasts').addColumn('template', 'text').execute();
  },
};

/** Broadcasts prepared in chunks (in the background beyond the first ones): state and cursor. */
export const messagingBroadcastChunksMigration: TallyMigration = {
  name: '0202_messaging_broadcast_chunks',
  async up(db) {
    // Broadcasts of before were prepared whole in their request: they count as queued.
    await db.schema
      .alterTable('msg_broadcasts')
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('queued'))
      .execute();
    for (const column of ['cursor_created_at', 'cursor_id', 'first_send_at', 'last_send_at', 'updated_at']) {
      await db.schema.alterTable('msg_broadcasts').addColumn(column, 'text').execute();
    }
    await db.schema.alterTable('msg_broadcasts').addColumn('max_recipients', 'integer').execute();
    await db.schema
      .createIndex('msg_broadcasts_status')
      .on('msg_broadcasts')
      .columns(['status', 'created_at'])
      .execute();
    await db.schema
      .createIndex('msg_messages_broadcast')
      .on('msg_messages')
      .columns(['broadcast_id', 'to_number'])
      .execute();
  },
};

/**
 * Channel secrets stored in clear until now: provider credentials encrypted, inbound tokens and
 * Basic passwords replaced by sealed digests (secrets.ts).
 */
export const messagingSealedSecretsMigration: TallyMigration = {
  name: '0203_messaging_sealed_secrets',
  async up(db, _dialect, env) {
    for (const column of channelSealedColumns) await resealAll(db, env.secrets, column);
  },
};
