import type { Kysely } from 'kysely';
import type { TallyMigration } from '../../storage/migrate.ts';

// Program rules (range 0300-0399): earning rules, ingested activity, orders, caps, pending points.
// Until the tiers module owned its tables this migration also created them; databases that ran it
// then keep them, and 0301_tiers_core (tiers/migrations.ts) creates them only where they are missing.
export const rulesMigration: TallyMigration = {
  name: '0300_rules_core',
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('earning_rules')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('program_id', 'text', (c) => c.notNull().references('programs.id'))
      .addColumn('event', 'text', (c) => c.notNull())
      .addColumn('active', 'integer', (c) => c.notNull())
      .addColumn('definition', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .execute();
    await db.schema
      .createIndex('earning_rules_program')
      .on('earning_rules')
      .columns(['program_id', 'created_at', 'id'])
      .execute();

    await db.schema
      .createTable('processed_activities')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('id', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('customer_id', 'text')
      .addColumn('result', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('orders')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('source_id', 'text', (c) => c.unique())
      .addColumn('customer_id', 'text')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('amount', 'bigint')
      .addColumn('discount_amount', 'bigint')
      .addColumn('total_amount', 'bigint')
      .addColumn('items', 'text')
      .addColumn('metadata', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .addColumn('paid_at', 'text')
      .execute();
    await db.schema.createIndex('orders_customer').on('orders').columns(['customer_id', 'created_at']).execute();

    await db.schema
      .createTable('earning_rule_usage')
      .addColumn('earning_rule_id', 'text', (c) => c.notNull())
      .addColumn('membership_id', 'text', (c) => c.notNull())
      .addColumn('period_key', 'text', (c) => c.notNull())
      .addColumn('points', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('earning_rule_usage_pk', ['earning_rule_id', 'membership_id', 'period_key'])
      .execute();

    await db.schema
      .createTable('pending_points')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('program_id', 'text', (c) => c.notNull())
      .addColumn('membership_id', 'text', (c) => c.notNull())
      .addColumn('customer_id', 'text', (c) => c.notNull())
      .addColumn('balance_definition_id', 'text', (c) => c.notNull())
      .addColumn('earning_rule_id', 'text')
      .addColumn('order_id', 'text')
      .addColumn('points', 'bigint', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('activates_at', 'text', (c) => c.notNull())
      .addColumn('details', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .execute();
    await db.schema
      .createIndex('pending_points_member')
      .on('pending_points')
      .columns(['membership_id', 'created_at', 'id'])
      .execute();
    await db.schema
      .createIndex('pending_points_program')
      .on('pending_points')
      .columns(['program_id', 'created_at', 'id'])
      .execute();
  },
};
