import { Worker } from 'node:worker_threads';

// SQLite WAL checkpoints off the event loop. better-sqlite3 is synchronous: a checkpoint run by the
// connection that serves requests (SQLite's automatic one, at COMMIT) stalls every request for as
// long as it takes to copy the WAL into the database file and fsync it. A worker thread with its own
// connection runs PASSIVE checkpoints twice a second instead; they never block the writer. The
// serving connection keeps a high automatic threshold as a safety net.

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 1000');
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch { /* busy: next time */ }
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'stop') {
    clearInterval(timer);
    try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
    db.close();
    parentPort.postMessage('stopped');
  }
});
`;

export function startCheckpointer(path: string, onError: (err: unknown) => void, intervalMs = 500): { stop(): Promise<void> } {
  const module = new URL(import.meta.resolve('better-sqlite3')).pathname;
  const worker = new Worker(WORKER, { eval: true, workerData: { path, intervalMs, module } });
  worker.unref();
  worker.on('error', onError);
  return {
    async stop() {
      await new Promise<void>((resolve) => {
        const done = () => resolve();
        worker.once('message', done);
        worker.once('exit', done);
        worker.postMessage('stop');
        setTimeout(done, 2000).unref();
      });
      await worker.terminate();
    },
  };
}
