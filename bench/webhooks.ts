// npm run bench:webhooks: webhook delivery throughput and latency.
//
// 1. Throughput: N events already in the outbox, one endpoint subscribed to all; the dispatcher
//    (as started by the server) fans out, signs (Standard Webhooks + Voucherify) and POSTs to a
//    local receiver, and records every attempt. Figure: deliveries per second until the last
//    receipt. Target ≥ 2,000/s on SQLite.
// 2. Latency: balance changes at a steady 500/s (ledger.applyChange, each in its own transaction,
//    as the API does); figure: time from the change's commit to its balance_value_updated reaching
//    the receiver, p50/p99. Target p99 < 100 ms.
// The receiver runs in a worker thread so its work does not sit on the server's event loop.
// Runs on a temporary SQLite file and on a fresh PostgreSQL database (BENCH_BACKENDS, BENCH_PG_URL
// as for the other benchmarks; PostgreSQL is skipped when not reachable), or only on
// BENCH_DATABASE_URL when that is set.
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { loadConfig } from '../src/config.ts';
import { buildServer } from '../src/server.ts';
import { BACKENDS, freshDatabase, PG_ADMIN, pgReachable, SECRET_KEY } from './lib.ts';

const THROUGHPUT_EVENTS = Number(process.env.BENCH_EVENTS ?? 20_000);
const RATE = Number(process.env.BENCH_RATE ?? 500);
const LATENCY_SECONDS = Number(process.env.BENCH_SECONDS ?? 10);

const receiverSource = `
const { parentPort } = require('node:worker_threads');
const http = require('node:http');
const { performance } = require('node:perf_hooks');
let count = 0;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    count++;
    const at = performance.timeOrigin + performance.now();
    {
      const body = Buffer.concat(chunks).toString('utf8');
      if (body.includes('"type":"balance_value_updated"')) {
        const m = body.match(/"source_event_id":"(lat-[^"]+)"/);
        if (m) parentPort.postMessage({ kind: 'latency', key: m[1], at });
      }
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ kind: 'ready', port: server.address().port }));
setInterval(() => parentPort.postMessage({ kind: 'count', count }), 20);
`;

