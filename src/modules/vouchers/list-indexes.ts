import type { TallyMigration, UntypedDb } from '../../storage/migrate.ts';

// Indexes found missing by test/plans.test.ts (issue #18): the redemptions of a voucher are
// filtered by its code or its id (`GET /v1/redemptions?voucher=`); only the id had an index, so the
// OR read every redemption.
export const vouchersListIndexesMigration: TallyMigration = {
  name: '0580_vouchers_list_indexes',
  async up(db: UntypedDb) {
    await db.schema
      .createIndex('redemptions_voucher_code')
      .ifNotExists()
      .on('redemptions')
      .columns(['voucher_code', 'created_at'])
      .execute();
  },
};

// The vouchers and the redemptions of a campaign newest first (`GET /v1/vouchers?campaign_id=`,
// `GET /v1/redemptions?campaign=`), each a walk of its index (storage/paging.ts, KeyWalk). Before
// them a page was every voucher of the campaign sorted (vouchers_campaign is by holder) or the
// created index walked back past every other campaign's newer rows, and the redemptions of a
// campaign had no index at all (found by test/plans.test.ts with sorts disabled).
// IF NOT EXISTS, as 0580 and messaging's 0296: on large PostgreSQL tables an operator builds these
// ahead with CREATE INDEX CONCURRENTLY (the README's statements, run by test/indexes-ahead.test.ts),
// since a migration's transaction cannot, and the migration then finds them.
export const vouchersCampaignOrderMigration: TallyMigration = {
  name: '0581_vouchers_campaign_order',
  async up(db: UntypedDb) {
    await db.schema
      .createIndex('vouchers_campaign_created')
      .ifNotExists()
      .on('vouchers')
      .columns(['campaign_id', 'created_at', 'id'])
      .execute();
    await db.schema
      .createIndex('redemptions_campaign_created')
      .ifNotExists()
      .on('redemptions')
      .columns(['campaign_id', 'created_at', 'id'])
      .execute();
  },
};
