import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ResolveHost } from '../../src/lib/url-guard.ts';
import { infobipSms } from '../fakes/infobip.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { createMember, createProgram, startTestServer, type TestServer } from '../helpers/server.ts';
import { basicHeader, createChannel, createFlow, createPointsFlow, INFOBIP_BASIC } from '../messaging/setup.ts';
import { seedMember, simulate } from '../messaging/setup.ts';

// DNS rebinding: a name answers a public address when its URL is saved (the save-time check passes)
// and 127.0.0.1 when a request is made. With private targets refused, no request may reach the
// internal service behind that name: not a webhook delivery, not a flow's http step, not a provider
// send. The server resolves through the resolver this test gives it; the public answer exists only
// while the URLs are saved, when nothing connects, so nothing here ever connects beyond loopback.

const PUBLIC_ANSWER = '198.51.100.7'; // TEST-NET-2: public by the rules, never connected to here

describe('DNS rebinding: outgoing requests connect only to the address that was checked', () => {
  let t: TestServer;
  let internal: Receiver;
  let phase: 'save' | 'use' = 'save';
  const lookups: { host: string; phase: string }[] = [];
  const resolveHost: ResolveHost = async (host) => {
    lookups.push({ host, phase });
    if (!host.endsWith('.rebind.test')) return [];
    return [{ address: phase === 'save' ? PUBLIC_ANSWER : '127.0.0.1', family: 4 }];
  };
  let port: number;
  let hook: { id: string };
  let infobip: { id: string };
  let simulator: { id: string };
  const phone = '+385913000001';

  before(async () => {
    const body = '{"internal":"secret answer"}';
    const answer = { status: 200, headers: { 'content-type': 'application/json' }, body };
    internal = await startReceiver(() => answer);
    port = Number(new URL(internal.url).port);
    t = await startTestServer({ manualClock: true, resolveHost, config: { allowPrivateTargets: false } });
    const { program } = await seedMember(t, { phone, points: 10 });

    // Saved while the names answer a public address: the save-time checks pass.
    const target = `http://hooks.rebind.test:${port}/hooks`;
    const saved = await t.api('POST', '/v1/webhooks', { target_url: target, events: ['*'] });
    assert.equal(saved.status, 200, JSON.stringify(saved.body));
    hook = saved.body;
    infobip = await createChannel(t, {
      provider: 'infobip',
      sender: 'Tally',
      credentials: { base_url: `http://sms.rebind.test:${port}`, api_key: 'k'.repeat(32) },
      inbound_auth: INFOBIP_BASIC,
    });
    await createPointsFlow(t, program.id, { channels: [infobip.id] });
    simulator = await createChannel(t, { provider: 'simulator', sender: '+10000000091' });
    await createFlow(t, {
      name: 'crm',
      program_id: program.id,
      channels: [simulator.id],
      triggers: [{ keywords: ['OFFERS'] }],
      steps: [
        {
          id: 'call',
          type: 'http',
          url: `http://api.rebind.test:${port}/offers`,
          save_as: 'crm',
          map: { answer: 'internal' },
          next: 'ok',
          on_error: 'blocked',
        },
        { id: 'ok', type: 'reply', template: 'reached: {{ crm.answer }}' },
        { id: 'blocked', type: 'reply', template: 'blocked: {{ crm.error }}' },
      ],
    });
    assert.deepEqual(
      lookups.map((l) => l.host),
      ['hooks.rebind.test', 'sms.rebind.test'],
      'the two saved URLs were checked (flow http URLs are checked when called)',
    );
    phase = 'use';
  });

  after(async () => {
    await t.server.services.messaging.outbound.drain();
    await t.close();
    await internal.close();
  });

  it('a webhook delivery is refused at the connection; the attempt log shows the refusal, not the answer', async () => {
    const program = await createProgram(t);
    await createMember(t, program.id);
    await t.server.services.webhooks.dispatcher.runOnce();
    const manual = await t.api('POST', `/v1/webhooks/${hook.id}/test`);
    assert.ok(manual.status < 500, JSON.stringify(manual.body));

    const attempts = (await t.api('GET', `/v1/webhooks/${hook.id}/attempts?limit=100`)).body.data as any[];
    assert.ok(attempts.length >= 2, `attempts: ${attempts.length}`);
    for (const a of attempts) {
      assert.equal(a.status, 'failed');
      assert.equal(a.status_code, null);
      assert.equal(a.response, null);
      assert.match(a.error, /hooks\.rebind\.test resolves to a private or loopback address/);
      assert.doesNotMatch(JSON.stringify(a), /secret answer/);
    }
    assert.equal(internal.received.length, 0, 'nothing reached the internal service');
  });

  it("a flow's http step is refused at the connection and takes its error path", async () => {
    const replies = await simulate(t, phone, 'offers', simulator.id);
    assert.equal(replies.length, 1);
    assert.match(replies[0], /^blocked: api\.rebind\.test resolves to a private or loopback address/);
    assert.equal(internal.received.length, 0, 'nothing reached the internal service');
  });

  it("a provider send to a channel's base_url is refused at the connection and marked failed", async () => {
    const res = await fetch(`${t.url}/v1/channels/${infobip.id}/inbound`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: basicHeader(INFOBIP_BASIC.username, INFOBIP_BASIC.password),
      },
      body: JSON.stringify(infobipSms(phone, '385921004026', 'points')),
    });
    assert.equal(res.status, 200);
    await t.server.services.messaging.outbound.drain();
    const out = (await t.api('GET', `/v1/messages?channel_id=${infobip.id}&direction=out`)).body.messages as any[];
    assert.equal(out.length, 1);
    assert.equal(out[0].status, 'failed');
    assert.match(out[0].error, /sms\.rebind\.test resolves to a private or loopback address/);
    assert.equal(internal.received.length, 0, 'nothing reached the internal service');
  });

  it('every lookup after the saves answered 127.0.0.1 and was checked (no connection used the public answer)', () => {
    assert.ok(lookups.filter((l) => l.phase === 'use').length >= 3);
    assert.deepEqual(
      lookups.filter((l) => l.phase === 'save').map((l) => l.host),
      ['hooks.rebind.test', 'sms.rebind.test'],
    );
  });
});
