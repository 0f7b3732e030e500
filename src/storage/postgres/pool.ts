import {
  CompiledQuery,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type TransactionSettings,
} from 'kysely';
import pg from 'pg';
import type { Database, Executor, TransactionOptions } from '../database.ts';
import type { UntypedDb } from '../migrate.ts';
import type { DB } from '../schema.ts';
import { PipelinedConnection } from './connection.ts';
import { isRetryablePg, pgGroupCommit } from './group-commit.ts';
import { listenPostgres } from './listen.ts';
import { postgresOutboxProgress } from './outbox-progress.ts';

// The PostgreSQL backend: a pg pool in pipeline mode whose connections are PipelinedConnections
// (connection.ts), Kysely on top through the small dialect below; transactions with a lane are
// group-committed (group-commit.ts), the others run alone; LISTEN on a connection of its own
// (listen.ts).

// bigint (int8) and numeric columns come back as strings from node-postgres; every amount we store
// is bounded to the safe-integer range by validation, so a Number is exact.
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));

export interface PostgresOptions {
  /** Connections in the pool. */
  poolSize: number;
  /** Group-commit lanes (each holds one pooled connection while it commits a batch). */
  lanes: number;
}

export function openPostgres(url: string, { poolSize, lanes }: PostgresOptions): Database {
  // Pipeline mode: the client sends a query without waiting for the answers of those before it
  // (PipelinedConnection sends deferred statements that way, with the next query, in one write).
  const pool = new pg.Pool({ connectionString: url, max: poolSize, pipeline: true } as pg.PoolConfig);
  pool.on('error', () => undefined); // idle client errors surface on the next query instead
  pool.on('connect', (client) => {
    // pg-pool listens for a client's errors only while it is idle in the pool. A connection lost
    // while a transaction holds it between two queries (PostgreSQL restarted, an admin's
    // pg_terminate_backend) would emit an 'error' nobody hears: an uncaught exception, the end of
    // the process. Its next query fails instead, and the pool drops it when it comes back.
    client.on('error', () => undefined);
  });
  const db = new Kysely<DB>({ dialect: new PipelinedPostgresDialect(pool) });
  const alone = async <T>(fn: (trx: Executor) => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await db.transaction().execute(fn);
      } catch (err) {
        if (isRetryablePg(err) && attempt < 5) continue;
        throw err;
      }
    }
  };
  const grouped = pgGroupCommit({
    db,
    lanes: Math.max(1, Math.min(lanes, poolSize - 1)),
    committed: (n) => database.onGroupCommit?.(n),
  });
  const database: Database = {
    db,
    dialect: 'postgres',
    writeConcurrency: 16,
    forUpdate: true,
    transaction: <T>(fn: (trx: Executor) => Promise<T>, opts?: TransactionOptions) =>
      opts?.lane === undefined ? alone(fn) : grouped(opts.lane, fn),
    async ping() {
      try {
        await sql`select 1`.execute(db);
        return true;
      } catch {
        return false;
      }
    },
    async reclaim(table) {
      // A plain VACUUM does not lock out the queue's inserts and deletes. Without `truncate false`
      // it would cut the table's empty end (a queue's, most of the time) under a lock that does.
      await sql`vacuum (truncate false) ${sql.table(table)}`.execute(db);
    },
    async close() {
      await db.destroy();
    },
    listen: (channel, onMessage, onReconnect) => listenPostgres(url, channel, onMessage, onReconnect),
    outboxProgress: postgresOutboxProgress,
    openSidePool: (size) => openPostgres(url, { poolSize: size, lanes }),
  };
  return database;
}

/** Kysely's PostgreSQL dialect, with connections that are PipelinedConnections. */
class PipelinedPostgresDialect implements Dialect {
  readonly #pool: pg.Pool;
  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }
  createDriver(): Driver {
    return new PipelinedPostgresDriver(this.#pool);
  }
  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }
  createAdapter() {
    return new PostgresAdapter();
  }
  createIntrospector(db: UntypedDb) {
    return new PostgresIntrospector(db);
  }
}

/**
 * As Kysely's PostgresDriver, with transaction control as named calls on the connection (a deferred
 * BEGIN, a COMMIT that carries the kept writes). No Kysely savepoints (`trx.savepoint()`): nothing
 * uses them; the group commit manages its own.
 */
class PipelinedPostgresDriver implements Driver {
  #pool: pg.Pool | undefined;
  readonly #connections = new WeakMap<pg.PoolClient, PipelinedConnection>();

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    if (!this.#pool) throw new Error('driver has already been destroyed');
    const client = await this.#pool.connect();
    // `destroy` was called while the connection was being acquired.
    if (!this.#pool) {
      client.release();
      throw new Error('driver has already been destroyed');
    }
    let connection = this.#connections.get(client);
    if (!connection) {
      connection = new PipelinedConnection(client);
      this.#connections.set(client, connection);
    }
    return connection;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    if (settings.isolationLevel || settings.accessMode) {
      let text = 'start transaction';
      if (settings.isolationLevel) text += ` isolation level ${settings.isolationLevel}`;
      if (settings.accessMode) text += ` ${settings.accessMode}`;
      await connection.executeQuery(CompiledQuery.raw(text));
      return;
    }
    await (connection as PipelinedConnection).begin();
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as PipelinedConnection).commit();
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as PipelinedConnection).rollback();
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    (connection as PipelinedConnection).release();
  }

  async destroy(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    await pool?.end();
  }
}
