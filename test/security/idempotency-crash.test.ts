import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { openDatabase, parseDatabaseUrl } from '../../src/storage/database.ts';
import {
  createMember,
  createProgram,
  freshDatabaseUrl,
  startTestServer,
  type ApiResponse,
  type TestServer,
} from '../helpers/server.ts';

// Idempotency-Key after a crash and under races. The key's answer is stored in the transaction of
// the change it answers (src/http/idempotency.ts): a SIGKILL can leave neither a change without
// its answer (a key "in progress" for a day, the card code never learnt) nor an answer without its
// change; two requests with one key never both apply, whatever their bodies; a refusal is the
// key's outcome as much as a success is.

const root = new URL('../..', import.meta.url).pathname;

/** Counts a program's memberships straight from the database file or server, without a Tally database handle. */
async function membershipCounter(url: string, programId: string) {
  const { dialect, target } = parseDatabaseUrl(url);
  if (dialect === 'sqlite') {
    const native = new BetterSqlite3(target, { readonly: true });
    const stmt = native.prepare('select count(*) as n from memberships where program_id = ?');
    return { count: async () => Number((stmt.get(programId) as { n: number }).n), close: async () => native.close() };
  }
  const client = new pg.Client({ connectionString: target });
  await client.connect();
  return {
    count: async () =>
      Number(
        (await client.query('select count(*) as n from memberships where program_id = $1', [programId])).rows[0].n,
      ),
    close: () => client.end(),
  };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Idempotency-Key across a SIGKILL (a real server process)', () => {
  let databaseUrl: string;
  let drop: () => Promise<void>;
  let child: ChildProcess | null = null;
  let base = '';
  const appId = 'app_idem_crash';
  const token = `tly_sk_idem_${randomBytes(12).toString('hex')}`;

  const startServer = async (): Promise<ChildProcess> => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    base = `http://127.0.0.1:${port}`;
    const proc = spawn(process.execPath, [join(root, 'bin/tally.mjs'), 'serve'], {
      cwd: root,
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        TALLY_APP_ID: appId,
        TALLY_APP_TOKEN: token,
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    // Generous: tsx compiles the server at each start, slow on a busy machine.
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error('server did not start');
      try {
        if ((await fetch(`${base}/healthz`)).ok) return proc;
      } catch {
        /* not yet */
      }
      await sleep(50);
    }
  };
  const api = async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { 'x-app-id': appId, 'x-app-token': token, 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };

  before(async () => {
    ({ url: databaseUrl, drop } = await freshDatabaseUrl());
  });
  after(async () => {
    child?.kill('SIGKILL');
    await drop();
  });

  const joinsKilled =
    'member joins killed mid-burst: every key replays its card or applies now, never "in progress", never two cards';
  it(joinsKilled, async () => {
    child = await startServer();
    const program = await api('POST', '/v1/loyalties', { name: 'Crash joins', join_once: true });
    assert.equal(program.status, 200);
    const N = 60;
    const joins = Array.from({ length: N }, (_, i) => ({
      key: `join-${i}`,
      body: { customer: { source_id: `crash-join-${i}`, name: `Crash ${i}` }, metadata: { i } },
    }));
    const first = new Map<string, ApiResponse>();
    let answered = 0;
    const send = async (j: (typeof joins)[number]) => {
      try {
        const r = await api('POST', `/v1/loyalties/${program.body.id}/members`, j.body, { 'idempotency-key': j.key });
        first.set(j.key, r);
        if (r.status === 200) answered++;
      } catch {
        /* killed */
      }
    };
    // Many joins in flight; the kill as soon as the first ones are committed (read from the
    // database), before their answers are out.
    const members = await membershipCounter(databaseUrl, program.body.id);
    const burst = Promise.all(joins.map(send));
    const t0 = Date.now();
    while ((await members.count()) < N / 4 && Date.now() - t0 < 10_000);
    child.kill('SIGKILL');
    await members.close();
    await new Promise((r) => child!.once('exit', r));
    await burst;
    child = await startServer();

    let inProgress = 0;
    for (const j of joins) {
      const r = await api('POST', `/v1/loyalties/${program.body.id}/members`, j.body, { 'idempotency-key': j.key });
      if (r.status === 409 && r.body?.key === 'idempotency_key_in_progress') inProgress++;
      else assert.equal(r.status, 200, `${j.key}: ${JSON.stringify(r.body)}`);
      const before = first.get(j.key);
      if (before?.status === 200) {
        assert.equal(r.headers.get('idempotent-replayed'), 'true', `${j.key} answered before the kill: replayed`);
        assert.equal(r.body.code, before.body.code, `${j.key}: the same card code`);
      }
    }
    assert.equal(inProgress, 0, `${inProgress} of ${N} keys stuck "in progress" after the restart`);
    const database = openDatabase(databaseUrl);
    try {
      const rows = await database.db
        .selectFrom('memberships as m')
        .innerJoin('customers as c', 'c.id', 'm.customer_id')
        .select(['c.source_id'])
        .where('m.program_id', '=', program.body.id)
        .execute();
      const perCustomer = new Map<string, number>();
      for (const r of rows) perCustomer.set(r.source_id!, (perCustomer.get(r.source_id!) ?? 0) + 1);
      assert.equal(perCustomer.size, N, 'every customer is a member');
      assert.deepEqual(
        [...perCustomer.values()].filter((n) => n !== 1),
        [],
        'one card per customer',
      );
    } finally {
      await database.close();
    }
    console.log(`# ${answered} joins answered before the kill, ${first.size} answered in all`);
  });
});

