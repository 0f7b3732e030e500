import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pointsFlow } from '../../src/modules/messaging/flows/examples.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { createChannel, createFlow, seedMember, simulate } from '../messaging/setup.ts';

// Attack: a Liquid template that pulls in a file ({% include '.env' %}, {% render 'package.json' %},
// {% layout %}) and sends it out as a reply or an SMS. Every place that saves a template refuses
// them (400 naming the field); a template stored before that check existed reads no file either.

const REFUSED = /include\/render\/layout are not available in Tally templates/;

describe('security: templates cannot read files', () => {
  let t: TestServer;
  const marker = `FILE-MARKER-${randomBytes(8).toString('hex')}`;
  // Beside the server (its working directory is Liquid's default root) and at an absolute path.
  const localName = `tally-template-marker-${randomBytes(4).toString('hex')}.txt`;
  const absolute = join(tmpdir(), localName);
  const attacks = (name: string) => [
    `{% include '${name}' %}`,
    `{% render '${name}' %}`,
    `{% layout '${name}' %}x`,
    `Hi {%- include '${name}' -%}`,
    `{% liquid\n  render '${name}'\n%}`,
  ];
  const allAttacks = [
    ...attacks(localName),
    ...attacks(absolute),
    "{% include '.env' %}",
    "{% render 'package.json' %}",
  ];
  const api = 'https://api.example.com/x';

  before(async () => {
    writeFileSync(localName, marker);
    writeFileSync(absolute, marker);
    t = await startTestServer();
  });
  after(async () => {
    rmSync(localName, { force: true });
    rmSync(absolute, { force: true });
    await t.close();
  });

  it('refuses a flow whose reply, opening message, unknown-sender reply or http step reads a file', async () => {
    const { program } = await seedMember(t, { phone: '+385912000001' });
    for (const source of allAttacks) {
      const base = pointsFlow(program.id, { triggers: [{ keywords: ['FILEX'] }] });
      const cases: [Record<string, unknown>, string][] = [
        [{ steps: [{ id: 'a', type: 'reply', template: source }] }, 'steps[0].template'],
        [{ opening_message: source }, 'opening_message'],
        [{ unknown_sender_reply: source }, 'unknown_sender_reply'],
        [{ steps: [{ id: 'a', type: 'http', method: 'POST', url: api, body: source }] }, 'steps[0].body'],
        [{ steps: [{ id: 'a', type: 'http', url: api, headers: { 'x-a': source } }] }, 'steps[0].headers.x-a'],
      ];
      for (const [override, field] of cases) {
        const res = await t.api('POST', '/v1/flows', { ...base, ...override });
        assert.equal(res.status, 400, `${field}: ${source}`);
        assert.equal(res.body.key, 'invalid_flow');
        assert.equal(res.body.errors?.[0]?.field, field, JSON.stringify(res.body));
        assert.match(res.body.details, REFUSED);
        assert.ok(!JSON.stringify(res.body).includes(marker));
      }
    }
    // And on update: the flow keeps its version.
    const flow = await createFlow(t, pointsFlow(program.id, { triggers: [{ keywords: ['FILEY'] }] }));
    const steps = [{ id: 'a', type: 'reply', template: `{% include '${localName}' %}` }];
    const upd = await t.api('PUT', `/v1/flows/${flow.id}`, { start: 'a', steps });
    assert.equal(upd.status, 400);
    assert.equal(upd.body.errors?.[0]?.field, 'steps[0].template');
    assert.equal((await t.api('GET', `/v1/flows/${flow.id}`)).body.version, 1);
  });

  it('refuses a channel whose catch_all_reply or unknown_sender_reply reads a file, on create and update', async () => {
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000001001' });
    for (const source of allAttacks) {
      for (const field of ['catch_all_reply', 'unknown_sender_reply']) {
        const body = { name: 'x', provider: 'simulator', sender: '+10000001002', settings: { [field]: source } };
        const created = await t.api('POST', '/v1/channels', body);
        assert.equal(created.status, 400, `${field}: ${source}`);
        assert.equal(created.body.key, 'invalid_channel');
        assert.equal(created.body.errors?.[0]?.field, `settings.${field}`);
        assert.match(created.body.details, REFUSED);
        const updated = await t.api('PUT', `/v1/channels/${ch.id}`, { settings: { [field]: source } });
        assert.equal(updated.status, 400, `${field}: ${source}`);
        assert.equal(updated.body.errors?.[0]?.field, `settings.${field}`);
      }
    }
    // A broken template is refused too (it was stored unchecked before).
    const broken = await t.api('PUT', `/v1/channels/${ch.id}`, { settings: { catch_all_reply: '{% if %}' } });
    assert.equal(broken.status, 400);
    assert.equal(broken.body.errors?.[0]?.field, 'settings.catch_all_reply');
    // Plain text and ordinary Liquid are fine.
    const catchAll = { catch_all_reply: 'Sorry {{ sender }}, reply POINTS.' };
    const ok = await t.api('PUT', `/v1/channels/${ch.id}`, { settings: catchAll });
    assert.equal(ok.status, 200);
    assert.deepEqual(await simulate(t, '+385912000002', 'hello', ch.id), ['Sorry +385912000002, reply POINTS.']);
  });

  it('refuses a broadcast whose text reads a file (nothing is sent)', async () => {
    const { program } = await seedMember(t, { phone: '+385912000003' });
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000001003' });
    const flow = await createFlow(t, pointsFlow(program.id, { triggers: [{ keywords: ['FB'] }] }));
    for (const source of allAttacks) {
      const res = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, { channel_id: ch.id, text: source });
      assert.equal(res.status, 400, source);
      assert.equal(res.body.key, 'invalid_template');
      assert.equal(res.body.errors?.[0]?.field, 'text');
      assert.match(res.body.details, REFUSED);
    }
    // A WhatsApp template's placeholders are templates too.
    const wa = await createChannel(t, {
      provider: 'infobip',
      type: 'whatsapp',
      sender: '+10000001004',
      credentials: { base_url: 'http://127.0.0.1:9', api_key: 'k' },
      inbound_auth: { type: 'token', token: 'a-token-of-16-chars-or-more' },
    });
    const placeholders = ['{{ points }}', `{% render '${localName}' %}`];
    const waBody = { channel_id: wa.id, template: { name: 'n', placeholders } };
    const res = await t.api('POST', `/v1/flows/${flow.id}/broadcast`, waBody);
    assert.equal(res.status, 400);
    assert.equal(res.body.errors?.[0]?.field, 'template.placeholders[1]');
    assert.match(res.body.details, REFUSED);
    const sent = await t.api('GET', `/v1/messages?direction=out&limit=100`);
    assert.ok(!JSON.stringify(sent.body).includes(marker));
    assert.equal(sent.body.messages.filter((m: any) => m.broadcast_id).length, 0);
  });

  it('a file template stored before the check (flow reply, catch_all_reply) fails at render', async () => {
    const db = t.server.ctx.database.db;
    const phone = '+385912000004';
    const { program } = await seedMember(t, { phone });
    for (const [i, source] of allAttacks.entries()) {
      // A flow reply, changed under the API.
      const ch = await createChannel(t, { provider: 'simulator', sender: `+100000020${String(i).padStart(2, '0')}` });
      const flow = await createFlow(t, pointsFlow(program.id, { channels: [ch.id], triggers: [{ keywords: ['FS'] }] }));
      const definition = { ...flow, steps: [{ id: 'a', type: 'reply', template: source }], start: 'a' };
      await db
        .updateTable('msg_flow_versions')
        .set({ definition: JSON.stringify(definition) })
        .where('flow_id', '=', flow.id)
        .execute();
      // The channel's catch-all, likewise.
      const settings = JSON.stringify({ catch_all_reply: source });
      await db.updateTable('msg_channels').set({ settings }).where('id', '=', ch.id).execute();
      for (const text of ['FS', 'anything else']) {
        const res = await t.api('POST', '/v1/simulator/messages', { from: phone, text, channel_id: ch.id });
        assert.equal(res.status, 200);
        assert.deepEqual(res.body.replies, [], `${text}: ${source}`);
        assert.ok(!JSON.stringify(res.body).includes(marker));
        const inbound = await t.api('GET', `/v1/messages?channel_id=${ch.id}&direction=in&limit=100`);
        const stored = inbound.body.messages.find((m: any) => m.id === res.body.message_id);
        // The stored template was reached, and refused.
        assert.equal(stored?.status, 'error', JSON.stringify(inbound.body));
        assert.match(stored.error, /include\/render\/layout are not available|cannot read files/);
      }
    }
    const all = await t.api('GET', '/v1/messages?limit=100');
    assert.ok(!JSON.stringify(all.body).includes(marker));
  });
});
