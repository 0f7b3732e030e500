import { coreMigration } from '../storage/migrations/0001_core.ts';
import { dropLotExpiryIndexMigration } from '../storage/migrations/0002_core_drop_lot_expiry_index.ts';
import { cacheChangesMigration } from '../storage/migrations/0003_core_cache_changes.ts';
import { apiKeysNoTokenPrefixMigration } from '../storage/migrations/0004_core_api_keys_no_token_prefix.ts';
import { balanceDefinitionRemindersMigration } from '../storage/migrations/0005_core_balance_definition_reminders.ts';
import { ledgerEntriesCreatedMigration } from '../storage/migrations/0025_core_ledger_entries_created.ts';
import { consoleModule } from './console/module.ts';
import { customerRoutes } from './customers/routes.ts';
import { eventsModule } from './events/module.ts';
import { rulesMigration } from './earning/migrations.ts';
import { earningRoutes } from './earning/routes.ts';
import { tierGroupRemindersMigration, tierGroupStrategiesMigration, tiersMigration } from './tiers/migrations.ts';
import { tierRoutes } from './tiers/routes.ts';
import { ledgerRoutes } from './ledger/routes.ts';
import { loyaltyRoutes } from './loyalties/routes.ts';
import { memberRoutes } from './members/routes.ts';
import { memberCountsMigration, membersContactsMigration } from './members/migrations.ts';
import { customerCountsMigration, customerNameIndexMigration } from './customers/migrations.ts';
import { loyaltySubscriptionIdMigration } from '../storage/migrations/0010_core_loyalty_subscription_id.ts';
import { eventsProgramIndexMigration } from '../storage/migrations/0013_core_events_program_index.ts';
import { messagingModule } from './messaging/index.ts';
import { rewardsMigration } from './rewards/migrations.ts';
import { rewardRoutes } from './rewards/routes.ts';
import type { TallyModule } from './module.ts';
import { webhooksModule } from './webhooks/module.ts';
import { vouchersModule } from './vouchers/module.ts';
import { timeModule } from './time/module.ts';
import { referralsModule } from './referrals/module.ts';

// Every domain module, in wiring order. A new module adds one line here.
export const modules: TallyModule[] = [
  {
    name: 'core',
    migrations: [
      coreMigration,
      dropLotExpiryIndexMigration,
      cacheChangesMigration,
      apiKeysNoTokenPrefixMigration,
      balanceDefinitionRemindersMigration,
      ledgerEntriesCreatedMigration,
    ],
  },
  // 0026: the customers' count (the unfiltered list's total).
  { name: 'customers', migrations: [customerCountsMigration, customerNameIndexMigration], routes: customerRoutes },
  { name: 'loyalties', routes: loyaltyRoutes },
  // 0010 (core) adds the memberships' external subscription id; 0850 the households' contacts; 0851 the
  // programs' member counts.
  {
    name: 'members',
    migrations: [loyaltySubscriptionIdMigration, membersContactsMigration, memberCountsMigration],
    routes: memberRoutes,
  },
  {
    name: 'ledger',
    routes: ledgerRoutes,
    jobs: (_ctx, services) => services.ledger.registerJobs(),
  },
  // Program rules: tiers, then earning rules, custom events and orders.
  {
    name: 'tiers',
    migrations: [tiersMigration, tierGroupRemindersMigration, tierGroupStrategiesMigration],
    routes: tierRoutes,
    jobs: (_ctx, services) => services.tiers.registerJobs(),
  },
  {
    name: 'earning',
    migrations: [rulesMigration],
    routes: earningRoutes,
    jobs: (_ctx, services) => services.earning.registerJobs(),
  },
  vouchersModule,
  { name: 'rewards', migrations: [rewardsMigration], routes: rewardRoutes },
  referralsModule,
  messagingModule,
  eventsModule,
  webhooksModule,
  timeModule,
  consoleModule,
  // Indexes of core tables that test/plans.test.ts found missing (issue #18).
  { name: 'core-indexes', migrations: [eventsProgramIndexMigration] },
];
