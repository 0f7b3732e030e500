import type { ControlledTransaction, Kysely } from 'kysely';
import pg from 'pg';
import type { Executor } from '../database.ts';
import type { DB } from '../schema.ts';
import { onTransactionConnection, type PipelinedConnection } from './connection.ts';

// Serialization failure, deadlock, and a prepared statement outdated by a schema change.
const RETRYABLE_PG = new Set(['40001', '40P01', '0A000']);

export function isRetryablePg(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return !!code && RETRYABLE_PG.has(code);
}

/** Times a transaction runs again after its batch failed through no fault of its own. */
const MAX_RERUNS = 4;

/** The savepoint each transaction of a batch runs in. */
const SAVEPOINT = 'tally_tx';

interface Queued {
  fn: (trx: Executor) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** Times it was rolled back with a batch that failed through no fault of its own. */
  attempts?: number;
}

type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };
type Verdict = { tx: Queued } & Outcome;

export interface PgGroupCommitOptions {
  db: Kysely<DB>;
  lanes: number;
  /** Called after each COMMIT with the number of transactions it committed. */
  committed: (transactions: number) => void;
  /** Transactions per batch (at most 32 keeps a batch's subtransactions in each backend's cache of 64). */
  maxBatch?: number;
}

/**
 * PostgreSQL group commit for the hot write paths. PostgreSQL spends more CPU on a transaction's
 * beginning and end (snapshot, commit record, WAL flush, waking the committers) than on the few
 * statements of a point credit, so transactions share database transactions, each in a savepoint.
 *
 * Transactions are queued by lane; `opts.lane` names the card or customer they are about. While a
 * key has an unfinished transaction its next ones join the same lane; otherwise a transaction goes
 * to the lane with the least work queued (a fixed hash of the key would leave one lane with a long
 * queue while another is empty). One lane per key at a time keeps two batches from waiting on each
 * other for one card's lock.
 *
 * Each lane runs its queue in batches on one connection (`runBatch`): BEGIN, then per transaction a
 * SAVEPOINT, its statements, its kept writes (writeAtCommit) and RELEASE, and one COMMIT for the
 * batch. BEGIN, SAVEPOINT and RELEASE are deferred (PipelinedConnection.defer): each goes out with
 * the next statement. A transaction's kept writes, too, go out with the next transaction's first
 * statement (deferKeptWrites); only the batch's last one sends them on their own (flushKept). So a
 * batch of n costs n + 2 socket writes. Invariants, as with SQLite's group commit:
 * - each transaction is atomic on its own: when it throws, or its kept writes fail, ROLLBACK TO its
 *   savepoint undoes exactly its writes and releases the row locks it took; it rejects with its
 *   error (a deadlock or serialization failure: it runs again in a later batch) and the others go
 *   on. When a transaction's deferred kept writes fail, it fails alone; the next one had run in an
 *   aborted transaction, so it runs again from the start, whatever it answered;
 * - nobody hears "done" before the COMMIT; when the batch fails before or at the COMMIT, nothing
 *   of it is kept and its transactions run again (up to 4 times); when the connection is lost
 *   during the COMMIT (it may have committed), they reject.
 */
