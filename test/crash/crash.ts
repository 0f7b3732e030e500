// npm run test:crash: at least once, never lost, across a SIGKILL.
//
// Starts the real server (`node bin/tally.mjs serve`) on a temporary SQLite file (or, with
// TALLY_TEST_BACKEND=postgres, a fresh database at TALLY_TEST_PG_URL's server), registers a
// webhook to a local receiver, applies a load of point additions, kills the server with SIGKILL in
// the middle of it, restarts it, finishes the load, and then checks, reading the database directly:
//   1. every committed ledger entry has its events (balance_value_updated and points_added);
//   2. every event reached the receiver with a 2xx answer (counted by webhook-id; duplicates allowed);
//   3. the ledger invariants hold.
// The receiver answers 500 to a few deliveries so retries are part of the run. Exits non-zero on
// any failure, and by itself within about two minutes.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { openDatabase } from '../../src/storage/database.ts';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { backend, freshDatabaseUrl } from '../helpers/server.ts';

const root = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tally-crash-'));
const pgDatabase = backend === 'postgres' ? await freshDatabaseUrl() : undefined;
const databaseUrl = pgDatabase?.url ?? `sqlite:${join(dir, 'tally.db')}`;
const appId = 'app_crash';
const token = `tly_sk_crash_${randomBytes(8).toString('hex')}`;
const LOAD_WORKERS = 8;
const MEMBERS = 20;
const DEADLINE = Date.now() + 150_000;

const log = (msg: string) => process.stdout.write(`[crash] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let child: ChildProcess | null = null;
let failed = false;
const guard = setTimeout(() => {
  log('FAIL: did not finish in time');
  child?.kill('SIGKILL');
  process.exit(1);
}, DEADLINE - Date.now());
guard.unref();

// ---- receiver ----
const delivered = new Set<string>();
const failedOnce = new Set<string>();
let receivedTotal = 0;
let secret = '';
let badSignatures = 0;
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    receivedTotal++;
    const body = Buffer.concat(chunks).toString('utf8');
    const id = String(req.headers['webhook-id']);
    try {
      new Webhook(secret).verify(body, {
        'webhook-id': id,
        'webhook-timestamp': String(req.headers['webhook-timestamp']),
        'webhook-signature': String(req.headers['webhook-signature']),
      });
    } catch {
      badSignatures++;
    }
    // A few failures (first attempts only: the retry comes 5 s later; a second failure would wait
    // 5 minutes) and small delays, so deliveries are in flight at the kill.
    const fail = !failedOnce.has(id) && Math.random() < 0.03;
    if (fail) failedOnce.add(id);
    setTimeout(
      () => {
        if (!fail) delivered.add(id);
        res.writeHead(fail ? 500 : 200).end(fail ? 'try again' : 'ok');
      },
      Math.floor(Math.random() * 15),
    );
  });
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

// ---- server process ----
const port = await new Promise<number>((resolve) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => {
    const p = (s.address() as AddressInfo).port;
    s.close(() => resolve(p));
  });
});
const base = `http://127.0.0.1:${port}`;

async function startServer(): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [join(root, 'bin/tally.mjs'), 'serve'], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      TALLY_APP_ID: appId,
      TALLY_APP_TOKEN: token,
      TALLY_ALLOW_PRIVATE_TARGETS: '1',
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (;;) {
    if (Date.now() > DEADLINE) throw new Error('server did not start');
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) return proc;
    } catch {
      /* not yet */
    }
    await sleep(50);
  }
}

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'x-app-id': appId, 'x-app-token': token, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function check(cond: boolean, msg: string) {
  if (!cond) {
    failed = true;
    log(`FAIL: ${msg}`);
  } else log(`ok: ${msg}`);
}

