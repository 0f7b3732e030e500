import type { TallyMigration, UntypedDb } from '../../storage/migrate.ts';

// Indexes found missing by test/plans.test.ts (issue #18): the redemptions of a voucher are
// filtered by its code or its id (`GET /v1/redemptions?voucher=`); only the id had an index, so the
// OR read every redemption.
export const vouchersListIndexesMigration: TallyMigration = {
  name: '0580_vouchers_list_indexes',
  async up(db: UntypedDb) {
    await db.schema
      .createIndex('redemptions_voucher_code')
      .on('redemptions')
      .columns(['voucher_code', 'created_at'])
      .execute();
  },
};
