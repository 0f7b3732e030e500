import type { TallyModule } from '../module.ts';
import './tables.ts';
import {
  outboxProgressMigration,
  sealedSecretsMigration,
  webhooksAttemptsCreatedMigration,
  webhooksMigration,
} from './migrations.ts';
import { webhookRoutes } from './routes.ts';
import { endpointSealedColumns } from './secrets.ts';

/** Webhook endpoints and the delivery of events to them (the dispatcher runs when workers are on). */
export const webhooksModule: TallyModule = {
  name: 'webhooks',
  migrations: [webhooksMigration, outboxProgressMigration, sealedSecretsMigration, webhooksAttemptsCreatedMigration],
  sealedColumns: endpointSealedColumns,
  routes: webhookRoutes,
  start: (_ctx, services) => services.webhooks.dispatcher.start(),
};
