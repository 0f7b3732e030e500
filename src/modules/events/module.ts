import type { TallyModule } from '../module.ts';
import { eventRetention } from './retention.ts';
import { eventRoutes } from './routes.ts';

/** The event log (GET /v1/events), the catalog (GET /v1/event-types) and the retention purge. */
export const eventsModule: TallyModule = {
  name: 'events',
  routes: eventRoutes,
  retention: (ctx) => [eventRetention(ctx)],
};