describe('Idempotency-Key: two concurrent requests with one key, different bodies', () => {
  let t: TestServer;
  let receiver: ReturnType<typeof createServer>;
  let receiverUrl: string;
  before(async () => {
    t = await startTestServer();
    receiver = createServer((_req, res) => res.writeHead(200).end('ok'));
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  });
  after(async () => {
    receiver.close();
    await t.close();
  });

  const ROUNDS = 12;
  /**
   * Sends `a` and `b` with one key at once, ROUNDS times: exactly one may apply (`applied` reads the
   * database: which of the two bodies left its change), its request answers 2xx and the other a
   * replay of it, 409 (in progress) or 422 (key reused). Answers the rounds that broke the rule.
   */
  const race = async (
    name: string,
    send: (round: number, which: 'a' | 'b', key: string) => Promise<ApiResponse>,
    applied: (round: number) => Promise<('a' | 'b')[]>,
  ) => {
    const broken: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const key = `${name}-${round}-${randomBytes(3).toString('hex')}`;
      const [ra, rb] = await Promise.all([send(round, 'a', key), send(round, 'b', key)]);
      const done = await applied(round);
      const ok = (r: ApiResponse) => r.status >= 200 && r.status < 300;
      const lost = (r: ApiResponse) =>
        (r.status === 409 && r.body?.key === 'idempotency_key_in_progress') ||
        (r.status === 422 && r.body?.key === 'idempotency_key_reused');
      const fine =
        done.length === 1 && ((done[0] === 'a' && ok(ra) && lost(rb)) || (done[0] === 'b' && ok(rb) && lost(ra)));
      if (!fine)
        broken.push(
          `round ${round}: applied [${done}], answers ${ra.status} ${ra.body?.key ?? ''} / ${rb.status} ` +
            `${rb.body?.key ?? ''}`,
        );
    }
    return broken;
  };

  it('a customer create', async () => {
    const broken = await race(
      'cust',
      (round, which, key) =>
        t.api(
          'POST',
          '/v1/customers',
          { source_id: `race-cust-${round}-${which}`, name: which },
          { 'idempotency-key': key },
        ),
      async (round) => {
        const out: ('a' | 'b')[] = [];
        for (const w of ['a', 'b'] as const)
          if ((await t.api('GET', `/v1/customers/race-cust-${round}-${w}`)).status === 200) out.push(w);
        return out;
      },
    );
    assert.deepEqual(broken, []);
  });

  it('a member join', async () => {
    const program = await createProgram(t);
    const broken = await race(
      'join',
      (round, which, key) =>
        t.api(
          'POST',
          `/v1/loyalties/${program.id}/members`,
          { customer: { source_id: `race-join-${round}-${which}` } },
          { 'idempotency-key': key },
        ),
      async (round) => {
        const out: ('a' | 'b')[] = [];
        for (const w of ['a', 'b'] as const) {
          const c = await t.api('GET', `/v1/customers/race-join-${round}-${w}`);
          if (c.status !== 200) continue;
          const m = await t.api('GET', `/v1/loyalties/${program.id}/members?customer=${c.body.id}`);
          if (m.body.total > 0) out.push(w);
        }
        return out;
      },
    );
    assert.deepEqual(broken, []);
  });

  it('an earning rule create', async () => {
    const program = await createProgram(t);
    const broken = await race(
      'rule',
      (round, which, key) =>
        t.api(
          'POST',
          `/v1/loyalties/${program.id}/earning-rules`,
          [{ event: `race.${round}.${which}`, loyalty: { type: 'FIXED', points: 1 } }],
          { 'idempotency-key': key },
        ),
      async (round) => {
        const rules = (await t.api('GET', `/v1/loyalties/${program.id}/earning-rules?limit=100`)).body.data as {
          event: string;
        }[];
        return (['a', 'b'] as const).filter((w) => rules.some((r) => r.event === `race.${round}.${w}`));
      },
    );
    assert.deepEqual(broken, []);
  });

  it('a webhook create', async () => {
    const broken = await race(
      'hook',
      (round, which, key) =>
        t.api(
          'POST',
          '/v1/webhooks',
          { target_url: receiverUrl, events: ['*'], description: `race-${round}-${which}` },
          { 'idempotency-key': key },
        ),
      async (round) => {
        const hooks = (await t.api('GET', '/v1/webhooks')).body.data as { description: string }[];
        return (['a', 'b'] as const).filter((w) => hooks.some((h) => h.description === `race-${round}-${w}`));
      },
    );
    assert.deepEqual(broken, []);
  });
});

