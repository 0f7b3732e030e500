import { createHash } from 'node:crypto';
import type { CompiledQuery, DatabaseConnection, QueryResult } from 'kysely';
import type pg from 'pg';
import type { Executor } from '../database.ts';
import { combineWrites, type KeptWrite } from './kept-writes.ts';

type PgResult = { command?: string; rowCount?: number | null; rows?: unknown[] };
type Send = () => Promise<unknown>;
type Corkable = { cork?: () => void; uncork?: () => void };
const EMPTY: PgResult = { command: 'SELECT', rowCount: 0, rows: [] };

/**
 * One pooled PostgreSQL connection as Kysely sees it (`DatabaseConnection`), with what it does
 * besides sending queries. Each is a named method; nothing is read from the SQL text.
 *
 * Named statements (`executePrepared`). The hot statements (hot.ts) and the kept writes are prepared
 * once per connection, named by their text's hash, and later only bound and executed: less server
 * CPU per query. Every other query is sent unnamed (`executeQuery`), so PostgreSQL plans it for its
 * actual values and the table as it is now. A named statement's generic plan is kept until the
 * table's statistics change; a queue table that goes from empty to thousands of rows within a burst
 * (webhook deliveries, jobs) outruns autoanalyze, and the plan made while it was empty (a
 * sequential scan) would stay. The hot statements are lookups and inserts by key, whose plans do
 * not depend on the table's size.
 *
 * Pipelining. The pool's clients run in pg's pipeline mode, which sends a query without waiting
 * for the answers of those before it. Statements whose answers nobody reads (BEGIN, and what the
 * group commit passes to `defer`: SAVEPOINT, RELEASE) are held and sent in one socket write with the
 * next statement whose answer is read; that statement's promise carries their errors. On a small
 * machine the socket writes and round trips to PostgreSQL cost more CPU than small statements.
 *
 * Writes at commit (`keep`). The last writes of a transaction, whose results nobody reads (a point
 * credit's entry, lot, balance and events; the idempotency record), are kept and sent together as
 * one statement of data-modifying CTEs just before the COMMIT, or before any other statement of the
 * transaction, so every read still sees every earlier write; a rollback drops them. The parts of one
 * statement all see the database as it was before it, so two writes of one table (an update of the
 * row a kept insert adds, two updates of a balance) are never kept together: the first is sent
 * before the second is kept.
 */
export class PipelinedConnection implements DatabaseConnection {
  readonly #client: pg.PoolClient;
  readonly #stream: Corkable | undefined;
  /** Statement names prepared on this connection, by SQL text. */
  readonly #names = new Map<string, string>();
  /** Writes kept for the COMMIT, in order (`keep`). */
  #kept: KeptWrite[] = [];
  /** Statements whose answers nobody reads, in order: they go out with the next statement that is read. */
  #ahead: Send[] = [];
  /** The error of kept writes sent by `deferKeptWrites`, until `takeKeptWritesFailure` takes it. */
  #keptFailure: unknown;

  constructor(client: pg.PoolClient) {
    this.#client = client;
    this.#stream = (client as unknown as { connection?: { stream?: Corkable } }).connection?.stream;
  }

  /** Kysely's entry: sends the deferred statements and kept writes, then this query (unnamed). */
  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const values = [...compiled.parameters];
    return queryResult<R>(await this.#sendAfterAhead(true, () => this.#client.query(compiled.sql, values)));
  }

  /** As `executeQuery`, as a named statement (prepared on this connection the first time). */
  async executePrepared<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const text = compiled.sql;
    const values = [...compiled.parameters];
    const send = () => (values.length > 0 ? this.#prepared(text, values) : this.#client.query(text, values));
    return queryResult<R>(await this.#sendAfterAhead(true, send));
  }

  // biome-ignore lint/correctness/useYield: Kysely's interface asks for a generator; this connection has no streaming
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming is not supported by this PostgreSQL connection');
  }

