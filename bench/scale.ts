// `npm run bench:scale`: how Tally's cost grows with its data. Loads a big database (BENCH_MEMBERS
// members, default 1,000,000, with BENCH_ENTRIES ledger entries, default 10,000,000, and events
// and messages), then measures the same requests on it and on a 1,000-card database made the same
// way in the same run, on SQLite and PostgreSQL, side by side.
//
// The loader writes through the schema: the server makes one member of each kind of row over its
// API (a customer, a card, a balance addition with its ledger entry, lot and event, a keyword flow
// message and its reply), and the loader clones those rows (whatever columns the migrations gave
// them) with new ids, phones, amounts and times, one transaction per batch of members, on a
// connection of its own once the server's is closed: on SQLite one prepared INSERT per table reused
// for every row; on PostgreSQL one `COPY … FROM STDIN` per table (text format, bench/copy.ts), the
// next batch made while the last is written. The members come in random order. The secondary indexes
// keyed by time are dropped first and made again afterwards from their own definitions (the schema ends
// as the migrations made it); those keyed by member are filled row by row, as a grown database's are
// (BY_MEMBER_INDEXES).
// Member 0 has a 10,000-entry history (its transactions are listed first page and deep);
// the others share the rest of the entries. Events (BENCH_EVENTS, default entries / 5) fall in the
// last 30 days and messages (BENCH_MESSAGES, default one per member) in the last 89: what the
// default retention keeps (older ones the server's first retention sweep would delete meanwhile).
// The fan-out is told it has read every loaded event.
//
// Measures (BENCH_ROUNDS rounds, default 3, of BENCH_DURATION seconds, default 5, alternating between the two
// databases, whose servers run side by side; additions from 50 connections, reads from 10):
// point additions/s and p99, GET a member, a member's transactions (first page, and 9,000 entries
// deep by cursor), a customer by phone, GET /v1/events by type and program, the flow report for 30
// days, a program's members list page 1 (by number, with its total; by cursor, without), deep by
// cursor, and by page number 980 deep (on both databases) and at the deepest page allowed; the
// database size on disk per million members.
//
// Environment: BENCH_MEMBERS, BENCH_ENTRIES, BENCH_EVENTS, BENCH_MESSAGES, BENCH_DURATION, BENCH_ROUNDS,
// BENCH_BACKENDS (sqlite,postgres), BENCH_PG_URL (see bench/lib.ts). Develop with
// BENCH_MEMBERS=20000 BENCH_ENTRIES=200000; BENCH_MEASURES=report (only the measures whose names hold
// one of these comma-separated words). BENCH_DEBUG=1: where the load time went, and per measure
// where its I/O went (ioCounters: the server's read and write calls; on PostgreSQL blocks read and
// hit, per table and index, WAL bytes and full-page images). BENCH_SERVER_ENVS: server settings to
// compare on the same two databases, one table each; an entry's BENCH_PG_PREWARM=rel,... reads
// those relations into shared_buffers first (prewarm). The loader alone: BENCH_LOAD_ONLY=1 (load,
// print the rate and size, stop), BENCH_KEEP_INDEXES=1 (fill every index row by row instead),
// BENCH_PACKED=1 (members in order, every index built by a sort),
// BENCH_KEEP_DATABASE=1 (with BENCH_LOAD_ONLY: keep the database).
import { readFileSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import BetterSqlite3 from 'better-sqlite3';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { prepareDatabase } from '../src/server.ts';
import type { Database } from '../src/storage/database.ts';
import { pointsFlow } from '../src/modules/messaging/flows/examples.ts';
import { isFinalDay } from '../src/modules/messaging/report-days.ts';
import { copyLine } from './copy.ts';
import { CUSTOMER_COUNTS_BACKFILL } from '../src/modules/customers/migrations.ts';
import { MEMBER_COUNTS_BACKFILL } from '../src/modules/members/migrations.ts';
import {
  api,
  authHeaders,
  BACKENDS,
  cpuTicks,
  freshDatabase,
  load,
  loadAverageLine,
  pgReachable,
  postgresTicks,
  SECRET_KEY,
  startTally,
  treeTicks,
  usPer,
} from './lib.ts';

const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 1_000_000);
const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 10_000_000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? Math.round(ENTRIES / 5));
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? MEMBERS);
const SECONDS = Number(process.env.BENCH_DURATION ?? 5);
/** BENCH_LOAD_ONLY=1: load the big database of each backend, print its load time and size, and stop. */
const LOAD_ONLY = Boolean(process.env.BENCH_LOAD_ONLY);
const SMALL = 1000;
/** Entries of member 0, whose history is listed first page and deep. */
const HEAVY = 10_000;
const DEEP = 9_000;
/** Members loaded per transaction. */
const BATCH = 2000;
const DAY = 86400_000;
const NOW = Date.now();

type Row = Record<string, unknown>;
interface Fixture {
  programId: string;
  flowId: string;
  eventType: string;
  members: number;
  heavyCode: string;
  deepEntryId: string;
  deepMemberId: string;
  bytes: number;
  loadSeconds: number;
}

const iso = (ms: number) => new Date(ms).toISOString();
const phoneOf = (i: number) => `+3859${String(i).padStart(8, '0')}`;
const codeOf = (i: number) => `SCALE${String(i).padStart(8, '0')}`;
const memberIdOf = (i: number) => `v_scale${String(i).padStart(8, '0')}`;
/** When member i joined: the members join one after the other over two years. */
const joinedAt = (i: number, members: number) => NOW - 730 * DAY + Math.floor((i * 700 * DAY) / members);
/** How many entries member i has: member 0 HEAVY, the others share the rest. */
const entriesOf = (i: number, members: number, entries: number) => {
  if (i === 0) return HEAVY;
  const rest = Math.max(members - 1, entries - HEAVY);
  const base = Math.floor(rest / (members - 1));
  return base + (i <= rest - base * (members - 1) ? 1 : 0);
};

