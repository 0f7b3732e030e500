import type { Kysely } from 'kysely';
import type { TallyMigration } from '../../../storage/migrate.ts';

// Referral codes (range 0550-0579): the referrer a code was published to. The referral program
// itself (its rewards, tiers, referees) belongs to the referrals module (0700_referrals_core).
export const vouchersReferralCodeMigration: TallyMigration = {
  name: '0550_vouchers_referral_code',
  async up(db: Kysely<any>) {
    await db.schema.alterTable('vouchers').addColumn('referrer_id', 'text').execute();
    await db.schema.createIndex('vouchers_referrer').on('vouchers').columns(['referrer_id']).execute();
  },
};
