import type { TallyModule } from '../module.ts';
import './tables.ts';
import { referralsMigration } from './migrations.ts';
import { referralRoutes } from './routes.ts';

/** Referral programs of REFERRAL_PROGRAM campaigns: referrer tiers, referees, rewards given, holders. */
export const referralsModule: TallyModule = {
  name: 'referrals',
  migrations: [referralsMigration],
  routes: referralRoutes,
};
