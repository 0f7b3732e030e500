import type { TallyModule } from '../module.ts';
import './tables.ts';
import { outboxProgressMigration, webhooksMigration } from './migrations.ts';
import { webhookRoutes } from './routes.ts';

/** Webhook endpoints and the delivery of events to them (the dispatcher runs when workers are on). */
export const webhooksModule: TallyModule = {
  name: 'webhooks',
  migrations: [webhooksMigration, outboxProgressMigration],
  routes: webhookRoutes,
  start: (_ctx, services) => services.webhooks.dispatcher.start(),
};
