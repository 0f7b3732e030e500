import type { TallyModule } from '../module.ts';
import { consoleSessionsMigration } from './migrations.ts';
import { consoleRoutes } from './routes.ts';

/** The ops console at /console: server-rendered pages over the public API (docs/console.md). */
export const consoleModule: TallyModule = {
  name: 'console',
  migrations: [consoleSessionsMigration],
  routes: consoleRoutes,
};