describe("Idempotency-Key: a refusal is the key's outcome", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => t.close());

  it('a refused join is replayed to a retry, even once the join would succeed', async () => {
    const program = await createProgram(t, { join_once: true });
    const member = await createMember(t, program.id, { source_id: 'refused-join' });
    const refused = await t.api(
      'POST',
      `/v1/loyalties/${program.id}/members`,
      { customer: { source_id: 'refused-join' } },
      { 'idempotency-key': 'join-refused' },
    );
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal((await t.api('DELETE', `/v1/loyalties/${program.id}/members/${member.code}`)).status, 200);
    const retry = await t.api(
      'POST',
      `/v1/loyalties/${program.id}/members`,
      { customer: { source_id: 'refused-join' } },
      { 'idempotency-key': 'join-refused' },
    );
    assert.deepEqual([retry.status, retry.body], [refused.status, refused.body]);
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');
  });

  const refusedDebit =
    'a refused debit: its event once, the same 422 to a retry; ' +
    'a concurrent credit with the key never applies beside the refusal';
  it(refusedDebit, async () => {
    const program = await createProgram(t);
    const refusalEvents = async () =>
      Number(
        (
          await t.server.ctx.database.db
            .selectFrom('outbox_events')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('type', '=', 'balance_transaction_unauthorized')
            .executeTakeFirstOrThrow()
        ).n,
      );
    const card = await createMember(t, program.id);
    const path = `/v1/loyalties/members/${card.code}/balance`;
    const events0 = await refusalEvents();
    const refused = await t.api('POST', path, { points: -50 }, { 'idempotency-key': 'debit-refused' });
    assert.equal(refused.status, 422);
    const retry = await t.api('POST', path, { points: -50 }, { 'idempotency-key': 'debit-refused' });
    assert.deepEqual([retry.status, retry.body], [422, refused.body]);
    assert.equal(await refusalEvents(), events0 + 1, 'one refusal event for the key');

    // Same key: a debit the card cannot afford (refused) and a credit (would apply), at once. The
    // key's outcome is one of them: either the refusal (the credit is not applied) or the credit
    // (the debit answers 409/422 for the key, not its own refusal).
    const broken: string[] = [];
    for (let round = 0; round < 16; round++) {
      const key = `debit-or-credit-${round}`;
      const m = await createMember(t, program.id);
      const p = `/v1/loyalties/members/${m.code}/balance`;
      const [debit, credit] = await Promise.all([
        t.api('POST', p, { points: -1000 }, { 'idempotency-key': key }),
        t.api('POST', p, { points: 7 }, { 'idempotency-key': key }),
      ]);
      const balance = (await t.api('GET', `/v1/loyalties/members/${m.code}`)).body.loyalty_card.balance as number;
      const refusedOwn = debit.status === 422 && debit.body.key === 'insufficient_balance';
      const lostKey = (r: ApiResponse) =>
        (r.status === 409 && r.body.key === 'idempotency_key_in_progress') ||
        (r.status === 422 && r.body.key === 'idempotency_key_reused');
      const fine =
        balance === 7 ? credit.status === 200 && lostKey(debit) : balance === 0 && refusedOwn && lostKey(credit);
      if (!fine)
        broken.push(
          `round ${round}: balance ${balance}, debit ${debit.status} ${debit.body.key ?? ''}, credit ` +
            `${credit.status} ${credit.body.key ?? ''}`,
        );
    }
    assert.deepEqual(broken, []);
  });

  it('a refused join and a join that would succeed, one key, at once: one outcome', async () => {
    const program = await createProgram(t, { join_once: true });
    const broken: string[] = [];
    for (let round = 0; round < 12; round++) {
      await createMember(t, program.id, { source_id: `member-${round}` });
      const key = `join-race-${round}`;
      const [again, fresh] = await Promise.all([
        t.api(
          'POST',
          `/v1/loyalties/${program.id}/members`,
          { customer: { source_id: `member-${round}` } },
          { 'idempotency-key': key },
        ),
        t.api(
          'POST',
          `/v1/loyalties/${program.id}/members`,
          { customer: { source_id: `newcomer-${round}` } },
          { 'idempotency-key': key },
        ),
      ]);
      const newcomer = await t.api('GET', `/v1/customers/newcomer-${round}`);
      const joined =
        newcomer.status === 200 &&
        (await t.api('GET', `/v1/loyalties/${program.id}/members?customer=${newcomer.body.id}`)).body.total === 1;
      const lostKey = (r: ApiResponse) =>
        (r.status === 409 && r.body.key === 'idempotency_key_in_progress') ||
        (r.status === 422 && r.body.key === 'idempotency_key_reused');
      const fine = joined
        ? fresh.status === 200 && lostKey(again)
        : again.status === 409 && again.body.key === 'already_joined' && lostKey(fresh);
      if (!fine)
        broken.push(
          `round ${round}: joined ${joined}, again ${again.status} ${again.body.key}, fresh ${fresh.status} ` +
            `${fresh.body.key ?? ''}`,
        );
    }
    assert.deepEqual(broken, []);
  });
});