/** A copy of `row` without `keys` (made anew, not by `delete`, which would leave V8 a slow object to copy from). */
const without = (row: Row, ...keys: string[]): Row =>
  Object.fromEntries(Object.entries(row).filter(([k]) => !keys.includes(k)));

/** The template rows the server wrote for one member, one addition and one keyword exchange. */
async function templates(database: Database) {
  const db = database.db as Kysely<any>;
  const customer = await db
    .selectFrom('customers')
    .selectAll()
    .where('source_id', '=', 'template')
    .executeTakeFirstOrThrow();
  const membership = await db
    .selectFrom('memberships')
    .selectAll()
    .where('customer_id', '=', customer.id)
    .executeTakeFirstOrThrow();
  const balance = await db
    .selectFrom('balances')
    .selectAll()
    .where('membership_id', '=', membership.id)
    .executeTakeFirstOrThrow();
  const entry = await db
    .selectFrom('ledger_entries')
    .selectAll()
    .where('membership_id', '=', membership.id)
    .orderBy('seq', 'desc')
    .executeTakeFirstOrThrow();
  const lot = await db
    .selectFrom('point_lots')
    .selectAll()
    .where('membership_id', '=', membership.id)
    .executeTakeFirst();
  const event = await db
    .selectFrom('outbox_events')
    .selectAll()
    .where('resource_id', '=', membership.id)
    .orderBy('seq', 'desc')
    .executeTakeFirstOrThrow();
  const messages = await db.selectFrom('msg_messages').selectAll().orderBy('created_at').execute();
  return { customer, membership, balance, entry, lot, event, messages };
}

/** Where the load's time went, ms (BENCH_DEBUG=1 prints it). */
const timing = { generate: 0, generateCpu: 0, write: 0, writeCpu: 0, finish: 0, serverCpu: 0 };

const cpuMs = (since: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
};

/**
 * The loader writes rows past the services, so the list counters (src/storage/counters.ts) are
 * recounted from the rows, as their migrations' backfill does: slot 0 holds each whole count.
 */
const RECOUNT_COUNTERS = [
  'delete from program_member_counts',
  MEMBER_COUNTS_BACKFILL,
  'delete from customer_counts',
  CUSTOMER_COUNTS_BACKFILL,
];

/** Where the loader writes: each call of `batch` is one transaction; `finish` runs once after the last. */
interface Sink {
  batch(rows: Record<string, Row[]>): Promise<void>;
  finish(): Promise<void>;
}

const quoted = (names: string[]) => names.map((n) => `"${n}"`).join(', ');
/** The tables the loader fills. */
const LOADED = [
  'customers',
  'memberships',
  'balances',
  'ledger_entries',
  'point_lots',
  'outbox_events',
  'msg_messages',
];
/** BENCH_KEEP_INDEXES=1: fill the secondary indexes row by row instead of building them after the load. */
const KEEP_INDEXES = Boolean(process.env.BENCH_KEEP_INDEXES);
/** BENCH_PACKED=1: the members in order and every secondary index built by a sort (the loader before 2026-12-03). */
const PACKED = Boolean(process.env.BENCH_PACKED);
/**
 * The secondary indexes keyed by who (a member, a customer, a phone), not by when. A database that
 * grew fills them in random order for years: its B-tree leaves split as they fill and stay about 70 %
 * full, with room for a member's next entry. Built by a sort after a load, they would be packed full,
 * and nearly every addition of a measure would split a full leaf (on SQLite rewriting the leaf, its
 * siblings and their parent: several more pages written per index and addition), which no grown
 * database does. So the loader fills these row by row, the members in random order; the indexes keyed
 * by time, appended to in any database, are still built by a sort after the load.
 */
const BY_MEMBER_INDEXES = [
  'customers_phone',
  'customers_email',
  'customers_name',
  'ledger_membership_seq',
  'point_lots_open',
  'outbox_resource',
  'msg_messages_from',
  'msg_messages_to',
  'msg_messages_flow_customer',
];
/** Whether the loader drops this index and makes it again after the load (a sort). */
const builtAfterLoad = (name: string) => !KEEP_INDEXES && (PACKED || !BY_MEMBER_INDEXES.includes(name));

