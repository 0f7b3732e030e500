import type { TallyModule } from '../module.ts';
import { timeDueItemsMigration } from './migrations.ts';
import { timeRoutes } from './routes.ts';
import './tables.ts';

/** The time engine: anniversaries and reminders (docs/time.md); its worker runs when workers are on. */
export const timeModule: TallyModule = {
  name: 'time',
  migrations: [timeDueItemsMigration],
  routes: timeRoutes,
  jobs: (_ctx, services) => services.time.registerJobs(),
  start: (_ctx, services) => services.time.start(),
};
