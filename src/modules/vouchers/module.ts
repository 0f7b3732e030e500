import type { TallyModule } from '../module.ts';
import './tables.ts';
import { vouchersMigration } from './migrations.ts';
import { vouchersListIndexesMigration } from './list-indexes.ts';
import { voucherRoutes } from './routes.ts';

/** Voucher campaigns, vouchers, publications, validations, redemptions (and the expiry job). */
export const vouchersModule: TallyModule = {
  name: 'vouchers',
  migrations: [vouchersMigration, vouchersListIndexesMigration],
  routes: voucherRoutes,
  jobs: (_ctx, services) => services.vouchers.registerJobs(),
};
