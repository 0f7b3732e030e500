// `npm run bench:time`: one simulated day of the time engine for a million members.
//
// 1. Load (in this process, through the schema's tables as the migrations made them): one program
//    (membership anniversary reminder a week before, expiring points reminded 3 days before) and
//    BENCH_MEMBERS cards (1,000,000) with their customers and balances, joined over the past year
//    (created_at spread evenly), each with a lot of points expiring within the coming year, and the
//    due items the engine plans for them (subscription anniversary, membership reminder, balance
//    reminder: 3 per card), written in multi-row inserts of a few thousand rows per transaction.
// 2. Fire one day: a fresh `buildServer` in a child process, its manual clock set one day after
//    the load's moment, runs `time.fireDue()` until nothing is due (what the worker does every
//    second). Figures: wall time, items and events, peak RSS of that process (`maxRSS`) and its
//    RSS before the pass.
// 3. BENCH_LEDGER_ENTRIES (10,000,000) ledger entries are added (one INSERT … SELECT over the
//    cards), then the next day is fired the same way.
// Target: a day's work for a million members under 60 s, memory bounded by the batch size
// (TALLY_TIME_BATCH_SIZE, 500), not by the member count.
//
// Environment: BENCH_MEMBERS, BENCH_LEDGER_ENTRIES, BENCH_BACKENDS (sqlite,postgres), BENCH_PG_URL,
// TALLY_TIME_BATCH_SIZE. Develop with BENCH_MEMBERS=20000 BENCH_LEDGER_ENTRIES=200000.
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { type Kysely, sql } from 'kysely';
import { loadConfig } from '../src/config.ts';
import { ManualClock } from '../src/lib/clock.ts';
import { buildServer } from '../src/server.ts';
import { BACKENDS, freshDatabase, pgReachable, SECRET_KEY } from './lib.ts';

const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 1_000_000);
const LEDGER_ENTRIES = Number(process.env.BENCH_LEDGER_ENTRIES ?? 10_000_000);
/** The load's moment; the first fired day ends 24 h later, the second 48 h later. */
const START = Date.parse('2026-06-15T00:00:00.000Z');
const DAY = 86_400_000;

function serverConfig(databaseUrl: string) {
  return {
    ...loadConfig({}, process.env),
    port: 0,
    host: '127.0.0.1',
    databaseUrl,
    logLevel: 'warn',
    workers: false,
    secretKey: SECRET_KEY,
  };
}

/** `d` plus `n` months in UTC, the day clamped to the month's end (lib/anniversaries.ts in UTC). */
function addMonths(d: Date, n: number): Date {
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth() + n;
  const last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  const out = new Date(d);
  out.setUTCFullYear(y, m, Math.min(d.getUTCDate(), last));
  return out;
}
function nextMonthAnniversary(created: Date, after: number): Date {
  for (let n = 1; ; n++) {
    const at = addMonths(created, n);
    if (at.getTime() > after) return at;
  }
}
function nextYearReminder(created: Date, weeks: number, after: number): Date {
  for (let y = 1; ; y++) {
    const at = new Date(addMonths(created, 12 * y).getTime() - weeks * 7 * DAY);
    if (at.getTime() > after) return at;
  }
}

/** Distinct join moments: member i takes slot i % SLOTS (so 100 members share one of 10,000 moments). */
const SLOTS = 10_000;

/**
 * The load: a slot table of join moments and the due items planned from them (computed here), a
 * table of 0..999, then each table filled by one INSERT … SELECT over 0..999², the same SQL on both
 * backends; the helper tables are dropped at the end.
 */
