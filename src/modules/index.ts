import { coreMigration } from '../storage/migrations/0001_core.ts';
import { dropLotExpiryIndexMigration } from '../storage/migrations/0002_core_drop_lot_expiry_index.ts';
import { cacheChangesMigration } from '../storage/migrations/0003_core_cache_changes.ts';
import { apiKeysNoTokenPrefixMigration } from '../storage/migrations/0004_core_api_keys_no_token_prefix.ts';
import { customerRoutes } from './customers/routes.ts';
import { eventsModule } from './events/module.ts';
import { rulesMigration } from './earning/migrations.ts';
import { earningRoutes } from './earning/routes.ts';
import { tierRoutes } from './tiers/routes.ts';
import { ledgerRoutes } from './ledger/routes.ts';
import { loyaltyRoutes } from './loyalties/routes.ts';
import { memberRoutes } from './members/routes.ts';
import { messagingModule } from './messaging/index.ts';
import { rewardsMigration } from './rewards/migrations.ts';
import { rewardRoutes } from './rewards/routes.ts';
import type { TallyModule } from './module.ts';
import { webhooksModule } from './webhooks/module.ts';
import { vouchersModule } from './vouchers/module.ts';
import { rollbackRedemptionRoutes } from '../workflows/rollback-redemption.ts';
import { rewardsTemplateContext } from '../workflows/redeem-reward.ts';

// Every domain module, in wiring order. A new module adds one line here.
export const modules: TallyModule[] = [
  {
    name: 'core',
    migrations: [coreMigration, dropLotExpiryIndexMigration, cacheChangesMigration, apiKeysNoTokenPrefixMigration],
  },
  { name: 'customers', routes: customerRoutes },
  { name: 'loyalties', routes: loyaltyRoutes },
  { name: 'members', routes: memberRoutes },
  {
    name: 'ledger',
    routes: ledgerRoutes,
    jobs: (_ctx, services) => services.ledger.registerJobs(),
  },
  // Program rules: tiers first (its ledger listener), then earning rules, custom events and orders.
  {
    name: 'tiers',
    migrations: [rulesMigration],
    routes: tierRoutes,
    jobs: (_ctx, services) => services.tiers.attach(services),
  },
  { name: 'earning', routes: earningRoutes, jobs: (_ctx, services) => services.earning.attach(services) },
  vouchersModule,
  {
    name: 'rewards',
    migrations: [rewardsMigration],
    routes: rewardRoutes,
    // The `rewards` template variable of messages and flow conditions (balance_gte_cheapest_reward).
    jobs: (_ctx, services) => {
      services.messaging.registerContextProvider('rewards', rewardsTemplateContext(services));
    },
  },
  // Cross-module routes (src/workflows): the rollback of every kind of redemption.
  { name: 'redemption-rollback', routes: rollbackRedemptionRoutes },
  messagingModule,
  eventsModule,
  webhooksModule,
];
