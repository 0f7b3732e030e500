import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeInfobip, infobipSms, infobipWhatsapp } from '../fakes/infobip.ts';
import { FakeTwilio, postTwilio } from '../fakes/twilio.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { basicHeader, createChannel, createPointsFlow, INFOBIP_BASIC, MEMBER_PHONE, seedMember } from './setup.ts';

// The seed scenario (000): a member with 2,641 points texts "points" and gets their balance and a
// nudge to redeem, through Infobip SMS, Infobip WhatsApp (typed and tapped) and Twilio.

describe('seed scenario: POINTS over real provider wire formats', () => {
  let t: TestServer;
  let infobip: FakeInfobip;
  let twilio: FakeTwilio;
  let programId: string;
  let memberCode: string;

  before(async () => {
    t = await startTestServer();
    infobip = new FakeInfobip();
    twilio = new FakeTwilio();
    await infobip.start();
    await twilio.start();
    const { program, member } = await seedMember(t, { points: 2641 });
    programId = program.id;
    memberCode = member.code;
    await createPointsFlow(t, programId);
  });
  after(async () => {
    await t.server.services.messaging.outbound.drain();
    await infobip.close();
    await twilio.close();
    await t.close();
  });

  it('Infobip SMS: "points" → an SMS to that number with 2641 and the nudge', async () => {
    const ch = await createChannel(t, {
      provider: 'infobip',
      type: 'sms',
      sender: 'InfoSMS',
      credentials: { base_url: infobip.url, api_key: infobip.apiKey },
      inbound_auth: INFOBIP_BASIC,
    });
    assert.match(ch.inbound_url, new RegExp(`/v1/channels/${ch.id}/inbound$`));
    const before = infobip.sent.length;
    const res = await fetch(`${t.url}/v1/channels/${ch.id}/inbound`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: basicHeader(INFOBIP_BASIC.username, INFOBIP_BASIC.password),
      },
      body: JSON.stringify(infobipSms(MEMBER_PHONE, '385921004026', 'points')),
    });
    assert.equal(res.status, 200);
    await infobip.waitForSent(before + 1);
    const sent = infobip.sent[before];
    assert.equal(sent.channel, 'sms');
    assert.equal(sent.to, MEMBER_PHONE.slice(1));
    assert.equal(sent.from, 'InfoSMS');
    assert.match(sent.text, /\b2641\b/);
    assert.match(sent.text, /redeem/i);
    assert.ok(sent.text.includes(memberCode));
    // The request carried the documented auth and shape.
    const req = infobip.http.requests.at(-1)!;
    assert.equal(req.path, '/sms/3/messages');
    assert.equal(req.headers.authorization, `App ${infobip.apiKey}`);
    await t.server.services.messaging.outbound.drain();
    const stored = await t.api('GET', `/v1/messages?channel_id=${ch.id}&direction=out`);
    assert.equal(stored.body.messages[0].status, 'sent');
    assert.equal(stored.body.messages[0].provider_message_id, sent.messageId);
  });

  it('Infobip WhatsApp: typed "Points" and a tapped POINTS button both answer', async () => {
    const ch = await createChannel(t, {
      provider: 'infobip',
      type: 'whatsapp',
      sender: '+441134960000',
      credentials: { base_url: infobip.url, api_key: infobip.apiKey },
      inbound_auth: { type: 'token', token: 'wa-secret-token-0123456789' },
    });
    const post = (body: unknown) =>
      fetch(`${t.url}/v1/channels/${ch.id}/inbound?token=wa-secret-token-0123456789`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    let n = infobip.sent.length;
    assert.equal(
      (await post(infobipWhatsapp(MEMBER_PHONE, '441134960000', { type: 'TEXT', text: 'Points' }))).status,
      200,
    );
    await infobip.waitForSent(n + 1);
    let sent = infobip.sent[n];
    assert.equal(sent.channel, 'whatsapp');
    assert.equal(sent.to, MEMBER_PHONE.slice(1));
    assert.equal(sent.from, '441134960000');
    assert.match(sent.text, /\b2641\b/);
    assert.match(sent.text, /redeem/i);
    assert.equal(infobip.http.requests.at(-1)!.path, '/whatsapp/1/message/text');

    n = infobip.sent.length;
    const tapped = infobipWhatsapp(MEMBER_PHONE, '441134960000', {
      type: 'INTERACTIVE_BUTTON_REPLY',
      id: 'btn-points',
      title: 'POINTS',
    });
    assert.equal((await post(tapped)).status, 200);
    await infobip.waitForSent(n + 1);
    sent = infobip.sent[n];
    assert.match(sent.text, /\b2641\b/);
    assert.match(sent.text, /redeem/i);

    // A list item titled with an alias works too; an image (no text) gets no balance.
    n = infobip.sent.length;
    await post(
      infobipWhatsapp(MEMBER_PHONE, '441134960000', { type: 'INTERACTIVE_LIST_REPLY', id: 'row-1', title: 'Balance' }),
    );
    await infobip.waitForSent(n + 1);
    assert.match(infobip.sent[n].text, /\b2641\b/);
    n = infobip.sent.length;
    await post(infobipWhatsapp(MEMBER_PHONE, '441134960000', { type: 'IMAGE', url: 'https://example.com/x.jpg' }));
    await t.server.services.messaging.outbound.drain();
    assert.equal(infobip.sent.length, n);
  });

  it('Twilio WhatsApp: whatsapp: addresses both ways', async () => {
    const ch = await createChannel(t, {
      provider: 'twilio',
      type: 'whatsapp',
      sender: '+14155238886',
      credentials: { account_sid: twilio.accountSid, auth_token: twilio.authToken, base_url: twilio.url },
    });
    const url = `${t.url}/v1/channels/${ch.id}/inbound`;
    const params = {
      ...twilio.inboundParams(`whatsapp:${MEMBER_PHONE}`, 'whatsapp:+14155238886', 'Points'),
      ProfileName: 'Ana',
    };
    const n = twilio.sent.length;
    assert.equal((await postTwilio(url, params, twilio.sign(url, params))).status, 200);
    await twilio.waitForSent(n + 1);
    assert.equal(twilio.sent[n].to, `whatsapp:${MEMBER_PHONE}`);
    assert.equal(twilio.sent[n].from, 'whatsapp:+14155238886');
    assert.match(twilio.sent[n].body, /\b2641\b/);
  });

  it('Twilio SMS (REST reply): signed webhook → Messages.json to that number', async () => {
    const ch = await createChannel(t, {
      provider: 'twilio',
      type: 'sms',
      sender: '+14155550100',
      credentials: { account_sid: twilio.accountSid, auth_token: twilio.authToken, base_url: twilio.url },
    });
    const url = `${t.url}/v1/channels/${ch.id}/inbound`;
    const params = twilio.inboundParams(MEMBER_PHONE, '+14155550100', 'points');
    const n = twilio.sent.length;
    const res = await postTwilio(url, params, twilio.sign(url, params));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /xml/);
    await twilio.waitForSent(n + 1);
    const sent = twilio.sent[n];
    assert.equal(sent.to, MEMBER_PHONE);
    assert.equal(sent.from, '+14155550100');
    assert.match(sent.body, /\b2641\b/);
    assert.match(sent.body, /redeem/i);
  });

  it('Twilio TwiML mode: the reply is in the webhook answer', async () => {
    const ch = await createChannel(t, {
      provider: 'twilio',
      type: 'sms',
      sender: '+14155550101',
      credentials: { account_sid: twilio.accountSid, auth_token: twilio.authToken, base_url: twilio.url },
      settings: { twilio_reply: 'twiml' },
    });
    const url = `${t.url}/v1/channels/${ch.id}/inbound`;
    const params = twilio.inboundParams(MEMBER_PHONE, '+14155550101', 'PTS');
    const n = twilio.sent.length;
    const res = await postTwilio(url, params, twilio.sign(url, params));
    assert.equal(res.status, 200);
    assert.match(
      res.text,
      /^<\?xml version="1.0" encoding="UTF-8"\?><Response><Message>[^<]*2641[^<]*<\/Message><\/Response>$/,
    );
    assert.match(res.text, /redeem/i);
    assert.equal(twilio.sent.length, n, 'nothing went through the REST API');
  });

  it('refuses wrong or missing Twilio signatures and does nothing', async () => {
    const ch = await createChannel(t, {
      provider: 'twilio',
      type: 'sms',
      sender: '+14155550102',
      credentials: { account_sid: twilio.accountSid, auth_token: twilio.authToken, base_url: twilio.url },
    });
    const url = `${t.url}/v1/channels/${ch.id}/inbound`;
    const params = twilio.inboundParams(MEMBER_PHONE, '+14155550102', 'points');
    const n = twilio.sent.length;
    assert.equal((await postTwilio(url, params, null)).status, 401);
    assert.equal((await postTwilio(url, params, 'bm90IGEgc2lnbmF0dXJl')).status, 403);
    // Signed by someone else's token, or for other params, or another URL.
    const other = new FakeTwilio(twilio.accountSid);
    assert.equal((await postTwilio(url, params, other.sign(url, params))).status, 403);
    assert.equal((await postTwilio(url, { ...params, Body: 'points please' }, twilio.sign(url, params))).status, 403);
    assert.equal((await postTwilio(url, params, twilio.sign(`${url}?x=1`, params))).status, 403);
    await t.server.services.messaging.outbound.drain();
    assert.equal(twilio.sent.length, n);
    const stored = await t.api('GET', `/v1/messages?channel_id=${ch.id}`);
    assert.equal(stored.body.total, 0, 'no message was stored');
  });

  it('validates Twilio signatures against the configured public URL (behind a proxy)', async () => {
    const ch = await createChannel(t, {
      provider: 'twilio',
      type: 'sms',
      sender: '+14155550103',
      public_url: 'https://loyalty.example.com',
      credentials: { account_sid: twilio.accountSid, auth_token: twilio.authToken, base_url: twilio.url },
    });
    assert.equal(ch.inbound_url, `https://loyalty.example.com/v1/channels/${ch.id}/inbound`);
    const params = twilio.inboundParams(MEMBER_PHONE, '+14155550103', 'points');
    const local = `${t.url}/v1/channels/${ch.id}/inbound`;
    // Signed for the local URL: refused; signed for the public URL Twilio called: accepted.
    assert.equal((await postTwilio(local, params, twilio.sign(local, params))).status, 403);
    const n = twilio.sent.length;
    assert.equal((await postTwilio(local, params, twilio.sign(ch.inbound_url, params))).status, 200);
    await twilio.waitForSent(n + 1);
    // Cross-check with the twilio package's own validator.
    const { default: twilioLib } = await import('twilio');
    assert.equal(
      twilioLib.validateRequest(twilio.authToken, twilio.sign(ch.inbound_url, params), ch.inbound_url, params),
      true,
    );
  });

  it('refuses Infobip calls without or with wrong credentials and does nothing', async () => {
    const basic = await createChannel(t, {
      provider: 'infobip',
      sender: 'InfoSMS',
      credentials: { base_url: infobip.url, api_key: infobip.apiKey },
      inbound_auth: INFOBIP_BASIC,
    });
    const token = await createChannel(t, {
      provider: 'infobip',
      sender: 'InfoSMS',
      credentials: { base_url: infobip.url, api_key: infobip.apiKey },
      inbound_auth: { type: 'token', token: 'right-token-0123456789' },
    });
    const n = infobip.sent.length;
    const body = JSON.stringify(infobipSms(MEMBER_PHONE, '385921004026', 'points'));
    const post = (path: string, headers: Record<string, string> = {}) =>
      fetch(`${t.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    assert.equal((await post(`/v1/channels/${basic.id}/inbound`)).status, 401);
    assert.equal(
      (await post(`/v1/channels/${basic.id}/inbound`, { authorization: basicHeader('infobip', 'wrong-password-1') }))
        .status,
      403,
    );
    assert.equal((await post(`/v1/channels/${token.id}/inbound`)).status, 401);
    assert.equal((await post(`/v1/channels/${token.id}/inbound?token=wrong-token-0123456789`)).status, 403);
    assert.equal((await post(`/v1/channels/chn_doesnotexist/inbound`)).status, 404);
    await t.server.services.messaging.outbound.drain();
    assert.equal(infobip.sent.length, n);
    for (const id of [basic.id, token.id])
      assert.equal((await t.api('GET', `/v1/messages?channel_id=${id}`)).body.total, 0);
  });
});
