import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { describeDatabase } from '../src/cli.ts';
import { parseDatabaseUrl } from '../src/storage/database.ts';
import { serveChild } from './helpers/child-server.ts';
import { freshDatabaseUrl } from './helpers/server.ts';

// The `tally` CLI as an operator runs it: `node bin/tally.mjs ...` in a child process, against a
// fresh database of the selected backend.

const root = new URL('..', import.meta.url).pathname;
const BIN = 'bin/tally.mjs';

function tally(args: string[], env: Record<string, string>) {
  const res = spawnSync(process.execPath, [BIN, ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

/** Runs `tally demo` on a free port until it prints its instructions; answers them and the child. */
async function demo(env: Record<string, string>) {
  const child = spawn(process.execPath, [BIN, 'demo', '--port', '0'], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // a child left running would keep the test process alive
      reject(new Error(`tally demo did not finish setting up:\n${out}`));
    }, 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (/API docs: \S+/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', () => reject(new Error(`tally demo exited:\n${out}`)));
  });
  const key = out.match(/X-App-Id (app_\w+)\s+X-App-Token (tly_sk_\w+)/);
  assert.ok(key, `the demo prints its key and token:\n${out}`);
  const url = out.match(/API docs: (http:\/\/[^/\s]+)\/docs/)![1];
  return { child, out, exited, url, appId: key[1], token: key[2] };
}

/** `tally serve` on a free port (test/helpers/child-server.ts). */
const serve = (env: Record<string, string>) => serveChild({ NODE_ENV: 'production', ...env });

describe('tally CLI', () => {
  const drops: (() => Promise<void>)[] = [];
  const children: ChildProcess[] = [];
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    for (const d of drops) await d().catch(() => undefined);
  });
  const db = async () => {
    const fresh = await freshDatabaseUrl();
    drops.push(fresh.drop);
    return fresh.url;
  };

  it('migrate, keys create / list / revoke', async () => {
    const env = { DATABASE_URL: await db() };
    const migrate = tally(['migrate'], env);
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.match(migrate.stdout, /0001_core/);
    const again = tally(['migrate'], env);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /up to date/);
    assert.doesNotMatch(again.stdout, /0001_core/, 'a second migrate applies nothing');

    const created = tally(['keys', 'create', '--name', 'ops', '--json'], env);
    assert.equal(created.code, 0, created.stderr);
    const key = JSON.parse(created.stdout);
    assert.equal(key.name, 'ops');
    assert.match(key.app_id, /^app_/);
    assert.match(key.token, /^tly_sk_/);
    const human = tally(['keys', 'create', '--name', 'second'], env);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /X-App-Token: tly_sk_/);
    // It says which database the key went to (a server on another DATABASE_URL would not know it).
    const { dialect, target } = parseDatabaseUrl(env.DATABASE_URL);
    const database = human.stdout.match(/Database: +(\S+)/)?.[1];
    assert.ok(database, human.stdout);
    if (dialect === 'sqlite') assert.equal(database, `sqlite:${target}`);
    else assert.equal(new URL(database).pathname, new URL(env.DATABASE_URL).pathname);

    const list = tally(['keys', 'list', '--json'], env);
    const keys = JSON.parse(list.stdout);
    assert.deepEqual(
      keys.map((k: any) => [k.name, k.revoked_at]),
      [
        ['ops', null],
        ['second', null],
      ],
    );
    assert.ok(!list.stdout.includes(key.token), 'list never shows a token');

    const revoke = tally(['keys', 'revoke', key.app_id], env);
    assert.equal(revoke.code, 0);
    const listed = tally(['keys', 'list'], env);
    assert.match(listed.stdout, new RegExp(`${key.app_id}.*revoked`));
    const twice = tally(['keys', 'revoke', key.id], env);
    assert.equal(twice.code, 1);
    const bad = tally(['keys', 'frobnicate'], env);
    assert.equal(bad.code, 2);
    const noName = tally(['keys', 'create'], env);
    assert.equal(noName.code, 2, 'keys create needs --name');
    const unknownFlag = tally(['serve', '--prot', '3000'], env);
    assert.equal(unknownFlag.code, 2);
  });

  it('names the database it works on, without a PostgreSQL password', () => {
    const described = describeDatabase('postgres://tally:s3cret@db.example:5432/loyalty');
    assert.equal(described, 'postgres://tally:***@db.example:5432/loyalty');
    assert.equal(describeDatabase('postgresql://db.example/loyalty'), 'postgresql://db.example/loyalty');
    assert.equal(describeDatabase('sqlite:./data/tally.db'), `sqlite:${process.cwd()}/data/tally.db`);
  });

  it('a bare `tally` prints the commands and starts nothing', () => {
    const bare = tally([], { DATABASE_URL: 'sqlite::memory:' });
    const output = `${bare.stdout}${bare.stderr}`;
    assert.equal(bare.code, 2, `exits at once with 2 (null: still running, it started a server)\n${output}`);
    assert.match(bare.stderr, /tally serve/);
    assert.match(bare.stderr, /tally keys create/);
    assert.doesNotMatch(bare.stdout + bare.stderr, /listening/i);
    const help = tally(['--help'], {});
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage:/);
  });

  it('a port in use: serve and demo name it, say how to choose another; no stack, nothing created', async () => {
    const env = { DATABASE_URL: await db() };
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      for (const command of ['serve', 'demo']) {
        const res = tally([command, '--port', String(port)], { ...env, LOG_LEVEL: 'warn' });
        assert.equal(res.code, 1, `${command}: exits 1 (null: still running)\n${res.stdout}${res.stderr}`);
        assert.match(res.stderr, new RegExp(`127\\.0\\.0\\.1:${port}.*already in use`));
        assert.match(res.stderr, /--port N or PORT=N/);
        assert.doesNotMatch(res.stderr, /EADDRINUSE|\n\s+at |node:net/, `${command}: no stack trace`);
      }
      // The demo stopped before writing anything: no key exists whose token nobody saw.
      const keys = JSON.parse(tally(['keys', 'list', '--json'], env).stdout);
      assert.deepEqual(keys, []);
    } finally {
      blocker.close();
    }
  });

  it('demo twice: no crash, one "demo" key whose new token is shown and works', async () => {
    const env = { DATABASE_URL: await db() };
    const first = await demo(env);
    children.push(first.child);
    assert.match(first.out, /Demo ready/);
    assert.match(first.out, /the token is shown only now/);
    const get = (d: { url: string; appId: string }, token: string) =>
      fetch(`${d.url}/v1/loyalties`, { headers: { 'x-app-id': d.appId, 'x-app-token': token } });
    assert.equal((await get(first, first.token)).status, 200);
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);

    const second = await demo(env);
    children.push(second.child);
    assert.match(second.out, /Demo already set up/);
    assert.equal(second.appId, first.appId, 'the same key, with a new token');
    assert.notEqual(second.token, first.token);
    assert.equal((await get(second, second.token)).status, 200);
    assert.equal((await get(second, first.token)).status, 401, 'the earlier token no longer works');
    const programs: any = await (await get(second, second.token)).json();
    assert.equal(programs.total, 1, 'the demo program is reused, not made again');
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
    const keys = JSON.parse(tally(['keys', 'list', '--json'], env).stdout);
    assert.deepEqual(
      keys.map((k: any) => [k.name, k.app_id, k.revoked_at]),
      [['demo', first.appId, null]],
    );
  });

  it('first start without a key says how to get one; a key created by the CLI works at once', async () => {
    const env = { DATABASE_URL: await db() };
    const s = await serve(env);
    children.push(s.child);
    assert.match(s.output(), /tally keys create/);
    const health = await fetch(`${s.url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((await fetch(`${s.url}/v1/customers`)).status, 401);
    // A key created by the CLI while the server runs is accepted at once.
    const key = JSON.parse(tally(['keys', 'create', '--name', 'live', '--json'], env).stdout);
    const ok = await fetch(`${s.url}/v1/customers`, { headers: { 'x-app-id': key.app_id, 'x-app-token': key.token } });
    assert.equal(ok.status, 200);
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 0);
  });

  it('TALLY_APP_ID + TALLY_APP_TOKEN make sure that key exists; SIGTERM lets an in-flight request finish', async () => {
    const env = {
      DATABASE_URL: await db(),
      TALLY_APP_ID: 'app_container',
      TALLY_APP_TOKEN: 'tly_sk_container_secret_0123456789',
    };
    const s = await serve(env);
    children.push(s.child);
    assert.doesNotMatch(s.output(), /No API key exists/);
    const headers = {
      'x-app-id': env.TALLY_APP_ID,
      'x-app-token': env.TALLY_APP_TOKEN,
      'content-type': 'application/json',
    };
    const program: any = await (
      await fetch(`${s.url}/v1/loyalties`, { method: 'POST', headers, body: JSON.stringify({ name: 'Shutdown' }) })
    ).json();
    const member: any = await (
      await fetch(`${s.url}/v1/loyalties/${program.id}/members`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ customer: { source_id: 'sd-1' } }),
      })
    ).json();
    assert.match(member.code ?? '', /\S+/, JSON.stringify(member));

    // A request whose body is still arriving when SIGTERM comes: it completes, then the process exits 0.
    const body = JSON.stringify({ points: 42, reason: 'in flight' });
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${s.url}/v1/loyalties/members/${member.code}/balance`, {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      });
      req.on('response', (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      });
      req.on('error', reject);
      req.write(body.slice(0, 10));
      setTimeout(() => {
        s.child.kill('SIGTERM');
        setTimeout(() => req.end(body.slice(10)), 400);
      }, 300);
    });
    const res = await answer;
    assert.equal(res.status, 200, res.body);
    assert.equal(JSON.parse(res.body).balance, 42);
    assert.equal(await s.exited, 0);
    assert.match(s.output(), /shutting down/);
    // New connections are refused once it is gone; the change is durable.
    await assert.rejects(() => fetch(`${s.url}/healthz`));
    const again = await serve(env);
    children.push(again.child);
    const card: any = await (await fetch(`${again.url}/v1/loyalties/members/${member.code}`, { headers })).json();
    assert.equal(card.loyalty_card.balance, 42);
    again.child.kill('SIGTERM');
    assert.equal(await again.exited, 0);
  });
});
