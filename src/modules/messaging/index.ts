import type { TallyModule } from '../module.ts';
import { messagingBroadcastChunksMigration, messagingMigration, messagingTemplatesMigration } from './migrations.ts';
import { messagingRoutes } from './routes.ts';
import './tables.ts';

export const messagingModule: TallyModule = {
  name: 'messaging',
  migrations: [messagingMigration, messagingTemplatesMigration, messagingBroadcastChunksMigration],
  routes: messagingRoutes,
  start: (_ctx, services) => services.messaging.start(),
};
