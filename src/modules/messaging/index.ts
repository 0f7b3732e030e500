import type { TallyModule } from '../module.ts';
import { messagingMigration } from './migrations.ts';
import { messagingRoutes } from './routes.ts';
import './tables.ts';

export const messagingModule: TallyModule = {
  name: 'messaging',
  migrations: [messagingMigration],
  routes: messagingRoutes,
  start: (_ctx, services) => services.messaging.start(),
};
