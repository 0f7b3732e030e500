import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_JSON_DEPTH } from '../../src/http/body.ts';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type ApiResponse, type TestServer } from '../helpers/server.ts';
import { basicHeader, createChannel, INFOBIP_BASIC } from '../messaging/setup.ts';

// Attack: a body nested thousands of levels deep. JSON.parse copes, but everything after it that
// recurses (schema validation, idempotency hashing, serialising) overflowed the stack: a 500.
// Bodies deeper than MAX_JSON_DEPTH are refused before parsing with a 400 in the error shape.

const arrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const objects = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

function assertTooDeep(res: ApiResponse, label: string) {
  assert.equal(res.status, 400, `${label}: ${res.status} ${JSON.stringify(res.body)?.slice(0, 300)}`);
  const b = res.body;
  assert.equal(b.code, 400, label);
  assert.equal(b.key, 'json_too_deep', label);
  for (const f of ['message', 'details', 'request_id']) assert.equal(typeof b[f], 'string', `${label}: ${f}`);
  assert.match(b.details, new RegExp(`at most ${MAX_JSON_DEPTH}`), label);
  assert.equal(b.request_id, res.headers.get('x-request-id'), label);
}

describe('security: deeply nested JSON bodies', () => {
  let t: TestServer;
  let program: any;
  let member: any;
  let channel: any;
  before(async () => {
    t = await startTestServer();
    program = await createProgram(t);
    member = await createMember(t, program.id);
    channel = await createChannel(t, {
      provider: 'infobip',
      sender: 'Tally',
      credentials: { base_url: 'http://127.0.0.1:9', api_key: 'k'.repeat(32) },
      inbound_auth: INFOBIP_BASIC,
    });
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  it('refuses 3,000 and 100,000 levels on every kind of route with a 400, and keeps serving', async () => {
    const json = { 'content-type': 'application/json' };
    const providerAuth = { ...json, authorization: basicHeader(INFOBIP_BASIC.username, INFOBIP_BASIC.password) };
    for (const depth of [3_000, 100_000]) {
      for (const [shape, nested] of [
        ['arrays', arrays(depth)],
        ['objects', objects(depth)],
      ] as const) {
        const keyed = { ...json, 'idempotency-key': `deep-${depth}-${shape}` };
        const cases: [string, string, string, Record<string, string>][] = [
          ['POST', '/v1/customers', `{"source_id":"deep","metadata":${nested}}`, json],
          ['POST', '/v1/customers', nested, json],
          ['POST', `/v1/loyalties/members/${member.code}/balance`, `{"points":5,"reason":${nested}}`, keyed],
          ['POST', '/v1/loyalties', `{"name":"deep","metadata":${nested}}`, json],
          ['PUT', `/v1/loyalties/${program.id}`, `{"metadata":${nested}}`, json],
          ['POST', '/v1/events', `{"event":"deep","customer":{"source_id":"deep"},"metadata":${nested}}`, json],
          // A provider callback: public, no schema, parsed by the provider's own code.
          ['POST', `/v1/channels/${channel.id}/inbound`, `{"results":[${nested}]}`, providerAuth],
          ['POST', `/v1/channels/${channel.id}/reports`, nested, providerAuth],
          ['POST', '/v1/simulator/messages', `{"from":"+385911234567","text":${nested}}`, json],
        ];
        for (const [method, path, body, headers] of cases) {
          assertTooDeep(await t.api(method, path, body, headers), `${method} ${path} ${shape} ${depth}`);
        }
      }
    }
    // Still serving, and nothing was written.
    const customers = await t.api('GET', '/v1/customers');
    assert.equal(customers.status, 200);
    assert.ok(!customers.body.customers.some((c: any) => c.source_id === 'deep'));
    const add = await t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: 7 });
    assert.equal(add.status, 200);
    assert.equal(add.body.balance, 7);
  });

  it(`accepts ${MAX_JSON_DEPTH} levels and refuses ${MAX_JSON_DEPTH + 1}`, async () => {
    // The body object is level 1, so metadata may nest MAX_JSON_DEPTH - 1 levels.
    const json = { 'content-type': 'application/json' };
    const customer = (sourceId: string, metadataDepth: number) =>
      t.api('POST', '/v1/customers', `{"source_id":"${sourceId}","metadata":${objects(metadataDepth)}}`, json);
    const atLimit = await customer('limit', MAX_JSON_DEPTH - 1);
    assert.equal(atLimit.status, 200, JSON.stringify(atLimit.body));
    const beyond = await customer('beyond', MAX_JSON_DEPTH);
    assertTooDeep(beyond, 'one level beyond');
    // Brackets inside strings are text, not nesting.
    const text = await t.api('POST', '/v1/customers', { source_id: 'text', name: '['.repeat(5000).slice(0, 200) });
    assert.equal(text.status, 200, JSON.stringify(text.body));
  });

  it('form bodies stay flat: a 3,000-level bracket key is one plain key, not a nested value', async () => {
    const key = `metadata${'[a]'.repeat(3000)}`;
    const res = await t.api('POST', '/v1/customers', `source_id=form&${encodeURIComponent(key)}=1`, {
      'content-type': 'application/x-www-form-urlencoded',
    });
    assert.ok(res.status < 500, `${res.status} ${JSON.stringify(res.body)?.slice(0, 300)}`);
    const callback = await t.api('POST', `/v1/channels/${channel.id}/inbound`, `${encodeURIComponent(key)}=1`, {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basicHeader(INFOBIP_BASIC.username, INFOBIP_BASIC.password),
    });
    assert.ok(callback.status < 500, `${callback.status} ${JSON.stringify(callback.body)?.slice(0, 300)}`);
    assert.equal((await t.api('GET', '/v1/customers')).status, 200);
  });
});