const now = () => performance.timeOrigin + performance.now();
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function benchOn(databaseUrl: string) {
  const loadAtStart = loadavg();
  const worker = new Worker(receiverSource, { eval: true });
  let received = 0;
  const receipts = new Map<string, number>();
  const port = await new Promise<number>((resolve) => {
    worker.on('message', (m) => {
      if (m.kind === 'ready') resolve(m.port);
      else if (m.kind === 'count') received = m.count;
      else if (m.kind === 'latency') receipts.set(m.key, m.at);
    });
  });

  const config = {
    ...loadConfig({}, {}),
    port: 0,
    databaseUrl,
    logLevel: 'warn',
    allowPrivateTargets: true,
    workers: true,
    secretKey: SECRET_KEY,
  };
  const server = await buildServer(config, process.env.BENCH_LOG ? {} : { logger: false });
  const appId = 'app_bench';
  const token = `tly_sk_bench_${randomBytes(8).toString('hex')}`;
  await server.services.apiKeys.ensure(appId, token);
  const base = await server.listen();
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { 'x-app-id': appId, 'x-app-token': token, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return res.json() as Promise<any>;
  };
  const { ctx, services } = server;
  const hook = await api('POST', '/v1/webhooks', { target_url: `http://127.0.0.1:${port}/hook`, events: ['*'] });
  const program = await api('POST', '/v1/loyalties', { name: 'Bench' });
  const cards: any[] = [];
  for (let i = 0; i < 50; i++)
    cards.push(
      await api('POST', `/v1/loyalties/${program.id}/members`, { customer: { source_id: `b-${i}`, name: `B ${i}` } }),
    );
  // Let the set-up events go out first.
  while (received < 50) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 300));
  const baseline = received;

  // ---- 1. throughput ----
  // Events written to the outbox in big transactions without waking the dispatcher (database.transaction
  // emits no 'committed' signal), then one wake: the measured time is fan-out + sign + send + record.
  const payload = (i: number) => ({
    balance_definition: { id: 'bdef_bench', metadata: {}, name: 'points', unit: 'points' },
    created: false,
    expiration_date: null,
    initial_value: i,
    loyalty_program: { id: program.id, name: program.name },
    source_event_id: `tp-${i}`,
    transaction: { type: 'credit', value: 1 },
    value: i + 1,
  });
  for (let i = 0; i < THROUGHPUT_EVENTS; i += 1000) {
    await ctx.database.transaction((trx) =>
      ctx.outbox.emit(
        trx,
        Array.from({ length: Math.min(1000, THROUGHPUT_EVENTS - i) }, (_, k) => ({
          type: 'balance_value_updated',
          data: payload(i + k),
          resource_type: 'membership',
          resource_id: cards[0].id,
          program_id: program.id,
        })),
      ),
    );
  }
  const t0 = now();
  ctx.signals.emit('committed');
  while (received < baseline + THROUGHPUT_EVENTS) await new Promise((r) => setTimeout(r, 5));
  const elapsed = (now() - t0) / 1000;
  // Wait for the attempt log to catch up too (it is part of the work).
  for (;;) {
    const n = await ctx.database.db
      .selectFrom('webhook_attempts')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    if (Number(n.n) >= baseline + THROUGHPUT_EVENTS) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const elapsedRecorded = (now() - t0) / 1000;
  const throughput = THROUGHPUT_EVENTS / elapsed;

  // ---- 2. latency at RATE changes/s ----
  // One delivery per change: the endpoint now takes balance_value_updated only (a '*' endpoint would
  // also get points_added, two deliveries per change).
  await api('PUT', `/v1/webhooks/${hook.id}`, { events: ['balance_value_updated'] });
  const definition = await services.programs.defaultDefinition(ctx.database.db, program.id);
  const programRow = await services.programs.get(ctx.database.db, program.id);
  const memberships = await ctx.database.db
    .selectFrom('memberships')
    .selectAll()
    .where('program_id', '=', program.id)
    .execute();
  const commits = new Map<string, number>();
  const total = RATE * LATENCY_SECONDS;
  const start = now();
  let issued = 0;
  const inflight = new Set<Promise<void>>();
  while (issued < total) {
    const due = Math.min(total, Math.floor(((now() - start) / 1000) * RATE));
    while (issued < due) {
      const key = `lat-${issued}`;
      const membership = memberships[issued % memberships.length];
      issued++;
      const p = ctx
        .transaction((trx) =>
          services.ledger.applyChange(trx, {
            program: programRow,
            membership,
            definition,
            points: 1,
            type: 'POINTS_ADDITION',
            source: 'bench',
            source_event_id: key,
            operation_type: 'AUTOMATIC',
          }),
        )
        .then(() => {
          commits.set(key, now());
        });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(inflight);
  const loadSeconds = (now() - start) / 1000;
  const waitUntil = now() + 10_000;
  while (receipts.size < total && now() < waitUntil) await new Promise((r) => setTimeout(r, 10));
  const latencies = [...commits].map(([k, c]) => (receipts.get(k) ?? Infinity) - c).sort((a, b) => a - b);
  const lost = latencies.filter((l) => l === Infinity).length;

  console.log(
    `database: ${ctx.database.dialect}; machine: ${cpus().length} cores, load average at start ` +
      `${loadAtStart.map((l) => l.toFixed(1)).join(' ')}`,
  );
  console.log(
    `throughput: ${THROUGHPUT_EVENTS} deliveries (signed: webhook-signature + x-voucherify-signature) in ` +
      `${elapsed.toFixed(2)} s = ${Math.round(throughput)} deliveries/s (attempt log recorded after ` +
      `${elapsedRecorded.toFixed(2)} s = ${Math.round(THROUGHPUT_EVENTS / elapsedRecorded)}/s)`,
  );
  console.log(
    `latency at ${RATE} changes/s (${total} changes in ${loadSeconds.toFixed(1)} s = ` +
      `${Math.round(total / loadSeconds)}/s): commit → receipt p50 ${pct(latencies, 50).toFixed(1)} ms, p90 ` +
      `${pct(latencies, 90).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms, max ` +
      `${latencies[latencies.length - 1 - lost]?.toFixed(1)} ms${lost ? `, ${lost} not received` : ''}`,
  );
  console.log(
    `targets: throughput >= 2000/s ${throughput >= 2000 ? 'MET' : 'MISSED'}; p99 < 100 ms ` +
      `${pct(latencies, 99) < 100 ? 'MET' : 'MISSED'}`,
  );

  await server.close();
  await worker.terminate();
  return { throughput, p99: pct(latencies, 99), lost };
}

const results: { backend: string; throughput: number; p99: number; lost: number }[] = [];
if (process.env.BENCH_DATABASE_URL) {
  results.push({
    backend: process.env.BENCH_DATABASE_URL.startsWith('sqlite') ? 'sqlite' : 'postgres',
    ...(await benchOn(process.env.BENCH_DATABASE_URL)),
  });
} else {
  for (const backend of BACKENDS) {
    if (backend === 'postgres' && !(await pgReachable())) {
      console.log(`PostgreSQL skipped: not reachable at ${PG_ADMIN}`);
      continue;
    }
    const { databaseUrl, cleanup } = await freshDatabase(backend);
    try {
      results.push({ backend, ...(await benchOn(databaseUrl)) });
    } finally {
      await cleanup();
    }
  }
}
console.log(`\n| backend | deliveries/s | commit→receipt p99 ms at ${RATE}/s | not received |`);
console.log('| --- | ---: | ---: | ---: |');
for (const r of results)
  console.log(
    `| ${r.backend} | ${Math.round(r.throughput)} | ${r.p99 === Infinity ? '-' : r.p99.toFixed(1)} | ${r.lost} |`,
  );
process.exit(results.every((r) => r.lost === 0) ? 0 : 1);