/** The members in the order the loader writes them: random (the same every run), or in order with BENCH_PACKED. */
function loadOrder(members: number): Int32Array {
  const order = new Int32Array(members);
  for (let i = 0; i < members; i++) order[i] = i;
  if (PACKED) return order;
  // Fisher-Yates with xorshift32 (seeded, so every run loads the same database).
  let state = 0x2545f491;
  for (let i = members - 1; i > 0; i--) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const j = Math.floor(((state >>> 0) / 2 ** 32) * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/**
 * SQLite: the database file opened directly (better-sqlite3; the server's connection is closed),
 * one prepared INSERT per table reused for every row, one transaction per batch. Nothing else uses
 * the file meanwhile, so commits are not synced (a crashed load is started over anyway), and a
 * 1 GB page cache keeps the indexes being filled in memory.
 */
function sqliteSink(file: string): Sink {
  const native = new BetterSqlite3(file);
  native.pragma('journal_mode = WAL');
  native.pragma('synchronous = OFF');
  native.pragma('cache_size = -1000000');
  native.pragma('temp_store = MEMORY');
  native.pragma('foreign_keys = ON');
  // The loaded tables' secondary indexes (those made by CREATE INDEX, as the migrations wrote
  // them) but BY_MEMBER_INDEXES are dropped, and made again from the same statements after the load:
  // one sort each instead of a B-tree insertion per row. The primary keys and UNIQUE constraints stay.
  const indexes = (
    native
      .prepare(
        `select name, sql from sqlite_master where type = 'index' and sql is not null
         and tbl_name in (${LOADED.map(() => '?').join(', ')})`,
      )
      .all(...LOADED) as { name: string; sql: string }[]
  ).filter(({ name }) => builtAfterLoad(name));
  for (const { name } of indexes) native.exec(`drop index "${name}"`);
  const statements = new Map<string, { columns: string[]; statement: BetterSqlite3.Statement }>();
  const insertAll = native.transaction((rows: Record<string, Row[]>) => {
    for (const [table, list] of Object.entries(rows)) {
      if (list.length === 0) continue;
      const columns = Object.keys(list[0]);
      const key = `${table}:${columns.join(',')}`;
      let s = statements.get(key);
      if (!s) {
        const sqlText = `insert into "${table}" (${quoted(columns)}) values (${columns.map(() => '?').join(', ')})`;
        s = { columns, statement: native.prepare(sqlText) };
        statements.set(key, s);
      }
      for (const row of list) s.statement.run(s.columns.map((c) => row[c]));
    }
  });
  return {
    async batch(rows) {
      insertAll(rows);
    },
    async finish() {
      try {
        // The loaded events were "delivered" long ago: the webhook fan-out has read them all. (Each
        // backend keeps that progress its own way: storage/outbox-progress.ts.)
        native.prepare('update outbox_cursors set last_seq = (select max(seq) from outbox_events)').run();
        native.transaction(() => {
          for (const statement of RECOUNT_COUNTERS) native.exec(statement);
        })();
        for (const { sql: create } of indexes) native.exec(create);
        native.exec('analyze');
        // The server starts with the loaded rows in the database file, not in a multi-GB WAL.
        native.pragma('wal_checkpoint(TRUNCATE)');
      } finally {
        native.close();
      }
    },
  };
}

/**
 * PostgreSQL: one connection of its own, one transaction per batch with one `COPY … FROM STDIN`
 * per table (text format, bench/copy.ts), commits not waited for (synchronous_commit off: a crashed
 * load is started over anyway). The indexes stay as the migrations made them and are filled as the
 * rows arrive.
 */
async function postgresSink(url: string): Promise<Sink> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('set synchronous_commit = off');
  await client.query(`set maintenance_work_mem = '512MB'`);
  const backendPid = Number((await client.query('select pg_backend_pid() as pid')).rows[0].pid);
  // As on SQLite: the secondary indexes (not those of a primary key, UNIQUE or exclusion
  // constraint) but BY_MEMBER_INDEXES are dropped and made again after the load from their own definitions.
  const indexes = (
    await client.query<{ name: string; def: string }>(
      `select i.indexname as name, i.indexdef as def from pg_indexes i
        where i.schemaname = current_schema() and i.tablename = any($1)
          and not exists (select 1 from pg_constraint c
                           where c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)`,
      [LOADED],
    )
  ).rows.filter(({ name }) => builtAfterLoad(name));
  for (const { name } of indexes) await client.query(`drop index "${name}"`);
  async function copy(table: string, list: Row[]) {
    const columns = Object.keys(list[0]);
    // Lines are made as the connection takes them: PostgreSQL reads one chunk while the next is made.
    function* chunks() {
      let chunk = '';
      for (const row of list) {
        chunk += copyLine(columns.map((c) => row[c]));
        if (chunk.length > 1 << 16) {
          yield chunk;
          chunk = '';
        }
      }
      if (chunk) yield chunk;
    }
    await pipeline(Readable.from(chunks()), client.query(copyFrom(`copy "${table}" (${quoted(columns)}) from stdin`)));
  }
  return {
    async batch(rows) {
      await client.query('begin');
      try {
        for (const [table, list] of Object.entries(rows)) if (list.length > 0) await copy(table, list);
        await client.query('commit');
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        throw err;
      }
    },
    async finish() {
      try {
        // The loaded events were "delivered" long ago (storage/outbox-progress.ts).
        await client.query('delete from outbox_pending');
        await client.query(`begin; ${RECOUNT_COUNTERS.join('; ')}; commit`);
        for (const { def } of indexes) await client.query(def);
        // Fresh statistics for the planner, and a set visibility map, as autovacuum would have them on
        // a database that grew slowly: after a bulk load (COPY) no page is all-visible yet, so every
        // index-only scan (the flow report's distinct members over msg_messages_flow_members, ...)
        // would visit the heap for each row, which a steady-state database does not.
        await client.query('vacuum (analyze)');
        timing.serverCpu = cpuTicks(backendPid) * 10;
      } finally {
        await client.end();
      }
    },
  };
}

async function bulkLoad(
  t: Awaited<ReturnType<typeof templates>>,
  sink: Sink,
  members: number,
  entries: number,
  events: number,
  messages: number,
) {
  // Without their sequence numbers, which the database gives.
  const entryTemplate = without(t.entry, 'seq');
  const eventTemplate = without(t.event, 'seq');
  let pending: Promise<void> | undefined;
  let seqEvent = 0;
  let seqMessage = 0;
  const order = loadOrder(members);
  for (let from = 0; from < members; from += BATCH) {
    const tg = performance.now();
    const cg = process.cpuUsage();
    const to = Math.min(members, from + BATCH);
    const rows: Record<string, Row[]> = {
      customers: [],
      memberships: [],
      balances: [],
      ledger_entries: [],
      point_lots: [],
      outbox_events: [],
      msg_messages: [],
      msg_flow_report_queue: [],
    };
    for (let p = from; p < to; p++) {
      const i = order[p];
      const joined = joinedAt(i, members);
      const customerId = `cust_scale${String(i).padStart(8, '0')}`;
      const membershipId = memberIdOf(i);
      const n = entriesOf(i, members, entries);
      rows.customers.push({
        ...t.customer,
        id: customerId,
        source_id: `scale-${i}`,
        phone: phoneOf(i),
        email: `m${i}@scale.example`,
        name: `Member ${i}`,
        created_at: iso(joined),
        updated_at: iso(joined),
      });
      rows.memberships.push({
        ...t.membership,
        id: membershipId,
        code: codeOf(i),
        customer_id: customerId,
        join_key: t.membership.join_key === null ? null : `scale-join-${i}`,
        created_at: iso(joined),
        updated_at: iso(joined),
      });
      const points = Number(t.entry.points);
      rows.balances.push({
        ...t.balance,
        membership_id: membershipId,
        balance: n * points,
        points: n * points,
        created_at: iso(joined),
        updated_at: iso(NOW),
      });
      const step = Math.max(1, Math.floor((NOW - DAY - joined) / (n + 1)));
      for (let k = 0; k < n; k++) {
        rows.ledger_entries.push({
          ...entryTemplate,
          id: `ltr_s${i}_${k}`,
          membership_id: membershipId,
          customer_id: customerId,
          balance_after: (k + 1) * points,
          source_id: null,
          created_at: iso(joined + (k + 1) * step),
        });
      }
      if (t.lot) {
        rows.point_lots.push({
          ...t.lot,
          id: `lot_s${i}`,
          membership_id: membershipId,
          ledger_entry_id: `ltr_s${i}_0`,
          points: n * points,
          remaining: n * points,
          created_at: iso(joined + step),
        });
      }
    }
    // Events and messages in proportion to the members of this batch.
    const eventsTo = Math.round((to * events) / members);
    for (; seqEvent < eventsTo; seqEvent++) {
      const i = order[seqEvent % members];
      rows.outbox_events.push({
        ...eventTemplate,
        id: `evt_s${seqEvent}`,
        resource_id: memberIdOf(i),
        created_at: iso(NOW - 30 * DAY + Math.floor((seqEvent * 29 * DAY) / events)),
      });
    }
    const messagesTo = Math.round((to * messages) / members);
    for (; seqMessage < messagesTo; seqMessage++) {
      const i = order[Math.floor(seqMessage / 2) % members];
      const m = t.messages[seqMessage % t.messages.length];
      const at = iso(NOW - 89 * DAY + Math.floor((seqMessage * 88 * DAY) / messages));
      rows.msg_messages.push({
        ...m,
        id: `msg_s${seqMessage}`,
        inbound_key: m.inbound_key === null ? null : `scale-in-${seqMessage}`,
        provider_message_id: m.provider_message_id === null ? null : `scale-pm-${seqMessage}`,
        [m.direction === 'in' ? 'from_number' : 'to_number']: phoneOf(i),
        membership_id: m.membership_id === null ? null : memberIdOf(i),
        created_at: at,
        updated_at: at,
      });
      // As written through the API: a flow message of a recent day waits in the queue for the fold
      // into its day's running figures (the first report folds them); older days are rolled up.
      if (m.flow_id !== null && !isFinalDay(Date.parse(at), NOW))
        rows.msg_flow_report_queue.push({ message_id: `msg_s${seqMessage}` });
    }
    timing.generate += performance.now() - tg;
    timing.generateCpu += cpuMs(cg);
    const tb = performance.now();
    const cb = process.cpuUsage();
    // The previous batch is written while this one was made (PostgreSQL works meanwhile).
    await pending;
    pending = sink.batch(rows);
    timing.write += performance.now() - tb;
    timing.writeCpu += cpuMs(cb);
    if (from % (BATCH * 50) === 0 && from > 0) console.log(`    ${from} members loaded`);
  }
  await pending;
  const tf = performance.now();
  await sink.finish();
  timing.finish += performance.now() - tf;
}

const sqliteFile = (databaseUrl: string) => databaseUrl.replace(/^sqlite:/, '');

async function sizeOnDisk(backend: string, databaseUrl: string): Promise<number> {
  if (backend === 'sqlite') {
    const file = sqliteFile(databaseUrl);
    const size = (f: string) => {
      try {
        return statSync(f).size;
      } catch {
        return 0;
      }
    };
    return size(file) + size(`${file}-wal`);
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const r = await client.query<{ bytes: string }>('select pg_database_size(current_database()) as bytes');
    return Number(r.rows[0].bytes);
  } finally {
    await client.end();
  }
}

/** A database of `members` members made as described at the top; the server is not running after. */
async function build(backend: string, members: number, entries: number, events: number, messages: number) {
  const { databaseUrl, cleanup } = await freshDatabase(backend);
  const t0 = Date.now();
  const server = await startTally(databaseUrl);
  let programId: string;
  let flowId: string;
  let eventType: string;
  try {
    const base = server.base;
    const program = await api(base, 'POST', '/v1/loyalties', { name: 'Scale', timezone: 'Europe/Zagreb' });
    programId = program.id;
    const member = await api(base, 'POST', `/v1/loyalties/${programId}/members`, {
      customer: { source_id: 'template', name: 'Template', phone: '+385990000000', email: 't@scale.example' },
    });
    await api(base, 'POST', `/v1/loyalties/members/${member.code}/balance`, { points: 10, reason: 'scale' });
    const channel = await api(base, 'POST', '/v1/channels', {
      name: 'scale',
      provider: 'simulator',
      sender: '+10000000009',
    });
    const flow = await api(base, 'POST', '/v1/flows', pointsFlow(programId));
    flowId = flow.id;
    await api(base, 'POST', '/v1/simulator/messages', {
      from: '+385990000000',
      text: 'POINTS',
      channel_id: channel.id,
    });
  } finally {
    await server.stop();
  }
  // The template rows through the storage layer; then the server's connection is closed and the
  // loader writes on its own (sqliteSink, postgresSink).
  let t: Awaited<ReturnType<typeof templates>>;
  const database = await prepareDatabase(databaseUrl, { secretKey: SECRET_KEY });
  try {
    eventType = String(
      (
        await (database.db as Kysely<any>)
          .selectFrom('outbox_events')
          .select('type')
          .orderBy('seq', 'desc')
          .executeTakeFirstOrThrow()
      ).type,
    );
    t = await templates(database);
    // The flow is as old as the history loaded below (messages from 89 days ago): a report reads no
    // day before its flow was created.
    await (database.db as Kysely<any>)
      .updateTable('msg_flows')
      .set({ created_at: iso(NOW - 90 * DAY) })
      .where('id', '=', flowId)
      .execute();
  } finally {
    await database.close();
  }
  const t1 = Date.now();
  const cpu0 = process.cpuUsage();
  const sink = backend === 'sqlite' ? sqliteSink(sqliteFile(databaseUrl)) : await postgresSink(databaseUrl);
  await bulkLoad(t, sink, members, entries, events, messages);
  const bytes = await sizeOnDisk(backend, databaseUrl);
  if (process.env.BENCH_DEBUG) {
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log(
      `  setup ${s(t1 - t0)}, load ${s(Date.now() - t1)} (CPU ${s(cpuMs(cpu0))}): rows made ${s(timing.generate)} ` +
        `(CPU ${s(timing.generateCpu)}), written ${s(timing.write)} (CPU ${s(timing.writeCpu)}), ` +
        `finish ${s(timing.finish)}` +
        (timing.serverCpu ? `; CPU of its PostgreSQL backend ${s(timing.serverCpu)}` : ''),
    );
    Object.assign(timing, { generate: 0, generateCpu: 0, write: 0, writeCpu: 0, finish: 0, serverCpu: 0 });
  }
  const fixture: Fixture = {
    programId,
    flowId,
    eventType,
    members,
    heavyCode: codeOf(0),
    deepEntryId: `ltr_s0_${HEAVY - 1 - DEEP}`,
    deepMemberId: memberIdOf(Math.floor(members * 0.9)),
    bytes,
    loadSeconds: (Date.now() - t0) / 1000,
  };
  return { databaseUrl, cleanup, fixture };
}

interface Measure {
  name: string;
  connections: number;
  method: 'GET' | 'POST';
  path: (f: Fixture) => string;
  body?: string;
}

const random = (n: number) => Math.floor(Math.random() * n);
const MEASURES: Measure[] = [
  {
    name: 'POST balance +1 (a random card)',
    connections: 50,
    method: 'POST',
    path: (f) => `/v1/loyalties/members/${codeOf(1 + random(f.members - 1))}/balance`,
    body: JSON.stringify({ points: 1, reason: 'bench' }),
  },
  {
    name: 'GET a member',
    connections: 10,
    method: 'GET',
    path: (f) => `/v1/loyalties/members/${codeOf(random(f.members))}`,
  },
  {
    name: "a member's transactions, first page",
    connections: 10,
    method: 'GET',
    path: (f) => `/v1/loyalties/members/${f.heavyCode}/transactions?limit=10`,
  },
  {
    name: `a member's transactions, ${DEEP} deep (cursor)`,
    connections: 10,
    method: 'GET',
    path: (f) => `/v1/loyalties/members/${f.heavyCode}/transactions?limit=10&starting_after_id=${f.deepEntryId}`,
  },
  {
    name: 'a customer by phone',
    connections: 10,
    method: 'GET',
    path: (f) => `/v1/customers?phone=${encodeURIComponent(phoneOf(random(f.members)))}`,
  },
  {
    name: 'GET /v1/events by type and program',
    connections: 10,
    method: 'GET',
    path: (f) => `/v1/events?type=${f.eventType}&program_id=${f.programId}&limit=10`,
  },
  {
    name: "a program's members, page 1",
    connections: 10,
    method: 'GET',
    path: (f) => `/v1/loyalties/${f.programId}/members?limit=10`,
  },
  {
    name: "a program's members, first page by cursor (no total)",
    connections: 10,
    method: 'GET',
    path: (f) => `/v1/loyalties/${f.programId}/members?limit=10&starting_after_id=`,
  },
  {
    name: "a program's members, 90 % deep (cursor)",
    connections: 10,
    method: 'GET',
    path: (f) => `/v1/loyalties/${f.programId}/members?limit=10&starting_after_id=${f.deepMemberId}`,
  },
  {
    // The same depth on both databases (the small one's list holds 1,000): what an offset costs
    // at a given depth, whatever the list's size.
    name: "a program's members, page 99 of 10 (offset 980)",
    connections: 10,
    method: 'GET',
    path: (f) => `/v1/loyalties/${f.programId}/members?limit=10&page=99`,
  },
  {
    name: "a program's members, page 1000 of 10 (offset, the deepest allowed)",
    connections: 10,
    method: 'GET',
    path: (f) => `/v1/loyalties/${f.programId}/members?limit=10&page=1000`,
  },
  // Last: the report reads every message of the flow in the window, and the requests still running when a measure
  // ends would slow the next one.
  { name: 'flow report, 30 days', connections: 10, method: 'GET', path: (f) => `/v1/flows/${f.flowId}/report` },
];

interface Result {
  rps: number;
  p99: number;
  errors: number;
  /** CPU time of the server process per answered request, µs (steadier than req/s on a shared machine). */
  cpuUs: number;
  /** CPU time of all PostgreSQL processes per answered request, µs (machine-wide: an upper bound). */
  dbUs?: number;
}

/** BENCH_MEASURES=report,phone: only the measures whose names contain one of these words. */
const ONLY = (process.env.BENCH_MEASURES ?? '').split(',').filter(Boolean);
const measures = ONLY.length ? MEASURES.filter((m) => ONLY.some((w) => m.name.includes(w))) : MEASURES;

/**
 * BENCH_DEBUG=1: where a measure's I/O went. The server's read and write system calls (/proc/<pid>/io:
 * on SQLite its database pages read from the OS and its WAL writes) and, on PostgreSQL, the database's
 * buffer misses and hits (pg_stat_database), the WAL written (exact, from its LSN) with its full-page
 * images, and the pages backends had to write out themselves to free a buffer (pg_stat_bgwriter; the
 * pg_stat views lag up to a second).
 */
async function ioCounters(backend: string, databaseUrl: string, pid: number): Promise<Record<string, number>> {
  const io = Object.fromEntries(
    readFileSync(`/proc/${pid}/io`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(': '))
      .map(([k, v]) => [k, Number(v)]),
  );
  const out: Record<string, number> = { rchar: io.rchar, wchar: io.wchar, syscr: io.syscr, syscw: io.syscw };
  if (backend !== 'postgres') return out;
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const { rows } = await c.query(
      `select (select blks_read from pg_stat_database where datname = current_database()) as blks_read,
              (select blks_hit from pg_stat_database where datname = current_database()) as blks_hit,
              pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') as wal_bytes,
              (select wal_fpi from pg_stat_wal) as wal_fpi,
              (select buffers_backend from pg_stat_bgwriter) as buffers_backend`,
    );
    for (const [k, v] of Object.entries(rows[0])) out[k] = Number(v);
    // Per table and index: blocks read from the OS (and hit in shared_buffers), keyed `rel:<name>:read|hit`.
    const rels = await c.query(
      `select relname as name, coalesce(heap_blks_read, 0) as read, coalesce(heap_blks_hit, 0) as hit
         from pg_statio_user_tables
       union all
       select indexrelname, coalesce(idx_blks_read, 0), coalesce(idx_blks_hit, 0) from pg_statio_user_indexes`,
    );
    for (const r of rels.rows) {
      out[`rel:${r.name}:read`] = Number(r.read);
      out[`rel:${r.name}:hit`] = Number(r.hit);
    }
  } finally {
    await c.end();
  }
  return out;
}

