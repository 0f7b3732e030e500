import type { TallyModule } from '../module.ts';
import './tables.ts';
import { campaignPooledMigration, redemptionFailuresMigration, vouchersMigration } from './migrations.ts';
import { redemptionParentsMigration } from './migrations/0503_redemption_parents.ts';
import { vouchersReferralCodeMigration } from './migrations/0550_vouchers_referral_code.ts';
import { vouchersCampaignOrderMigration, vouchersListIndexesMigration } from './list-indexes.ts';
import { voucherRoutes } from './routes.ts';

/** Voucher campaigns, vouchers, publications, validations, redemptions (and the expiry job). */
export const vouchersModule: TallyModule = {
  name: 'vouchers',
  migrations: [
    vouchersMigration,
    redemptionFailuresMigration,
    campaignPooledMigration,
    redemptionParentsMigration,
    vouchersReferralCodeMigration,
    vouchersListIndexesMigration,
    vouchersCampaignOrderMigration,
  ],
  routes: voucherRoutes,
  jobs: (_ctx, services) => services.vouchers.registerJobs(),
};
