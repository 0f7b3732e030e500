import type { TallyModule } from '../module.ts';
import './tables.ts';
import { campaignPooledMigration, redemptionFailuresMigration, vouchersMigration } from './migrations.ts';
import { voucherRoutes } from './routes.ts';

/** Voucher campaigns, vouchers, publications, validations, redemptions (and the expiry job). */
export const vouchersModule: TallyModule = {
  name: 'vouchers',
  migrations: [vouchersMigration, redemptionFailuresMigration, campaignPooledMigration],
  routes: voucherRoutes,
  jobs: (_ctx, services) => services.vouchers.registerJobs(),
};