function ioLine(name: string, a: Record<string, number>, b: Record<string, number>, n: number): string {
  const per = (k: string, unit = 1) => ((b[k] - a[k]) / unit / Math.max(1, n)).toFixed(1);
  let line =
    `  [io] ${name}: server read ${per('rchar', 1024)} KB/req in ${per('syscr')} calls, ` +
    `wrote ${per('wchar', 1024)} KB/req in ${per('syscw')} calls`;
  if (a.wal_bytes !== undefined) {
    line +=
      `; PG blocks read ${per('blks_read')}/req, hit ${per('blks_hit')}/req, WAL ${per('wal_bytes', 1024)} KB/req ` +
      `(${per('wal_fpi')} full-page images), written by backends ${per('buffers_backend')}/req`;
    const rels = Object.keys(b)
      .filter((k) => k.startsWith('rel:') && k.endsWith(':read'))
      .map((k) => k.slice(4, -5))
      .map((rel) => {
        const read = (b[`rel:${rel}:read`] - (a[`rel:${rel}:read`] ?? 0)) / Math.max(1, n);
        const hit = (b[`rel:${rel}:hit`] - (a[`rel:${rel}:hit`] ?? 0)) / Math.max(1, n);
        return { rel, read, hit };
      })
      .filter((r) => r.read + r.hit >= 0.05)
      .sort((x, y) => y.read - x.read || y.hit - x.hit);
    const perRel = rels.map((r) => `${r.rel} ${r.read.toFixed(1)}/${r.hit.toFixed(1)}`);
    line += `\n    blocks read/hit per request: ${perRel.join(', ')}`;
  }
  return line;
}

