import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.ts';
import type { Services } from '../services.ts';
import type { TallyMigration } from '../storage/migrate.ts';
import type { SealedColumn } from '../storage/sealed.ts';
import type { RetentionPolicy } from './scheduler/retention.ts';

/**
 * A domain module: its tables (migrations), its routes, and optional background work.
 * `src/modules/index.ts` lists them; the server wires each in order.
 */
export interface TallyModule {
  name: string;
  migrations?: TallyMigration[];
  /** Columns holding encrypted secrets: checked against the key at start, re-encrypted by `tally secrets rotate`. */
  sealedColumns?: SealedColumn[];
  routes?(app: FastifyInstance, ctx: AppContext, services: Services): void | Promise<void>;
  /** Starts background workers (only when ctx.config.workers); returns how to stop them. */
  start?(ctx: AppContext, services: Services): Promise<Stopper | undefined> | Stopper | undefined;
  /** Registers job handlers even when workers are off (tests drive the scheduler by hand). */
  jobs?(ctx: AppContext, services: Services): void;
  /** What of its tables the retention sweep deletes, and when (modules/scheduler/retention.ts). */
  retention?(ctx: AppContext, services: Services): RetentionPolicy[];
}

export type Stopper = () => Promise<void> | void;
