import assert from 'node:assert/strict';
import { serveChild, type ChildServer } from '../helpers/child-server.ts';
import { after, before, describe, it } from 'node:test';
import { FakeInfobip, infobipSms } from '../fakes/infobip.ts';
import { FakeTwilio, postTwilio } from '../fakes/twilio.ts';
import { freshDatabaseUrl } from '../helpers/server.ts';

// Credentials are write-only: never in an API answer, never in the log (checked on a real
// `tally serve` process logging at debug level).

const API_KEY = 'ib-SECRET-api-key-7f3a9c1d';
const TOKEN = 'SECRET-inbound-token-5e8b2a';
const PASSWORD = 'SECRET-basic-password-91';

describe('channel credentials stay secret', () => {
  let server: ChildServer | undefined;
  const log = () => server?.output() ?? '';
  let url = '';
  let drop: () => Promise<void>;
  const infobip = new FakeInfobip(API_KEY);
  const twilio = new FakeTwilio();
  const headers = {
    'x-app-id': 'app_secrets',
    'x-app-token': 'tly_sk_secrets_0123456789',
    'content-type': 'application/json',
  };

  before(async () => {
    await infobip.start();
    await twilio.start();
    const db = await freshDatabaseUrl();
    drop = db.drop;
    server = await serveChild({
      DATABASE_URL: db.url,
      LOG_LEVEL: 'debug',
      TALLY_APP_ID: headers['x-app-id'],
      TALLY_APP_TOKEN: headers['x-app-token'],
      TALLY_ALLOW_PRIVATE_TARGETS: '1',
    });
    url = server.url;
  });
  after(async () => {
    await server?.stop();
    await infobip.close();
    await twilio.close();
    await drop();
  });

  it('never returns or logs credentials and inbound secrets', async () => {
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, text: await res.text() };
    };
    const program = JSON.parse((await api('POST', '/v1/loyalties', { name: 'Secret program' })).text);
    await api('POST', `/v1/loyalties/${program.id}/members`, {
      customer: { source_id: 's1', name: 'S', phone: '+385916242493' },
    });
    const tokenCh = await api('POST', '/v1/channels', {
      name: 'token',
      provider: 'infobip',
      sender: 'Tally',
      credentials: { base_url: infobip.url, api_key: API_KEY },
      inbound_auth: { type: 'token', token: TOKEN },
    });
    const basicCh = await api('POST', '/v1/channels', {
      name: 'basic',
      provider: 'infobip',
      sender: 'Tally',
      credentials: { base_url: infobip.url, api_key: API_KEY },
      inbound_auth: { type: 'basic', username: 'ib', password: PASSWORD },
    });
    const twCh = await api('POST', '/v1/channels', {
      name: 'tw',
      provider: 'twilio',
      sender: '+14155550100',
      credentials: { account_sid: twilio.accountSid, auth_token: twilio.authToken, base_url: twilio.url },
    });
    const ids = [tokenCh, basicCh, twCh].map((r) => JSON.parse(r.text).id);
    await api('POST', '/v1/flows', {
      name: 'p',
      program_id: program.id,
      triggers: [{ keywords: ['POINTS'] }],
      steps: [
        { id: 'f', type: 'find_member', next: 'r' },
        { id: 'r', type: 'reply', template: 'You have {{ points }} points' },
      ],
    });
    const answers = [
      tokenCh.text,
      basicCh.text,
      twCh.text,
      (await api('GET', '/v1/channels')).text,
      (await api('GET', `/v1/channels/${ids[0]}`)).text,
    ];
    answers.push((await api('PUT', `/v1/channels/${ids[0]}`, { credentials: { api_key: API_KEY } })).text);
    for (const a of answers) {
      for (const secret of [API_KEY, TOKEN, PASSWORD, twilio.authToken])
        assert.ok(!a.includes(secret), `answer leaks a secret: ${a}`);
    }
    assert.deepEqual(JSON.parse(tokenCh.text).credentials_set, ['api_key', 'base_url']);

    // Traffic that uses every secret: inbound with token / basic / bad token, outbound with the API key, Twilio.
    const body = JSON.stringify(infobipSms('+385916242493', '385921004026', 'points'));
    await fetch(`${url}/v1/channels/${ids[0]}/inbound?token=${TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    await fetch(`${url}/v1/channels/${ids[0]}/inbound?token=${TOKEN}x`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    await fetch(`${url}/v1/channels/${ids[1]}/inbound`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Basic ${Buffer.from(`ib:${PASSWORD}`).toString('base64')}`,
      },
      body: JSON.stringify(infobipSms('+385916242493', '385921004026', 'points')),
    });
    const twUrl = `${url}/v1/channels/${ids[2]}/inbound`;
    const params = twilio.inboundParams('+385916242493', '+14155550100', 'points');
    await postTwilio(twUrl, params, twilio.sign(twUrl, params));
    await infobip.waitForSent(1, 10_000);
    await twilio.waitForSent(1, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.match(
      log(),
      /"url":"\/v1\/channels\/[^"]+\/inbound\?token=\[redacted\]"/,
      'requests are logged, with the token redacted',
    );
    for (const secret of [
      API_KEY,
      TOKEN,
      PASSWORD,
      twilio.authToken,
      Buffer.from(`ib:${PASSWORD}`).toString('base64'),
    ]) {
      assert.ok(!log().includes(secret), `log leaks ${secret.slice(0, 12)}…`);
    }
  });
});
