import type { Kysely } from 'kysely';
import type { TallyMigration } from '../../storage/migrate.ts';

// The tiers module's tables: tier groups, tiers, member tiers and their history (range 0300-0399,
// program rules). Databases created before this migration existed got these tables from
// 0300_rules_core (earning/migrations.ts), which then also created them: every statement here is
// IF NOT EXISTS, so there it changes nothing, and on a new database it creates them.
export const tiersMigration: TallyMigration = {
  name: '0301_tiers_core',
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('tier_groups')
      .ifNotExists()
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('program_id', 'text', (c) => c.notNull().references('programs.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('is_default', 'integer', (c) => c.notNull())
      .addColumn('balance_definition_id', 'text')
      .addColumn('qualification', 'text')
      .addColumn('metadata', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .addUniqueConstraint('tier_groups_program_name', ['program_id', 'name'])
      .execute();

    await db.schema
      .createTable('tiers')
      .ifNotExists()
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('program_id', 'text', (c) => c.notNull())
      .addColumn('tier_group_id', 'text', (c) => c.notNull().references('tier_groups.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('points_from', 'bigint', (c) => c.notNull())
      .addColumn('points_to', 'bigint')
      .addColumn('earning_rules', 'text')
      .addColumn('rewards', 'text')
      .addColumn('metadata', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .execute();
    await db.schema
      .createIndex('tiers_program')
      .ifNotExists()
      .on('tiers')
      .columns(['program_id', 'tier_group_id', 'points_from'])
      .execute();

    await db.schema
      .createTable('member_tiers')
      .ifNotExists()
      .addColumn('membership_id', 'text', (c) => c.notNull())
      .addColumn('tier_group_id', 'text', (c) => c.notNull())
      .addColumn('program_id', 'text', (c) => c.notNull())
      .addColumn('tier_id', 'text')
      .addColumn('attributed_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('member_tiers_pk', ['membership_id', 'tier_group_id'])
      .execute();

    await db.schema
      .createTable('tier_associations')
      .ifNotExists()
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('membership_id', 'text', (c) => c.notNull())
      .addColumn('tier_group_id', 'text', (c) => c.notNull())
      .addColumn('program_id', 'text', (c) => c.notNull())
      .addColumn('from_tier_id', 'text')
      .addColumn('tier_id', 'text')
      .addColumn('upgraded', 'integer', (c) => c.notNull())
      .addColumn('attributed_at', 'text', (c) => c.notNull())
      .addColumn('source_event_id', 'text')
      .execute();
    await db.schema
      .createIndex('tier_associations_member')
      .ifNotExists()
      .on('tier_associations')
      .columns(['membership_id', 'attributed_at'])
      .execute();
  },
};

/** Tier anniversary reminders of a tier group (`reminders: [{unit, value}]`, JSON; null: none). */
export const tierGroupRemindersMigration: TallyMigration = {
  name: '0302_tiers_group_reminders',
  async up(db: Kysely<any>) {
    await db.schema.alterTable('tier_groups').addColumn('reminders', 'text').execute();
  },
};

/**
 * When a tier group moves members up and down: `real_time` (at the balance change, as before),
 * `membership_anniversary` or `tier_anniversary` (at the card's or the tier's year anniversary).
 */
export const tierGroupStrategiesMigration: TallyMigration = {
  name: '0303_tiers_group_strategies',
  async up(db: Kysely<any>) {
    await db.schema
      .alterTable('tier_groups')
      .addColumn('upgrade_strategy', 'text', (c) => c.notNull().defaultTo('real_time'))
      .execute();
    await db.schema
      .alterTable('tier_groups')
      .addColumn('downgrade_strategy', 'text', (c) => c.notNull().defaultTo('real_time'))
      .execute();
  },
};
