import type { EventEmitter } from 'node:events';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from './config.ts';
import type { Clock } from './lib/clock.ts';
import type { Database, Executor, TransactionOptions } from './storage/database.ts';
import type { Metrics } from './http/metrics.ts';
import type { Scheduler } from './modules/scheduler/scheduler.ts';
import type { Outbox } from './modules/events/outbox.ts';
import type { CacheBus } from './lib/cache-bus.ts';
import type { Egress } from './lib/egress.ts';
import type { SecretBox } from './lib/secret-box.ts';

/**
 * What every module gets: configuration, the database, the clock, the logger, metrics,
 * the scheduler for timed work, and `signals` (in-process notifications, e.g. "a transaction
 * committed", which wakes the webhook dispatcher without waiting for its next poll).
 */
export interface AppContext {
  config: Config;
  database: Database;
  clock: Clock;
  log: FastifyBaseLogger;
  metrics: Metrics;
  scheduler: Scheduler;
  /** Writes events in the caller's transaction (transactional outbox). */
  outbox: Outbox;
  signals: EventEmitter;
  /** Cache invalidations to and from the other processes on the same database. */
  caches: CacheBus;
  /** Outgoing HTTP to user-chosen URLs: the save-time check and the pools that check each connection. */
  egress: Egress;
  /** Seals and opens the secrets stored in the database (webhook secrets, provider credentials). */
  secrets: SecretBox;
  /**
   * Run `fn` in one transaction; after it commits, `signals` emits 'committed', and
   * 'events-committed' when it wrote events to the outbox. `opts.lane`: see TransactionOptions.
   */
  transaction<T>(fn: (trx: Executor) => Promise<T>, opts?: TransactionOptions): Promise<T>;
}

export function makeTransaction(database: Database, signals: EventEmitter, outbox: Outbox) {
  return async function transaction<T>(fn: (trx: Executor) => Promise<T>, opts?: TransactionOptions): Promise<T> {
    let ran: Executor | undefined;
    const result = await database.transaction((trx) => {
      ran = trx;
      return fn(trx);
    }, opts);
    signals.emit('committed');
    if (ran && outbox.takeWritten(ran)) signals.emit('events-committed');
    return result;
  };
}