try {
  child = await startServer();
  log(`server up on ${base}, database ${databaseUrl.replace(/\/\/[^@]*@/, '//')}`);
  const hook = await api('POST', '/v1/webhooks', { target_url: receiverUrl, events: ['*'], description: 'crash test' });
  if (hook.status !== 200) throw new Error(`webhook: ${hook.status} ${JSON.stringify(hook.body)}`);
  secret = hook.body.secret;
  const program = await api('POST', '/v1/loyalties', { name: 'Crash program' });
  const cards: string[] = [];
  for (let i = 0; i < MEMBERS; i++) {
    const m = await api('POST', `/v1/loyalties/${program.body.id}/members`, {
      customer: { source_id: `crash-${i}`, name: `Crash ${i}` },
    });
    if (m.status !== 200) throw new Error(`member: ${m.status} ${JSON.stringify(m.body)}`);
    cards.push(m.body.code);
  }

  // ---- load ----
  let stop = false;
  let ok = 0;
  let errors = 0;
  const worker = async () => {
    while (!stop) {
      const card = cards[Math.floor(Math.random() * cards.length)];
      try {
        const r = await api('POST', `/v1/loyalties/members/${card}/balance`, {
          points: 1 + Math.floor(Math.random() * 50),
        });
        if (r.status === 200) ok++;
        else errors++;
      } catch {
        errors++;
        await sleep(20); // server down: the restart is coming
      }
    }
  };
  const workers = Array.from({ length: LOAD_WORKERS }, worker);
  await sleep(2500);
  log(`SIGKILL mid-load after ${ok} additions (${receivedTotal} requests received)`);
  child.kill('SIGKILL');
  await new Promise((r) => child!.once('exit', r));
  await sleep(300);
  child = await startServer();
  log('restarted');
  await sleep(2500);
  stop = true;
  await Promise.all(workers);
  log(`load done: ${ok} answered additions, ${errors} failed requests`);

  // ---- wait for every event to be delivered (leases of the killed process expire after 30 s) ----
  const database = openDatabase(databaseUrl);
  const db = database.db;
  let missing: string[] = [];
  for (;;) {
    const events = await db
      .selectFrom('outbox_events')
      .select('id')
      .where((eb) => eb.or([eb('resource_type', 'is', null), eb('resource_type', '!=', 'webhook_test')]))
      .execute();
    missing = events.map((e) => e.id).filter((id) => !delivered.has(id));
    if (missing.length === 0 || Date.now() > DEADLINE - 10_000) break;
    await sleep(250);
  }
  const entries = await db.selectFrom('ledger_entries').select(['id', 'points', 'membership_id']).execute();
  const events = await db.selectFrom('outbox_events').select(['id', 'type', 'data']).execute();
  const updatedFor = new Set(
    events.filter((e) => e.type === 'balance_value_updated').map((e) => JSON.parse(e.data).source_event_id),
  );
  const addedFor = new Set(
    events
      .filter((e) => e.type === 'customer.voucher.loyalty_card.points_added')
      .map((e) => JSON.parse(e.data).transaction.id),
  );
  const withoutEvents = entries.filter((e) => !updatedFor.has(e.id) || !addedFor.has(e.id));
  log(`${failedOnce.size} deliveries answered 500 once (retried)`);
  log(
    `${entries.length} ledger entries, ${events.length} events, ${delivered.size} delivered webhook-ids, ` +
      `${receivedTotal} requests received`,
  );
  check(entries.length >= ok, `every answered addition is committed (${entries.length} >= ${ok})`);
  check(
    withoutEvents.length === 0,
    `every ledger entry has balance_value_updated and points_added (${withoutEvents.length} without)`,
  );
  check(
    missing.length === 0,
    'every event reached the receiver ' +
      `(${missing.length} missing${missing.length ? `: ${missing.slice(0, 5).join(', ')}` : ''})`,
  );
  check(badSignatures === 0, `every delivery verified with standardwebhooks (${badSignatures} bad)`);
  try {
    const n = await assertLedgerInvariants(db);
    check(true, `ledger invariants hold over ${n} balances`);
  } catch (err) {
    check(false, `ledger invariants: ${(err as Error).message}`);
  }
  await database.close();
} catch (err) {
  failed = true;
  log(`FAIL: ${(err as Error).stack ?? err}`);
} finally {
  child?.kill('SIGTERM');
  if (child && child.exitCode === null) await Promise.race([new Promise((r) => child!.once('exit', r)), sleep(5000)]);
  child?.kill('SIGKILL');
  receiver.closeAllConnections();
  receiver.close();
  rmSync(dir, { recursive: true, force: true });
  await pgDatabase?.drop().catch(() => undefined);
}
log(failed ? 'FAILED' : 'PASSED');
process.exit(failed ? 1 : 0);
