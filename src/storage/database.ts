import { type Kysely, PostgresAdapter, type Transaction } from 'kysely';
import type { OutboxProgress } from './outbox-progress.ts';
import type { DB } from './schema.ts';
import { openPostgres } from './postgres/pool.ts';
import { openSqlite } from './sqlite/connection.ts';

// The storage layer as the modules see it: one `Database` per open database, whichever backend
// answers. Each backend lives in its own folder (sqlite/, postgres/); this file only picks one.

export type DialectName = 'sqlite' | 'postgres';

/** A Kysely handle that is either the pool or an open transaction: services accept both. */
export type Executor = Kysely<DB> | Transaction<DB>;

/**
 * Whether `db` runs on PostgreSQL, for the few statements storage writes differently for its planner or its
 * ability to keep and combine writes (hot.ts, paging.ts). Domain code does not ask.
 */
export function isPostgres(db: Executor): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

export interface TransactionOptions {
  /**
   * The one thing the transaction is about (a card, a customer), on the hot write paths. On
   * PostgreSQL, transactions of one lane run one after another in shared database transactions
   * (group commit, see postgres/group-commit.ts); without a lane a transaction has one of its own.
   * SQLite group-commits every transaction and ignores it.
   */
  lane?: string;
}

export interface Database {
  db: Kysely<DB>;
  dialect: DialectName;
  /**
   * Run `fn` in one database transaction. On SQLite it takes the write lock up front
   * (BEGIN IMMEDIATE) so two processes never deadlock upgrading a read lock; on PostgreSQL
   * it retries on serialization failures and deadlocks. Every write path goes through here.
   */
  transaction<T>(fn: (trx: Executor) => Promise<T>, opts?: TransactionOptions): Promise<T>;
  /** True when the database answers a trivial query. */
  ping(): Promise<boolean>;
  /**
   * Frees a queue table's deleted rows now, outside any transaction. PostgreSQL keeps them, and
   * their index entries, until a vacuum (autovacuum looks once a minute at most), and a scan by
   * the queue's key steps over each of them (docs/performance.md). SQLite frees a deleted row's
   * b-tree cell at once: nothing to do.
   */
  reclaim(table: keyof DB & string): Promise<void>;
  close(): Promise<void>;
  /** Adds `FOR UPDATE` on PostgreSQL; SQLite already serialises writers. */
  forUpdate: boolean;
  /**
   * How many write transactions of one kind are worth running at once: SQLite has one writer (more
   * only queue inside the group commit), PostgreSQL's pool can run many.
   */
  writeConcurrency: number;
  /**
   * Called after each group commit (every SQLite commit; PostgreSQL batches of a lane) with the
   * number of transactions it committed: the server observes it in /metrics.
   */
  onGroupCommit?: (transactions: number) => void;
  /**
   * PostgreSQL: LISTEN on `channel` over a connection of its own (NOTIFY is sent with
   * `pg_notify`). `onReconnect` runs after the connection was lost and made again: what was sent
   * meanwhile is gone. Resolves with the function that stops listening. Undefined on SQLite.
   */
  listen?(channel: string, onMessage: (payload: string) => void, onReconnect: () => void): Promise<() => Promise<void>>;
  /** Which outbox events the webhook fan-out has not read yet (outbox-progress.ts). */
  outboxProgress: OutboxProgress;
  /**
   * PostgreSQL: a second, small pool on the same database, for work that must not queue behind
   * the main pool's traffic (the webhook dispatcher). Undefined on SQLite: one writer at a time,
   * a second connection would only wait for the same lock.
   */
  openSidePool?(poolSize: number): Database;
}

export interface OpenOptions {
  /** PostgreSQL connections in the pool. */
  poolSize?: number;
  /** PostgreSQL: group-commit lanes (each holds one pooled connection while it commits a batch). */
  lanes?: number;
  /** SQLite: WAL pages past which the checkpointer makes the WAL start over (sqlite/checkpointer.ts). */
  walRestartAbovePages?: number;
  /** SQLite: `synchronous` (config.sqliteSynchronous); NORMAL when absent. */
  sqliteSynchronous?: 'NORMAL' | 'FULL';
}

export function parseDatabaseUrl(url: string): { dialect: DialectName; target: string } {
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return { dialect: 'postgres', target: url };
  if (url.startsWith('sqlite:')) return { dialect: 'sqlite', target: url.slice('sqlite:'.length) || ':memory:' };
  throw new Error(`DATABASE_URL must start with sqlite: or postgres://, got "${url}"`);
}

/** Opens the database `url` names: `sqlite:<path>` (`sqlite:` alone: in memory) or `postgres://…`. */
export function openDatabase(url: string, opts: OpenOptions = {}): Database {
  const { dialect, target } = parseDatabaseUrl(url);
  if (dialect === 'sqlite')
    return openSqlite(target, {
      walRestartAbovePages: opts.walRestartAbovePages,
      sqliteSynchronous: opts.sqliteSynchronous,
    });
  return openPostgres(target, { poolSize: opts.poolSize ?? 20, lanes: opts.lanes ?? 4 });
}

/** True for a unique-constraint violation on either backend. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
