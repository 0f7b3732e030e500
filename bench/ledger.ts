// `npm run bench:ledger`: point additions over HTTP, each with its own Idempotency-Key, from 50
// concurrent connections, on SQLite and on PostgreSQL, with the ceilings of the same machine in the
// same run: an empty Fastify route (the HTTP layer alone) and pgbench tpcb-like (the database alone).
//
// The server runs in a child process (`node bin/tally.mjs serve`, NODE_ENV=production,
// LOG_LEVEL=warn) so the load generator does not share its event loop.
//
// Environment: BENCH_DURATION (seconds per run, 10), BENCH_CONNECTIONS (50), BENCH_CARDS (cards the
// additions spread over, 1000), BENCH_BACKENDS (sqlite,postgres), BENCH_PG_URL (an admin URL,
// postgres://postgres@127.0.0.1:5432/postgres), BENCH_SKIP_CEILINGS=1. Profiling: BENCH_NODE_ARGS
// (node flags for the server processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", or
// "--import ./bench/sql-stats.mjs" for time per SQL text) with BENCH_SHOW_SERVER_OUTPUT=1.
//
// Besides requests/s it prints the CPU time per request of the server process (and of all
// PostgreSQL processes) from /proc: on a shared machine requests/s moves with the neighbours' load,
// CPU per request much less.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type autocannon from 'autocannon';
import {
  api,
  authHeaders,
  BACKENDS,
  CONNECTIONS,
  cpuTicks,
  DURATION,
  freePort,
  load as run,
  loadAverageLine,
  PG_ADMIN,
  pgAdmin,
  pgReachable,
  postgresTicks,
  processesOf,
  startChild,
  treeTicks,
  usPer,
  withTally,
} from './lib.ts';

const CARDS = Number(process.env.BENCH_CARDS ?? 1000);

interface Row {
  name: string;
  /** CPU time (user + system) the server process spent per answered request, in µs. */
  serverCpuUs?: number;
  /**
   * CPU time of all PostgreSQL processes per answered request, in µs (machine-wide: on a shared
   * server it includes other clients' work, so read it as an upper bound).
   */
  dbCpuUs?: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  note?: string;
}
const rows: Row[] = [];

function record(name: string, r: autocannon.Result, note?: string): Row {
  const ok = r['2xx'];
  const row = {
    name,
    rps: Math.round(ok / (r.duration || DURATION)),
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.non2xx + r.errors + r.timeouts,
    note,
  };
  rows.push(row);
  console.log(
    `  ${name}: ${row.rps} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms, ${row.errors} errors (p90 ${r.latency.p90}, ` +
      `p97.5 ${r.latency.p97_5}, max ${r.latency.max})`,
  );
  if (row.errors > 0)
    console.log(
      `    non-2xx by status: ${JSON.stringify(r.statusCodeStats)}, connection errors ${r.errors}, timeouts ` +
        `${r.timeouts}`,
    );
  return row;
}

async function benchTally(backend: string, processes: number) {
  await withTally(
    backend,
    async (server) => {
      const base = server.base;
      const program = await api(base, 'POST', '/v1/loyalties', { name: 'Bench' });
      const codes: string[] = [];
      for (let i = 0; i < CARDS; i += 50) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(50, CARDS - i) }, (_, j) =>
            api(base, 'POST', `/v1/loyalties/${program.id}/members`, { customer: { source_id: `bench-${i + j}` } }),
          ),
        );
        codes.push(...batch.map((m) => m.code));
      }
      const body = JSON.stringify({ points: 1, reason: 'bench' });
      // Warm-up, then the measured run.
      const warm = await run({
        url: base,
        duration: 2,
        requests: [
          {
            method: 'POST',
            setupRequest: (req) => ({
              ...req,
              path: `/v1/loyalties/members/${codes[Math.floor(Math.random() * codes.length)]}/balance`,
              headers: { ...authHeaders, 'idempotency-key': randomUUID() },
              body,
            }),
          },
        ],
      });
      const cpu0 = treeTicks(server.pid);
      const gen0 = cpuTicks(process.pid);
      const pg0 = backend === 'postgres' ? postgresTicks() : 0;
      const r = await run({
        url: base,
        requests: [
          {
            method: 'POST',
            setupRequest: (req) => ({
              ...req,
              path: `/v1/loyalties/members/${codes[Math.floor(Math.random() * codes.length)]}/balance`,
              headers: { ...authHeaders, 'idempotency-key': randomUUID() },
              body,
            }),
          },
        ],
      });
      const cpuUs = usPer(treeTicks(server.pid) - cpu0, r['2xx']);
      const genUs = usPer(cpuTicks(process.pid) - gen0, r['2xx']);
      const pgUs = backend === 'postgres' ? usPer(postgresTicks() - pg0, r['2xx']) : undefined;
      const procs = processes > 1 ? `, ${processes} processes` : '';
      const row = record(`tally ${backend}: POST balance +1 (Idempotency-Key, ${CARDS} cards${procs})`, r);
      row.serverCpuUs = Math.round(cpuUs);
      row.dbCpuUs = pgUs === undefined ? undefined : Math.round(pgUs);
      console.log(
        `    server CPU ${row.serverCpuUs} µs per addition` +
          `${pgUs === undefined ? '' : `, PostgreSQL CPU ${row.dbCpuUs} µs per addition`}; ` +
          `load generator CPU ${Math.round(genUs)} µs per request`,
      );
      // Correctness after the run: every 2xx is exactly one ledger entry and one idempotency record.
      let total = 0;
      for (let i = 0; i < codes.length; i += 1) {
        const card = await api(base, 'GET', `/v1/loyalties/members/${codes[i]}`);
        total += card.loyalty_card.balance;
      }
      // Every 2xx is one +1; requests still in flight when a run's time is up were sent and may have
      // been applied without their answer being counted, so the sum lies between the two counts.
      const answered = warm['2xx'] + r['2xx'];
      const sent = warm.requests.sent + r.requests.sent;
      const ok = total >= answered && total <= sent;
      row.note = `sum of card balances ${total}, 2xx ${answered}, sent ${sent}`;
      console.log(
        `    sum of all card balances ${total}: ${ok ? 'within' : 'OUTSIDE'} [2xx answers ${answered}, requests sent ` +
          `${sent}]${ok ? '' : ' MISMATCH'}`,
      );
      if (!ok) process.exitCode = 1;
    },
    processes,
  );
}

