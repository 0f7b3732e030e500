// `npm run bench:console`: the server time of every console page with BENCH_MEMBERS members
// (100,000 by default) in the database. Each page is rendered through the server in-process
// (Fastify inject: no socket, no browser), so the figure is what the server spends: the session
// check, the API calls the page makes, the queries, the HTML. Prints p50 / p95 / max per page and
// exits 1 when a page's p95 is over BENCH_LIMIT_MS (300).
//
// Environment: BENCH_MEMBERS (100000), BENCH_RUNS (20 per page), BENCH_BACKENDS (sqlite; add
// postgres for PostgreSQL at BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig } from '../src/config.ts';
import { setupDemo } from '../src/demo.ts';
import { buildServer, type TallyServer } from '../src/server.ts';

const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 100_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const LIMIT_MS = Number(process.env.BENCH_LIMIT_MS ?? 300);
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'sqlite').split(',').filter(Boolean);
const PG_ADMIN = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const BATCH = 1000;

async function database(backend: string): Promise<{ url: string; drop: () => Promise<void> }> {
  if (backend === 'postgres') {
    const name = `tally_bench_console_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: PG_ADMIN });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(PG_ADMIN);
    url.pathname = `/${name}`;
    return {
      url: url.toString(),
      drop: async () => {
        const c = new pg.Client({ connectionString: PG_ADMIN });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.end();
      },
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'tally-bench-console-'));
  return { url: `sqlite:${join(dir, 'tally.db')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

/** Members through the same services as the API (customer, card, initial points), 1,000 per transaction. */
async function seed(server: TallyServer, programId: string): Promise<void> {
  const { ctx, services, workflows } = server;
  const program = await services.programs.find(ctx.database.db, programId);
  if (!program) throw new Error('no demo program');
  const started = Date.now();
  for (let from = 0; from < MEMBERS; from += BATCH) {
    await ctx.transaction(async (trx) => {
      for (let i = from; i < Math.min(MEMBERS, from + BATCH); i++) {
        const { row } = await services.customers.upsert(trx, {
          source_id: `bench-${i}`,
          name: `Member ${i}`,
          email: `member${i}@example.com`,
          phone: `+3859${String(10_000_000 + i).padStart(8, '0')}`,
        });
        await workflows.joinProgram(trx, program, row, { source: 'bench' });
      }
    });
    if ((from / BATCH) % 10 === 9)
      process.stdout.write(`  ${from + BATCH} members (${Math.round((Date.now() - started) / 1000)} s)\n`);
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function benchBackend(backend: string): Promise<boolean> {
  const db = await database(backend);
  const config = {
    ...loadConfig({}, {}),
    databaseUrl: db.url,
    logLevel: 'warn' as const,
    workers: false,
    port: 0,
    host: '127.0.0.1',
    secretKey: process.env.TALLY_SECRET_KEY || randomBytes(32).toString('base64'),
  };
  const server = await buildServer(config, { logger: false });
  try {
    const demo = await setupDemo(server, config);
    console.log(`${backend}: seeding ${MEMBERS} members…`);
    await seed(server, demo.programId);
    const { app, services } = server;
    const signed = await services.consoleSessions.signIn(demo.appId, demo.token as string);
    if (!signed) throw new Error('sign-in failed');
    const cookie = `tally_console=${signed.token}`;
    const mid = Math.floor(MEMBERS / 2);
    const phone = `+3859${String(10_000_000 + mid).padStart(8, '0')}`;
    const card = (
      await app.inject({
        method: 'GET',
        url: `/v1/customers?phone=${encodeURIComponent(phone)}`,
        headers: {
          'x-app-id': demo.appId,
          'x-app-token': demo.token as string,
        },
      })
    ).json().customers[0].loyalty.campaigns['Tally Coffee Club'].card_code as string;
    const flow = demo.flows.POINTS as string;
    await app.inject({
      method: 'POST',
      url: '/v1/simulator/messages',
      headers: { 'x-app-id': demo.appId, 'x-app-token': demo.token as string, 'content-type': 'application/json' },
      payload: JSON.stringify({ from: phone, text: 'POINTS' }),
    });
    const pages: [string, string][] = [
      ['Overview', '/console'],
      ['Members (newest, page 1)', '/console/members'],
      ['Members (page 2,000)', '/console/members?page=2000'],
      ['Search by phone', `/console/members?q=${encodeURIComponent(phone)}`],
      ['Search by card code (303)', `/console/members?q=${card}`],
      ['Search by name', `/console/members?q=${encodeURIComponent(`Member ${mid}`)}`],
      ['Search by e-mail', `/console/members?q=member${mid}@example.com`],
      ['Member page', `/console/members/${card}`],
      ['Programs', '/console/programs'],
      ['Program', `/console/programs/${demo.programId}`],
      ['Simulator', `/console/simulator?from=${encodeURIComponent(phone)}`],
      ['Flows', '/console/flows'],
      ['Flow editor', `/console/flows/${flow}`],
      ['Flow diff', `/console/flows/${flow}/diff`],
      ['Reports', '/console/reports'],
      ['Flow report', `/console/reports/${flow}`],
      ['Webhooks', '/console/webhooks'],
      ['Event log', '/console/events'],
      ['Messages', `/console/messages?phone=${encodeURIComponent(phone)}`],
      ['API keys', '/console/api-keys'],
    ];
    let ok = true;
    console.log(`\n${backend}, ${MEMBERS} members, ${RUNS} runs per page (server time, ms)`);
    console.log(`${'page'.padEnd(28)} ${'p50'.padStart(7)} ${'p95'.padStart(7)} ${'max'.padStart(7)}`);
    for (const [name, url] of pages) {
      const times: number[] = [];
      for (let i = 0; i < RUNS + 2; i++) {
        const t0 = process.hrtime.bigint();
        const res = await app.inject({ method: 'GET', url, headers: { cookie } });
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (res.statusCode !== 200 && res.statusCode !== 303)
          throw new Error(`${url}: ${res.statusCode} ${res.body.slice(0, 300)}`);
        if (i >= 2) times.push(ms); // the first two warm caches and prepared statements
      }
      times.sort((a, b) => a - b);
      const [p50, p95, max] = [percentile(times, 50), percentile(times, 95), times.at(-1) as number];
      if (p95 > LIMIT_MS) ok = false;
      const f = (n: number) => n.toFixed(1).padStart(7);
      console.log(`${name.padEnd(28)} ${f(p50)} ${f(p95)} ${f(max)}${p95 > LIMIT_MS ? '  over the limit' : ''}`);
    }
    return ok;
  } finally {
    await server.close();
    if (process.env.BENCH_KEEP_DB) console.log(`kept ${db.url}`);
    else await db.drop();
  }
}

let allOk = true;
for (const backend of BACKENDS) allOk = (await benchBackend(backend)) && allOk;
console.log(allOk ? `\nEvery page under ${LIMIT_MS} ms (p95).` : `\nSome page over ${LIMIT_MS} ms (p95).`);
process.exit(allOk ? 0 : 1);