export function pgGroupCommit({ db, lanes, committed, maxBatch = 32 }: PgGroupCommitOptions) {
  const queues: Queued[][] = Array.from({ length: lanes }, () => []);
  const busy = new Array<boolean>(lanes).fill(false);

  async function runBatch(queue: Queued[]): Promise<void> {
    // Begin the batch: BEGIN and the first SAVEPOINT go out with its first statement.
    const trx = await db.startTransaction().execute();
    const on = <T>(fn: (connection: PipelinedConnection) => T | Promise<T>) => onTransactionConnection(trx, fn);
    const verdicts: Verdict[] = [];
    // Taken from the queue, no verdict yet.
    let current: Queued | undefined;
    // The transaction before `current`, when its kept writes went out with current's first
    // statement: its verdict waits for theirs.
    let previous: { tx: Queued; value: unknown } | undefined;
    let committing = false;
    try {
      await on((c) => c.defer(`SAVEPOINT ${SAVEPOINT}`));
      // A savepoint is open at the top of each turn: the last one is released only when no more
      // transactions are taken (those arriving meanwhile wait for the next batch).
      let more = queue.length > 0;
      while (more) {
        current = queue.shift()!;
        // Run the transaction in its savepoint.
        let outcome = await runTransaction(current, trx);

        // The previous transaction's kept writes went out with this one's first statement.
        if (previous) {
          const failure = await on((c) => c.takeKeptWritesFailure());
          if (failure !== undefined) {
            // They failed: the previous one fails alone. What this one sent after them was refused
            // (the transaction was aborted), so it runs again from the start, first in the queue.
            verdicts.push({ tx: previous.tx, ok: false, err: failure });
            previous = undefined;
            await on((c) => c.rollbackToSavepoint(SAVEPOINT));
            queue.unshift(current);
            current = undefined;
            more = verdicts.length < maxBatch;
            continue;
          }
          verdicts.push({ tx: previous.tx, ok: true, value: previous.value });
          previous = undefined;
        }

        if (outcome.ok) {
          more = queue.length > 0 && verdicts.length + 1 < maxBatch;
          if (more) {
            // Its kept writes go out, inside its savepoint still, with the next transaction's first
            // statement (one round trip less); their failure is recorded as its own.
            await on((c) => {
              c.deferKeptWrites();
              c.defer(`RELEASE SAVEPOINT ${SAVEPOINT}; SAVEPOINT ${SAVEPOINT}`);
            });
            previous = { tx: current, value: outcome.value };
            current = undefined;
            continue;
          }
          // The last one: its kept writes go now, so that a failure of theirs is its own and not the COMMIT's.
          outcome = await on((c) => c.flushKept()).then(
            (): Outcome => outcome,
            (err: unknown): Outcome => ({ ok: false, err }),
          );
        }

        if (!outcome.ok) {
          verdicts.push({ tx: current, ...outcome });
          current = undefined;
          // Rolled back to, the savepoint stays open for the next one.
          await on((c) => c.rollbackToSavepoint(SAVEPOINT));
          more = queue.length > 0 && verdicts.length < maxBatch;
          continue;
        }
        await on((c) => c.defer(`RELEASE SAVEPOINT ${SAVEPOINT}`));
        verdicts.push({ tx: current, ...outcome });
        current = undefined;
      }

      // Commit: nobody hears of the batch before.
      committing = true;
      await trx.commit().execute();
    } catch (err) {
      // The one failure path: the batch as a whole is undone.
      await trx
        .rollback()
        .execute()
        .catch(() => undefined);
      const undecided = [previous?.tx, current].filter((tx): tx is Queued => tx !== undefined);
      settleFailedBatch(queue, verdicts, undecided, err, committing);
      return;
    }
    committed(verdicts.length);
    settleCommittedBatch(queue, verdicts);
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

  const lanesByKey = laneAssignment(lanes);

  return function transaction<T>(key: string, fn: (trx: Executor) => Promise<T>): Promise<T> {
    const { lane, finished } = lanesByKey.take(key);
    return new Promise<T>((resolve, reject) => {
      queues[lane].push({
        fn,
        resolve: (v: unknown) => {
          finished();
          resolve(v as T);
        },
        reject: (e: unknown) => {
          finished();
          reject(e);
        },
      });
      schedule(lane);
    });
  };
}

async function runTransaction(tx: Queued, trx: ControlledTransaction<DB>): Promise<Outcome> {
  try {
    return { ok: true, value: await tx.fn(trx) };
  } catch (err) {
    return { ok: false, err };
  }
}

/**
 * After a COMMIT: each transaction hears its verdict; one that failed on a deadlock or a
 * serialization failure runs again in a later batch (up to MAX_RERUNS times).
 */
function settleCommittedBatch(queue: Queued[], verdicts: Verdict[]): void {
  const again: Queued[] = [];
  for (const v of verdicts) {
    if (v.ok) v.tx.resolve(v.value);
    else if (isRetryablePg(v.err) && (v.tx.attempts ?? 0) < MAX_RERUNS) again.push(rerun(v.tx));
    else v.tx.reject(v.err);
  }
  queue.unshift(...again);
}

/**
 * After the batch failed and was rolled back (`err`): nothing of it is kept. A transaction that
 * failed on its own rejects with its error (unless that error is retryable); the others, and those
 * without a verdict yet, run again first in the queue. Except after a connection lost while the
 * COMMIT was on its way: it may have committed, and running the batch again could apply it twice,
 * so its transactions reject (a retry with an Idempotency-Key then answers the first result, or
 * applies it once). A COMMIT that PostgreSQL refused (a DatabaseError) surely kept nothing.
 */
function settleFailedBatch(
  queue: Queued[],
  verdicts: Verdict[],
  undecided: Queued[],
  err: unknown,
  committing: boolean,
): void {
  const ambiguous = committing && !(err instanceof pg.DatabaseError);
  const again: Queued[] = [];
  const all: Verdict[] = [...verdicts, ...undecided.map((tx): Verdict => ({ tx, ok: true, value: undefined }))];
  for (const v of all) {
    if (!v.ok && !isRetryablePg(v.err)) v.tx.reject(v.err);
    else if (!ambiguous && (v.tx.attempts ?? 0) < MAX_RERUNS) again.push(rerun(v.tx));
    else v.tx.reject(v.ok ? err : v.err);
  }
  queue.unshift(...again);
}

const rerun = (tx: Queued): Queued => ({ ...tx, attempts: (tx.attempts ?? 0) + 1 });

/**
 * Which lane each key's unfinished transactions are in, and how many there are. A key's next
 * transaction joins that lane while any is unfinished (it will wait for the same row locks, and in
 * one lane it waits in the queue instead of holding a batch up); otherwise it goes to the lane with
 * the least work queued, so no lane's queue grows while another's is empty.
 */
function laneAssignment(lanes: number) {
  const active = new Map<string, { lane: number; count: number }>();
  const load = new Array<number>(lanes).fill(0);
  return {
    /** The lane for a new transaction of `key`; call `finished` once it has its answer. */
    take(key: string): { lane: number; finished: () => void } {
      let entry = active.get(key);
      if (!entry) {
        let lane = 0;
        for (let i = 1; i < lanes; i++) if (load[i] < load[lane]) lane = i;
        entry = { lane, count: 0 };
        active.set(key, entry);
      }
      const taken = entry;
      taken.count++;
      load[taken.lane]++;
      return {
        lane: taken.lane,
        finished: () => {
          load[taken.lane]--;
          if (--taken.count === 0) active.delete(key);
        },
      };
    },
  };
}
