import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMember, createProgram, startTestServer, type TestServer } from './helpers/server.ts';

// The README's curl lines send `content-type: application/json` on every call. An operation that
// takes no body must then still work: curl sends the header with no body and no Content-Length,
// fetch and most SDKs send `Content-Length: 0`. Both were a 400 invalid_json.

interface RawAnswer {
  status: number;
  body: any;
}

/** A request as `curl -H content-type:application/json -X POST url` sends it: no body, no length. */
function curlStyle(t: TestServer, method: string, path: string): Promise<RawAnswer> {
  const url = new URL(t.url);
  const head =
    `${method} ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n` +
    `X-App-Id:${t.appId}\r\nX-App-Token:${t.token}\r\ncontent-type:application/json\r\nConnection: close\r\n\r\n`;
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.write(head));
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [headers = '', ...rest] = text.split('\r\n\r\n');
      const status = Number(headers.split(' ')[1]);
      const payload = rest.join('\r\n\r\n');
      let body: unknown = payload;
      try {
        body = payload ? JSON.parse(payload) : undefined;
      } catch {
        /* not JSON */
      }
      resolve({ status, body });
    });
  });
}

/** The same with fetch: `Content-Length: 0`. */
async function fetchStyle(t: TestServer, method: string, path: string): Promise<RawAnswer> {
  const res = await t.api(method, path, '', { 'content-type': 'application/json' });
  return { status: res.status, body: res.body };
}

const styles = { curl: curlStyle, fetch: fetchStyle };

describe('an empty body with content-type: application/json', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => t.close());

  it('is no body on every operation that takes none (all of them, found in the OpenAPI document)', async () => {
    await t.server.app.ready();
    type Operation = { requestBody?: unknown; security?: unknown[] };
    const spec = t.server.app.swagger() as { paths: Record<string, Record<string, Operation>> };
    const bodyless: [string, string][] = [];
    for (const [path, operations] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        // Provider callbacks read their own bodies (JSON or form posts) and verify the provider first.
        const writes = ['post', 'put', 'patch', 'delete'].includes(method);
        if (op.requestBody || !writes || op.security?.length === 0) continue;
        bodyless.push([method.toUpperCase(), path.replace(/\{[^}]+\}/g, 'nope')]);
      }
    }
    const names = bodyless.map(([m, p]) => `${m} ${p}`);
    for (const expected of ['/enable', '/disable', '/activate', '/cancel', '/rotate-secret', '/resend']) {
      assert.ok(
        names.some((n) => n.startsWith('POST') && n.endsWith(expected)),
        `${expected} in ${names.join(', ')}`,
      );
    }
    for (const [style, send] of Object.entries(styles)) {
      for (const [method, path] of bodyless) {
        const res = await send(t, method, path);
        // Made-up ids: the operation ran and found nothing.
        assert.equal(res.status, 404, `${style} ${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      }
    }
  });

  it('runs each body-less POST of the README and the optional-body ones', async () => {
    for (const [style, send] of Object.entries(styles)) {
      const program = await createProgram(t);
      const rule = await t.api('POST', `/v1/loyalties/${program.id}/earning-rules`, [
        {
          event: 'order.paid',
          loyalty: {
            type: 'PROPORTIONAL',
            calculation_type: 'ORDER_AMOUNT',
            order: { amount: { every: 100, points: 1 } },
          },
          pending_points: { period_type: 'DAY', period_value: 3 },
        },
      ]);
      assert.equal(rule.status, 200, JSON.stringify(rule.body));
      const ruleId = rule.body[0].id;
      const rulePath = `/v1/loyalties/${program.id}/earning-rules/${ruleId}`;
      const disabled = await send(t, 'POST', `${rulePath}/disable`);
      assert.equal(disabled.status, 200, `${style} disable: ${JSON.stringify(disabled.body)}`);
      assert.equal(disabled.body.active, false);
      const enabled = await send(t, 'POST', `${rulePath}/enable`);
      assert.equal(enabled.status, 200, `${style} enable: ${JSON.stringify(enabled.body)}`);
      assert.equal(enabled.body.active, true);

      let code = '';
      for (const n of [1, 2]) {
        const orderBody = { source_id: `o${n}-${style}`, status: 'PAID', customer: style, amount: 1000 };
        const order = await t.api('POST', '/v1/orders', orderBody);
        assert.equal(order.status, 200, JSON.stringify(order.body));
        code = order.body.earned.accruals.find((a: any) => a.campaign_id === program.id).code;
      }
      const pending = (await t.api('GET', `/v1/loyalties/members/${code}/pending-points`)).body.data;
      assert.equal(pending.length, 2);
      const activated = await send(t, 'POST', `/v1/loyalties/members/${code}/pending-points/${pending[0].id}/activate`);
      assert.equal(activated.status, 200, `${style} activate: ${JSON.stringify(activated.body)}`);
      const cancelled = await send(t, 'POST', `/v1/loyalties/members/${code}/pending-points/${pending[1].id}/cancel`);
      assert.equal(cancelled.status, 204, `${style} cancel: ${JSON.stringify(cancelled.body)}`);

      const hook = await t.api('POST', '/v1/webhooks', { target_url: 'http://127.0.0.1:9/hook', events: ['*'] });
      assert.equal(hook.status, 200, JSON.stringify(hook.body));
      const rotated = await send(t, 'POST', `/v1/webhooks/${hook.body.id}/rotate-secret`);
      assert.equal(rotated.status, 200, `${style} rotate-secret: ${JSON.stringify(rotated.body)}`);
      assert.equal(rotated.body.id, hook.body.id);
      const tested = await send(t, 'POST', `/v1/webhooks/${hook.body.id}/test`);
      assert.equal(tested.status, 200, `${style} test: ${JSON.stringify(tested.body)}`);
      const resent = await send(t, 'POST', `/v1/webhooks/${hook.body.id}/events/${tested.body.event.id}/resend`);
      assert.notEqual(resent.body?.key, 'invalid_json', `${style} resend: ${JSON.stringify(resent.body)}`);
      assert.ok(resent.status < 500, `${style} resend: ${resent.status}`);
      // Optional bodies: an update with nothing to change.
      const unchanged = await send(t, 'PUT', `/v1/loyalties/${program.id}`);
      assert.equal(unchanged.status, 200, `${style} PUT program: ${JSON.stringify(unchanged.body)}`);
      assert.equal(unchanged.body.name, program.name);
      assert.equal((await send(t, 'DELETE', `/v1/webhooks/${hook.body.id}`)).status, 204);
    }
  });

  it('still says what is missing where a body is required', async () => {
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    for (const [style, send] of Object.entries(styles)) {
      const balance = await send(t, 'POST', `/v1/loyalties/members/${member.code}/balance`);
      assert.equal(balance.status, 400, style);
      assert.equal(balance.body.key, 'invalid_payload');
      assert.deepEqual(balance.body.errors, [{ field: 'points', message: 'is required' }]);
      const tiers = await send(t, 'POST', `/v1/loyalties/${program.id}/tiers`);
      assert.equal(tiers.status, 400, style);
      assert.deepEqual(tiers.body.errors, [{ field: 'body', message: 'is required: send an array as JSON' }]);
      const join = await send(t, 'POST', `/v1/loyalties/${program.id}/members`);
      assert.deepEqual(join.body.errors, [{ field: 'customer', message: 'is required' }], style);
    }
  });
});
