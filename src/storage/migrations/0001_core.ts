import type { Kysely } from 'kysely';
import type { TallyMigration } from '../migrate.ts';
import { autoIncrementType } from '../migrate.ts';

// The core schema: keys, customers, programs, balance definitions, memberships, balances,
// the ledger with its lots, the event outbox, idempotency records and timed jobs.
export const coreMigration: TallyMigration = {
  name: '0001_core',
  async up(db: Kysely<any>, dialect) {
    const seq = autoIncrementType(dialect);

    await db.schema
      .createTable('api_keys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('app_id', 'text', (c) => c.notNull().unique())
      .addColumn('token_hash', 'text', (c) => c.notNull())
      .addColumn('token_prefix', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_used_at', 'text')
      .addColumn('revoked_at', 'text')
      .execute();
    await db.schema.createIndex('api_keys_token_hash').on('api_keys').column('token_hash').execute();

    await db.schema
      .createTable('customers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('source_id', 'text', (c) => c.unique())
      .addColumn('name', 'text')
      .addColumn('email', 'text')
      .addColumn('phone', 'text')
      .addColumn('description', 'text')
      .addColumn('birthdate', 'text')
      .addColumn('address', 'text')
      .addColumn('metadata', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .execute();
    await db.schema.createIndex('customers_phone').on('customers').column('phone').execute();
    await db.schema.createIndex('customers_email').on('customers').column('email').execute();
    await db.schema.createIndex('customers_created').on('customers').columns(['created_at', 'id']).execute();

    await db.schema
      .createTable('programs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('auto_join', 'integer', (c) => c.notNull())
      .addColumn('join_once', 'integer', (c) => c.notNull())
      .addColumn('active', 'integer', (c) => c.notNull())
      .addColumn('start_date', 'text')
      .addColumn('expiration_date', 'text')
      .addColumn('timezone', 'text', (c) => c.notNull())
      .addColumn('metadata', 'text')
      .addColumn('voucher', 'text', (c) => c.notNull())
      .addColumn('extra', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .addColumn('deleted_at', 'text')
      .execute();

    await db.schema
      .createTable('balance_definitions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('program_id', 'text', (c) => c.notNull().references('programs.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('unit', 'text', (c) => c.notNull())
      .addColumn('min_value', 'bigint')
      .addColumn('max_value', 'bigint')
      .addColumn('is_default', 'integer', (c) => c.notNull())
      .addColumn('expiration', 'text')
      .addColumn('metadata', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .addUniqueConstraint('balance_definitions_program_name', ['program_id', 'name'])
      .execute();

    await db.schema
      .createTable('memberships')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('code', 'text', (c) => c.notNull().unique())
      .addColumn('program_id', 'text', (c) => c.notNull().references('programs.id'))
      .addColumn('customer_id', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('join_key', 'text', (c) => c.unique())
      .addColumn('metadata', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .addColumn('revoked_at', 'text')
      .execute();
    await db.schema
      .createIndex('memberships_program')
      .on('memberships')
      .columns(['program_id', 'created_at', 'id'])
      .execute();
    await db.schema
      .createIndex('memberships_customer')
      .on('memberships')
      .columns(['customer_id', 'program_id'])
      .execute();

    await db.schema
      .createTable('balances')
      .addColumn('membership_id', 'text', (c) => c.notNull().references('memberships.id'))
      .addColumn('balance_definition_id', 'text', (c) => c.notNull().references('balance_definitions.id'))
      .addColumn('program_id', 'text', (c) => c.notNull())
      .addColumn('balance', 'bigint', (c) => c.notNull())
      .addColumn('points', 'bigint', (c) => c.notNull())
      .addColumn('pending_points', 'bigint', (c) => c.notNull())
      .addColumn('expired_points', 'bigint', (c) => c.notNull())
      .addColumn('subtracted_points', 'bigint', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('balances_pk', ['membership_id', 'balance_definition_id'])
      .execute();

    await db.schema
      .createTable('ledger_entries')
      .addColumn('seq', seq, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
      .addColumn('id', 'text', (c) => c.notNull().unique())
      .addColumn('membership_id', 'text', (c) => c.notNull())
      .addColumn('program_id', 'text', (c) => c.notNull())
      .addColumn('balance_definition_id', 'text', (c) => c.notNull())
      .addColumn('customer_id', 'text')
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('points', 'bigint', (c) => c.notNull())
      .addColumn('balance_after', 'bigint', (c) => c.notNull())
      .addColumn('source_id', 'text')
      .addColumn('source', 'text')
      .addColumn('reason', 'text')
      .addColumn('details', 'text')
      .addColumn('related_transaction_id', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('ledger_membership_seq')
      .on('ledger_entries')
      .columns(['membership_id', 'seq'])
      .execute();
    await db.schema.createIndex('ledger_program_seq').on('ledger_entries').columns(['program_id', 'seq']).execute();

    await db.schema
      .createTable('point_lots')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('membership_id', 'text', (c) => c.notNull())
      .addColumn('balance_definition_id', 'text', (c) => c.notNull())
      .addColumn('ledger_entry_id', 'text', (c) => c.notNull())
      .addColumn('points', 'bigint', (c) => c.notNull())
      .addColumn('remaining', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('point_lots_open')
      .on('point_lots')
      .columns(['membership_id', 'balance_definition_id', 'remaining'])
      .execute();
    await db.schema.createIndex('point_lots_expiry').on('point_lots').columns(['expires_at', 'remaining']).execute();

    await db.schema
      .createTable('outbox_events')
      .addColumn('seq', seq, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
      .addColumn('id', 'text', (c) => c.notNull().unique())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('data', 'text', (c) => c.notNull())
      .addColumn('resource_type', 'text')
      .addColumn('resource_id', 'text')
      .addColumn('program_id', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('outbox_type_seq').on('outbox_events').columns(['type', 'seq']).execute();
    await db.schema.createIndex('outbox_resource').on('outbox_events').columns(['resource_id', 'seq']).execute();
    await db.schema.createIndex('outbox_created').on('outbox_events').column('created_at').execute();

    await db.schema
      .createTable('idempotency_keys')
      .addColumn('scope', 'text', (c) => c.notNull())
      .addColumn('key', 'text', (c) => c.notNull())
      .addColumn('method', 'text', (c) => c.notNull())
      .addColumn('path', 'text', (c) => c.notNull())
      .addColumn('request_hash', 'text', (c) => c.notNull())
      .addColumn('status_code', 'integer')
      .addColumn('response_body', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('idempotency_keys_pk', ['scope', 'key'])
      .execute();
    await db.schema.createIndex('idempotency_created').on('idempotency_keys').column('created_at').execute();

    await db.schema
      .createTable('scheduled_jobs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('run_at', 'text', (c) => c.notNull())
      .addColumn('payload', 'text')
      .addColumn('unique_key', 'text', (c) => c.unique())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('locked_by', 'text')
      .addColumn('locked_until', 'text')
      .addColumn('last_error', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('scheduled_jobs_due').on('scheduled_jobs').columns(['state', 'run_at']).execute();
  },
};
