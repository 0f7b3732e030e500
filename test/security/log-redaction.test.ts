import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { infobipSms } from '../fakes/infobip.ts';
import { createChannel } from '../messaging/setup.ts';

// Attack (on the operator's log): a channel's inbound token travels in the query string, and the
// request log redacted `?token=` by a regex over the raw URL, so `?%74oken=` (which the server
// reads as `token`) and friends were logged in clear. The whole log of a real server is read here.

const INBOUND_TOKEN = 'inbound-Secret-0123456789abcdef';

describe('security: secrets in the query string never reach the log', () => {
  let t: TestServer;
  let channel: any;
  const logged: string[] = [];
  before(async () => {
    const logStream = new Writable({
      write(chunk, _enc, done) {
        logged.push(String(chunk));
        done();
      },
    });
    t = await startTestServer({ config: { logLevel: 'info' }, logStream });
    channel = await createChannel(t, {
      provider: 'infobip',
      sender: 'Tally',
      credentials: { base_url: 'http://127.0.0.1:9', api_key: 'k'.repeat(32) },
      inbound_auth: { type: 'token', token: INBOUND_TOKEN },
    });
  });
  after(async () => t.close());

  it('redacts the inbound token however the parameter is spelled, and API tokens put in the query', async () => {
    const inbound = `/v1/channels/${channel.id}/inbound`;
    const body = infobipSms('+385911234567', '385921004026', 'hello');
    const spellings = [
      `token=${INBOUND_TOKEN}`,
      `%74oken=${INBOUND_TOKEN}`,
      `%74%6F%6B%65%6E=${INBOUND_TOKEN}`,
      `Token=${INBOUND_TOKEN}`,
      `token=${INBOUND_TOKEN}&token=${INBOUND_TOKEN}`,
      `a=1;token=${INBOUND_TOKEN}`,
      `x=1&token=${encodeURIComponent(INBOUND_TOKEN)}`,
    ];
    let accepted = 0;
    for (const query of spellings) {
      const res = await t.api('POST', `${inbound}?${query}`, body, { 'x-app-id': '', 'x-app-token': '' });
      assert.ok(res.status < 500, `${query}: ${res.status}`);
      if (res.status === 200) accepted++;
    }
    // The server reads `?%74oken=` as the token: those requests were accepted, not just logged.
    assert.ok(accepted >= 3, `accepted ${accepted}`);
    // API credentials sent in the query string by mistake.
    for (const query of [
      `x-app-token=${t.token}`,
      `api%5Fkey=${t.token}`,
      `X-App-Token=${t.token}`,
      `auth_token=${t.token}`,
      `q=${t.token}`,
    ]) {
      const res = await t.api('GET', `/v1/messages?${query}`);
      assert.ok(res.status < 500, `${query}: ${res.status}`);
    }
    await new Promise((resolve) => setImmediate(resolve));
    const log = logged.join('');
    assert.ok(log.includes(`"url":"${inbound}?`), 'the requests were logged');
    assert.ok(log.includes('[redacted]'), 'with their secrets redacted');
    assert.ok(!log.includes(INBOUND_TOKEN), 'the inbound token is not in the log');
    assert.ok(!log.includes(encodeURIComponent(INBOUND_TOKEN)), 'nor its encoded form');
    assert.ok(!log.includes(t.token), 'the API token is not in the log');
  });
});
