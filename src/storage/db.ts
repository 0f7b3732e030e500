import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { CompiledQuery, Kysely, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import type { DB } from './schema.ts';
import { startCheckpointer, type Checkpointer } from './sqlite-checkpointer.ts';

export type DialectName = 'sqlite' | 'postgres';

/** A Kysely handle that is either the pool or an open transaction: services accept both. */
export type Executor = Kysely<DB> | Transaction<DB>;

export interface TransactionOptions {
  /**
   * The one thing the transaction is about (a card, a customer), on the hot write paths. On
   * PostgreSQL, transactions of one lane run one after another in shared database transactions
   * (group commit, see `pgGroupCommit`); without a lane a transaction has one of its own. SQLite
   * group-commits every transaction and ignores it.
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
  close(): Promise<void>;
  /** Adds `FOR UPDATE` on PostgreSQL; SQLite already serialises writers. */
  forUpdate: boolean;
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

export interface OpenOptions {
  /** PostgreSQL connections in the pool. */
  poolSize?: number;
  /** PostgreSQL: group-commit lanes (each holds one pooled connection while it commits a batch). */
  lanes?: number;
  /** SQLite: WAL pages past which the checkpointer makes the WAL start over (sqlite-checkpointer.ts). */
  walRestartAbovePages?: number;
  /** SQLite: `synchronous` (config.sqliteSynchronous); NORMAL when absent. */
  sqliteSynchronous?: 'NORMAL' | 'FULL';
}

export function openDatabase(url: string, opts: OpenOptions = {}): Database {
  const { dialect, target } = parseDatabaseUrl(url);
  if (dialect === 'sqlite') return openSqlite(target, opts);
  return openPostgres(target, opts.poolSize ?? 20, opts.lanes ?? 4);
}

function openSqlite(path: string, opts: OpenOptions): Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const native = new BetterSqlite3(path);
  native.pragma('journal_mode = WAL');
  // NORMAL in WAL mode is durable against process crashes (the crash test kills with SIGKILL);
  // only an OS crash or power loss can drop the last transactions (the file stays consistent).
  // FULL syncs the WAL at every commit, so a commit that was answered survives a power loss too.
  native.pragma(`synchronous = ${opts.sqliteSynchronous === 'FULL' ? 'FULL' : 'NORMAL'}`);
  native.pragma('busy_timeout = 5000');
  // Checkpoints run on a worker thread (sqlite-checkpointer.ts), not inside this connection's
  // COMMITs; should that thread fail, this connection checkpoints again itself, every ~40 MB of WAL.
  // When the WAL starts over its file is written over in place, not truncated: truncating a
  // file of a hundred MB stalled the next COMMIT for tens of ms. A 32 MB page cache keeps the hot
  // indexes in memory.
  const inMemory = path === ':memory:';
  native.pragma(`wal_autocheckpoint = ${inMemory ? 10000 : 0}`);
  native.pragma('journal_size_limit = -1');
  native.pragma('cache_size = -32000');
  native.pragma('foreign_keys = ON');
  // The group commit runs each transaction of a batch in a SAVEPOINT. SQLite keeps the pages a
  // savepoint changes that earlier transactions of the batch had already changed in a statement
  // journal, which spills to a temporary file beyond 64 KiB: a batch of point additions wrote ~50
  // pages a request into it, one pwrite each (strace). In memory it costs no system call; it holds
  // at most one batch's pages.
  native.pragma('temp_store = MEMORY');
  const statements = cachingStatements(native);
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: statements }) });
  const checkpointer: Checkpointer | undefined = inMemory
    ? undefined
    : startCheckpointer(path, {
        restartAbovePages: opts.walRestartAbovePages,
        onError: () => {
          if (native.open) native.pragma('wal_autocheckpoint = 10000');
        },
      });
  const database: Database = {
    db,
    dialect: 'sqlite',
    forUpdate: false,
    transaction: groupCommit(db, statements, () => checkpointer?.pauseWrites(), (n) => database.onGroupCommit?.(n)),
    async ping() {
      try {
        await sql`select 1`.execute(db);
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      await checkpointer?.stop();
      await db.destroy();
    },
  };
  return database;
}

interface Queued {
  fn: (trx: Executor) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** Times it was rolled back with a batch that failed through no fault of its own. */
  attempts?: number;
}