  /** BEGIN: nothing is read from it, so it goes out with the transaction's first statement. */
  async begin(): Promise<void> {
    if (this.#ahead.length > 0 || this.#kept.length > 0) {
      await this.#sendAfterAhead(true, () => this.#client.query('begin'));
      return;
    }
    // A failure of an earlier transaction's kept writes is not this one's.
    this.#keptFailure = undefined;
    this.#ahead.push(() => this.#client.query('begin'));
  }

  /** COMMIT, after the deferred statements and the kept writes, in one socket write. */
  async commit(): Promise<void> {
    await this.#sendAfterAhead(true, () => this.#client.query('commit', []));
  }

  /**
   * ROLLBACK: drops the kept writes; whether the statements deferred ahead of it failed does not
   * matter once it succeeds.
   */
  async rollback(): Promise<void> {
    this.#kept = [];
    await this.#sendAfterAhead(false, () => this.#client.query('rollback', []), true);
  }

  /** ROLLBACK TO SAVEPOINT `name`: as `rollback`, for the writes since that savepoint. */
  async rollbackToSavepoint(name: string): Promise<void> {
    this.#kept = [];
    await this.#sendAfterAhead(false, () => this.#client.query(`ROLLBACK TO SAVEPOINT ${name}`, []), true);
  }

  /**
   * Holds `statement`, whose answer nobody reads (SAVEPOINT, RELEASE SAVEPOINT), to send it with the
   * next statement that is read, in one write, without waiting for it: a round trip saved. If it
   * fails, that next statement fails with its error. Writes kept so far go out before it.
   */
  defer(statement: string): void {
    this.#holdKept();
    this.#ahead.push(() => this.#client.query(statement));
  }

  /**
   * Keeps `write` (its result is never read) to send just before the COMMIT, or before the
   * transaction's next statement, whichever comes first.
   */
  keep(write: KeptWrite): void {
    // The parts of one statement all see the snapshot from before it: a write that could depend on
    // a kept one (same table: an update of a row a kept insert adds) goes in a later statement.
    const dependent = this.#kept.some((w) => w.table === write.table || w.table === '*' || write.table === '*');
    if (dependent) this.#holdKept();
    this.#kept.push(write);
  }

  /** Sends the deferred statements and the kept writes now; rejects with the first error among them. */
  async flushKept(): Promise<void> {
    await this.#sendAfterAhead(true);
  }

  /**
   * Group commit: the kept writes go out with the next statement that is read, and their error is
   * recorded for `takeKeptWritesFailure` instead of failing that statement (which then fails on its
   * own, the transaction being aborted).
   */
  deferKeptWrites(): void {
    this.#holdKept(true);
  }

  /**
   * Sends whatever is still deferred; answers the error of the writes `deferKeptWrites` sent
   * (undefined when they succeeded), once.
   */
  async takeKeptWritesFailure(): Promise<unknown> {
    const take = () => {
      const error = this.#keptFailure;
      this.#keptFailure = undefined;
      return error;
    };
    if (this.#ahead.length === 0) return take();
    // After kept writes that failed, the statements behind them fail too (the transaction is
    // aborted): that is their failure, reported; any other error is the caller's.
    return this.#sendAfterAhead(false).then(take, (err: unknown) => {
      if (this.#keptFailure !== undefined) return take();
      throw err;
    });
  }

  /** Back to the pool (Kysely's driver calls it when the connection is released). */
  release(): void {
    this.#client.release();
  }

