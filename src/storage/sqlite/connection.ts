import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import type { Database } from '../database.ts';
import type { DB } from '../schema.ts';
import { startCheckpointer, type Checkpointer } from './checkpointer.ts';
import { sqliteGroupCommit } from './group-commit.ts';
import { sqliteOutboxProgress } from './outbox-progress.ts';
import { cachingStatements } from './statements.ts';

// The SQLite backend: one connection (better-sqlite3, synchronous) behind Kysely, every
// transaction group-committed (group-commit.ts), WAL checkpoints on a thread of their own
// (checkpointer.ts).

export interface SqliteOptions {
  /** WAL pages past which the checkpointer makes the WAL start over (checkpointer.ts). */
  walRestartAbovePages?: number;
  /** `synchronous` (config.sqliteSynchronous); NORMAL when absent. */
  sqliteSynchronous?: 'NORMAL' | 'FULL';
}

/**
 * Every pragma of the serving connection, in one place. (The checkpointer's connection sets its own
 * in checkpointer.ts.)
 */
function applyPragmas(native: BetterSqlite3.Database, inMemory: boolean, synchronous: 'NORMAL' | 'FULL'): void {
  native.pragma('journal_mode = WAL');
  // NORMAL in WAL mode is durable against process crashes (the crash test kills with SIGKILL);
  // only an OS crash or power loss can drop the last transactions (the file stays consistent).
  // FULL syncs the WAL at every commit, so a commit that was answered survives a power loss too.
  native.pragma(`synchronous = ${synchronous}`);
  native.pragma('busy_timeout = 5000');
  // Checkpoints run on a worker thread (checkpointer.ts), not inside this connection's COMMITs;
  // should that thread fail, this connection checkpoints again itself (see onCheckpointerError).
  // When the WAL starts over its file is written over in place, not truncated: truncating a large
  // WAL file stalls the next COMMIT. A 32 MB page cache keeps the hot indexes in memory.
  native.pragma(`wal_autocheckpoint = ${inMemory ? 10000 : 0}`);
  native.pragma('journal_size_limit = -1');
  native.pragma('cache_size = -32000');
  native.pragma('foreign_keys = ON');
  // The group commit runs each transaction of a batch in a SAVEPOINT. SQLite keeps the pages a
  // savepoint changes that earlier transactions of the batch had already changed in a statement
  // journal, which spills to a temporary file beyond 64 KiB (one pwrite per page). In memory it
  // costs no system call; it holds at most one batch's pages.
  native.pragma('temp_store = MEMORY');
}

/** Should the checkpointer thread fail, the serving connection checkpoints itself, every ~40 MB of WAL. */
function onCheckpointerError(native: BetterSqlite3.Database): void {
  if (native.open) native.pragma('wal_autocheckpoint = 10000');
}

export function openSqlite(path: string, opts: SqliteOptions = {}): Database {
  const inMemory = path === ':memory:';
  if (!inMemory) mkdirSync(dirname(path), { recursive: true });
  const native = new BetterSqlite3(path);
  applyPragmas(native, inMemory, opts.sqliteSynchronous === 'FULL' ? 'FULL' : 'NORMAL');
  const statements = cachingStatements(native);
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: statements }) });
  const checkpointer: Checkpointer | undefined = inMemory
    ? undefined
    : startCheckpointer(path, {
        restartAbovePages: opts.walRestartAbovePages,
        onError: () => onCheckpointerError(native),
      });
  const database: Database = {
    db,
    dialect: 'sqlite',
    writeConcurrency: 1,
    forUpdate: false,
    transaction: sqliteGroupCommit({
      db,
      statements,
      pauseWrites: () => checkpointer?.pauseWrites(),
      committed: (n) => database.onGroupCommit?.(n),
    }),
    async ping() {
      try {
        await sql`select 1`.execute(db);
        return true;
      } catch {
        return false;
      }
    },
    async reclaim() {},
    async close() {
      await checkpointer?.stop();
      await db.destroy();
    },
    outboxProgress: sqliteOutboxProgress,
  };
  return database;
}
