import type { Kysely } from 'kysely';
import type { TallyMigration } from '../../storage/migrate.ts';

// Vouchers (range 0500-0599): voucher campaigns, vouchers, publications and every redemption.
export const vouchersMigration: TallyMigration = {
  name: '0500_vouchers_core',
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('voucher_campaigns')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('description', 'text')
      .addColumn('campaign_type', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('voucher', 'text', (c) => c.notNull())
      .addColumn('active', 'integer', (c) => c.notNull())
      .addColumn('join_once', 'integer', (c) => c.notNull())
      .addColumn('start_date', 'text')
      .addColumn('expiration_date', 'text')
      .addColumn('metadata', 'text')
      .addColumn('extra', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .addColumn('deleted_at', 'text')
      .execute();

    await db.schema
      .createTable('vouchers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('code', 'text', (c) => c.notNull().unique())
      .addColumn('campaign_id', 'text')
      .addColumn('campaign_name', 'text')
      .addColumn('program_id', 'text')
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('discount', 'text')
      .addColumn('gift_amount', 'bigint')
      .addColumn('gift_balance', 'bigint')
      .addColumn('start_date', 'text')
      .addColumn('expiration_date', 'text')
      .addColumn('active', 'integer', (c) => c.notNull())
      .addColumn('quantity', 'integer')
      .addColumn('redeemed_quantity', 'integer', (c) => c.notNull())
      .addColumn('holder_id', 'text')
      .addColumn('published_at', 'text')
      .addColumn('offer', 'text')
      .addColumn('metadata', 'text')
      .addColumn('expired_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text')
      .addColumn('deleted_at', 'text')
      .execute();
    // A campaign's free codes (holder null) are found by this index; a customer's vouchers by the next.
    await db.schema.createIndex('vouchers_campaign').on('vouchers').columns(['campaign_id', 'holder_id']).execute();
    await db.schema.createIndex('vouchers_holder').on('vouchers').columns(['holder_id', 'created_at']).execute();
    await db.schema.createIndex('vouchers_created').on('vouchers').columns(['created_at', 'id']).execute();

    await db.schema
      .createTable('publications')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('voucher_id', 'text', (c) => c.notNull())
      .addColumn('campaign_id', 'text')
      .addColumn('customer_id', 'text', (c) => c.notNull())
      .addColumn('source_id', 'text')
      .addColumn('channel', 'text')
      .addColumn('metadata', 'text')
      .addColumn('join_key', 'text', (c) => c.unique())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('publications_created').on('publications').columns(['created_at', 'id']).execute();
    await db.schema
      .createIndex('publications_customer')
      .on('publications')
      .columns(['customer_id', 'campaign_id'])
      .execute();

    await db.schema
      .createTable('redemptions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('voucher_id', 'text')
      .addColumn('voucher_code', 'text')
      .addColumn('campaign_id', 'text')
      .addColumn('program_id', 'text')
      .addColumn('customer_id', 'text')
      .addColumn('reward_id', 'text')
      .addColumn('assignment_id', 'text')
      .addColumn('membership_id', 'text')
      .addColumn('points', 'bigint')
      .addColumn('amount', 'bigint')
      .addColumn('order', 'text')
      .addColumn('metadata', 'text')
      .addColumn('tracking_id', 'text')
      .addColumn('details', 'text')
      .addColumn('result', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('rollback_id', 'text')
      .addColumn('rollback_reason', 'text')
      .addColumn('rolled_back_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('redemptions_created').on('redemptions').columns(['created_at', 'id']).execute();
    await db.schema
      .createIndex('redemptions_voucher')
      .on('redemptions')
      .columns(['voucher_id', 'created_at'])
      .execute();
    await db.schema
      .createIndex('redemptions_customer')
      .on('redemptions')
      .columns(['customer_id', 'created_at'])
      .execute();
  },
};

// Refused redemptions are kept (Voucherify's `result: FAILURE` with `failure_code`/`failure_message`),
// and a reward redemption remembers the point lots its debit took, so a rollback gives them back
// with their own expiry dates.
export const redemptionFailuresMigration: TallyMigration = {
  name: '0501_redemption_failures_and_spent_lots',
  async up(db: Kysely<any>) {
    await db.schema.alterTable('redemptions').addColumn('failure_code', 'text').execute();
    await db.schema.alterTable('redemptions').addColumn('failure_message', 'text').execute();
    await db.schema.alterTable('redemptions').addColumn('spent_lots', 'text').execute();
    await db.schema
      .createIndex('redemptions_result')
      .on('redemptions')
      .columns(['result', 'created_at', 'id'])
      .execute();
  },
};

// `pooled`: the campaign has (or had) unpublished codes of its own (imported, created in it, or
// generated ahead by vouchers_count), so a publication must look for a free one first. A campaign
// that never had any skips that read and generates a code at once (the reward redemption's path,
// issue.ts).
export const campaignPooledMigration: TallyMigration = {
  name: '0502_voucher_campaigns_pooled',
  async up(db: Kysely<any>) {
    await db.schema
      .alterTable('voucher_campaigns')
      .addColumn('pooled', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db
      .updateTable('voucher_campaigns')
      .set({ pooled: 1 })
      .where((eb) =>
        eb.or([
          eb('type', '=', 'STATIC'),
          eb.exists(
            eb
              .selectFrom('vouchers')
              .select('vouchers.id')
              .whereRef('vouchers.campaign_id', '=', 'voucher_campaigns.id')
              .where('vouchers.holder_id', 'is', null),
          ),
        ]),
      )
      .execute();
  },
};
