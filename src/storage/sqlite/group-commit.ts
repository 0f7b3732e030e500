import type { Kysely } from 'kysely';
import type { Executor } from '../database.ts';
import type { DB } from '../schema.ts';
import { batchStatements, type StatementCache } from './statements.ts';

interface Queued {
  fn: (trx: Executor) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** Times it was rolled back with a batch that failed through no fault of its own. */
  attempts?: number;
}

export interface SqliteGroupCommitOptions {
  db: Kysely<DB>;
  statements: StatementCache;
  /** Between two batches: undefined, or a promise to await first (the WAL checkpointer's pause). */
  pauseWrites: () => Promise<void> | undefined;
  /** Called after each COMMIT with the number of transactions it committed. */
  committed: (transactions: number) => void;
  maxBatch?: number;
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
export function sqliteGroupCommit(options: SqliteGroupCommitOptions) {
  const { db, statements, pauseWrites, committed, maxBatch = 100 } = options;
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
