import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { runDemo } from '../../src/demo.ts';
import { buildServer, type TallyServer } from '../../src/server.ts';
import { freshDatabaseUrl, testSecretKey } from '../helpers/server.ts';

// The `referral` template variable through the demo's REFERRAL keyword over the simulator: the
// member's code, the friends referred so far, and what the next friend earns (both tiers at 3).

describe('referrals: REFERRAL by message', () => {
  let drop: () => Promise<void>;
  let server: TallyServer;
  let url: string;
  const headers = {
    'x-app-id': 'app_demo',
    'x-app-token': 'tly_sk_demo_0123456789abcdef',
    'content-type': 'application/json',
  };

  before(async () => {
    const db = await freshDatabaseUrl();
    drop = db.drop;
    const config = {
      ...loadConfig({}, {}),
      databaseUrl: db.url,
      port: 0,
      logLevel: 'warn' as const,
      workers: false,
      appId: 'app_demo',
      appToken: 'tly_sk_demo_0123456789abcdef',
      secretKey: testSecretKey,
    };
    assert.equal(await runDemo(config, { serve: false, out: () => undefined }), 0);
    server = await buildServer(config, { logger: false });
    url = await server.listen();
  });
  after(async () => {
    await server.close();
    await drop();
  });

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
    const json = (await res.json()) as any;
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const say = async (from: string, text: string): Promise<string> =>
    (await call('POST', '/v1/simulator/messages', { from, text })).replies[0].text;

  it('REFERRAL answers the code, the count and what the next friend earns', async () => {
    const status = await call('GET', '/v1/customers/demo-ana/referrals');
    const code = status.campaigns[0].code;
    assert.equal(
      await say('+385916242493', 'REFERRAL'),
      `Hi Ana, your referral code is ${code}; 0 friends joined so far. Your next friend earns you 200 points.`,
    );
    for (const friend of ['friend-1', 'friend-2']) {
      await call('POST', `/v1/vouchers/${code}/redemption`, {
        customer: { source_id: friend, name: friend },
        order: { amount: 1000 },
      });
    }
    assert.equal(
      await say('+385916242493', 'refer'),
      `Hi Ana, your referral code is ${code}; 2 friends joined so far. ` +
        'Your next friend earns you 200 points and A free coffee.',
    );
    // Ana got 200 points per friend: 2641 + 400.
    assert.match(await say('+385916242493', 'POINTS'), /^Hi Ana, you have 3041 points/);
  });
});
