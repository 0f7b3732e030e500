import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_INBOUND_TEXT } from '../../src/modules/messaging/providers/types.ts';
import { FakeInfobip, infobipSms } from '../fakes/infobip.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { basicHeader, createChannel, createFlow, INFOBIP_BASIC, seedMember, simulate } from '../messaging/setup.ts';

// Attack: inbound text as long as the 1 MB body limit allows (an SMS is a few hundred characters, a
// WhatsApp text at most 4,096), stored, tokenised and handed to templates. A provider callback keeps
// the first MAX_INBOUND_TEXT characters and is answered 200 (a 4xx would make the provider retry, and
// lose the other messages of its batch); the simulator, an API call, refuses longer text with 400.

describe('security: inbound text is bounded', () => {
  let t: TestServer;
  let infobip: FakeInfobip;
  before(async () => {
    t = await startTestServer();
    infobip = new FakeInfobip();
    await infobip.start();
  });
  after(async () => {
    await t.server.services.messaging.outbound.drain();
    await infobip.close();
    await t.close();
  });

  it('a provider callback with a huge text is cut to the maximum, answered 200, and its batch processed', async () => {
    const phone = '+385914000001';
    const { program } = await seedMember(t, { phone, points: 12 });
    const ch = await createChannel(t, {
      provider: 'infobip',
      sender: 'Tally',
      credentials: { base_url: infobip.url, api_key: infobip.apiKey },
      inbound_auth: INFOBIP_BASIC,
    });
    await createFlow(t, {
      name: 'Echo',
      program_id: program.id,
      channels: [ch.id],
      triggers: [{ keywords: ['ECHO'] }],
      steps: [{ id: 'r', type: 'reply', template: 'Got {{ message.text | size }}: {{ message.text }}' }],
    });
    // Blanks that end in no line break: what made the old output clean-up quadratic.
    const huge = `ECHO ${' '.repeat(900_000)}x`;
    const body = infobipSms(phone, '385921004026', huge);
    body.results.push(infobipSms(phone, '385921004026', 'ECHO short').results[0]);
    const started = performance.now();
    const res = await fetch(`${t.url}/v1/channels/${ch.id}/inbound`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: basicHeader(INFOBIP_BASIC.username, INFOBIP_BASIC.password),
      },
      body: JSON.stringify(body),
    });
    const elapsed = performance.now() - started;
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { received: 2, duplicates: 0 });
    assert.ok(elapsed < 5000, `took ${Math.round(elapsed)} ms`);
    const messages = async (direction: string) =>
      (await t.api('GET', `/v1/messages?channel_id=${ch.id}&direction=${direction}&limit=10`)).body.messages as any[];
    const inbound = await messages('in');
    assert.equal(inbound.length, 2);
    const long = inbound.find((m) => m.text.startsWith('ECHO  '));
    assert.equal(long.text.length, MAX_INBOUND_TEXT);
    assert.equal(long.status, 'processed');
    assert.equal(inbound.find((m) => m.text === 'ECHO short')?.status, 'processed');
    const replies = await messages('out');
    const starts = JSON.stringify(replies.map((m) => m.text.slice(0, 40)));
    assert.ok(
      replies.some((m) => m.text.startsWith(`Got ${MAX_INBOUND_TEXT}: ECHO`)),
      starts,
    );
    assert.ok(replies.some((m) => m.text === 'Got 10: ECHO short'));
  });

  it('the simulator takes text up to the maximum and refuses longer with 400', async () => {
    const settings = { catch_all_reply: 'len {{ message.text | size }}' };
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000004001', settings });
    const from = '+385914000002';
    assert.deepEqual(await simulate(t, from, 'a'.repeat(MAX_INBOUND_TEXT), ch.id), [`len ${MAX_INBOUND_TEXT}`]);
    const tooLong = { from, text: 'a'.repeat(MAX_INBOUND_TEXT + 1), channel_id: ch.id };
    const res = await t.api('POST', '/v1/simulator/messages', tooLong);
    assert.equal(res.status, 400);
  });
});
