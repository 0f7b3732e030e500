import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeInfobip, infobipReport, infobipSms } from '../fakes/infobip.ts';
import { FakeTwilio, postTwilio } from '../fakes/twilio.ts';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import {
  addMember,
  basicHeader,
  clockOf,
  createChannel,
  createPointsFlow,
  INFOBIP_BASIC,
  seedMember,
} from './setup.ts';

describe('messaging delivery: dedup, retries, reports, opt-out, broadcasts, reporting', () => {
  let t: TestServer;
  let infobip: FakeInfobip;
  const outbound = () => t.server.services.messaging.outbound;

  before(async () => {
    t = await startTestServer({ manualClock: true });
    infobip = new FakeInfobip();
    await infobip.start();
  });
  after(async () => {
    await outbound().drain();
    await assertLedgerInvariants(t.server.ctx.database.db);
    await infobip.close();
    await t.close();
  });

  const infobipChannel = (settings: Record<string, unknown> = {}, overrides: Record<string, unknown> = {}) =>
    createChannel(t, {
      provider: 'infobip',
      sender: 'Tally',
      credentials: { base_url: infobip.url, api_key: infobip.apiKey },
      inbound_auth: INFOBIP_BASIC,
      settings,
      ...overrides,
    });
  // Each inbound message one millisecond later, so "newest first" lists are unambiguous.
  const inbound = (channelId: string, body: unknown) => {
    clockOf(t).advance(1);
    return fetch(`${t.url}/v1/channels/${channelId}/inbound`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: basicHeader(INFOBIP_BASIC.username, INFOBIP_BASIC.password),
      },
      body: JSON.stringify(body),
    });
  };
  const report = (channelId: string, body: unknown) =>
    fetch(`${t.url}/v1/channels/${channelId}/reports`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: basicHeader(INFOBIP_BASIC.username, INFOBIP_BASIC.password),
      },
      body: JSON.stringify(body),
    });
  const messages = async (q: string) => (await t.api('GET', `/v1/messages?limit=100&${q}`)).body.messages as any[];

  it('processes a provider retry of the same message id once', async () => {
    const phone = '+385912000001';
    const { program } = await seedMember(t, { phone, points: 10 });
    const ch = await infobipChannel();
    await createPointsFlow(t, program.id, { channels: [ch.id] });
    const body = infobipSms(phone, '385921004026', 'points', 'dup-817790313235066447');
    const n = infobip.sent.length;
    const results = await Promise.all([inbound(ch.id, body), inbound(ch.id, body), inbound(ch.id, body)]);
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 200, 200],
    );
    assert.equal((await inbound(ch.id, body)).status, 200);
    await outbound().drain();
    assert.equal(infobip.sent.length, n + 1);
    assert.equal((await messages(`channel_id=${ch.id}&direction=in`)).length, 1);
    assert.equal((await messages(`channel_id=${ch.id}&direction=out`)).length, 1);
  });

  it('retries 5xx and timeouts with backoff, gives up on 4xx and after the last attempt', async () => {
    const phone = '+385912000002';
    const { program } = await seedMember(t, { phone, points: 10 });
    const ch = await infobipChannel({ timeout_ms: 300 });
    await createPointsFlow(t, program.id, { channels: [ch.id] });
    const clock = clockOf(t);

    infobip.failures = [503, 'hang'];
    const n = infobip.sent.length;
    await inbound(ch.id, infobipSms(phone, '385921004026', 'points'));
    await outbound().drain();
    let [m] = await messages(`channel_id=${ch.id}&direction=out`);
    assert.equal(m.status, 'retrying');
    assert.equal(m.attempts, 1);
    assert.match(m.error, /HTTP 503/);
    assert.equal(await outbound().tick(), 0, 'not due before the backoff');
    clock.advance(2000);
    assert.equal(await outbound().tick(), 1);
    [m] = await messages(`channel_id=${ch.id}&direction=out`);
    assert.equal(m.status, 'retrying');
    assert.equal(m.attempts, 2);
    assert.match(m.error, /timeout/);
    clock.advance(3999);
    assert.equal(await outbound().tick(), 0);
    clock.advance(1);
    assert.equal(await outbound().tick(), 1);
    [m] = await messages(`channel_id=${ch.id}&direction=out`);
    assert.equal(m.status, 'sent');
    assert.equal(m.attempts, 3);
    assert.equal(infobip.sent.length, n + 1);
    assert.match(infobip.sent.at(-1)!.text, /you have 10 points/);

    // A 4xx is final.
    infobip.failures = [400];
    clock.advance(10);
    await inbound(ch.id, infobipSms(phone, '385921004026', 'points'));
    await outbound().drain();
    [m] = await messages(`channel_id=${ch.id}&direction=out`);
    assert.equal(m.status, 'failed');
    assert.equal(m.attempts, 1);

    // Six 5xx in a row: failed after the sixth attempt.
    infobip.failures = [500, 502, 503, 504, 500, 503];
    clock.advance(10);
    await inbound(ch.id, infobipSms(phone, '385921004026', 'points'));
    await outbound().drain();
    for (let i = 1; i < 6; i++) {
      clock.advance(1000 * 2 ** i);
      await outbound().tick();
    }
    [m] = await messages(`channel_id=${ch.id}&direction=out`);
    assert.equal(m.status, 'failed');
    assert.equal(m.attempts, 6);
    assert.equal(infobip.failures.length, 0);
  });

  it('a claimed message whose process died is sent once its lease expires', async () => {
    const phone = '+385912000009';
    const ch = await infobipChannel();
    const row = await t.server.ctx.transaction(async (trx) => {
      const channel = await t.server.services.messaging.channels.get(trx, ch.id);
      return outbound().queue(trx, { channel, to: phone, text: 'left behind', claimed: true });
    });
    // Never dispatched (the process "died"): nothing happens before the lease expires.
    assert.equal(await outbound().tick(), 0);
    clockOf(t).advance(60_001);
    assert.equal(await outbound().tick(), 1);
    await outbound().drain();
    assert.equal(infobip.sent.at(-1)!.text, 'left behind');
    const [m] = await messages(`channel_id=${ch.id}&direction=out`);
    assert.equal(m.id, row.id);
    assert.equal(m.status, 'sent');
  });

  it('delivery reports update the stored status (Infobip and Twilio)', async () => {
    const phone = '+385912000003';
    const { program } = await seedMember(t, { phone, points: 10 });
    const ch = await infobipChannel();
    await createPointsFlow(t, program.id, { channels: [ch.id] });
    await inbound(ch.id, infobipSms(phone, '385921004026', 'points'));
    clockOf(t).advance(10);
    await inbound(ch.id, infobipSms(phone, '385921004026', 'balance'));
    await outbound().drain();
    const [second, first] = await messages(`channel_id=${ch.id}&direction=out`);
    assert.equal(first.status, 'sent');
    // Unauthenticated reports change nothing.
    const anon = await fetch(`${t.url}/v1/channels/${ch.id}/reports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(infobipReport(first.provider_message_id, phone, 'DELIVERED')),
    });
    assert.equal(anon.status, 401);
    assert.equal((await messages(`channel_id=${ch.id}&direction=out`))[1].status, 'sent');
    const ok = await report(ch.id, infobipReport(first.provider_message_id, phone, 'DELIVERED'));
    assert.deepEqual(await ok.json(), { received: 1, matched: 1 });
    await report(ch.id, infobipReport(second.provider_message_id, phone, 'UNDELIVERABLE'));
    // A late PENDING report does not move a delivered message back.
    await report(ch.id, infobipReport(first.provider_message_id, phone, 'PENDING'));
    const [s2, s1] = await messages(`channel_id=${ch.id}&direction=out`);
    assert.equal(s1.status, 'delivered');
    assert.ok(s1.delivered_at);
    assert.equal(s2.status, 'failed');
    assert.match(s2.error, /UNDELIVERABLE/);

    // Twilio status callback, signed.
    const tw = new FakeTwilio();
    await tw.start();
    try {
      const tch = await createChannel(t, {
        provider: 'twilio',
        sender: '+14155550110',
        credentials: { account_sid: tw.accountSid, auth_token: tw.authToken, base_url: tw.url },
      });
      await createPointsFlow(t, program.id, { channels: [tch.id], triggers: [{ keywords: ['PUNTOS'] }] });
      const url = `${t.url}/v1/channels/${tch.id}/inbound`;
      const params = tw.inboundParams(phone, '+14155550110', 'puntos');
      await postTwilio(url, params, tw.sign(url, params));
      await outbound().drain();
      const sid = tw.sent.at(-1)!.sid;
      const reportUrl = `${t.url}/v1/channels/${tch.id}/reports`;
      const status = {
        MessageSid: sid,
        MessageStatus: 'delivered',
        AccountSid: tw.accountSid,
        To: phone,
        From: '+14155550110',
        ApiVersion: '2010-04-01',
      };
      assert.equal((await postTwilio(reportUrl, status, tw.sign(url, status))).status, 403, 'signed for another URL');
      assert.equal((await postTwilio(reportUrl, status, tw.sign(reportUrl, status))).status, 204);
      const [m] = await messages(`channel_id=${tch.id}&direction=out`);
      assert.equal(m.provider_message_id, sid);
      assert.equal(m.status, 'delivered');
    } finally {
      await tw.close();
    }
  });

  it('opt-out comes before any flow; START opts back in; consent is recorded', async () => {
    const phone = '+385912000004';
    const { program } = await seedMember(t, { phone, points: 10 });
    const ch = await infobipChannel();
    await createPointsFlow(t, program.id, { channels: [ch.id], triggers: [{ keywords: ['POINTS', 'STOPP'] }] });
    let n = infobip.sent.length;
    await inbound(ch.id, infobipSms(phone, '385921004026', 'Stop'));
    await outbound().drain();
    assert.equal(infobip.sent.length, n + 1);
    assert.match(infobip.sent.at(-1)!.text, /unsubscribed/);
    const consent = await t.api('GET', `/v1/consents/${encodeURIComponent(phone)}`);
    assert.equal(consent.body.status, 'opted_out');
    assert.equal(consent.body.channel_id, ch.id);
    assert.equal(consent.body.history[0].action, 'opt_out');
    assert.equal(consent.body.history[0].keyword, 'stop');
    assert.ok(consent.body.history[0].created_at);

    // Nothing further: keywords get no answer.
    n = infobip.sent.length;
    await inbound(ch.id, infobipSms(phone, '385921004026', 'points'));
    await outbound().drain();
    assert.equal(infobip.sent.length, n);
    const [ignored] = await messages(`channel_id=${ch.id}&direction=in`);
    assert.equal(ignored.status, 'ignored');

    await inbound(ch.id, infobipSms(phone, '385921004026', 'START'));
    await outbound().drain();
    assert.match(infobip.sent.at(-1)!.text, /subscribed again/);
    await inbound(ch.id, infobipSms(phone, '385921004026', 'points'));
    await outbound().drain();
    assert.match(infobip.sent.at(-1)!.text, /you have 10 points/);
    const history = (await t.api('GET', `/v1/consents/${encodeURIComponent(phone)}`)).body.history.map(
      (h: any) => h.action,
    );
    assert.deepEqual(history, ['opt_out', 'opt_in']);
    // Every opt-out variant works.
    for (const word of ['UNSUBSCRIBE', 'cancel', 'END', 'quit', 'STOPALL']) {
      await inbound(ch.id, infobipSms(phone, '385921004026', word));
      assert.equal((await t.api('GET', `/v1/consents/${encodeURIComponent(phone)}`)).body.status, 'opted_out', word);
      await inbound(ch.id, infobipSms(phone, '385921004026', 'start'));
    }
    await outbound().drain();
  });

  it('broadcasts the opening message with filters, skips opted-out numbers, throttled per channel', async () => {
    const program = (await t.api('POST', '/v1/loyalties', { name: 'Broadcast program' })).body;
    const phones = ['+385913000001', '+385913000002', '+385913000003', '+385913000004', '+385913000005'];
    for (const [i, phone] of phones.entries()) {
      await addMember(t, program.id, {
        phone,
        points: 100 * (i + 1),
        name: `M${i}`,
        metadata: { city: i < 4 ? 'Zagreb' : 'Split' },
      });
    }
    const ch = await infobipChannel({ rate_per_second: 2 });
    const flow = await createPointsFlow(t, program.id, { channels: [ch.id] });
    // phones[3] opted out earlier.
    await inbound(ch.id, infobipSms(phones[3], '385921004026', 'STOP'));
    await outbound().drain();
    const n = infobip.sent.length;
    const res = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, {
      channel_id: ch.id,
      filters: { metadata: { city: 'Zagreb' } },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.total, 4);
    assert.equal(res.body.queued, 3);
    assert.equal(res.body.skipped, 1);
    await outbound().drain();
    assert.equal(infobip.sent.length, n + 1, 'only the first goes out at once');
    assert.equal(await outbound().tick(), 0);
    const clock = clockOf(t);
    clock.advance(499);
    assert.equal(await outbound().tick(), 0);
    clock.advance(1);
    assert.equal(await outbound().tick(), 1);
    clock.advance(500);
    assert.equal(await outbound().tick(), 1);
    assert.equal(infobip.sent.length, n + 3);
    const got = infobip.sent
      .slice(n)
      .map((s) => s.to)
      .sort();
    assert.deepEqual(
      got,
      [phones[0], phones[1], phones[2]].map((p) => p.slice(1)),
    );
    for (const sent of infobip.sent.slice(n)) {
      const i = phones.indexOf(`+${sent.to}`);
      assert.equal(sent.text, `Hi M${i}! Reply POINTS to check your Broadcast program balance.`);
    }
    const recorded = await messages(`flow_id=${flow.id}&direction=out`);
    assert.equal(recorded.length, 4);
    assert.deepEqual(recorded.map((m) => m.status).sort(), ['sent', 'sent', 'sent', 'skipped']);
    assert.equal(recorded.find((m) => m.status === 'skipped').to_number, phones[3]);
    const sentAt = recorded
      .filter((m) => m.status === 'sent')
      .map((m) => Date.parse(m.sent_at))
      .sort();
    assert.deepEqual([sentAt[1] - sentAt[0], sentAt[2] - sentAt[1]], [500, 500]);

    // Tier filter: a program without tiers has no member in any tier.
    const noTiers = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, {
      channel_id: ch.id,
      filters: { tier: 'Gold' },
    });
    assert.equal(noTiers.status, 200);
    assert.equal(noTiers.body.total, 0);
    const messaging = t.server.services.messaging;
    const restore = messaging.registerContextProvider('tier', ({ customer }) => ({
      id: 't',
      name: customer?.name === 'M0' || customer?.name === 'M4' ? 'Gold' : 'Silver',
    }));
    try {
      const gold = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, {
        channel_id: ch.id,
        text: 'Gold news',
        filters: { tier: 'gold' },
      });
      assert.equal(gold.status, 200);
      assert.deepEqual([gold.body.total, gold.body.queued, gold.body.skipped], [2, 2, 0]);
      const silver = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, {
        channel_id: ch.id,
        text: 'Silver news',
        filters: { tier: 'Silver', metadata: { city: 'Zagreb' } },
      });
      assert.deepEqual([silver.body.total, silver.body.queued, silver.body.skipped], [3, 2, 1]);
      // The second broadcast queues after the first on the same channel (shared rate).
      assert.ok(Date.parse(silver.body.first_send_at) >= Date.parse(gold.body.last_send_at) + 500);
      clock.advance(10_000);
      await outbound().tick();
      const goldTo = infobip.sent
        .filter((s) => s.text === 'Gold news')
        .map((s) => s.to)
        .sort();
      assert.deepEqual(
        goldTo,
        [phones[0], phones[4]].map((p) => p.slice(1)),
      );
      const silverTo = infobip.sent
        .filter((s) => s.text === 'Silver news')
        .map((s) => s.to)
        .sort();
      assert.deepEqual(
        silverTo,
        [phones[1], phones[2]].map((p) => p.slice(1)),
      );
    } finally {
      restore();
    }
    clock.advance(10_000);
    await outbound().tick();
  });

  const chunkedBroadcast =
    'prepares a large broadcast in chunks: 202 preparing, then the worker, each chunk written once, spacing kept';
  it(chunkedBroadcast, async () => {
    const program = (await t.api('POST', '/v1/loyalties', { name: 'Chunked program' })).body;
    const phones = Array.from({ length: 7 }, (_, i) => `+38591600000${i}`);
    for (const [i, phone] of phones.entries()) await addMember(t, program.id, { phone, points: 10, name: `C${i}` });
    const ch = await infobipChannel({ rate_per_second: 2 });
    const flow = await createPointsFlow(t, program.id, { channels: [ch.id] });
    await inbound(ch.id, infobipSms(phones[5], '385921004026', 'STOP'));
    await outbound().drain();
    const broadcasts = t.server.services.messaging.broadcasts;
    const saved = [broadcasts.chunkSize, broadcasts.inlineRecipients];
    [broadcasts.chunkSize, broadcasts.inlineRecipients] = [2, 2];
    try {
      const res = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, { channel_id: ch.id });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.deepEqual([res.body.status, res.body.total], ['preparing', 2]);
      // Two workers racing for the same chunk: it is written once.
      await Promise.all([broadcasts.prepareChunk(res.body.id), broadcasts.prepareChunk(res.body.id)]);
      const mid = await t.api('GET', `/v1/flows/${flow.id}/broadcasts/${res.body.id}`);
      assert.deepEqual([mid.body.status, mid.body.total], ['preparing', 4]);
      while ((await broadcasts.tick()) > 0) {
        /* until every chunk is written */
      }
      const done = await t.api('GET', `/v1/flows/${flow.id}/broadcasts/${res.body.id}`);
      assert.deepEqual([done.body.status, done.body.total, done.body.queued, done.body.skipped], ['queued', 7, 6, 1]);
      const list = await t.api('GET', `/v1/flows/${flow.id}/broadcasts`);
      assert.deepEqual(
        list.body.data.map((b: any) => b.id),
        [res.body.id],
      );
      const recorded = await messages(`flow_id=${flow.id}&direction=out`);
      assert.deepEqual(recorded.map((m) => m.to_number).sort(), [...phones].sort(), 'one message per number');
      // One send every 500 ms across the chunks.
      const at = recorded
        .filter((m) => m.status !== 'skipped')
        .map((m) => Date.parse(m.next_attempt_at ?? m.sent_at))
        .sort((a, b) => a - b);
      assert.deepEqual(
        at.slice(1).map((x, i) => x - at[i]),
        [500, 500, 500, 500, 500],
      );
      assert.equal(Date.parse(done.body.last_send_at) - Date.parse(done.body.first_send_at), 2500);
    } finally {
      [broadcasts.chunkSize, broadcasts.inlineRecipients] = saved;
    }
    clockOf(t).advance(10_000);
    await outbound().tick();
    await outbound().drain();
  });

  it('broadcasts on WhatsApp as an approved template with per-member placeholders (Infobip and Twilio)', async () => {
    const program = (await t.api('POST', '/v1/loyalties', { name: 'WA program' })).body;
    const phones = ['+385915000001', '+385915000002'];
    for (const [i, phone] of phones.entries())
      await addMember(t, program.id, { phone, points: 100 * (i + 1), name: `W${i}` });
    const wa = await infobipChannel({ rate_per_second: 100 }, { type: 'whatsapp', sender: '+441134960000' });
    const flow = await createPointsFlow(t, program.id, { channels: [wa.id] });
    const template = { name: 'points_prompt', language: 'en', placeholders: ['{{ customer.name }}', '{{ points }}'] };

    // Free text on WhatsApp would be refused by WhatsApp outside the 24 h window: refused here first.
    const free = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, { channel_id: wa.id });
    assert.equal(free.status, 422);
    assert.equal(free.body.key, 'whatsapp_template_required');
    const bad = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, {
      channel_id: wa.id,
      template: { ...template, placeholders: ['{{ points'] },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.key, 'invalid_template');

    const n = infobip.sent.length;
    const res = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, { channel_id: wa.id, template });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual([res.body.total, res.body.queued, res.body.template], [2, 2, template]);
    clockOf(t).advance(100);
    await outbound().tick();
    await outbound().drain();
    const sent = infobip.sent.slice(n).sort((a, b) => a.to.localeCompare(b.to));
    assert.deepEqual(
      sent.map((s) => [s.to, s.from, s.template]),
      phones.map((p, i) => [
        p.slice(1),
        '441134960000',
        { name: 'points_prompt', language: 'en', placeholders: [`W${i}`, String(100 * (i + 1))] },
      ]),
    );
    const recorded = await messages(`flow_id=${flow.id}&direction=out`);
    assert.deepEqual(
      recorded.map((m) => m.status),
      ['sent', 'sent'],
    );
    assert.ok(
      recorded.every((m) => m.text.startsWith('[template points_prompt (en)] W')),
      JSON.stringify(recorded.map((m) => m.text)),
    );

    // Templates are for WhatsApp only.
    const sms = await infobipChannel();
    const smsFlow = await createPointsFlow(t, program.id, { channels: [sms.id] });
    const onSms = await t.api('POST', `/v1/flows/${smsFlow.id}/broadcast`, { channel_id: sms.id, template });
    assert.equal(onSms.status, 400);

    // Twilio: the template is a Content SID with numbered ContentVariables, no Body.
    const tw = new FakeTwilio();
    await tw.start();
    try {
      const twa = await createChannel(t, {
        provider: 'twilio',
        type: 'whatsapp',
        sender: '+14155550111',
        credentials: { account_sid: tw.accountSid, auth_token: tw.authToken, base_url: tw.url },
        settings: { rate_per_second: 100 },
      });
      const twFlow = await createPointsFlow(t, program.id, { channels: [twa.id] });
      const r = await t.api('POST', `/v1/flows/${twFlow.id}/broadcast`, {
        channel_id: twa.id,
        template: { name: 'HX0123456789abcdef0123456789abcdef', placeholders: ['{{ customer.name }}'] },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      clockOf(t).advance(100);
      await outbound().tick();
      await outbound().drain();
      const got = tw.sent.map((s) => [s.to, s.from, s.contentSid, s.contentVariables, s.body]).sort();
      assert.deepEqual(
        got,
        phones.map((p, i) => [
          `whatsapp:${p}`,
          'whatsapp:+14155550111',
          'HX0123456789abcdef0123456789abcdef',
          { 1: `W${i}` },
          '',
        ]),
      );
    } finally {
      await tw.close();
    }
  });

  const flowReport =
    'reports sent, delivered, failed, inbound, keyword matches, interaction rate and 7-day redemptions per day';
  it(flowReport, async () => {
    const program = (await t.api('POST', '/v1/loyalties', { name: 'Report program' })).body;
    const phones = ['+385914000001', '+385914000002', '+385914000003'];
    const cards = [];
    for (const [i, phone] of phones.entries())
      cards.push(await addMember(t, program.id, { phone, points: 1000, name: `R${i}` }));
    const ch = await infobipChannel({ rate_per_second: 100 });
    const flow = await createPointsFlow(t, program.id, { channels: [ch.id] });
    const clock = clockOf(t);
    const day0 = clock.nowIso().slice(0, 10);
    const b = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, { channel_id: ch.id });
    assert.equal(b.body.queued, 3);
    clock.advance(100);
    await outbound().tick();
    await outbound().drain();
    const bc = await messages(`flow_id=${flow.id}&direction=out`);
    assert.equal(bc.filter((m) => m.status === 'sent').length, 3);
    const byPhone = new Map(bc.map((m) => [m.to_number, m]));
    await report(ch.id, infobipReport(byPhone.get(phones[0]).provider_message_id, phones[0], 'DELIVERED'));
    await report(ch.id, infobipReport(byPhone.get(phones[1]).provider_message_id, phones[1], 'UNDELIVERABLE'));
    // R0 and R1 reply; R2 does not.
    await inbound(ch.id, infobipSms(phones[0], '385921004026', 'POINTS'));
    await inbound(ch.id, infobipSms(phones[1], '385921004026', 'balance please'));
    await outbound().drain();

    // Redemptions (real reward redemptions): R0 after 2 days and R1 after 3 days count; R2 after
    // 8 days does not.
    const reward = (await t.api('POST', '/v1/rewards', { name: 'Mug', parameters: { product: { id: 'mug' } } })).body;
    await t.api('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 100 } } },
    ]);
    const redeem = async (code: string) => {
      const res = await t.api('POST', `/v1/loyalties/members/${code}/redemption`, { reward: { id: reward.id } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    clock.advance(2 * 86_400_000);
    await redeem(cards[0].code);
    clock.advance(86_400_000);
    await redeem(cards[1].code);
    clock.advance(5 * 86_400_000);
    await redeem(cards[2].code);

    const to = new Date(clock.nowMs() + 86_400_000).toISOString().slice(0, 10);
    const res = await t.api('GET', `/v1/flows/${flow.id}/report?from=${day0}&to=${to}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const totals = res.body.totals;
    assert.equal(totals.messages_sent, 5);
    assert.equal(totals.delivered, 1);
    assert.equal(totals.failed, 1);
    assert.equal(totals.inbound, 2);
    assert.deepEqual(totals.keyword_matches, { POINTS: 1, BALANCE: 1 });
    assert.equal(totals.members_messaged, 3);
    assert.equal(totals.members_replied, 2);
    assert.equal(totals.interaction_rate, 0.6667);
    assert.equal(totals.redemptions_within_7_days, 2);
    assert.equal(totals.points_redeemed_within_7_days, 200);
    assert.equal(res.body.days.length, 1);
    assert.equal(res.body.days[0].date, day0);
    assert.equal(res.body.days[0].messages_sent, 5);
    assert.equal(res.body.days[0].redemptions_within_7_days, 2);
    // A range that excludes the day is empty.
    const empty = await t.api('GET', `/v1/flows/${flow.id}/report?from=2020-01-01&to=2020-01-31`);
    assert.equal(empty.body.totals.messages_sent, 0);
    assert.equal(empty.body.totals.interaction_rate, null);
    assert.equal((await t.api('GET', `/v1/flows/${flow.id}/report?from=2020-02-01&to=2020-01-01`)).status, 400);
    // Hostile ranges: not a date, and a window longer than the 400 days a report may span (it would
    // roll up and read that many days).
    const garbage = await t.api('GET', `/v1/flows/${flow.id}/report?from=${encodeURIComponent("1' or '1'='1")}`);
    assert.equal(garbage.status, 400);
    assert.equal(garbage.body.key, 'invalid_date');
    const huge = await t.api('GET', `/v1/flows/${flow.id}/report?from=1970-01-01&to=2026-01-01`);
    assert.equal(huge.status, 400);
    assert.equal(huge.body.key, 'invalid_range');
  });
});