/**
 * SQLite transactions with group commit. SQLite has one writer, and Kysely's driver one connection
 * behind a mutex, so in-process transactions run one after another anyway; what costs is the
 * COMMIT (writing the WAL frames). Transactions that are waiting when the connection frees up run
 * in one database transaction, each inside its own SAVEPOINT:
 * - each one is still atomic: if its function throws, ROLLBACK TO its savepoint undoes exactly its
 *   writes and it rejects with its error, while the others go on;
 * - nobody hears "done" before the COMMIT that makes their writes durable; if that COMMIT fails,
 *   every transaction of the batch rejects and nothing of it is kept;
 * - BEGIN IMMEDIATE takes the write lock up front, so other processes on the same file wait
 *   (busy_timeout) instead of deadlocking on a lock upgrade.
 */
function groupCommit(db: Kysely<DB>, statements: StatementCache, pauseWrites: () => Promise<void> | undefined, committed: (transactions: number) => void, maxBatch = 100) {
  const queue: Queued[] = [];
  let scheduled = false;
  // Transaction control goes straight to the connection Kysely lent the batch (synchronous, no
  // query building): it is several statements per transaction.
  const run = (text: string) => void statements.prepare(text).run();

  async function runBatch(): Promise<void> {
    await db.connection().execute(async (conn) => {
      const done: { item: Queued; ok: boolean; value: unknown }[] = [];
      try {
        run('BEGIN IMMEDIATE');
      } catch (err) {
        for (const item of queue.splice(0, maxBatch)) item.reject(err);
        return;
      }
      batchStatements.set(conn, statements);
      try {
        while (queue.length > 0 && done.length < maxBatch) {
          const item = queue.shift()!;
          try {
            run('SAVEPOINT tally_tx');
            const value = await item.fn(conn as unknown as Executor);
            run('RELEASE tally_tx');
            done.push({ item, ok: true, value });
          } catch (err) {
            done.push({ item, ok: false, value: err });
            run('ROLLBACK TO tally_tx');
            run('RELEASE tally_tx');
          }
        }
        batchStatements.delete(conn);
        run('COMMIT');
      } catch (err) {
        batchStatements.delete(conn);
        // The batch as a whole failed (COMMIT, or a savepoint could not be undone): nothing of it is
        // kept. The transaction that failed rejects with its own error; the others had done nothing
        // wrong and run once more in the next batch (as PostgreSQL retries a serialization failure).
        try {
          run('ROLLBACK');
        } catch {
          /* no transaction left to roll back */
        }
        const retry: Queued[] = [];
        for (const d of done) {
          if (!d.ok) d.item.reject(d.value);
          else if ((d.item.attempts ?? 0) < 1) retry.push({ ...d.item, attempts: (d.item.attempts ?? 0) + 1 });
          else d.item.reject(err);
        }
        queue.unshift(...retry);
        return;
      }
      committed(done.length);
      for (const d of done) (d.ok ? d.item.resolve : d.item.reject)(d.value);
    });
  }

  async function drain(): Promise<void> {
    try {
      while (queue.length > 0) {
        // Between two batches the WAL checkpointer may ask for a moment without writes.
        const pause = pauseWrites();
        if (pause) await pause;
        await runBatch();
      }
    } catch (err) {
      for (const item of queue.splice(0)) item.reject(err);
    } finally {
      scheduled = false;
      if (queue.length > 0) schedule();
    }
  }

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    // One turn of the event loop lets the requests that arrived together join one batch.
    setImmediate(() => void drain());
  }

  return function transaction<T>(fn: (trx: Executor) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      schedule();
    });
  };
}

/**
 * Kysely's SQLite driver prepares every statement it runs; preparing costs more than running a
 * small statement. The hot paths run the same few SQL texts over and over, so prepared statements
 * are kept by SQL text (bounded; the cache starts over when full).
 */
type StatementCache = ReturnType<typeof cachingStatements>;

/**
 * The statements of the SQLite connection lent to a group-commit batch, by the executor its
 * transactions receive. Only queries on that executor may bypass Kysely (`sqliteInTransaction`):
 * one on the pool executor during a batch would read the batch's uncommitted writes.
 */
const batchStatements = new WeakMap<object, StatementCache>();

/**
 * Runs a compiled statement directly on SQLite when `executor` is a group-commit transaction
 * (answers its rows, or [] for a write); undefined anywhere else. Skips Kysely's executor for the
 * hot statements (src/storage/hot.ts), which it would only pass through.
 */
