// Shared by the HTTP benchmarks that drive a `tally serve` child process (bench/ledger.ts,
// bench/events.ts): the child process, its database, CPU accounting from /proc, the load
// generator and a small API client.
//
// Environment: BENCH_DURATION (seconds per run, 10), BENCH_CONNECTIONS (50), BENCH_BACKENDS
// (sqlite,postgres), BENCH_PG_URL (an admin URL, postgres://postgres@127.0.0.1:5432/postgres).
// Profiling: BENCH_NODE_ARGS (node flags for the server processes, e.g. "--cpu-prof
// --cpu-prof-dir=/tmp/prof", or "--import ./bench/sql-stats.mjs" for time per SQL text) with
// BENCH_SHOW_SERVER_OUTPUT=1. BENCH_PROCESSES (1; e.g. 1,2,4): on PostgreSQL, one run per count of
// server processes (`tally serve --workers N`), their CPU summed. BENCH_TALLY_ROOT runs another
// checkout's server (e.g. the code before an optimisation) under the same load.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';

const root = new URL('..', import.meta.url).pathname;
export const DURATION = Number(process.env.BENCH_DURATION ?? 10);
export const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
export const BACKENDS = (process.env.BENCH_BACKENDS ?? 'sqlite,postgres').split(',').filter(Boolean);
/** Server process counts to run on PostgreSQL (SQLite is one writer process: always 1). */
export const PROCESSES = (process.env.BENCH_PROCESSES ?? '1')
  .split(',')
  .map(Number)
  .filter((n) => n >= 1);
export const processesOf = (backend: string) => (backend === 'postgres' ? PROCESSES : [1]);
export const PG_ADMIN =
  process.env.BENCH_PG_URL ??
  (process.env.DATABASE_URL?.startsWith('postgres')
    ? process.env.DATABASE_URL
    : 'postgres://postgres@127.0.0.1:5432/postgres');
export const APP_ID = 'app_bench';
export const TOKEN = `tly_sk_bench_${randomBytes(12).toString('hex')}`;
export const authHeaders = { 'x-app-id': APP_ID, 'x-app-token': TOKEN, 'content-type': 'application/json' };
/** The key encrypting stored secrets (a server on PostgreSQL refuses to start without one). */
export const SECRET_KEY = process.env.TALLY_SECRET_KEY || randomBytes(32).toString('base64');

// CPU accounting from /proc: on a shared machine requests/s depends on what else runs, while the
// CPU time a request costs does not (much). Ticks are 1/100 s on Linux.
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
}

/** CPU ticks of a process and its children (the workers of `tally serve --workers N`). */
export function treeTicks(pid: number): number {
  let total = cpuTicks(pid);
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) total += cpuTicks(Number(d)) || 0;
    } catch {
      /* gone */
    }
  }
  return total;
}

/**
 * CPU ticks of all PostgreSQL processes (machine-wide: read it as an upper bound on a shared
 * server), those that ended too: the postmaster's reaped children (its cutime and cstime), so the
 * figure never drops when a connection closes between two readings.
 */
export function postgresTicks(): number {
  let total = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() !== 'postgres') continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += Number(f[11]) + Number(f[12]);
      const parent = Number(f[1]);
      const parentIsPostgres = (() => {
        try {
          return readFileSync(`/proc/${parent}/comm`, 'utf8').trim() === 'postgres';
        } catch {
          return false;
        }
      })();
      if (!parentIsPostgres) total += Number(f[13]) + Number(f[14]);
    } catch {
      /* gone */
    }
  }
  return total;
}

/** µs of CPU per operation from a tick difference. */
export const usPer = (ticks: number, ops: number) => Math.round((ticks * 10_000) / Math.max(1, ops));

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitFor(url: string, child: ChildProcess, output: () => string) {
  // Up to 2 minutes: several processes (--workers N) each compile the sources at start.
  for (let i = 0; i < 1200; i++) {
    if (child.exitCode !== null) throw new Error(`server exited:\n${output()}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server did not answer ${url}:\n${output()}`);
}

/** A node child process (NODE_ENV=production, LOG_LEVEL=warn) with BENCH_NODE_ARGS in front of `args`. */
export function startChild(args: string[], env: Record<string, string>) {
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, ...args], {
    cwd: root,
    env: { ...process.env, NODE_ENV: 'production', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return {
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      if (process.env.BENCH_SHOW_SERVER_OUTPUT) console.log(out);
    },
  };
}

export async function pgAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function pgReachable() {
  try {
    await pgAdmin((c) => c.query('select 1'));
    return true;
  } catch {
    return false;
  }
}

/** A fresh database for one run: a temporary SQLite file, or a new PostgreSQL database. */
export async function freshDatabase(backend: string): Promise<{ databaseUrl: string; cleanup: () => Promise<void> }> {
  if (backend === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'tally-bench-'));
    return {
      databaseUrl: `sqlite:${join(dir, 'bench.db')}`,
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const name = `tally_bench_${Date.now()}_${randomBytes(3).toString('hex')}`;
  await pgAdmin((c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(PG_ADMIN);
  u.pathname = `/${name}`;
  return {
    databaseUrl: u.toString(),
    cleanup: () => pgAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

/** `tally serve` on `databaseUrl` in a child process (`env`: added to its environment), answering at `base`. */
export async function startTally(databaseUrl: string, processes = 1, env: Record<string, string> = {}) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const bin = join(process.env.BENCH_TALLY_ROOT ?? root, 'bin/tally.mjs');
  const server = startChild([bin, 'serve'], {
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    TALLY_APP_ID: APP_ID,
    TALLY_APP_TOKEN: TOKEN,
    TALLY_SECRET_KEY: SECRET_KEY,
    TALLY_WORKERS: String(processes),
    ...env,
  });
  try {
    await waitFor(`${base}/readyz`, server.child, server.output);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { ...server, base, pid: server.child.pid! };
}

/** Runs `fn` against `tally serve` on a fresh database of `backend`; stops both afterwards. */
export async function withTally<T>(
  backend: string,
  fn: (server: Awaited<ReturnType<typeof startTally>>) => Promise<T>,
  processes = 1,
): Promise<T> {
  const { databaseUrl, cleanup } = await freshDatabase(backend);
  try {
    const server = await startTally(databaseUrl, processes);
    try {
      return await fn(server);
    } finally {
      await server.stop();
    }
  } finally {
    await cleanup();
  }
}

/** An authenticated JSON request to the server; throws on a non-2xx answer. */
export async function api(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: authHeaders,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as any;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** autocannon with the benchmark's connections and duration unless `opts` says otherwise. */
export function load(opts: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon({ connections: CONNECTIONS, duration: DURATION, ...opts }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

export function loadAverageLine(): string {
  const [l1, l5] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
  return `load average at the end: ${l1} (1 min), ${l5} (5 min) on ${availableParallelism()} CPUs`;
}