describe('Idempotency-Key: every write route stores its answer', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => t.close());

  it('a keyed request to each write route is replayed to its retry (most refused for an unknown id)', async () => {
    const phone = '+385911234567';
    const routes: [string, string, unknown?][] = [
      ['POST', '/v1/customers', { source_id: 'every-route' }],
      ['PUT', '/v1/customers/nope', {}],
      ['DELETE', '/v1/customers/nope'],
      ['POST', '/v1/loyalties', { name: 'every route' }],
      ['PUT', '/v1/loyalties/nope', {}],
      ['DELETE', '/v1/loyalties/nope'],
      ['POST', '/v1/loyalties/nope/balance-definitions', { name: 'd' }],
      ['PUT', '/v1/loyalties/nope/balance-definitions/nope', {}],
      ['POST', '/v1/loyalties/nope/members', { customer: 'nope' }],
      ['DELETE', '/v1/loyalties/nope/members/nope'],
      ['POST', '/v1/loyalties/members/nope/balance', { points: 1 }],
      ['POST', '/v1/loyalties/nope/members/nope/balance', { points: 1 }],
      ['POST', '/v1/loyalties/nope/earning-rules', [{ event: 'x', loyalty: { type: 'FIXED', points: 1 } }]],
      ['PUT', '/v1/loyalties/nope/earning-rules/nope', {}],
      ['DELETE', '/v1/loyalties/nope/earning-rules/nope'],
      ['POST', '/v1/loyalties/nope/earning-rules/nope/enable'],
      ['POST', '/v1/loyalties/nope/earning-rules/nope/disable'],
      ['POST', '/v1/events', { event: 'every.route', customer: { source_id: 'every-route' } }],
      ['PUT', '/v1/orders/nope', { status: 'PAID' }],
      ['POST', '/v1/loyalties/members/nope/pending-points/nope/activate'],
      ['POST', '/v1/loyalties/members/nope/pending-points/nope/cancel'],
      ['POST', '/v1/loyalties/members/nope/pending-points/nope/balance', { points: 1 }],
      ['POST', '/v1/loyalties/nope/tiers', [{ name: 't', points: { from: 0 } }]],
      ['PUT', '/v1/loyalties/nope/tiers/nope', {}],
      ['POST', '/v1/loyalties/nope/tier-groups', { name: 'g' }],
      ['PUT', '/v1/loyalties/nope/tier-groups/nope', {}],
      ['POST', '/v1/webhooks', { target_url: 'http://127.0.0.1:9/hook', events: ['*'] }],
      ['PUT', '/v1/webhooks/nope', {}],
      ['DELETE', '/v1/webhooks/nope'],
      ['POST', '/v1/webhooks/nope/rotate-secret'],
      ['POST', '/v1/webhooks/nope/test', {}],
      ['POST', '/v1/webhooks/nope/events/nope/resend'],
      ['POST', '/v1/webhooks/nope/recover', { since: '2026-01-01T00:00:00Z' }],
      ['POST', '/v1/channels', { name: 'sim', provider: 'simulator', sender: '+385910000000' }],
      ['PUT', '/v1/channels/nope', {}],
      ['DELETE', '/v1/channels/nope'],
      ['POST', '/v1/simulator/messages', { from: phone, text: 'hi', channel_id: 'nope' }],
      ['POST', '/v1/flows', { name: 'f', program_id: 'nope', steps: [{ id: 'a', type: 'reply', template: 'hi' }] }],
      ['PUT', '/v1/flows/nope', {}],
      ['DELETE', '/v1/flows/nope'],
      ['POST', '/v1/flows/nope/clone', {}],
      ['POST', '/v1/flows/nope/broadcast', { channel_id: 'nope' }],
    ];
    const unstored: string[] = [];
    for (const [i, [method, path, body]] of routes.entries()) {
      const key = `every-route-${i}`;
      const first = await t.api(method, path, body, { 'idempotency-key': key });
      assert.ok(
        first.status < 500 && first.body?.key !== 'invalid_payload',
        `${method} ${path}: ${first.status} ${JSON.stringify(first.body)}`,
      );
      const again = await t.api(method, path, body, { 'idempotency-key': key });
      if (again.headers.get('idempotent-replayed') !== 'true' || again.status !== first.status)
        unstored.push(`${method} ${path} (${first.status}, then ${again.status})`);
    }
    assert.deepEqual(unstored, []);
  });
});
