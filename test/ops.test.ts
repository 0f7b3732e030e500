import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMember, createProgram, startTestServer, type TestServer } from './helpers/server.ts';

describe('auth, health, metrics, OpenAPI and docs', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  const raw = (path: string, init: RequestInit = {}) => fetch(`${t.url}${path}`, init);

  it('refuses a missing or wrong key with a 401 JSON error', async () => {
    const cases: [string, Record<string, string>][] = [
      ['no headers', {}],
      ['app id only', { 'x-app-id': t.appId }],
      ['wrong token', { 'x-app-id': t.appId, 'x-app-token': 'tly_sk_wrong' }],
      ['token of another app id', { 'x-app-id': 'app_other', 'x-app-token': t.token }],
      ['bearer wrong', { authorization: 'Bearer nope' }],
      ['basic scheme', { authorization: `Basic ${Buffer.from(`${t.appId}:${t.token}`).toString('base64')}` }],
    ];
    for (const [label, headers] of cases) {
      for (const [method, path] of [
        ['GET', '/v1/customers'],
        ['POST', '/v1/loyalties'],
      ] as const) {
        const res = await raw(path, {
          method,
          headers: { ...headers, 'content-type': 'application/json' },
          body: method === 'POST' ? '{"name":"x"}' : undefined,
        });
        assert.equal(res.status, 401, `${label} ${method} ${path}`);
        assert.match(res.headers.get('content-type') ?? '', /application\/json/);
        const body = (await res.json()) as any;
        assert.equal(body.code, 401);
        assert.equal(body.key, 'unauthorized');
        assert.equal(typeof body.message, 'string');
        assert.equal(typeof body.details, 'string');
        assert.equal(body.request_id, res.headers.get('x-request-id'));
      }
    }
    const programs = await t.api('GET', '/v1/loyalties');
    assert.equal(programs.body.total, 0, 'the refused POSTs created nothing');
  });

  it('accepts X-App-Id + X-App-Token and Authorization: Bearer; a revoked key is refused', async () => {
    assert.equal(
      (await raw('/v1/customers', { headers: { 'x-app-id': t.appId, 'x-app-token': t.token } })).status,
      200,
    );
    assert.equal((await raw('/v1/customers', { headers: { authorization: `Bearer ${t.token}` } })).status, 200);
    assert.equal((await raw('/v1/customers', { headers: { authorization: `bearer ${t.token}` } })).status, 200);
    const key = await t.server.services.apiKeys.create('to revoke');
    const stored = await t.server.ctx.database.db
      .selectFrom('api_keys')
      .selectAll()
      .where('id', '=', key.id)
      .executeTakeFirstOrThrow();
    assert.notEqual(stored.token_hash, key.token, 'tokens are stored hashed');
    assert.ok(!JSON.stringify(stored).includes(key.token));
    assert.equal((await raw('/v1/customers', { headers: { authorization: `Bearer ${key.token}` } })).status, 200);
    assert.equal(
      (await raw('/v1/customers', { headers: { 'x-app-id': key.app_id, 'x-app-token': key.token } })).status,
      200,
    );
    assert.equal(await t.server.services.apiKeys.revoke(key.app_id), true);
    assert.equal((await raw('/v1/customers', { headers: { authorization: `Bearer ${key.token}` } })).status, 401);
    assert.equal(
      (await raw('/v1/customers', { headers: { 'x-app-id': key.app_id, 'x-app-token': key.token } })).status,
      401,
    );
    assert.equal(await t.server.services.apiKeys.revoke(key.id), false, 'revoking twice reports nothing to revoke');
  });

  it('answers health, readiness and metrics without a key', async () => {
    const health = await raw('/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual((await health.json()) as any, { status: 'ok' });
    const ready = await raw('/readyz');
    assert.equal(ready.status, 200);
    assert.equal(((await ready.json()) as any).database, 'ok');

    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    await t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: 3 });
    await t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: -1 });
    const metrics = await raw('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type') ?? '', /text\/plain/);
    const text = await metrics.text();
    assert.match(
      text,
      new RegExp(
        'tally_http_request_duration_seconds_count\\{method="POST",' +
          'route="/v1/loyalties/members/:memberId/balance",status="200"\\} 2',
      ),
    );
    assert.match(
      text,
      /tally_http_requests_total\{method="POST",route="\/v1\/loyalties\/members\/:memberId\/balance",status="200"\} 2/,
    );
    assert.match(text, /tally_ledger_writes_total\{type="POINTS_ADDITION"\} 1/);
    assert.match(text, /tally_ledger_writes_total\{type="POINTS_REMOVAL"\} 1/);
    assert.match(text, /tally_process_cpu_seconds_total/);
    // Both balance changes went through a group commit (SQLite: every write; PostgreSQL: by lane).
    const sample = (name: string) => Number((new RegExp(`^${name} (\\S+)$`, 'm').exec(text) ?? [])[1]);
    const committed = sample('tally_db_group_commit_transactions_sum');
    const commits = sample('tally_db_group_commit_transactions_count');
    assert.ok(committed >= 2, `transactions committed in groups: ${committed}`);
    assert.ok(commits >= 1 && commits <= committed, `group commits: ${commits}`);
  });

  it('readiness fails while shutting down or when the database is gone', async () => {
    const other = await startTestServer();
    const ping = other.server.ctx.database.ping;
    other.server.ctx.database.ping = async () => false;
    const res = await fetch(`${other.url}/readyz`);
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as any).database, 'unreachable');
    other.server.ctx.database.ping = ping;
    await other.close();
  });

  it('serves an OpenAPI 3 document generated from the route schemas, and a docs page', async () => {
    const res = await raw('/openapi.json');
    assert.equal(res.status, 200);
    const doc = (await res.json()) as any;
    assert.match(doc.openapi, /^3\./);
    for (const p of [
      '/v1/customers',
      '/v1/customers/{customerId}',
      '/v1/loyalties',
      '/v1/loyalties/{campaignId}',
      '/v1/loyalties/{campaignId}/members',
      '/v1/loyalties/{campaignId}/members/{memberId}',
      '/v1/loyalties/members/{memberId}',
      '/v1/loyalties/{campaignId}/members/{memberId}/balance',
      '/v1/loyalties/members/{memberId}/balance',
      '/v1/loyalties/members/{memberId}/transactions',
      '/v1/loyalties/{campaignId}/members/{memberId}/transactions',
      '/v1/loyalties/{campaignId}/members/{memberId}/points-expiration',
      '/v1/loyalties/{campaignId}/balance-definitions',
      '/v1/loyalties/members/{memberId}/balances',
    ]) {
      assert.ok(doc.paths[p], `OpenAPI documents ${p}`);
    }
    const balance = doc.paths['/v1/loyalties/members/{memberId}/balance'].post;
    assert.equal(balance.requestBody.content['application/json'].schema.properties.points.type, 'integer');
    assert.ok(doc.components.securitySchemes.bearer);
    const docs = await raw('/docs', { redirect: 'follow' });
    assert.equal(docs.status, 200);
    const html = await docs.text();
    assert.match(html, /<html/i);
    assert.match(html, /swagger|redoc|Tally/i);
  });
});