export function sqliteInTransaction(executor: Executor): ((text: string, params: readonly unknown[], arrays?: boolean) => unknown[]) | undefined {
  const stmts = batchStatements.get(executor);
  if (!stmts) return undefined;
  return (text, params, arrays) => {
    const stmt = stmts.prepare(text);
    if (stmt.reader && arrays) {
      // Rows as arrays: a wide row (the card query's 58 columns) costs ~40% less without building
      // an object per row. The statement is shared with Kysely's executor, which expects objects.
      stmt.raw(true);
      try {
        return stmt.all(params as unknown[]) as unknown[];
      } finally {
        stmt.raw(false);
      }
    }
    if (stmt.reader) return stmt.all(params as unknown[]) as unknown[];
    stmt.run(params as unknown[]);
    return [];
  };
}

function cachingStatements(native: BetterSqlite3.Database, max = 1000) {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    prepare(sql: string) {
      let stmt = cache.get(sql);
      if (!stmt) {
        if (cache.size >= max) cache.clear();
        stmt = native.prepare(sql);
        cache.set(sql, stmt);
      }
      return stmt;
    },
    close() {
      cache.clear();
      native.close();
    },
  };
}

// Serialization failure, deadlock, and a prepared statement outdated by a schema change.
const RETRYABLE_PG = new Set(['40001', '40P01', '0A000']);

function openPostgres(url: string, poolSize: number, lanes: number): Database {
  // Pipeline mode: the client sends a query without waiting for the answers of those before it
  // (namedStatements sends deferred statements that way, with the next query, in one write).
  const pool = new pg.Pool({ connectionString: url, max: poolSize, pipeline: true } as pg.PoolConfig);
  pool.on('error', () => undefined); // idle client errors surface on the next query instead
  pool.on('connect', (client) => {
    namedStatements(client);
    // pg-pool listens for a client's errors only while it is idle in the pool. A connection lost
    // while a transaction holds it between two queries (PostgreSQL restarted, an admin's
    // pg_terminate_backend) would emit an 'error' nobody hears: an uncaught exception, the end of
    // the process. Its next query fails instead, and the pool drops it when it comes back.
    client.on('error', () => undefined);
  });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
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
  const grouped = pgGroupCommit(db, Math.max(1, Math.min(lanes, poolSize - 1)), (n) => database.onGroupCommit?.(n));
  const database: Database = {
    db,
    dialect: 'postgres',
    forUpdate: true,
    transaction: <T>(fn: (trx: Executor) => Promise<T>, opts?: TransactionOptions) => (opts?.lane === undefined ? alone(fn) : grouped(opts.lane, fn)),
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
    listen: (channel, onMessage, onReconnect) => listenPostgres(url, channel, onMessage, onReconnect),
  };
  return database;
}

function isRetryablePg(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return !!code && RETRYABLE_PG.has(code);
}

/**
 * PostgreSQL group commit for the hot write paths. PostgreSQL spends more CPU on a transaction's
 * beginning and end (snapshot, commit record, WAL flush, waking the committers) than on the few
 * statements of a point credit: pgbench running a credit's statements (lock the balance, one
 * statement of inserts and the update) did 1,857 transactions/s at ~960 µs of machine CPU each;
 * the same statements 20 to a transaction, each in its own savepoint, 3,080-4,275 credits/s at
 * 315-416 µs each.
 *
 * Transactions are queued by lane; `opts.lane` names the card or customer they are about. While a
 * key has an unfinished transaction its next ones join the same lane; otherwise a transaction goes
 * to the lane with the least work queued. (A fixed hash of the key left one lane with a long queue
 * while another was empty: p99 66-69 ms in `npm run bench:ledger`; balanced, 40-44 ms at the same
 * rate.) Each lane runs its queue in batches on one connection: BEGIN, then per transaction a
 * SAVEPOINT, its statements, its kept writes (writeAtCommit) and RELEASE, and one COMMIT for the
 * batch. BEGIN, SAVEPOINT and RELEASE are deferred (DEFERRED): each goes out with the next
 * statement. A transaction's kept writes, too, go out with the next transaction's first statement
 * (DEFER_KEPT_WRITES); only the batch's last one sends them on their own. So a point addition
 * costs one round trip (its card query, carrying the previous one's writes) and a batch two more
 * (the last writes, the COMMIT), where it cost three and three: 2,460/s at p99 34 ms in
 * `npm run bench:ledger`, against 2,000-2,100/s sending each statement on its own. When deferred
 * kept writes fail, the transaction they belong to fails alone (ROLLBACK TO its savepoint, which
 * their RELEASE never reached); the next one had run in an aborted transaction, so it runs again
 * from the start, whatever it answered.
 * As with SQLite's group commit (`groupCommit`):
 * - each transaction is atomic on its own: when it throws, or its kept writes fail, ROLLBACK TO its
 *   savepoint undoes exactly its writes and releases the row locks it took; it rejects with its
 *   error (a deadlock or serialization failure: it runs again in a later batch) and the others go on;
 * - nobody hears "done" before the COMMIT; when the batch fails before or at the COMMIT, nothing
 *   of it is kept and its transactions run again (up to 4 times); when the connection is lost
 *   during the COMMIT (it may have committed), they reject.
 * One lane per card at a time keeps two batches from waiting on each other for one card's lock. The
 * subtransactions of a batch stay in each backend's subtransaction cache (64 entries) as long as
 * batches hold at most 32.
 */
