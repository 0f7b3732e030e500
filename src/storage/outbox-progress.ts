import type { RawBuilder } from 'kysely';
import type { DialectName, Executor } from './database.ts';
import type { UntypedDb } from './migrate.ts';
import { postgresOutboxProgress } from './postgres/outbox-progress.ts';
import { sqliteOutboxProgress } from './sqlite/outbox-progress.ts';

// Which outbox events the webhook fan-out has not read yet, without ever rewriting an event row.
//
// Before `0101_outbox_progress` each event row carried a `dispatched` flag that the fan-out set:
// an UPDATE of every event (2-3 KB rows), which on PostgreSQL is never a HOT update (the partial
// index on the flag changes), so it wrote a new row version and new entries in all of the row's
// indexes and left dead tuples to VACUUM (its cost: docs/performance.md). Each backend keeps the
// progress its own way (sqlite/outbox-progress.ts: a cursor; postgres/outbox-progress.ts: a table
// of pending seqs filled by a trigger); the modules see only this interface, as
// `Database.outboxProgress`.
//
// Events inserted with `dispatched = 1` (an endpoint's test event) are never fanned out.

export interface OutboxProgress {
  /** Replaces the per-event `dispatched` flag (migration `0101_outbox_progress`). */
  install(db: UntypedDb): Promise<void>;
  /**
   * Takes up to `limit` events the fan-out has not read, in seq order, for the caller's
   * transaction; undone if the transaction rolls back. Processes sharing the database take
   * different events.
   */
  takeUnread(trx: Executor, limit: number, now: string): Promise<number[]>;
  /** Whether any event waits for the fan-out (a cheap read, no lock). */
  hasUnread(db: Executor): Promise<boolean>;
  /** How many events wait for the fan-out (a backlog gauge of /metrics). */
  countUnread(db: Executor): Promise<number>;
  /** SQL condition on `outbox_events`: the fan-out has read the row (so the purge may delete it). */
  alreadyRead(): RawBuilder<boolean>;
}

/** The outbox progress of a backend, for the migration (which has no `Database`). */
export function outboxProgressOf(dialect: DialectName): OutboxProgress {
  return dialect === 'postgres' ? postgresOutboxProgress : sqliteOutboxProgress;
}
