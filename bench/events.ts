// npm run bench:events — custom events per second with 20 active earning rules, on SQLite and
// PostgreSQL. Drives the ingestion workflow in-process (one transaction per event, as POST /v1/events
// does) and then over HTTP; prints the figures.
//   BENCH_EVENTS=3000 BENCH_BACKENDS=sqlite,postgres BENCH_HTTP=1 npm run bench:events
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig } from '../src/config.ts';
import { buildServer } from '../src/server.ts';
import { ingestActivity } from '../src/workflows/ingest-activity.ts';

const N = Number(process.env.BENCH_EVENTS ?? 3000);
const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 200);
const PG_URL = process.env.TALLY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const backends = (process.env.BENCH_BACKENDS ?? 'sqlite,postgres').split(',');
const withHttp = process.env.BENCH_HTTP !== '0';

async function database(backend: string) {
  if (backend === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'tally-bench-'));
    return { url: `sqlite:${join(dir, 'bench.db')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `tally_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

async function run(backend: string) {
  const db = await database(backend);
  const server = await buildServer({ ...loadConfig({}, {}), port: 0, host: '127.0.0.1', databaseUrl: db.url, logLevel: 'error', workers: false }, { logger: false });
  const { ctx, services } = server;
  const appId = 'app_bench';
  const token = `tly_sk_bench_${randomBytes(8).toString('hex')}`;
  await services.apiKeys.ensure(appId, token);
  // One program, 20 active rules: 5 on the benchmark event (fixed, proportional on metadata, a
  // condition, a time multiplier, a daily cap), 15 on other events.
  const program = await ctx.transaction((trx) => services.programs.create(trx, { name: 'Bench', timezone: 'Europe/Zagreb' }));
  const rules: any[] = [
    { event: 'purchase', loyalty: { type: 'FIXED', points: 5 } },
    { event: 'purchase', loyalty: { type: 'PROPORTIONAL', calculation_type: 'CUSTOM_EVENT_METADATA', custom_event: { metadata: { every: 10, points: 1, property: 'value' } } } },
    { event: 'purchase', loyalty: { type: 'FIXED', points: 2 }, conditions: { 'event.metadata.channel': { $in: ['web', 'app'] } } },
    { event: 'purchase', loyalty: { type: 'FIXED', points: 3 }, multipliers: [{ multiplier: 2, validity_day_of_week: [0, 6] }] },
    { event: 'purchase', loyalty: { type: 'FIXED', points: 1 }, limits: [{ period: 'DAY', max_points: 1_000_000 }] },
  ];
  for (let i = 0; i < 15; i++) rules.push({ event: `other_${i}`, loyalty: { type: 'FIXED', points: 1 } });
  await ctx.transaction((trx) => services.earning.create(trx, program, rules));
  const customers = Array.from({ length: CUSTOMERS }, (_, i) => `bench-${i}`);
  // Warm-up: every customer joins (first sight), caches fill.
  for (const c of customers) {
    await ctx.transaction((trx) => ingestActivity(ctx, trx, services, { kind: 'custom_event', event: 'purchase', customer: { source_id: c }, metadata: { value: 40, channel: 'web' } }));
  }

  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    await ctx.transaction((trx) =>
      ingestActivity(ctx, trx, services, {
        kind: 'custom_event',
        event: 'purchase',
        customer: { source_id: customers[i % CUSTOMERS] },
        metadata: { value: 40 + (i % 100), channel: i % 3 ? 'web' : 'pos' },
        sourceEventId: `ev-${i}`,
      }),
    );
  }
  const inProcess = N / ((performance.now() - t0) / 1000);
  // CPU time of this process per event: on a shared machine wall-clock rates swing with the load of
  // other processes; CPU time per event does not (for PostgreSQL it excludes the server's own work).
  const cpu = process.cpuUsage(cpu0);
  const cpuPerEvent = (cpu.user + cpu.system) / N;

  let http: number | null = null;
  if (withHttp) {
    const url = await server.listen();
    const { default: autocannon } = await import('autocannon');
    let i = 0;
    const result = await autocannon({
      url,
      connections: backend === 'sqlite' ? 8 : 16,
      amount: N,
      requests: [
        {
          method: 'POST',
          path: '/v1/events',
          headers: { 'content-type': 'application/json', 'x-app-id': appId, 'x-app-token': token },
          setupRequest: (req: any) => ({ ...req, body: JSON.stringify({ event: 'purchase', customer: { source_id: customers[i % CUSTOMERS] }, metadata: { value: 50, channel: 'app' }, source_event_id: `http-${i++}` }) }),
        },
      ],
    });
    if (result.non2xx > 0) console.error(`  ${result.non2xx} non-2xx answers`);
    http = result.requests.average;
  }
  const entries = await ctx.database.db.selectFrom('ledger_entries').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  await server.close();
  await db.drop();
  return { backend, inProcess, cpuPerEvent, http, entries: Number(entries.n) };
}

console.log(`custom events with 20 active earning rules (5 match each event), ${N} events, ${CUSTOMERS} customers`);
for (const b of backends) {
  if (b === 'postgres') {
    const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
    const ok = await c.connect().then(() => true, () => false);
    await c.end().catch(() => undefined);
    if (!ok) {
      console.log(`postgres: skipped (not reachable at ${PG_URL})`);
      continue;
    }
  }
  const r = await run(b);
  console.log(
    `${r.backend.padEnd(8)} in-process: ${r.inProcess.toFixed(0)} events/s (${r.cpuPerEvent.toFixed(0)} µs CPU/event → ${(1e6 / r.cpuPerEvent).toFixed(0)} events/s per core)` +
      (r.http !== null ? `   HTTP (POST /v1/events): ${r.http.toFixed(0)} req/s` : '') +
      `   (${r.entries} ledger entries)`,
  );
}
