import type { TallyMigration, UntypedDb } from '../../../storage/migrate.ts';

// A stacked redemption (POST /v1/redemptions with several redeemables) keeps a parent redemption,
// as Voucherify does: a `redemptions` row of `kind: 'stack'` (no voucher, the whole order), and each
// child row names it in `parent_redemption_id`. The index serves the rollback of a stack (its
// children) and `GET /v1/redemptions?parent_redemption_id=` (newest first).
export const redemptionParentsMigration: TallyMigration = {
  name: '0503_redemption_parents',
  async up(db: UntypedDb) {
    await db.schema.alterTable('redemptions').addColumn('parent_redemption_id', 'text').execute();
    await db.schema
      .createIndex('redemptions_parent')
      .on('redemptions')
      .columns(['parent_redemption_id', 'created_at', 'id'])
      .execute();
  },
};
