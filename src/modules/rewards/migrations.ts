import type { Kysely } from 'kysely';
import type { TallyMigration } from '../../storage/migrate.ts';

// Rewards (range 0600-0649): rewards and their assignments to loyalty programs. Reward redemptions
// are rows of the vouchers module's `redemptions` table (kind `reward`).
export const rewardsMigration: TallyMigration = {
  name: '0600_rewards_core',
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('rewards')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('parameters', 'text', (c) => c.notNull())
      .addColumn('stock', 'bigint')
      .addColumn('redeemed', 'bigint', (c) => c.notNull())
      .addColumn('attributes', 'text')
      .addColumn('metadata', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .execute();
    await db.schema.createIndex('rewards_created').on('rewards').columns(['created_at', 'id']).execute();

    await db.schema
      .createTable('reward_assignments')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('reward_id', 'text', (c) => c.notNull().references('rewards.id'))
      .addColumn('program_id', 'text', (c) => c.notNull().references('programs.id'))
      .addColumn('points', 'bigint')
      .addColumn('auto_redeem', 'integer')
      .addColumn('validation_rules', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .execute();
    await db.schema
      .createIndex('reward_assignments_reward_program')
      .on('reward_assignments')
      .columns(['reward_id', 'program_id'])
      .unique()
      .execute();
    await db.schema
      .createIndex('reward_assignments_program')
      .on('reward_assignments')
      .columns(['program_id', 'created_at', 'id'])
      .execute();
  },
};
