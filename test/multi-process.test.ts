import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { loadConfig } from '../src/config.ts';
import { buildServer, type TallyServer } from '../src/server.ts';
import { backend, createProgram, startTestServer, testSecretKey, type TestServer } from './helpers/server.ts';

// Two server processes on one database (two servers in this process, each with its own
// connections and caches: to each other they are what two processes are), and the CLI in a real
// process of its own. What one changes must not be served from the other's caches, which keep
// entries for 5 s: the change reaches them through the cache bus, on PostgreSQL by NOTIFY within
// milliseconds, on SQLite through the `cache_changes` log read every 250 ms.
describe("two servers on one database: changes reach the other server's caches at once", () => {
  let a: TestServer;
  let b: TallyServer;
  let bUrl: string;
  const asB = (path: string, init: { method?: string; body?: unknown; appId?: string; token?: string } = {}) =>
    fetch(`${bUrl}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        'x-app-id': init.appId ?? a.appId,
        'x-app-token': init.token ?? a.token,
        'content-type': 'application/json',
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
  /** Polls `check` for up to 1 s (the caches' TTL is 5 s): the time it took, or a failure. */
  const within1s = async (what: string, check: () => Promise<boolean>) => {
    const t0 = Date.now();
    while (!(await check())) {
      if (Date.now() - t0 > 1000) assert.fail(`${what}: still not seen by the other server after 1 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return Date.now() - t0;
  };

  /** Points a new `event` (its own source_event_id) earns in `programId` through server B. */
  let sent = 0;
  const earnedThrough = async (programId: string, event: string) => {
    const res = await asB('/v1/events', {
      method: 'POST',
      body: {
        event,
        customer: { source_id: `cache-${programId}` },
        source_event_id: `${event}-${programId}-${sent++}`,
      },
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { earned: { accruals: { campaign_id: string; points: number }[] } };
    return body.earned.accruals.filter((x) => x.campaign_id === programId).reduce((sum, x) => sum + x.points, 0);
  };

  before(async () => {
    a = await startTestServer();
    const config = {
      ...loadConfig({}, {}),
      port: 0,
      host: '127.0.0.1',
      databaseUrl: a.databaseUrl,
      logLevel: 'warn',
      allowPrivateTargets: true,
      workers: false,
      secretKey: testSecretKey,
    };
    b = await buildServer(config, { logger: false });
    bUrl = await b.listen();
  });
  after(async () => {
    await b.close();
    await a.close();
  });

  it('an API key revoked through one server is refused by the other', async () => {
    const key = await a.server.services.apiKeys.create('second');
    const headers = { appId: key.app_id, token: key.token };
    assert.equal((await asB('/v1/loyalties', headers)).status, 200, 'the other server verified and cached the key');
    await a.server.services.apiKeys.revoke(key.id);
    await within1s('the revocation', async () => (await asB('/v1/loyalties', headers)).status === 401);
  });

  it('an API key revoked with the CLI, another process, is refused by both servers', async () => {
    const key = await a.server.services.apiKeys.create('cli-revoked');
    const headers = { appId: key.app_id, token: key.token };
    assert.equal((await asB('/v1/loyalties', headers)).status, 200, 'server B verified and cached the key');
    assert.equal(
      (await a.api('GET', '/v1/loyalties', undefined, { 'x-app-id': key.app_id, 'x-app-token': key.token })).status,
      200,
      'server A too',
    );
    const cli = spawn(process.execPath, ['bin/tally.mjs', 'keys', 'revoke', key.id], {
      cwd: new URL('..', import.meta.url).pathname,
      env: { ...process.env, DATABASE_URL: a.databaseUrl, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    cli.stdout.on('data', (d) => (output += d));
    cli.stderr.on('data', (d) => (output += d));
    const code = await new Promise<number | null>((resolve) => cli.on('exit', resolve));
    assert.equal(code, 0, output);
    await within1s('the CLI revocation (server B)', async () => (await asB('/v1/loyalties', headers)).status === 401);
    await within1s(
      'the CLI revocation (server A)',
      async () =>
        (await a.api('GET', '/v1/loyalties', undefined, { 'x-app-id': key.app_id, 'x-app-token': key.token }))
          .status === 401,
    );
  });

  it('a server whose listening connection was cut listens again and hears later changes', {
    skip: backend === 'sqlite' && 'PostgreSQL LISTEN only',
  }, async () => {
    const db = a.server.ctx.database.db;
    const listeners = async () =>
      (
        await sql<{ pid: number }>`select pid from pg_stat_activity
          where datname = current_database() and query = 'LISTEN tally_cache'`.execute(db)
      ).rows;
    const before = await listeners();
    assert.equal(before.length, 2, 'one listening connection per server');
    for (const { pid } of before) await sql`select pg_terminate_backend(${pid})`.execute(db);
    await within1s('no listener left', async () => (await listeners()).length === 0).catch(() => undefined);
    // Both reconnect (after ~1 s) and listen again.
    const t0 = Date.now();
    while ((await listeners()).length < 2) {
      if (Date.now() - t0 > 5000) assert.fail('the servers did not listen again within 5 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    const key = await a.server.services.apiKeys.create('after-reconnect');
    const headers = { appId: key.app_id, token: key.token };
    assert.equal((await asB('/v1/loyalties', headers)).status, 200);
    await a.server.services.apiKeys.revoke(key.id);
    await within1s(
      'the revocation after the reconnect',
      async () => (await asB('/v1/loyalties', headers)).status === 401,
    );
  });

  it('an earning rule disabled through one server stops earning through the other', async () => {
    const program = await createProgram(a);
    const created = await a.api('POST', `/v1/loyalties/${program.id}/earning-rules`, [
      { event: 'cache.ping', loyalty: { type: 'FIXED', points: 10 } },
    ]);
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const rule = (created.body as any[])[0];
    const earnedThroughB = () => earnedThrough(program.id, 'cache.ping');
    // The new rule reaches the other server's rule cache the same way (SQLite: within a poll).
    await within1s('the new rule (server B loads and caches it)', async () => (await earnedThroughB()) === 10);
    const disabled = await a.api('POST', `/v1/loyalties/${program.id}/earning-rules/${rule.id}/disable`);
    assert.equal(disabled.status, 200);
    await within1s('the disabled rule', async () => (await earnedThroughB()) === 0);
  });

  it('a program deleted through one server no longer earns through the other', async () => {
    const program = await createProgram(a);
    const created = await a.api('POST', `/v1/loyalties/${program.id}/earning-rules`, [
      { event: 'cache.gone', loyalty: { type: 'FIXED', points: 7 } },
    ]);
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const earnedThroughB = () => earnedThrough(program.id, 'cache.gone');
    await within1s('the new rule (server B caches the program)', async () => (await earnedThroughB()) === 7);
    assert.equal((await a.api('DELETE', `/v1/loyalties/${program.id}`)).status, 204);
    await within1s('the deleted program', async () => (await earnedThroughB()) === 0);
  });
});
