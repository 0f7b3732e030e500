import type { TallyModule } from '../module.ts';
import './tables.ts';
import { outboxProgressMigration, sealedSecretsMigration, webhooksMigration } from './migrations.ts';
import { webhookRetentionIndexesMigration } from './migrations-scale.ts';
import { webhookRetention } from './retention.ts';
import { webhookRoutes } from './routes.ts';
import { endpointSealedColumns } from './secrets.ts';

/** Webhook endpoints and the delivery of events to them (the dispatcher runs when workers are on). */
export const webhooksModule: TallyModule = {
  name: 'webhooks',
  migrations: [webhooksMigration, outboxProgressMigration, sealedSecretsMigration, webhookRetentionIndexesMigration],
  sealedColumns: endpointSealedColumns,
  routes: webhookRoutes,
  start: (_ctx, services) => services.webhooks.dispatcher.start(),
  retention: webhookRetention,
};