/**
 * BENCH_PG_PREWARM=rel,rel,... in an entry of BENCH_SERVER_ENVS: before that entry's measures of the big database,
 * read those tables and indexes into PostgreSQL's shared_buffers (pg_prewarm), as a long-running server's would be.
 */
async function prewarm(databaseUrl: string, relations: string) {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    await c.query('CREATE EXTENSION IF NOT EXISTS pg_prewarm');
    const t0 = Date.now();
    let blocks = 0;
    for (const rel of relations.split(',').filter(Boolean)) {
      blocks += Number((await c.query('select pg_prewarm($1::regclass) as n', [rel])).rows[0].n);
    }
    console.log(`  prewarmed ${relations}: ${Math.round((blocks * 8) / 1024)} MB in ${Date.now() - t0} ms`);
  } finally {
    await c.end();
  }
}

/**
 * Waits until the server's worker has folded the report queue (the loaded recent days' flow messages,
 * which a server running through those days would have folded as they came): on a big database that
 * takes seconds, and the measures would otherwise share the machine with it. Returns the seconds waited.
 */
async function queueFolded(backend: string, databaseUrl: string): Promise<number> {
  const t0 = performance.now();
  const exists = 'select exists (select 1 from msg_flow_report_queue) as queued';
  let pending: () => Promise<boolean>;
  let close: () => Promise<void>;
  if (backend === 'postgres') {
    const c = new pg.Client({ connectionString: databaseUrl });
    await c.connect();
    pending = async () => Boolean((await c.query(exists)).rows[0].queued);
    close = () => c.end();
  } else {
    const native = new BetterSqlite3(sqliteFile(databaseUrl), { readonly: true });
    const statement = native.prepare(exists);
    pending = async () => Boolean((statement.get() as { queued: number }).queued);
    close = async () => {
      native.close();
    };
  }
  try {
    while (await pending()) {
      if (performance.now() - t0 > 600_000) throw new Error('the report queue was not folded in 10 minutes');
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await close();
  }
  return (performance.now() - t0) / 1000;
}

/** The rounds of each measure on each database, alternated (BENCH_ROUNDS, default 3). */
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));

