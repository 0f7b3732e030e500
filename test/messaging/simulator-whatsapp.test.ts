import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { joinFlow } from '../../src/modules/messaging/flows/examples.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { clockOf, createChannel, createFlow, createPointsFlow, seedMember } from './setup.ts';

// The simulator on a WhatsApp-typed channel: typed text and tapped buttons, the profile name a
// join step uses, template-only broadcasts, and the conversation as the member's phone shows it.

describe('simulator: WhatsApp channels', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ manualClock: true });
  });
  after(async () => {
    await t.close();
  });

  const PHONE = '+385911300001';

  it('WhatsApp simulator: typed text, tapped buttons, template broadcasts, the conversation', async () => {
    const { program } = await seedMember(t, { phone: PHONE, points: 300, name: 'Ana' });
    const wa = await createChannel(t, { provider: 'simulator', type: 'whatsapp', sender: '+10000003001' });
    assert.equal(wa.type, 'whatsapp');
    const flow = await createPointsFlow(t, program.id, { channels: [wa.id] });
    await createFlow(t, { ...joinFlow(program.id), channels: [wa.id] });
    const say = async (body: Record<string, unknown>) => {
      clockOf(t).advance(1000); // the conversation is shown in time order
      const res = await t.api('POST', '/v1/simulator/messages', { from: PHONE, channel_id: wa.id, ...body });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.channel_type, 'whatsapp');
      return res.body.replies.map((r: { text: string }) => r.text) as string[];
    };

    assert.match((await say({ text: 'Points' }))[0], /^Hi Ana, you have 300 points/);
    // A tapped reply button: its title is the text, else its id (as Infobip and Twilio send it).
    assert.match((await say({ button: { title: 'POINTS', id: 'btn-points' } }))[0], /^Hi Ana, you have 300 points/);
    assert.match((await say({ button: { id: 'REDEEM' } }))[0], /^To redeem, show card/);

    // A new number taps JOIN: the WhatsApp profile name becomes the customer's name.
    const join = { from: '+385911300002', channel_id: wa.id, button: { title: 'JOIN' }, profile_name: 'Zoe' };
    const joined = await t.api('POST', '/v1/simulator/messages', join);
    assert.match(joined.body.replies[0].text, /^Welcome to /);
    const zoe = await t.api('GET', `/v1/customers?phone=${encodeURIComponent('+385911300002')}`);
    assert.equal(zoe.body.customers[0].name, 'Zoe');

    // WhatsApp allows a proactive message only as an approved template: the simulator says so too.
    clockOf(t).advance(1000);
    const free = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, { channel_id: wa.id });
    assert.equal(free.status, 422);
    assert.equal(free.body.key, 'whatsapp_template_required');
    const template = { name: 'points_prompt', language: 'en', placeholders: ['{{ customer.name }}', '{{ points }}'] };
    const sent = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, { channel_id: wa.id, template });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));

    const query = `phone=${encodeURIComponent(PHONE)}&channel_id=${wa.id}`;
    const conversation = await t.api('GET', `/v1/simulator/messages?${query}`);
    assert.equal(conversation.status, 200, JSON.stringify(conversation.body));
    const shown = conversation.body.messages.map((m: any) => [m.direction, m.text.slice(0, 20)]);
    assert.deepEqual(shown, [
      ['in', 'Points'],
      ['out', 'Hi Ana, you have 300'],
      ['in', 'POINTS'],
      ['out', 'Hi Ana, you have 300'],
      ['in', 'REDEEM'],
      ['out', 'To redeem, show card'],
      ['out', '[template points_pro'],
    ]);
    const rendered = { name: 'points_prompt', language: 'en', placeholders: ['Ana', '300'] };
    assert.deepEqual(conversation.body.messages.at(-1).template, rendered);
  });

  it('buttons are for WhatsApp channels; a button needs a title or an id; text or button, not both', async () => {
    const sms = await createChannel(t, { provider: 'simulator', type: 'sms', sender: '+10000003002' });
    const wa = await createChannel(t, { provider: 'simulator', type: 'whatsapp', sender: '+10000003003' });
    const cases: [Record<string, unknown>, string][] = [
      [{ channel_id: sms.id, button: { title: 'POINTS' } }, 'button'],
      [{ channel_id: wa.id, button: {} }, 'button'],
      [{ channel_id: wa.id, button: { title: 'POINTS' }, text: 'POINTS' }, 'button'],
      [{ channel_id: wa.id }, 'text'],
    ];
    for (const [body, field] of cases) {
      const res = await t.api('POST', '/v1/simulator/messages', { from: PHONE, ...body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.errors?.[0]?.field, field, JSON.stringify(res.body));
    }
    // A WhatsApp sender is a phone number.
    const named = { name: 'wa', provider: 'simulator', type: 'whatsapp', sender: 'TallyShop' };
    const bad = await t.api('POST', '/v1/channels', named);
    assert.equal(bad.status, 400);
  });
});
