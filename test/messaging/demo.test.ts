import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig, type Config } from '../../src/config.ts';
import { runDemo } from '../../src/demo.ts';
import { buildServer, type TallyServer } from '../../src/server.ts';
import { freshDatabaseUrl, testSecretKey } from '../helpers/server.ts';

describe('tally demo', () => {
  let drop: () => Promise<void>;
  let config: Config;
  let server: TallyServer;
  let url: string;
  let headers: Record<string, string>;
  let printed = '';

  before(async () => {
    const db = await freshDatabaseUrl();
    drop = db.drop;
    config = {
      ...loadConfig({}, {}),
      databaseUrl: db.url,
      port: 0,
      logLevel: 'warn',
      workers: false,
      appId: 'app_demo',
      appToken: 'tly_sk_demo_0123456789abcdef',
      secretKey: testSecretKey,
    };
    assert.equal(await runDemo(config, { serve: false, out: (s) => (printed += s) }), 0);
    // Running it again reuses what exists.
    assert.equal(await runDemo(config, { serve: false, out: () => undefined }), 0);
    server = await buildServer(config, { logger: false });
    url = await server.listen();
    headers = {
      'x-app-id': 'app_demo',
      'x-app-token': 'tly_sk_demo_0123456789abcdef',
      'content-type': 'application/json',
    };
  });
  after(async () => {
    await server.close();
    await drop();
  });

  const say = async (from: string, text: string): Promise<string[]> => {
    const res = await fetch(`${url}/v1/simulator/messages`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ from, text }),
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as any).replies.map((r: any) => r.text);
  };

  it('prints how to try it with curl', () => {
    assert.match(printed, /curl -s http:\/\/\S+\/v1\/simulator\/messages -H 'X-App-Id: app_demo'/);
    assert.match(printed, /"text":"POINTS"/);
  });

  it('sets up one program, members, rewards, a simulator channel, cloned flows, REDEEM and JOIN', async () => {
    const programs = (await (await fetch(`${url}/v1/loyalties?limit=100`, { headers })).json()) as any;
    assert.equal(programs.total, 1);
    const flows = (await (await fetch(`${url}/v1/flows?limit=100`, { headers })).json()) as any;
    assert.deepEqual(flows.flows.map((f: any) => f.name).sort(), [
      'Join by message',
      'Points balance',
      'Redeem a reward',
      'Referral status',
      'Rewards I can redeem',
      'Tier level',
    ]);
    assert.ok(flows.flows.every((f: any) => f.active));
    // The catalogue was made once, though the demo ran twice.
    const rewards = (await (await fetch(`${url}/v1/rewards?limit=100`, { headers })).json()) as any;
    assert.deepEqual(rewards.data.map((r: any) => [r.name, r.type]).sort(), [
      ['10% off your next order', 'CAMPAIGN'],
      ['A free coffee', 'MATERIAL'],
    ]);
  });

  it('REDEEM 2 answers a coupon code, REDEEM after POINTS the first reward; Marko is refused', async () => {
    const coupon = await say('+385987654321', 'REDEEM 2');
    assert.match(
      coupon[0],
      /^Enjoy 10% off your next order, Ivana! Your code: COFFEE-\w{6}\. You have 4700 points left\.$/,
    );
    await say('+385987654321', 'points');
    assert.match(
      (await say('+385987654321', 'redeem'))[0],
      /^Enjoy A free coffee, Ivana! Show card \S+ at the till to collect it\. You have 4450 points left\.$/,
    );
    assert.match((await say('+385912345678', 'REDEEM 1'))[0], /^Sorry, there is no such reward on your list/);
  });

  it('answers POINTS with 2641 and the nudge, and the cloned flows say what they know', async () => {
    const points = await say('+385916242493', 'POINTS');
    assert.match(points[0], /^Hi Ana, you have 2641 points/);
    assert.match(points[0], /enough for A free coffee! Reply REDEEM to claim it/);
    assert.equal(
      (await say('+385916242493', 'tier'))[0],
      'Hi Ana, you are Silver in Tally Coffee Club. 359 more points to reach Gold.',
    );
    assert.match((await say('+385987654321', 'level'))[0], /^Hi Ivana, you are Gold in Tally Coffee Club\.$/);
    assert.equal(
      (await say('+385916242493', 'rewards'))[0],
      'Hi Ana, with 2641 points you can redeem: 1. A free coffee (250 pts), 2. 10% off your next order (500 pts). ' +
        'Reply REDEEM and the number to get it.',
    );
    assert.equal(
      (await say('+385912345678', 'rewards'))[0],
      'Hi Marko, the cheapest reward costs 250 points; you have 180.',
    );
    assert.match(
      (await say('+385916242493', 'referral'))[0],
      /^Hi Ana, your referral code is FRIEND-\w{5}; 0 friends joined so far\. Your next friend earns you 200 points\.$/,
    );
    assert.match((await say('+385916242493', 'hello'))[0], /^Sorry, I didn't get that/);
    assert.match(
      (await say('+385991112233', 'JOIN'))[0],
      /^Welcome to Tally Coffee Club! Your card is \S+ and you have 50 points/,
    );
  });
});