/** One database's server during the measures. */
interface Side {
  label: string;
  databaseUrl: string;
  f: Fixture;
  server: Awaited<ReturnType<typeof startTally>>;
}

/** A measure on one database: its rounds, pooled. */
interface Pooled extends Result {
  /** CPU µs per request of each round, in order. */
  rounds: number[];
}

/**
 * Measures every request on both databases, their servers running side by side, in ROUNDS rounds of
 * BENCH_DURATION seconds that alternate between them (small, big, then big, small, ...): the machine's speed
 * drifts by tens of percent over minutes, and a ratio of two runs minutes apart measured that drift as much
 * as the data. Each round's ratio is of two runs seconds apart, and the order flips each round so a steady
 * drift favours neither. Pooled: requests, CPU and errors summed over the rounds; p99 the rounds' median.
 */
async function measureBoth(
  backend: string,
  dbs: { label: string; databaseUrl: string; f: Fixture }[],
  env: Record<string, string> = {},
): Promise<Pooled[][]> {
  const sides: Side[] = [];
  const debug = Boolean(process.env.BENCH_DEBUG);
  try {
    for (const db of dbs) sides.push({ ...db, server: await startTally(db.databaseUrl, 1, env) });
    // What a server does just after its start (the first retention sweep, its caches, folding the
    // loaded report queue) is not measured.
    for (const side of sides) {
      const folded = await queueFolded(backend, side.databaseUrl);
      if (debug) console.log(`  ${side.label}: report queue folded ${folded.toFixed(1)} s after the server started`);
    }
    if (backend === 'postgres' && env.BENCH_PG_PREWARM) await prewarm(sides[1].databaseUrl, env.BENCH_PG_PREWARM);
    await new Promise((r) => setTimeout(r, 5000));
    const out: Pooled[][] = sides.map(() => []);
    for (const m of measures) {
      const opts = (side: Side) => ({
        url: side.server.base,
        connections: m.connections,
        requests: [
          {
            method: m.method,
            setupRequest: (req: any) => ({
              ...req,
              path: m.path(side.f),
              headers: { ...authHeaders, 'idempotency-key': `${Math.random()}` },
              body: m.body,
            }),
          },
        ],
      });
      for (const side of sides) {
        // One request alone first: what a measure's first request does once (the flow report rolls
        // up the final days of the loaded history) is not its steady cost, nor done ten times at once.
        await fetch(`${side.server.base}${m.path(side.f)}`, { method: m.method, headers: authHeaders, body: m.body });
        await load({ ...opts(side), duration: 1 });
      }
      const runs = sides.map(
        () => [] as { ok: number; seconds: number; p99: number; errors: number; cpu: number; db: number }[],
      );
      const io = sides.map(() => ({}) as Record<string, number>);
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? [0, 1] : [1, 0];
        for (const i of order) {
          const side = sides[i];
          const io0 = debug ? await ioCounters(backend, side.databaseUrl, side.server.pid) : {};
          const cpu0 = treeTicks(side.server.pid);
          const pg0 = backend === 'postgres' ? postgresTicks() : 0;
          const r = await load({ ...opts(side), duration: SECONDS });
          const cpu1 = treeTicks(side.server.pid);
          const pg1 = backend === 'postgres' ? postgresTicks() : 0;
          if (debug) {
            const io1 = await ioCounters(backend, side.databaseUrl, side.server.pid);
            for (const k of Object.keys(io1)) io[i][k] = (io[i][k] ?? 0) + io1[k] - (io0[k] ?? 0);
          }
          runs[i].push({
            ok: r['2xx'],
            seconds: r.duration || SECONDS,
            p99: r.latency.p99,
            errors: r.non2xx + r.errors + r.timeouts,
            cpu: cpu1 - cpu0,
            db: pg1 - pg0,
          });
        }
      }
      sides.forEach((side, i) => {
        const rs = runs[i];
        const ok = rs.reduce((a, r) => a + r.ok, 0);
        const zero = Object.fromEntries(Object.keys(io[i]).map((k) => [k, 0]));
        if (debug) console.log(ioLine(`${m.name}, ${side.label}`, zero, io[i], ok));
        const p99s = rs.map((r) => r.p99).sort((a, b) => a - b);
        out[i].push({
          rps: Math.round(ok / rs.reduce((a, r) => a + r.seconds, 0)),
          p99: p99s[Math.floor(p99s.length / 2)],
          errors: rs.reduce((a, r) => a + r.errors, 0),
          cpuUs: usPer(
            rs.reduce((a, r) => a + r.cpu, 0),
            ok,
          ),
          dbUs:
            backend === 'postgres'
              ? usPer(
                  rs.reduce((a, r) => a + r.db, 0),
                  ok,
                )
              : undefined,
          rounds: rs.map((r) => usPer(r.cpu, r.ok)),
        });
      });
    }
    return out;
  } finally {
    for (const side of sides) await side.server.stop();
  }
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;