  #prepared(text: string, values: readonly unknown[]): Promise<unknown> {
    let name = this.#names.get(text);
    if (!name) {
      if (this.#names.size >= 500) return this.#client.query(text, values as unknown[]);
      name = `tally_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
      this.#names.set(text, name);
    }
    const named = name;
    return this.#client.query({ name: named, text, values: values as unknown[] }).catch((err: { code?: string }) => {
      // "cached plan must not change result type": a migration (of another process) changed a
      // table under a prepared `select *`. Prepare it anew under another name and try once more:
      // outside a transaction that answers; inside one the retry fails (the transaction is
      // aborted), the original error goes up and the whole transaction is retried (pool.ts).
      if (err?.code !== '0A000') throw err;
      const fresh = `${named}_${Date.now().toString(36)}`;
      if (this.#names.get(text) === named) this.#names.set(text, fresh);
      const renamed = { name: this.#names.get(text) ?? fresh, text, values: values as unknown[] };
      return this.#client.query(renamed).catch(() => {
        throw err;
      });
    });
  }

  /**
   * Moves the kept writes into the deferred statements, as one statement. `recordFailure`: their
   * error is recorded for `takeKeptWritesFailure` instead of failing the statement they go out with.
   */
  #holdKept(recordFailure = false): void {
    if (this.#kept.length === 0) return;
    const { text, values } = combineWrites(this.#kept);
    this.#kept = [];
    this.#ahead.push(
      recordFailure
        ? () =>
            this.#prepared(text, values).then(
              () => undefined,
              (err: unknown) => {
                this.#keptFailure = err ?? new Error('kept writes failed');
              },
            )
        : () => this.#prepared(text, values),
    );
  }

  /**
   * Sends the deferred statements, then the kept writes (when `withKept`), then `last`, without
   * waiting in between: one socket write, one round trip. Answers `last`'s result; when a statement
   * sent ahead of it failed, that error (the statements after it only failed because the
   * transaction was aborted), unless `lastDecides` (a rollback, which succeeds all the same).
   */
  #sendAfterAhead(withKept: boolean, last?: Send, lastDecides = false): Promise<unknown> {
    if (withKept) this.#holdKept();
    const sends = this.#ahead;
    this.#ahead = [];
    if (sends.length === 0) return last ? last() : Promise.resolve(EMPTY);
    this.#stream?.cork?.();
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
      this.#stream?.uncork?.();
    }
    return Promise.all(first).then((results) => {
      const failed = results.find((r) => r.err !== undefined);
      if (failed && !lastDecides) {
        // Wait for the last answer too, so the connection is idle again when the caller hears of it.
        return (answer ?? Promise.resolve()).then(
          () => Promise.reject(failed.err),
          () => Promise.reject(failed.err),
        );
      }
      return answer ?? EMPTY;
    });
  }
}

function queryResult<R>(result: unknown): QueryResult<R> {
  const { command, rowCount, rows } = result as PgResult;
  const writes = command === 'INSERT' || command === 'UPDATE' || command === 'DELETE' || command === 'MERGE';
  return { numAffectedRows: writes ? BigInt(rowCount ?? 0) : undefined, rows: (rows ?? []) as R[] };
}

/**
 * Runs `compiled` on `executor` (the pool or a transaction): on a PostgreSQL connection as a named
 * statement (`executePrepared`), anywhere else as any query.
 */
export function executePrepared<R>(executor: Executor, compiled: CompiledQuery): Promise<QueryResult<R>> {
  return executor
    .getExecutor()
    .provideConnection((connection) =>
      connection instanceof PipelinedConnection
        ? connection.executePrepared<R>(compiled)
        : connection.executeQuery<R>(compiled),
    );
}

/**
 * Runs `fn` on the connection of `trx`, a PostgreSQL transaction, in turn with the transaction's
 * other statements (through Kysely's connection provider of the transaction).
 */
export function onTransactionConnection<T>(
  trx: Executor,
  fn: (connection: PipelinedConnection) => T | Promise<T>,
): Promise<T> {
  return trx.getExecutor().provideConnection(async (connection) => {
    if (!(connection instanceof PipelinedConnection)) throw new Error('not a PostgreSQL transaction');
    return fn(connection);
  });
}

/**
 * Keeps `writes` for the COMMIT of `executor` when it is a PostgreSQL transaction (answers true);
 * answers false, keeping nothing, for anything else (the pool, SQLite).
 */
export async function keepForCommit(executor: Executor, writes: readonly KeptWrite[]): Promise<boolean> {
  if (!executor.isTransaction) return false;
  return executor.getExecutor().provideConnection(async (connection) => {
    if (!(connection instanceof PipelinedConnection)) return false;
    for (const write of writes) connection.keep(write);
    return true;
  });
}