function pgGroupCommit(db: Kysely<DB>, lanes: number, committed: (transactions: number) => void, maxBatch = 32) {
  const queues: Queued[][] = Array.from({ length: lanes }, () => []);
  const busy = new Array<boolean>(lanes).fill(false);
  const control = (trx: Executor, text: string) => trx.executeQuery(CompiledQuery.raw(text, []));
  // Sent with the next statement (DEFERRED): the batch's BEGIN and first SAVEPOINT go with its first
  // query, each RELEASE + SAVEPOINT with the next transaction's first query, the last RELEASE with
  // the COMMIT.
  const deferred = (trx: Executor, text: string) => trx.executeQuery(CompiledQuery.raw(DEFERRED, [text]));
  /** Sends what the client still holds; answers the error of the kept writes deferred with DEFER_KEPT_WRITES, if they failed. */
  const keptWritesFailure = async (trx: Executor): Promise<unknown> => {
    const { rows } = await trx.executeQuery<{ error: unknown }>(CompiledQuery.raw(KEPT_WRITES_FAILURE, []));
    return rows[0]?.error;
  };

  async function runBatch(queue: Queued[]): Promise<void> {
    const trx = await db.startTransaction().execute();
    const done: { item: Queued; ok: boolean; value: unknown }[] = [];
    let committing = false;
    // The transaction before this one, when its kept writes went out with this one's first
    // statement instead of on their own: its verdict waits for theirs.
    let pending: { item: Queued; value: unknown } | undefined;
    try {
      await deferred(trx, 'SAVEPOINT tally_tx');
      // A savepoint is open at the top of each turn: the last one is released only when no more
      // transactions are taken (those arriving meanwhile wait for the next batch).
      let more = queue.length > 0;
      while (more) {
        const item = queue.shift()!;
        let outcome: { ok: true; value: unknown } | { ok: false; err: unknown };
        try {
          outcome = { ok: true, value: await item.fn(trx) };
        } catch (err) {
          outcome = { ok: false, err };
        }
        if (pending) {
          const before = pending;
          pending = undefined;
          let failure: unknown;
          try {
            failure = await keptWritesFailure(trx);
          } catch (err) {
            // The connection failed: both run again with the batch (or fail, see below).
            done.push({ item: before.item, ok: true, value: before.value }, { item, ok: true, value: undefined });
            throw err;
          }
          if (failure !== undefined) {
            // The previous transaction's kept writes failed: it fails alone. What this one sent
            // after them was refused (the transaction was aborted), so it runs again from the start.
            done.push({ item: before.item, ok: false, value: failure });
            queue.unshift(item);
            try {
              await control(trx, 'ROLLBACK TO SAVEPOINT tally_tx');
            } catch (err) {
              queue.shift();
              done.push({ item, ok: true, value: undefined });
              throw err;
            }
            more = done.length < maxBatch;
            continue;
          }
          done.push({ item: before.item, ok: true, value: before.value });
        }
        if (outcome.ok) {
          more = queue.length > 0 && done.length + 1 < maxBatch;
          if (more) {
            // Its kept writes go out, inside its savepoint still, with the next transaction's first
            // statement (one round trip less); their failure is recorded as its own.
            await deferred(trx, DEFER_KEPT_WRITES);
            await deferred(trx, 'RELEASE SAVEPOINT tally_tx; SAVEPOINT tally_tx');
            pending = { item, value: outcome.value };
            continue;
          }
          // The last one: its kept writes go now, so that a failure of theirs is its own and not the COMMIT's.
          try {
            await control(trx, FLUSH_KEPT_WRITES);
          } catch (err) {
            outcome = { ok: false, err };
          }
        }
        if (!outcome.ok) {
          done.push({ item, ok: false, value: outcome.err });
          // Rolled back to, the savepoint stays open for the next one.
          await control(trx, 'ROLLBACK TO SAVEPOINT tally_tx');
          more = queue.length > 0 && done.length < maxBatch;
          continue;
        }
        await deferred(trx, 'RELEASE SAVEPOINT tally_tx');
        done.push({ item, ok: true, value: outcome.value });
      }
      committing = true;
      await trx.commit().execute();
    } catch (err) {
      if (pending) done.push({ item: pending.item, ok: true, value: pending.value });
      await trx
        .rollback()
        .execute()
        .catch(() => undefined);
      // Lost before the COMMIT was sent, the batch is surely undone; a COMMIT that PostgreSQL
      // refused too. But a connection lost while the COMMIT was on its way may have committed:
      // running the batch again could apply it twice, so its transactions fail instead (a retry
      // with an Idempotency-Key then answers the first result, or applies it once).
      const ambiguous = committing && !(err instanceof pg.DatabaseError);
      const again: Queued[] = [];
      for (const d of done) {
        if (!d.ok && !isRetryablePg(d.value)) d.item.reject(d.value);
        else if (!ambiguous && (d.item.attempts ?? 0) < 4) again.push({ ...d.item, attempts: (d.item.attempts ?? 0) + 1 });
        else d.item.reject(d.ok ? err : d.value);
      }
      queue.unshift(...again);
      return;
    }
    committed(done.length);
    const again: Queued[] = [];
    for (const d of done) {
      if (d.ok) d.item.resolve(d.value);
      else if (isRetryablePg(d.value) && (d.item.attempts ?? 0) < 4) again.push({ ...d.item, attempts: (d.item.attempts ?? 0) + 1 });
      else d.item.reject(d.value);
    }
    queue.unshift(...again);
  }

  async function drain(lane: number): Promise<void> {
    const queue = queues[lane];
    try {
      while (queue.length > 0) await runBatch(queue);
    } catch (err) {
      // BEGIN failed (no connection): nothing ran.
      for (const item of queue.splice(0)) item.reject(err);
    } finally {
      busy[lane] = false;
      if (queue.length > 0) schedule(lane);
    }
  }

  function schedule(lane: number) {
    if (busy[lane]) return;
    busy[lane] = true;
    // Requests that arrive together join one batch.
    setImmediate(() => void drain(lane));
  }

  // Which lane each key's unfinished transactions are in, and how many there are. A key's next
  // transaction joins that lane while any is unfinished (it will wait for the same row locks, and
  // in one lane it waits in the queue instead of holding a batch up); otherwise it goes to the lane
  // with the least work queued, so no lane's queue grows while another's is empty.
  const active = new Map<string, { lane: number; count: number }>();
  const load = new Array<number>(lanes).fill(0);

  return function transaction<T>(key: string, fn: (trx: Executor) => Promise<T>): Promise<T> {
    let entry = active.get(key);
    if (!entry) {
      let lane = 0;
      for (let i = 1; i < lanes; i++) if (load[i] < load[lane]) lane = i;
      entry = { lane, count: 0 };
      active.set(key, entry);
    }
    entry.count++;
    const { lane } = entry;
    load[lane]++;
    const done = () => {
      load[lane]--;
      if (--entry.count === 0) active.delete(key);
    };
    return new Promise<T>((resolve, reject) => {
      queues[lane].push({
        fn,
        resolve: (v: unknown) => {
          done();
          resolve(v as T);
        },
        reject: (e: unknown) => {
          done();
          reject(e);
        },
      });
      schedule(lane);
    });
  };
}

