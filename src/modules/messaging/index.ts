import type { TallyModule } from '../module.ts';
import {
  messagingBroadcastChunksMigration,
  messagingMigration,
  messagingSealedSecretsMigration,
  messagingTemplatesMigration,
  messagingMessagesCreatedMigration,
} from './migrations.ts';
import { messagingRoutes } from './routes.ts';
import { channelSealedColumns } from './secrets.ts';
import './tables.ts';

export const messagingModule: TallyModule = {
  name: 'messaging',
  migrations: [
    messagingMigration,
    messagingTemplatesMigration,
    messagingBroadcastChunksMigration,
    messagingSealedSecretsMigration,
    messagingMessagesCreatedMigration,
  ],
  sealedColumns: channelSealedColumns,
  routes: messagingRoutes,
  start: (_ctx, services) => services.messaging.start(),
};
