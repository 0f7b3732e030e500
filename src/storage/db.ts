import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import type { DB } from './schema.ts';

export type DialectName = 'sqlite' | 'postgres';

/** A Kysely handle that is either the pool or an open transaction: services accept both. */
export type Executor = Kysely<DB> | Transaction<DB>;

export interface Database {
  db: Kysely<DB>;
  dialect: DialectName;
  /**
   * Run `fn` in one database transaction. On SQLite it takes the write lock up front
   * (BEGIN IMMEDIATE) so two processes never deadlock upgrading a read lock; on PostgreSQL
   * it retries on serialization failures and deadlocks. Every write path goes through here.
   */
  transaction<T>(fn: (trx: Executor) => Promise<T>): Promise<T>;
  /** True when the database answers a trivial query. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
  /** Adds `FOR UPDATE` on PostgreSQL; SQLite already serialises writers. */
  forUpdate: boolean;
}

// bigint (int8) and numeric columns come back as strings from node-postgres; every amount we store
// is bounded to the safe-integer range by validation, so a Number is exact.
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));

export function parseDatabaseUrl(url: string): { dialect: DialectName; target: string } {
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return { dialect: 'postgres', target: url };
  if (url.startsWith('sqlite:')) return { dialect: 'sqlite', target: url.slice('sqlite:'.length) || ':memory:' };
  throw new Error(`DATABASE_URL must start with sqlite: or postgres://, got "${url}"`);
}

export function openDatabase(url: string, opts: { poolSize?: number } = {}): Database {
  const { dialect, target } = parseDatabaseUrl(url);
  if (dialect === 'sqlite') return openSqlite(target);
  return openPostgres(target, opts.poolSize ?? 20);
}

function openSqlite(path: string): Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const native = new BetterSqlite3(path);
  native.pragma('journal_mode = WAL');
  // NORMAL in WAL mode is durable against process crashes (the crash test kills with SIGKILL);
  // only an OS crash or power loss can drop the last transactions.
  native.pragma('synchronous = NORMAL');
  native.pragma('busy_timeout = 5000');
  native.pragma('foreign_keys = ON');
  cacheStatements(native);
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: native }) });
  return {
    db,
    dialect: 'sqlite',
    forUpdate: false,
    async transaction<T>(fn: (trx: Executor) => Promise<T>): Promise<T> {
      // Kysely's SQLite driver holds one connection behind a mutex, so this also serialises
      // in-process writers; BEGIN IMMEDIATE guards against other processes on the same file.
      return db.connection().execute(async (conn) => {
        await sql`BEGIN IMMEDIATE`.execute(conn);
        try {
          const result = await fn(conn as unknown as Executor);
          await sql`COMMIT`.execute(conn);
          return result;
        } catch (err) {
          await sql`ROLLBACK`.execute(conn).catch(() => undefined);
          throw err;
        }
      });
    },
    async ping() {
      try {
        await sql`select 1`.execute(db);
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      await db.destroy();
    },
  };
}

/**
 * Kysely prepares every query anew; better-sqlite3 statements are reusable, and parsing the SQL
 * is a large share of a short query's cost. Same SQL text, same statement (bounded cache).
 * Safe because nothing streams (`iterate()` would keep a statement busy).
 */
function cacheStatements(native: BetterSqlite3.Database, max = 1000): void {
  const prepare = native.prepare.bind(native);
  const cache = new Map<string, BetterSqlite3.Statement>();
  (native as unknown as { prepare: (source: string) => BetterSqlite3.Statement }).prepare = (source: string) => {
    let stmt = cache.get(source);
    if (!stmt) {
      stmt = prepare(source);
      if (cache.size >= max) cache.clear();
      cache.set(source, stmt);
    }
    return stmt;
  };
}

const RETRYABLE_PG = new Set(['40001', '40P01']);

function openPostgres(url: string, poolSize: number): Database {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  pool.on('error', () => undefined); // idle client errors surface on the next query instead
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    dialect: 'postgres',
    forUpdate: true,
    async transaction<T>(fn: (trx: Executor) => Promise<T>): Promise<T> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await db.transaction().execute(fn);
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code && RETRYABLE_PG.has(code) && attempt < 5) continue;
          throw err;
        }
      }
    },
    async ping() {
      try {
        await sql`select 1`.execute(db);
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      await db.destroy();
    },
  };
}

/** True for a unique-constraint violation on either backend. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