async function load(databaseUrl: string) {
  const clock = new ManualClock(START);
  const server = await buildServer(serverConfig(databaseUrl), { logger: false, clock });
  try {
    const { programs } = server.services;
    const program = await server.ctx.transaction((trx) =>
      programs.create(trx, { name: 'Bench time', timezone: 'UTC', reminders: [{ unit: 'week', value: 1 }] }),
    );
    const definition = await server.ctx.transaction(async (trx) => {
      const d = await programs.defaultDefinition(trx, program.id);
      return programs.updateDefinition(trx, d, { reminders: [{ unit: 'day', value: 3 }] });
    });
    await server.ctx.transaction((trx) => trx.deleteFrom('scheduled_jobs').execute());
    const t0 = performance.now();
    const db = server.ctx.database.db;
    await sql`create table bench_slots (k integer primary key, created_at text, anniv text, reminder text,
      expires text, balance_reminder text)`.execute(db);
    await sql`create table bench_n (i integer primary key)`.execute(db);
    const slots = [];
    for (let k = 0; k < SLOTS; k++) {
      // Joined evenly over the past 365 days, at any second of the day; points expire within a year.
      const created = new Date(START - (1 + (k % 365)) * DAY - ((k * 7919) % DAY));
      const expires = new Date(START + (1 + ((k * 31) % 365)) * DAY + ((k * 104729) % DAY));
      slots.push({
        k,
        created_at: created.toISOString(),
        anniv: nextMonthAnniversary(created, START).toISOString(),
        reminder: nextYearReminder(created, 1, START).toISOString(),
        expires: expires.toISOString(),
        balance_reminder: new Date(expires.getTime() - 3 * DAY).toISOString(),
      });
    }
    const untyped = db as unknown as Kysely<Record<string, Record<string, unknown>>>;
    for (let i = 0; i < SLOTS; i += 1000)
      await untyped
        .insertInto('bench_slots')
        .values(slots.slice(i, i + 1000))
        .execute();
    await untyped
      .insertInto('bench_n')
      .values(Array.from({ length: 1000 }, (_, i) => ({ i })))
      .execute();
    const members = sql`select a.i * 1000 + b.i as i from bench_n a cross join bench_n b
      where a.i * 1000 + b.i < ${MEMBERS}`;
    const over = (select: ReturnType<typeof sql>) => server.ctx.database.transaction((trx) => select.execute(trx));
    const p = program.id;
    const d = definition.id;
    await over(sql`insert into customers (id, source_id, name, created_at)
      select 'cust_b' || m.i, 'bench-' || m.i, 'Member ' || m.i, s.created_at
      from (${members}) m join bench_slots s on s.k = m.i % ${SLOTS}`);
    await over(sql`insert into memberships (id, code, program_id, customer_id, status, join_key, metadata, created_at)
      select 'v_b' || m.i, 'BT' || m.i, ${p}, 'cust_b' || m.i, 'ACTIVE', ${p} || ':cust_b' || m.i, '{}', s.created_at
      from (${members}) m join bench_slots s on s.k = m.i % ${SLOTS}`);
    await over(sql`insert into balances (membership_id, balance_definition_id, program_id, balance, points,
        pending_points, expired_points, subtracted_points, created_at, updated_at)
      select 'v_b' || m.i, ${d}, ${p}, 100, 100, 0, 0, 0, s.created_at, s.created_at
      from (${members}) m join bench_slots s on s.k = m.i % ${SLOTS}`);
    await over(sql`insert into ledger_entries (id, membership_id, program_id, balance_definition_id, customer_id, type,
        points, balance_after, source, created_at)
      select 'ltx_b' || m.i, 'v_b' || m.i, ${p}, ${d}, 'cust_b' || m.i, 'POINTS_ADDITION', 100, 100, 'bench',
        s.created_at
      from (${members}) m join bench_slots s on s.k = m.i % ${SLOTS}`);
    await over(sql`insert into point_lots (id, membership_id, balance_definition_id, ledger_entry_id, points, remaining,
        expires_at, created_at)
      select 'lot_b' || m.i, 'v_b' || m.i, ${d}, 'ltx_b' || m.i, 100, 100, s.expires, s.created_at
      from (${members}) m join bench_slots s on s.k = m.i % ${SLOTS}`);
    const now = new Date(START).toISOString();
    for (const [kind, scope, anchor, next] of [
      ['subscription_anniversary', '', 's.created_at', 's.anniv'],
      ['membership_reminder', '', 's.created_at', 's.reminder'],
      ['balance_reminder', d, 's.expires', 's.balance_reminder'],
    ])
      await over(sql`insert into due_items (id, kind, subject_id, scope_id, program_id, anchor_at, next_at, created_at,
          updated_at)
        select ${`due_${kind.slice(0, 3)}`} || m.i, ${kind}, 'v_b' || m.i, ${scope}, ${p}, ${sql.raw(anchor)},
          ${sql.raw(next)}, ${now}, ${now}
        from (${members}) m join bench_slots s on s.k = m.i % ${SLOTS}
        where ${sql.raw(next)} > ${now}`);
    await sql`drop table bench_slots`.execute(db);
    await sql`drop table bench_n`.execute(db);
    console.log(`  loaded ${MEMBERS} members in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    await server.close();
  }
}

/** Adds `n` ledger entries over the cards: one INSERT … SELECT, the same SQL on both backends. */
async function addLedgerEntries(databaseUrl: string, n: number) {
  const server = await buildServer(serverConfig(databaseUrl), { logger: false, clock: new ManualClock(START) });
  try {
    const t0 = performance.now();
    const perCard = Math.ceil(n / MEMBERS);
    const k = Array.from({ length: perCard }, (_, i) => `select ${i + 1} as n`).join(' union all ');
    await server.ctx.database.transaction((trx) =>
      sql`insert into ledger_entries (id, membership_id, program_id, balance_definition_id, customer_id, type,
            points, balance_after, source, created_at)
          select 'lbe_' || m.id || '_' || k.n, m.id, m.program_id, b.balance_definition_id, m.customer_id,
            'POINTS_ACCRUAL', 1, 100, 'bench', m.created_at
          from memberships m
          join balances b on b.membership_id = m.id
          cross join (${sql.raw(k)}) k`.execute(trx),
    );
    console.log(`  added ${perCard * MEMBERS} ledger entries in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    await server.close();
  }
}

/** Fires what is due at `atMs` in a fresh process; its figures. */
function fireInChild(databaseUrl: string, atMs: number) {
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const args = [...nodeArgs, '--import', 'tsx', 'bench/time.ts', 'fire', databaseUrl, String(atMs)];
  const res = spawnSync(process.execPath, args, {
    env: { ...process.env, NODE_ENV: 'production', TALLY_SECRET_KEY: SECRET_KEY },
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  const line = res.stdout.split('\n').find((l) => l.startsWith('{'));
  if (res.status !== 0 || !line) throw new Error(`fire failed:\n${res.stdout}\n${res.stderr}`);
  return JSON.parse(line) as {
    ms: number;
    cpuMs: number;
    items: number;
    events: number;
    rssBeforeMb: number;
    maxRssMb: number;
  };
}

/** The child: one pass of everything due at `atMs`, as the worker runs it. */
async function fire(databaseUrl: string, atMs: number) {
  const server = await buildServer(serverConfig(databaseUrl), { logger: false, clock: new ManualClock(atMs) });
  try {
    const db = server.ctx.database.db;
    const count = async () =>
      Number(
        (
          await db
            .selectFrom('outbox_events')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirst()
        )?.n,
      );
    const before = await count();
    global.gc?.();
    const rssBeforeMb = Math.round(process.memoryUsage().rss / 1e6);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const items = await server.services.time.fireDue();
    const ms = Math.round(performance.now() - t0);
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = Math.round((cpu.user + cpu.system) / 1000);
    const events = (await count()) - before;
    const maxRssMb = Math.round(process.resourceUsage().maxRSS / 1000);
    console.log(JSON.stringify({ ms, cpuMs, items, events, rssBeforeMb, maxRssMb }));
  } finally {
    await server.close();
  }
}

async function main() {
  if (process.argv[2] === 'fire') return fire(process.argv[3], Number(process.argv[4]));
  console.log(
    `bench:time: ${MEMBERS} members, then ${LEDGER_ENTRIES} ledger entries; batch ${
      loadConfig({}, process.env).timeBatchSize
    } items per transaction`,
  );
  const rows: string[] = [];
  for (const backend of BACKENDS) {
    if (backend === 'postgres' && !(await pgReachable())) {
      console.log('postgres: not reachable, skipped');
      continue;
    }
    console.log(`${backend}:`);
    const { databaseUrl, cleanup } = await freshDatabase(backend);
    try {
      await load(databaseUrl);
      const day1 = fireInChild(databaseUrl, START + DAY);
      console.log(`  day 1: ${JSON.stringify(day1)}`);
      rows.push(row(backend, `${MEMBERS} members`, day1));
      await addLedgerEntries(databaseUrl, LEDGER_ENTRIES);
      const day2 = fireInChild(databaseUrl, START + 2 * DAY);
      console.log(`  day 2: ${JSON.stringify(day2)}`);
      rows.push(row(backend, `+ ${LEDGER_ENTRIES} ledger entries`, day2));
    } finally {
      await cleanup();
    }
  }
  console.log('\n| backend | data | due items fired | events | wall time | server CPU | RSS before | peak RSS |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
  const [l1, l5] = loadavg();
  console.log(`\nload average at the end: ${l1.toFixed(2)} (1 min), ${l5.toFixed(2)} (5 min)`);
}

function row(backend: string, data: string, f: ReturnType<typeof fireInChild>) {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const mb = `${f.rssBeforeMb} MB | ${f.maxRssMb} MB`;
  return `| ${backend} | ${data} | ${f.items} | ${f.events} | ${s(f.ms)} | ${s(f.cpuMs)} | ${mb} |`;
}

await main();
