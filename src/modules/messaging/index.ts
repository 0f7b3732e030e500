import type { TallyModule } from '../module.ts';
import {
  messagingBroadcastChunksMigration,
  messagingMigration,
  messagingSealedSecretsMigration,
  messagingTemplatesMigration,
} from './migrations.ts';
import {
  messagingCreatedIndexMigration,
  messagingFlowDaySketchesMigration,
  messagingFlowDaysMigration,
  messagingFlowLiveDaysMigration,
  messagingFlowReportQueueMigration,
  messagingFlowSketchRevisionMigration,
} from './migrations-scale.ts';
import { liveDaysRetention, messageRetention } from './retention.ts';
import { messagingChannelOrderMigration, messagingPhoneIndexesMigration } from './phone-indexes.ts';
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
    messagingCreatedIndexMigration,
    messagingPhoneIndexesMigration,
    messagingFlowDaysMigration,
    messagingFlowDaySketchesMigration,
    messagingFlowLiveDaysMigration,
    messagingFlowReportQueueMigration,
    messagingFlowSketchRevisionMigration,
    messagingChannelOrderMigration,
  ],
  sealedColumns: channelSealedColumns,
  routes: messagingRoutes,
  start: (_ctx, services) => services.messaging.start(),
  retention: (ctx, services) => [messageRetention(ctx, services.messaging.reports), ...liveDaysRetention()],
};
