import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// WAL checkpoints on a thread of their own.
//
// In WAL mode a COMMIT only appends pages to the -wal file; a checkpoint later copies them into the
// database file and fsyncs it. By default SQLite runs that checkpoint inside whichever COMMIT
// crosses `wal_autocheckpoint` pages: on the event loop, for milliseconds, with an fsync, so every
// request queued behind that commit waits (the p99 spikes of `npm run bench:ledger`). Here the
// serving connection never checkpoints (`wal_autocheckpoint = 0`); a worker thread with its own
// connection runs PASSIVE checkpoints, which never block the writer, on the other core.
//
// The WAL file starts over from its beginning only when a write begins while every frame in it has
// been checkpointed. Under steady load the writer commits again before a concurrent checkpoint has
// caught up, so the file would grow for ever. Once it holds `restartAbovePages` frames the worker
// asks the writer to pause between two batches (`pauseWrites`): with no writer the next PASSIVE
// checkpoint copies every frame, and the writer's next transaction starts the file over. Requests
// keep arriving meanwhile and join the next batch; nothing waits on a lock or sleeps in a busy
// handler.

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
let stopping = false;
let awaitingPause = false;
let restartedAt = -1;
function checkpoint() {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    return r;
  } catch {
    return { busy: 1, log: -1, checkpointed: -1 };
  }
}
function tick() {
  if (stopping) {
    db.close();
    parentPort.postMessage('stopped');
    return;
  }
  if (awaitingPause) return;
  const r = checkpoint();
  // After a pause the WAL stays long until the writer's next transaction starts it over: wait for
  // that, unless it grows on (another writer slipped in first), then ask again.
  if (restartedAt >= 0 && r.log >= restartedAt && r.log < restartedAt + workerData.restartAbovePages / 4) {
    setTimeout(tick, workerData.busyIntervalMs);
    return;
  }
  restartedAt = -1;
  if (r.log >= workerData.restartAbovePages) {
    awaitingPause = true;
    parentPort.postMessage('pause');
    return;
  }
  setTimeout(tick, r.log > r.checkpointed ? workerData.busyIntervalMs : workerData.idleIntervalMs);
}
parentPort.on('message', (m) => {
  if (m === 'stop') {
    stopping = true;
    if (awaitingPause) tick();
  } else if (m === 'paused') {
    // The writer waits between batches: this checkpoint reaches the end of the WAL.
    restartedAt = checkpoint().log;
    awaitingPause = false;
    parentPort.postMessage('resume');
    setTimeout(tick, workerData.busyIntervalMs);
  }
});
tick();
`;

export interface Checkpointer {
  /**
   * Undefined, or a promise the writer awaits between two batches: the worker asked for a pause to
   * let the WAL start over, and the promise settles when the writer may go on.
   */
  pauseWrites(): Promise<void> | undefined;
  stop(): Promise<void>;
}

export function startCheckpointer(
  path: string,
  opts: {
    idleIntervalMs?: number;
    busyIntervalMs?: number;
    restartAbovePages?: number;
    maxPauseMs?: number;
    onError?: (err: Error) => void;
  } = {},
): Checkpointer {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      path,
      module: createRequire(import.meta.url).resolve('better-sqlite3'),
      idleIntervalMs: opts.idleIntervalMs ?? 100,
      busyIntervalMs: opts.busyIntervalMs ?? 5,
      // 65,536 pages of 4 KiB: under sustained writes the WAL starts over at about 256 MB (with
      // lighter load the checkpoints catch up between writes and it starts over by itself, small).
      // Each forced start-over pauses writes for one checkpoint of the last batches' pages and its
      // fsyncs: the threshold keeps those pauses too rare to reach the p99 (docs/performance.md).
      restartAbovePages: opts.restartAbovePages ?? 65_536,
    },
  });
  let alive = true;
  let pauseRequested = false;
  let resume: (() => void) | undefined;
  const exited = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      alive = false;
      pauseRequested = false;
      resume?.();
      resolve();
    }),
  );
  // Without this listener a failing worker (a database it cannot open) would crash the process.
  worker.on('error', (err) => opts.onError?.(err));
  worker.on('message', (m) => {
    if (m === 'pause') pauseRequested = true;
    else if (m === 'resume') resume?.();
  });
  // A checkpointer must not keep the process alive on its own (after the listeners: attaching a
  // message listener refs the worker again).
  worker.unref();
  const maxPauseMs = opts.maxPauseMs ?? 1000;
  return {
    pauseWrites() {
      if (!pauseRequested || !alive) return undefined;
      pauseRequested = false;
      return new Promise<void>((resolve) => {
        // A worker stuck in a checkpoint (a long fsync) must not hold the writer for long.
        const timer = setTimeout(() => done(), maxPauseMs);
        const done = () => {
          clearTimeout(timer);
          resume = undefined;
          resolve();
        };
        resume = done;
        worker.postMessage('paused');
      });
    },
    async stop() {
      if (!alive) return;
      const stopped = new Promise<void>((resolve) => {
        worker.on('message', (m) => m === 'stopped' && resolve());
        worker.unref();
      });
      worker.postMessage('stop');
      // A worker inside a long checkpoint finishes it first; one that hangs is ended.
      const timer = setTimeout(() => void worker.terminate(), 5000);
      await Promise.race([stopped, exited]);
      clearTimeout(timer);
      await worker.terminate();
    },
  };
}