console.log(
  `bench:scale: ${MEMBERS} members, ${ENTRIES} ledger entries, ${EVENTS} events, ${MESSAGES} messages ` +
    `beside ${SMALL} cards; ${SECONDS} s per measure, node ${process.version}`,
);
const tables: string[] = [];
/**
 * BENCH_SERVER_ENVS: the server's settings to measure, each on the same two databases, separated by `;`, each a
 * space-separated list of NAME=value (e.g. "TALLY_SQLITE_CACHE_MB=32;TALLY_SQLITE_CACHE_MB=4000"; an empty entry is
 * the defaults). One table per entry.
 */
const SERVER_ENVS = (process.env.BENCH_SERVER_ENVS ?? '').split(';').map((entry) =>
  Object.fromEntries(
    entry
      .split(' ')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  ),
);
for (const backend of BACKENDS) {
  if (backend === 'postgres' && !(await pgReachable())) {
    console.log('  PostgreSQL skipped: not reachable');
    continue;
  }
  if (LOAD_ONLY) {
    console.log(`\n${backend}: loading ${MEMBERS} members`);
    const big = await build(backend, MEMBERS, ENTRIES, EVENTS, MESSAGES);
    const f = big.fixture;
    console.log(
      `  loaded in ${f.loadSeconds.toFixed(1)} s (${Math.round(MEMBERS / f.loadSeconds)} members/s, ` +
        `${Math.round(ENTRIES / f.loadSeconds)} entries/s); ${mb(f.bytes)} on disk`,
    );
    // BENCH_KEEP_DATABASE=1 keeps it, to look at.
    if (process.env.BENCH_KEEP_DATABASE) console.log(`  kept: ${big.databaseUrl}`);
    else await big.cleanup();
    continue;
  }
  console.log(`\n${backend}: loading ${SMALL} cards`);
  const small = await build(
    backend,
    SMALL,
    Math.max(HEAVY + SMALL, Math.round((ENTRIES * SMALL) / MEMBERS)),
    Math.round((EVENTS * SMALL) / MEMBERS),
    SMALL,
  );
  console.log(`${backend}: loading ${MEMBERS} members`);
  const big = await build(backend, MEMBERS, ENTRIES, EVENTS, MESSAGES);
  console.log(
    `  loaded in ${big.fixture.loadSeconds.toFixed(0)} s; ${mb(big.fixture.bytes)} on disk, ` +
      `${mb((big.fixture.bytes * 1e6) / MEMBERS)} per million members`,
  );
  try {
    for (const env of SERVER_ENVS) {
      const settings = Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      console.log(`${backend}: measuring${settings ? ` with ${settings}` : ''}`);
      const [rs, rb] = await measureBoth(
        backend,
        [
          { label: `${SMALL} cards`, databaseUrl: small.databaseUrl, f: small.fixture },
          { label: `${MEMBERS} members`, databaseUrl: big.databaseUrl, f: big.fixture },
        ],
        env,
      );
      const lines = [
        `\n${backend}: ${SMALL} cards beside ${MEMBERS} members (${ENTRIES} entries)${settings ? `, ${settings}` : ''}`,
        `| measure | ${SMALL} cards: req/s | p99 ms | CPU µs/req | ${MEMBERS} members: req/s | p99 ms | CPU µs/req | ` +
          'big / small: req/s | CPU/req | CPU/req by round |',
        '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ];
      measures.forEach((m, i) => {
        const s = rs[i];
        const b = rb[i];
        const errors = s.errors + b.errors > 0 ? ` (errors ${s.errors} / ${b.errors})` : '';
        const ratio = (b.rps / Math.max(1, s.rps)).toFixed(2);
        const cpuRatio = (b.cpuUs / Math.max(1, s.cpuUs)).toFixed(2);
        const cpu = (r: Result) => `${r.cpuUs}${r.dbUs === undefined ? '' : ` + PG ${r.dbUs}`}`;
        // Each round's ratio: the big database's server CPU per request over the small one's, seconds apart.
        const byRound = b.rounds.map((us, k) => (us / Math.max(1, s.rounds[k])).toFixed(2)).join(', ');
        lines.push(
          `| ${m.name}${errors} | ${s.rps} | ${s.p99} | ${cpu(s)} | ${b.rps} | ${b.p99} | ${cpu(b)} | ` +
            `${ratio} | ${cpuRatio} | ${byRound} |`,
        );
      });
      lines.push(
        `| size on disk | ${mb(small.fixture.bytes)} | | | ${mb(big.fixture.bytes)} | | | ` +
          `${mb((big.fixture.bytes * 1e6) / MEMBERS)} per million members | | |`,
      );
      console.log(lines.join('\n'));
      tables.push(lines.join('\n'));
    }
  } finally {
    await small.cleanup();
    await big.cleanup();
  }
}
console.log(`\n${loadAverageLine()}`);
console.log(tables.join('\n'));
