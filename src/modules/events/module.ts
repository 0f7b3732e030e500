import type { TallyModule } from '../module.ts';
import { eventRoutes } from './routes.ts';

/** The event log (GET /v1/events), the catalog (GET /v1/event-types) and the retention purge. */
export const eventsModule: TallyModule = {
  name: 'events',
  routes: eventRoutes,
  jobs: (_ctx, services) => services.events.registerJobs(),
  start: (_ctx, services) => services.events.startPurge(),
};
