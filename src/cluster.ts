import cluster, { type Worker } from 'node:cluster';
import type { Config } from './config.ts';
import { migrateDatabase } from './server.ts';
import { openDatabase, parseDatabaseUrl } from './storage/database.ts';

// `tally serve --workers N`: N server processes on one PostgreSQL database, sharing one port
// through node's cluster (the primary accepts connections and hands them to the workers in turn).
// Nothing else is shared between them: each has its own pool, caches (kept coherent by the cache
// bus, LISTEN/NOTIFY), webhook dispatcher and scheduler, which claim work with SKIP LOCKED, so a
// job or a delivery runs in one process only. SQLite has one writer at a time per file, and this
// server's write path (group commit) assumes it is that writer: it stays one process.

export const SQLITE_ONE_PROCESS =
  'SQLite allows one writer process: --workers N (TALLY_WORKERS) needs PostgreSQL ' +
  '(DATABASE_URL=postgres://...). On SQLite run one `tally serve` per database file.\n';

/** Why `processes` cannot run on this database, or null. */
export function refuseProcesses(config: Config): string | null {
  if (config.processes > 1 && parseDatabaseUrl(config.databaseUrl).dialect === 'sqlite') return SQLITE_ONE_PROCESS;
  return null;
}

/**
 * In the primary: brings the schema up to date once (not N times at once), forks the workers,
 * replaces one that dies, and on SIGTERM/SIGINT passes the signal on and waits for them all.
 * In a worker: `serveOne()`. Resolves with the exit code.
 */
export async function serveProcesses(config: Config, serveOne: () => Promise<number>): Promise<number> {
  if (cluster.isWorker) return serveOne();
  const refused = refuseProcesses(config);
  if (refused) {
    process.stderr.write(refused);
    return 2;
  }
  const database = openDatabase(config.databaseUrl, { sqliteSynchronous: config.sqliteSynchronous });
  try {
    await migrateDatabase(database, config.databaseUrl, config.secretKey);
  } finally {
    await database.close();
  }
  let stopping = false;
  let exitCode = 0;
  const workers = new Set<Worker>();
  return new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      for (const w of workers) w.process.kill(signal);
      const done = () => (workers.size === 0 ? resolve(exitCode) : setTimeout(done, 50));
      done();
    };
    const fork = () => {
      const w = cluster.fork();
      let listened = false;
      workers.add(w);
      w.on('listening', () => {
        listened = true;
      });
      w.on('exit', (code, signal) => {
        workers.delete(w);
        if (stopping) return;
        if (!listened) {
          // It could not start (a port in use, a wrong key: it said why): neither will the others.
          exitCode = code || 1;
          stop('SIGTERM');
          return;
        }
        process.stderr.write(`tally: worker ${w.process.pid} exited (${signal ?? code}); starting another\n`);
        setTimeout(fork, 1000).unref();
      });
    };
    for (let i = 0; i < config.processes; i++) fork();
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