async function listenPostgres(url: string, channel: string, onMessage: (payload: string) => void, onReconnect: () => void): Promise<() => Promise<void>> {
  if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`invalid channel name "${channel}"`);
  let client: pg.Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const again = () => {
    if (stopped || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      void connect().then(onReconnect, again);
    }, 1000);
    retry.unref();
  };
  const connect = async () => {
    const c = new pg.Client({ connectionString: url });
    c.on('notification', (m) => {
      if (m.channel === channel && m.payload !== undefined) onMessage(m.payload);
    });
    c.on('error', () => undefined); // 'end' follows and reconnects
    c.on('end', () => {
      if (client === c) client = undefined;
      again();
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${channel}`);
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
    if (stopped) await c.end().catch(() => undefined);
    else client = c;
  };
  // Not reachable now (too many connections, a restart): keep trying in the background; until
  // then the caches' TTL bounds staleness.
  await connect().catch(again);
  return async () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    await client?.end().catch(() => undefined);
  };
}

/**
 * The SQL texts each PostgreSQL client prepares once as named statements: the hot statements
 * (hot.ts registers them as it compiles them). Every other query is sent unnamed, so PostgreSQL
 * plans it for its actual values and the table as it is now. A named statement's generic plan is
 * kept until the table's statistics change; a queue table that goes from empty to thousands of
 * rows within a burst (webhook deliveries, jobs) outruns autoanalyze, and the plan made while it was
 * empty (a sequential scan) stayed: claiming 64 deliveries took 50-80 ms and `npm run
 * bench:webhooks` on PostgreSQL delivered 441-669/s; planned each time, 4,074-4,708/s. The hot
 * statements are lookups and inserts by key, whose plans do not depend on the table's size.
 */
export const PREPARED_TEXTS = new Set<string>();

/**
 * Marker text of `writeAtCommit` (hot.ts): a query with this text carries one write (`TailWrite`)
 * that the PostgreSQL client keeps, to send just before the transaction's COMMIT (or its next query).
 */
export const WRITE_AT_COMMIT = '/* tally: write at commit */';

/** Marker text: the PostgreSQL client sends the writes it keeps now (nothing when it keeps none). */
export const FLUSH_KEPT_WRITES = '/* tally: flush kept writes */';

/**
 * Marker text: a query with this text carries, as its one parameter, a statement whose answer
 * nobody reads (SAVEPOINT, RELEASE SAVEPOINT). The PostgreSQL client sends it with the next
 * statement that is read, in one write (pipelined), and does not wait for it: a round trip saved.
 * If it fails, that next statement fails with its error.
 */
export const DEFERRED = '/* tally: deferred */';

/**
 * Marker texts of the group commit (PostgreSQL): DEFER_KEPT_WRITES, as a DEFERRED statement, sends
 * the writes kept so far with the next statement that is read, and records their error instead of
 * passing it on (the next statement then fails on its own, as the transaction is aborted);
 * KEPT_WRITES_FAILURE sends whatever is still held and answers that error (`rows[0].error`), once.
 */
export const DEFER_KEPT_WRITES = '/* tally: defer kept writes */';
export const KEPT_WRITES_FAILURE = '/* tally: kept writes failure */';

/** A write kept for the COMMIT: its SQL text (placeholders $1..$n) and values. */
export interface TailWrite {
  /** The table it writes ('*' when unknown): writes of one table are never sent in one statement. */
  table: string;
  text: string;
  values: readonly unknown[];
}

/** The table an INSERT, UPDATE or DELETE text writes, or '*'. */
export function writtenTable(text: string): string {
  const m = /^\s*(?:insert\s+into|update|delete\s+from)\s+("(?:[^"]|"")+"|[\w.]+)/i.exec(text);
  return m ? m[1].replace(/^"|"$/g, '') : '*';
}

/** Combined texts by their parts' texts: the same few combinations come back on every write. */
const combinedTexts = new Map<string, string>();

/** Several writes as one statement of data-modifying CTEs, placeholders renumbered in order. */
export function combineWrites(parts: readonly { text: string; values: readonly unknown[] }[]): { text: string; values: unknown[] } {
  if (parts.length === 1) return { text: parts[0].text, values: [...parts[0].values] };
  const key = parts.map((p) => p.text).join('\u0000');
  const known = combinedTexts.get(key);
  if (known !== undefined) return { text: known, values: parts.flatMap((p) => p.values) };
  let offset = 0;
  const ctes: string[] = [];
  for (const [i, part] of parts.entries()) {
    const shift = offset;
    ctes.push(`s${i} as (${part.text.replace(/\$(\d+)/g, (_m, n: string) => `$${Number(n) + shift}`)})`);
    offset += part.values.length;
  }
  const text = `with ${ctes.join(', ')} select 1`;
  if (combinedTexts.size >= 500) combinedTexts.clear();
  combinedTexts.set(key, text);
  return { text, values: parts.flatMap((p) => p.values) };
}

type QueryFn = (...args: unknown[]) => unknown;

/**
 * What every PostgreSQL client of the pool does besides sending queries:
 *
 * Named statements. Kysely sends every query as an unnamed statement, which PostgreSQL parses and
 * plans each time. The hot statements (hot.ts, `PREPARED_TEXTS`) come back over and over, so each
 * client prepares each of them once, named by its hash, and later only binds and executes it: less
 * server CPU per query. Every other query goes unnamed (see `PREPARED_TEXTS` for why).
 *
 * Writes at commit. Each statement is a round trip, and on this kind of machine a round trip over
 * loopback TCP costs more CPU (the socket write, the wake-up of the backend, the parse of the
 * answer) than a small statement itself. The last writes of a transaction, whose results nobody
 * reads (a point credit's entry, lot, balance and events; the idempotency record), are kept by
 * the client (`writeAtCommit`) and sent together as one prepared statement of data-modifying CTEs
 * (`WITH s0 AS (INSERT ...), ... SELECT 1`) just before the COMMIT, or before any other query of
 * the transaction, so every read still sees every earlier write; a ROLLBACK drops them. The parts
 * of one statement all see the database as it was before it, so two writes of one table (an
 * update of the row a kept insert adds, two updates of a balance) are never kept together: the
 * first is sent before the second is kept. (Sending them in the COMMIT's own text, as literals in
 * a simple-protocol query, saves one more round trip, but PostgreSQL then parses and plans that
 * text every time: measured, no faster.)
 *
 * Pipelining. The pool's clients run in pg's pipeline mode, which sends a query without waiting
 * for the answers of those before it. Statements whose answers nobody reads (Kysely's BEGIN, the
 * group commit's SAVEPOINT and RELEASE: `DEFERRED`) and kept writes that must go before a later
 * one are held and sent in one socket write with the next statement whose answer is read; that
 * statement's promise carries their errors. Profiled under `npm run bench:ledger`, a third of the
 * server's CPU was the socket writes to PostgreSQL (writev); deferring cut the writes per point
 * addition from ~6.5 to ~4.8.
 */
function namedStatements(client: pg.PoolClient) {
  const original = client.query.bind(client) as QueryFn;
  const names = new Map<string, string>();
  let tail: TailWrite[] = [];

  const prepared = (text: string, values: readonly unknown[]): Promise<unknown> => {
    let name = names.get(text);
    if (!name) {
      if (names.size >= 500) return original(text, values) as Promise<unknown>;
      name = `tally_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
      names.set(text, name);
    }
    const named = name;
    return (original({ name: named, text, values }) as Promise<unknown>).catch((err: { code?: string }) => {
      // "cached plan must not change result type": a migration (of another process) changed a
      // table under a prepared `select *`. Prepare it anew under another name and try once more:
      // outside a transaction that answers; inside one the retry fails (the transaction is
      // aborted), the original error goes up and the whole transaction is retried (RETRYABLE_PG).
      if (err?.code !== '0A000') throw err;
      const fresh = `${named}_${Date.now().toString(36)}`;
      if (names.get(text) === named) names.set(text, fresh);
      return (original({ name: names.get(text) ?? fresh, text, values }) as Promise<unknown>).catch(() => {
        throw err;
      });
    });
  };
  const empty = { command: 'SELECT', rowCount: 0, rows: [] };
  // Statements whose answers nobody reads (BEGIN, SAVEPOINT, RELEASE; see DEFERRED), in order: they
  // go out with the next statement that is read, in one write.
  let ahead: (() => Promise<unknown>)[] = [];
  // The error of kept writes sent ahead with DEFER_KEPT_WRITES, until KEPT_WRITES_FAILURE takes it.
  let keptFailure: unknown;
  const stream = (client as unknown as { connection?: { stream?: { cork?: () => void; uncork?: () => void } } }).connection?.stream;
  /**
   * Moves the kept writes into `ahead`, as one statement. `tracked`: their error is recorded for
   * KEPT_WRITES_FAILURE instead of failing the statement they go out with.
   */
  const holdTail = (tracked = false): void => {
    if (tail.length === 0) return;
    const { text, values } = combineWrites(tail);
    tail = [];
    ahead.push(
      tracked
        ? () =>
            prepared(text, values).then(
              () => undefined,
              (err: unknown) => {
                keptFailure = err ?? new Error('kept writes failed');
              },
            )
        : () => prepared(text, values),
    );
  };
  /**
   * Sends the deferred statements, then the kept writes (when `withTail`), then `last`, without
   * waiting in between (the client is in pipeline mode): one socket write, one round trip. Answers
   * `last`'s result; when a statement sent ahead of it failed, that error (the statements after it
   * only failed because the transaction was aborted).
   */
  const pipelined = (withTail: boolean, last?: () => Promise<unknown>, lastDecides = false): Promise<unknown> => {
    if (withTail) holdTail();
    const sends = ahead;
    ahead = [];
    if (sends.length === 0) return last ? last() : Promise.resolve(empty);
    stream?.cork?.();
    let first: Promise<{ err?: unknown }>[];
    let answer: Promise<unknown> | undefined;
    try {
      first = sends.map((send) =>
        send().then(
          () => ({}),
          (err: unknown) => ({ err: err ?? new Error('statement failed') }),
        ),
      );
      answer = last?.();
      // Settled below; a rejection must not count as unhandled meanwhile.
      answer?.catch(() => undefined);
    } finally {
      stream?.uncork?.();
    }
    return Promise.all(first).then((results) => {
      const failed = results.find((r) => r.err !== undefined);
      if (failed && !lastDecides) {
        // Wait for the last answer too, so the client is idle again when the caller hears of it.
        return (answer ?? Promise.resolve()).then(
          () => Promise.reject(failed.err),
          () => Promise.reject(failed.err),
        );
      }
      return answer ?? empty;
    });
  };

  (client as unknown as { query: QueryFn }).query = (text: unknown, values?: unknown, ...rest: unknown[]) => {
    if (text === WRITE_AT_COMMIT) {
      const write = (values as TailWrite[])[0];
      // The parts of one statement all see the snapshot from before it: a write that could depend
      // on a kept one (same table: an update of a row a kept insert adds) goes in a later statement.
      if (tail.some((w) => w.table === write.table || w.table === '*' || write.table === '*')) holdTail();
      tail.push(write);
      return Promise.resolve(empty);
    }
    if (text === KEPT_WRITES_FAILURE) {
      const report = () => {
        const error = keptFailure;
        keptFailure = undefined;
        return { command: 'SELECT', rowCount: error === undefined ? 0 : 1, rows: error === undefined ? [] : [{ error }] };
      };
      // After kept writes that failed, the statements behind them fail too (the transaction is
      // aborted): that is their failure, reported; any other error is the caller's.
      return ahead.length > 0
        ? pipelined(false).then(report, (err: unknown) => (keptFailure !== undefined ? report() : Promise.reject(err)))
        : Promise.resolve(report());
    }
    if (text === DEFERRED && (values as string[])[0] === DEFER_KEPT_WRITES) {
      holdTail(true);
      return Promise.resolve(empty);
    }
    if (text === DEFERRED) {
      const statement = (values as string[])[0];
      // After kept writes, a deferred statement (a RELEASE) must follow them: they go ahead first.
      holdTail();
      ahead.push(() => original(statement) as Promise<unknown>);
      return Promise.resolve(empty);
    }
    if (text === 'begin' && Array.isArray(values) && values.length === 0 && rest.length === 0 && ahead.length === 0 && tail.length === 0) {
      // Kysely's BEGIN: nothing is read from it, it goes out with the transaction's first statement.
      // A failure of an earlier transaction's kept writes is not this one's.
      keptFailure = undefined;
      ahead.push(() => original('begin') as Promise<unknown>);
      return Promise.resolve({ command: 'BEGIN', rowCount: null, rows: [] });
    }
    if (text === FLUSH_KEPT_WRITES) return pipelined(true);
    // A rollback (to a savepoint, too) drops what the writes kept would have written; whether the
    // statements deferred ahead of it failed does not matter once it succeeds.
    const rollback = typeof text === 'string' && /^rollback\b/i.test(text);
    if (rollback) tail = [];
    const send = () =>
      typeof text === 'string' && Array.isArray(values) && values.length > 0 && rest.length === 0 && PREPARED_TEXTS.has(text)
        ? prepared(text, values)
        : (original(text, values, ...rest) as Promise<unknown>);
    return pipelined(true, send, rollback);
  };
}

/** True for a unique-constraint violation on either backend. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