async function benchEmpty() {
  const port = await freePort();
  const server = startChild(['--import', 'tsx', 'bench/empty-server.ts'], { PORT: String(port) });
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        if (server.output().includes('listening')) {
          clearInterval(t);
          resolve();
        } else if (server.child.exitCode !== null) reject(new Error(server.output()));
      }, 50);
    });
    const body = JSON.stringify({ points: 1, reason: 'bench' });
    await run({
      url: `http://127.0.0.1:${port}/empty`,
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
      duration: 2,
    });
    const cpu0 = cpuTicks(server.child.pid!);
    const r = await run({
      url: `http://127.0.0.1:${port}/empty`,
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    const row = record('ceiling: empty Fastify route (POST JSON)', r);
    row.serverCpuUs = usPer(cpuTicks(server.child.pid!) - cpu0, r['2xx']);
    console.log(`    server CPU ${row.serverCpuUs} µs per request`);
  } finally {
    await server.stop();
  }
}

function benchPgbench() {
  const name = `tally_pgbench_${Date.now()}`;
  const u = new URL(PG_ADMIN);
  const conn = ['-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username || 'postgres')];
  const env = { ...process.env, ...(u.password ? { PGPASSWORD: decodeURIComponent(u.password) } : {}) };
  return pgAdmin((c) => c.query(`CREATE DATABASE ${name}`)).then(async () => {
    try {
      // Scale = clients: pgbench's own advice for tpcb-like. At scale 1 its 50 clients all update
      // the one pgbench_branches row and it measures that row's lock (519 tps against 1,022 at
      // scale 50 on the same machine, same minute).
      const init = spawnSync('pgbench', ['-i', '-q', '-s', String(CONNECTIONS), ...conn, name], {
        env,
        encoding: 'utf8',
      });
      if (init.status !== 0) throw new Error(init.stderr);
      const pg0 = postgresTicks();
      const res = spawnSync('pgbench', ['-c', String(CONNECTIONS), '-j', '2', '-T', String(DURATION), ...conn, name], {
        env,
        encoding: 'utf8',
      });
      const pgTicks = postgresTicks() - pg0;
      if (res.status !== 0) throw new Error(res.stderr);
      const tps = Number((res.stdout.match(/tps = ([\d.]+)/) ?? [])[1]);
      const lat = Number((res.stdout.match(/latency average = ([\d.]+) ms/) ?? [])[1]);
      const txs = Number((res.stdout.match(/number of transactions actually processed: (\d+)/) ?? [])[1]);
      // (No PostgreSQL CPU figure here: pgbench's backends exit with it, taking their CPU counters along.)
      void pgTicks;
      void txs;
      rows.push({
        name: `ceiling: pgbench tpcb-like -s ${CONNECTIONS} -c ${CONNECTIONS} -j 2 (tps; average latency)`,
        rps: Math.round(tps),
        p50: lat,
        p99: NaN,
        errors: 0,
      });
      console.log(`  pgbench tpcb-like: ${Math.round(tps)} tps, average latency ${lat} ms`);
    } finally {
      await pgAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    }
  });
}

console.log(`bench:ledger: ${CONNECTIONS} connections, ${DURATION} s per run, node ${process.version}`);
const havePg = BACKENDS.includes('postgres') && (await pgReachable());
if (!process.env.BENCH_SKIP_CEILINGS) await benchEmpty();
for (const b of BACKENDS) {
  if (b === 'postgres' && !havePg) {
    console.log(`  PostgreSQL skipped: not reachable at ${PG_ADMIN}`);
    continue;
  }
  for (const n of processesOf(b)) await benchTally(b, n);
}
if (havePg && !process.env.BENCH_SKIP_CEILINGS) await benchPgbench();

console.log(`\n${loadAverageLine()}`);
console.log('\n| run | req/s | p50 ms | p99 ms | errors | server CPU µs/req | PostgreSQL CPU µs/req |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(
    `| ${r.name} | ${r.rps} | ${r.p50} | ${Number.isNaN(r.p99) ? '-' : r.p99} | ${r.errors} | ` +
      `${r.serverCpuUs ?? '-'} | ${r.dbCpuUs ?? '-'} |`,
  );
}
console.log('\ntargets: SQLite >= 5000 additions/s, PostgreSQL >= 2000/s, p99 < 50 ms');
