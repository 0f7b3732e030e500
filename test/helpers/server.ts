import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/config.ts';
import { ManualClock, type Clock } from '../../src/lib/clock.ts';
import type { ResolveHost } from '../../src/lib/url-guard.ts';
import { buildServer, type TallyServer } from '../../src/server.ts';

// Test servers are real: a Fastify server on a loopback port, a real database (a fresh SQLite file,
// or a fresh PostgreSQL database), driven over HTTP. Pick the backend with TALLY_TEST_BACKEND.

export const backend = (process.env.TALLY_TEST_BACKEND ?? 'sqlite') as 'sqlite' | 'postgres';
export const PG_URL = process.env.TALLY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

// On PostgreSQL a server needs TALLY_SECRET_KEY (on SQLite it makes a key file beside the database).
// Tests share one; set here so servers started in child processes (CLI, crash test) inherit it.
if (backend === 'postgres') process.env.TALLY_SECRET_KEY ??= 'dGFsbHktdGVzdC1rZXktMzItYnl0ZXMtbG9uZy0hISE=';
/** The secret key a test server gets (undefined on SQLite: the key file). */
export const testSecretKey = process.env.TALLY_SECRET_KEY || undefined;

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export interface TestServer {
  url: string;
  server: TallyServer;
  clock: Clock;
  appId: string;
  token: string;
  databaseUrl: string;
  api<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse<T>>;
  close(): Promise<void>;
}

/** A fresh, empty database URL of the selected backend, and how to drop it afterwards. */
export async function freshDatabaseUrl(): Promise<{ url: string; drop: () => Promise<void> }> {
  if (backend === 'postgres') {
    const name = `tally_t_${process.pid}_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(PG_URL);
    url.pathname = `/${name}`;
    return {
      url: url.toString(),
      drop: async () => {
        const c = new pg.Client({ connectionString: PG_URL });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.end();
      },
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'tally-test-'));
  return { url: `sqlite:${join(dir, 'tally.db')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

export async function startTestServer(
  opts: {
    clock?: Clock;
    config?: Partial<Config>;
    manualClock?: boolean;
    resolveHost?: ResolveHost;
    logStream?: NodeJS.WritableStream;
  } = {},
): Promise<TestServer & { clock: Clock }> {
  const db = await freshDatabaseUrl();
  const clock = opts.clock ?? (opts.manualClock ? new ManualClock() : undefined);
  const config: Config = {
    ...loadConfig({}, {}),
    port: 0,
    host: '127.0.0.1',
    databaseUrl: db.url,
    logLevel: 'warn',
    allowPrivateTargets: true,
    secretKey: testSecretKey,
    // Background workers off: tests run the scheduler and dispatcher by hand with their clock.
    workers: false,
    ...opts.config,
  };
  // Silent unless a test reads the log (logStream) or TALLY_TEST_LOG asks for it on stdout.
  const logger = opts.logStream || process.env.TALLY_TEST_LOG ? undefined : false;
  const server = await buildServer(config, { clock, logger, resolveHost: opts.resolveHost, logStream: opts.logStream });
  const appId = `app_test_${randomBytes(3).toString('hex')}`;
  const token = `tly_sk_test_${randomBytes(12).toString('hex')}`;
  await server.services.apiKeys.ensure(appId, token);
  const url = await server.listen();
  const api = async <T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        'x-app-id': appId,
        'x-app-token': token,
        ...(body !== undefined && typeof body !== 'string' ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  };
  return {
    url,
    server,
    clock: server.ctx.clock,
    appId,
    token,
    databaseUrl: db.url,
    api,
    async close() {
      await server.close();
      await db.drop();
    },
  };
}

/** Shortcuts for the common set-up: a program, a customer and a card. */
export async function createProgram(t: TestServer, body: Record<string, unknown> = {}) {
  const res = await t.api('POST', '/v1/loyalties', { name: `Program ${randomBytes(4).toString('hex')}`, ...body });
  if (res.status !== 200) throw new Error(`createProgram: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export async function createMember(
  t: TestServer,
  campaignId: string,
  customer: unknown = { source_id: `c-${randomBytes(5).toString('hex')}`, name: 'Test Member' },
) {
  const res = await t.api('POST', `/v1/loyalties/${campaignId}/members`, { customer });
  if (res.status !== 200) throw new Error(`createMember: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}
