import type { Kysely } from 'kysely';
import type { TallyMigration } from '../../storage/migrate.ts';

// Referrals (range 0700-0749): referral programs of REFERRAL_PROGRAM campaigns, their referrer
// tiers, the referees (one per campaign: the unique index is what "referred once" rests on), each
// referrer's count (the row that orders one referrer's conversions), the rewards given and the
// referee holders of the codes.
export const referralsMigration: TallyMigration = {
  name: '0700_referrals_core',
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('referral_programs')
      .addColumn('campaign_id', 'text', (c) => c.primaryKey())
      .addColumn('conversion_event_type', 'text', (c) => c.notNull())
      .addColumn('custom_event', 'text')
      .addColumn('referee_reward', 'text')
      .addColumn('new_customers_only', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .execute();

    await db.schema
      .createTable('referral_tiers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('campaign_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('banner', 'text')
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('referees', 'integer', (c) => c.notNull())
      .addColumn('reward', 'text', (c) => c.notNull())
      .addColumn('conditions', 'text')
      .addColumn('metadata', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .addColumn('deleted_at', 'text')
      .execute();
    await db.schema.createIndex('referral_tiers_campaign').on('referral_tiers').columns(['campaign_id']).execute();

    await db.schema
      .createTable('referrals')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('campaign_id', 'text', (c) => c.notNull())
      .addColumn('referrer_id', 'text', (c) => c.notNull())
      .addColumn('referee_id', 'text', (c) => c.notNull())
      .addColumn('voucher_id', 'text', (c) => c.notNull())
      .addColumn('code', 'text', (c) => c.notNull())
      .addColumn('conversion', 'text', (c) => c.notNull())
      .addColumn('related_object_id', 'text', (c) => c.notNull())
      .addColumn('source_key', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('referrals_campaign_referee')
      .on('referrals')
      .columns(['campaign_id', 'referee_id'])
      .unique()
      .execute();
    await db.schema.createIndex('referrals_referrer').on('referrals').columns(['referrer_id', 'campaign_id']).execute();
    await db.schema.createIndex('referrals_referee').on('referrals').columns(['referee_id']).execute();

    await db.schema
      .createTable('referral_rewards')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('referral_id', 'text', (c) => c.notNull())
      .addColumn('campaign_id', 'text', (c) => c.notNull())
      .addColumn('tier_id', 'text')
      .addColumn('customer_id', 'text', (c) => c.notNull())
      .addColumn('role', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('amount', 'bigint')
      .addColumn('reward_id', 'text')
      .addColumn('details', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('referral_rewards_customer')
      .on('referral_rewards')
      .columns(['customer_id', 'created_at'])
      .execute();

    await db.schema
      .createTable('referral_counts')
      .addColumn('campaign_id', 'text', (c) => c.notNull())
      .addColumn('referrer_id', 'text', (c) => c.notNull())
      .addColumn('referred', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('referral_counts_pk', ['campaign_id', 'referrer_id'])
      .execute();

    await db.schema
      .createTable('referral_holders')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('campaign_id', 'text', (c) => c.notNull())
      .addColumn('voucher_id', 'text', (c) => c.notNull())
      .addColumn('customer_id', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('referral_holders_voucher_customer')
      .on('referral_holders')
      .columns(['voucher_id', 'customer_id'])
      .unique()
      .execute();
  },
};
