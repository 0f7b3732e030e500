import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { joinFlow, pointsFlow } from '../../src/modules/messaging/flows/examples.ts';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { addMember, clockOf, createChannel, createFlow, createPointsFlow, seedMember, simulate } from './setup.ts';

describe('flows: CRUD, versions, matching, sessions', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ manualClock: true });
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  it('creates, reads, lists, updates (new version), clones and deletes flows', async () => {
    const { program } = await seedMember(t, { phone: '+385911000001' });
    const flow = await createPointsFlow(t, program.id, { triggers: [{ keywords: ['BODOVI'], match: 'first_word' }] });
    assert.equal(flow.version, 1);
    assert.equal(flow.object, 'flow');
    assert.deepEqual(flow.triggers, [{ keywords: ['BODOVI'], match: 'first_word' }]);
    const got = await t.api('GET', `/v1/flows/${flow.id}`);
    assert.equal(got.status, 200);
    assert.equal(got.body.steps.length, flow.steps.length);
    const upd = await t.api('PUT', `/v1/flows/${flow.id}`, { name: 'Renamed' });
    assert.equal(upd.status, 200);
    assert.equal(upd.body.version, 2);
    assert.equal(upd.body.name, 'Renamed');
    const v1 = await t.api('GET', `/v1/flows/${flow.id}?version=1`);
    assert.equal(v1.body.name, 'Points balance');
    const versions = await t.api('GET', `/v1/flows/${flow.id}/versions`);
    assert.deepEqual(
      versions.body.versions.map((v: any) => v.version),
      [2, 1],
    );
    // A clone keeping the same keywords would clash: it starts inactive.
    const clone = await t.api('POST', `/v1/flows/${flow.id}/clone`, {});
    assert.equal(clone.status, 200);
    assert.equal(clone.body.active, false);
    assert.equal(clone.body.name, 'Renamed (copy)');
    const clone2 = await t.api('POST', `/v1/flows/${flow.id}/clone`, {
      name: 'Tier',
      triggers: [{ keywords: ['RAZINA'] }],
    });
    assert.equal(clone2.body.active, true);
    assert.equal(clone2.body.version, 1);
    assert.notEqual(clone2.body.id, flow.id);
    const list = await t.api('GET', `/v1/flows?program_id=${program.id}`);
    assert.equal(list.body.total, 3);
    // Same keyword, same binding, same mode as an active flow: refused.
    const clash = await t.api('POST', '/v1/flows', pointsFlow(program.id, { triggers: [{ keywords: ['bodovi'] }] }));
    assert.equal(clash.status, 409);
    assert.equal(clash.body.key, 'trigger_in_use');
    const del = await t.api('DELETE', `/v1/flows/${clone2.body.id}`);
    assert.equal(del.status, 204);
    assert.equal((await t.api('GET', `/v1/flows/${clone2.body.id}`)).status, 404);
  });

  it('rejects invalid definitions with 400 and a field', async () => {
    const { program } = await seedMember(t, { phone: '+385911000002' });
    const cases: [Record<string, unknown>, string][] = [
      [{ steps: [{ id: 'a', type: 'reply', template: '{% if %}' }] }, 'steps[0].template'],
      [{ steps: [{ id: 'a', type: 'reply', template: 'x', next: 'nowhere' }] }, 'steps[0].next'],
      [{ triggers: [{ keywords: ['two words'] }] }, 'triggers[0].keywords[0]'],
      [{ triggers: [{ keywords: ['ABCDEFGHIJKLMNOPQ'] }] }, 'triggers[0].keywords[0]'],
      [{ steps: [{ id: 'a', type: 'branch', cases: [{ when: { bogus: 1 }, next: 'a' }] }] }, 'steps[0].cases[0].when'],
      [{ steps: [{ id: 'a', type: 'http', url: 'ftp://x', save_as: 'api' }] }, 'steps[0].url'],
      [{ steps: [{ id: 'a', type: 'http', url: 'https://x.example', save_as: 'customer' }] }, 'steps[0].save_as'],
    ];
    for (const [override, field] of cases) {
      const res = await t.api('POST', '/v1/flows', {
        ...pointsFlow(program.id, { triggers: [{ keywords: ['ZZ'] }] }),
        ...override,
      });
      assert.equal(res.status, 400, JSON.stringify(override));
      assert.equal(res.body.errors?.[0]?.field, field, JSON.stringify(res.body));
    }
    assert.equal((await t.api('POST', '/v1/flows', pointsFlow('camp_nope'))).status, 404);
  });

  const keywordMatching =
    'matches aliases case- and accent-insensitively, first_word vs only_word, ' +
    'and answers unknown text with the catch-all';
  it(keywordMatching, async () => {
    const phone = '+385911000003';
    const { program, member } = await seedMember(t, { phone, points: 120 });
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000000003' });
    await createPointsFlow(t, program.id, { channels: [ch.id] });
    await createFlow(t, {
      name: 'Only-word help',
      program_id: program.id,
      channels: [ch.id],
      triggers: [{ keywords: ['HELP'], match: 'only_word' }],
      steps: [{ id: 'r', type: 'reply', template: 'Reply POINTS for your balance.' }],
    });
    await createFlow(t, {
      name: 'Catch-all',
      program_id: program.id,
      channels: [ch.id],
      triggers: [],
      catch_all: true,
      steps: [{ id: 'r', type: 'reply', template: 'Sorry, reply POINTS for your balance.' }],
    });
    for (const text of ['POINTS', 'points', 'Pöints!', '  balance  ', 'PTS please', 'ＰＯＩＮＴＳ']) {
      const replies = await simulate(t, phone, text, ch.id);
      assert.equal(replies.length, 1, text);
      assert.match(replies[0], /you have 120 points/, text);
      assert.ok(replies[0].includes(member.code));
    }
    assert.deepEqual(await simulate(t, phone, 'help', ch.id), ['Reply POINTS for your balance.']);
    assert.deepEqual(await simulate(t, phone, 'help me please', ch.id), ['Sorry, reply POINTS for your balance.']);
    assert.deepEqual(await simulate(t, phone, 'my points', ch.id), ['Sorry, reply POINTS for your balance.']);
    assert.deepEqual(await simulate(t, phone, '👍', ch.id), ['Sorry, reply POINTS for your balance.']);
  });

  it('the most specific trigger wins: channel-bound over unbound, only_word over first_word', async () => {
    const phone = '+385911000004';
    const { program } = await seedMember(t, { phone });
    const a = await createChannel(t, { provider: 'simulator', sender: '+10000000041' });
    const b = await createChannel(t, { provider: 'simulator', sender: '+10000000042' });
    const reply = (name: string, keyword: string, match: 'first_word' | 'only_word', channels: string[] | null) =>
      createFlow(t, {
        name,
        program_id: program.id,
        channels,
        triggers: [{ keywords: [keyword], match }],
        steps: [{ id: 'r', type: 'reply', template: name }],
      });
    await reply('unbound-first', 'OFFER', 'first_word', null);
    await reply('unbound-only', 'OFFER', 'only_word', null);
    await reply('bound-first', 'OFFER', 'first_word', [a.id]);
    assert.deepEqual(await simulate(t, phone, 'offer', a.id), ['bound-first']);
    assert.deepEqual(await simulate(t, phone, 'offer', b.id), ['unbound-only']);
    assert.deepEqual(await simulate(t, phone, 'offer today', b.id), ['unbound-first']);
    await reply('bound-only', 'OFFER', 'only_word', [a.id]);
    assert.deepEqual(await simulate(t, phone, 'offer', a.id), ['bound-only']);
    assert.deepEqual(await simulate(t, phone, 'offer now', a.id), ['bound-first']);
  });

  it('POINTS then REDEEM within the session; REDEEM alone or after the timeout does not continue', async () => {
    const phone = '+385911000005';
    const { program, member } = await seedMember(t, { phone, points: 2641 });
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000000005' });
    await createPointsFlow(t, program.id, { channels: [ch.id], session_timeout_seconds: 300 });
    await createFlow(t, {
      name: 'fallback',
      program_id: program.id,
      channels: [ch.id],
      triggers: [],
      catch_all: true,
      steps: [{ id: 'r', type: 'reply', template: 'Reply POINTS for your balance.' }],
    });
    assert.deepEqual(await simulate(t, phone, 'REDEEM', ch.id), ['Reply POINTS for your balance.']);
    const first = await simulate(t, phone, 'POINTS', ch.id);
    assert.match(first[0], /2641/);
    const second = await simulate(t, phone, 'redeem', ch.id);
    assert.deepEqual(second, [`To redeem, show card ${member.code} at the till; your 2641 points are ready to use.`]);
    // The conversation ended: REDEEM again is unknown text.
    assert.deepEqual(await simulate(t, phone, 'redeem', ch.id), ['Reply POINTS for your balance.']);
    // After the session timeout, REDEEM does not continue.
    await simulate(t, phone, 'points', ch.id);
    clockOf(t).advance(301_000);
    assert.deepEqual(await simulate(t, phone, 'redeem', ch.id), ['Reply POINTS for your balance.']);
    // Within it, it does (and another number's session is its own).
    await simulate(t, phone, 'points', ch.id);
    clockOf(t).advance(299_000);
    assert.deepEqual(await simulate(t, '+385911000099', 'redeem', ch.id), ['Reply POINTS for your balance.']);
    assert.match((await simulate(t, phone, 'redeem', ch.id))[0], /^To redeem/);
  });

  it('a conversation in progress finishes on the version it started on', async () => {
    const phone = '+385911000006';
    const { program } = await seedMember(t, { phone, points: 10 });
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000000006' });
    const flow = await createPointsFlow(t, program.id, { channels: [ch.id] });
    await simulate(t, phone, 'points', ch.id);
    const steps = flow.steps.map((s: any) =>
      s.id === 'how_to_redeem' ? { ...s, template: 'Version two: come by the shop.' } : s,
    );
    const upd = await t.api('PUT', `/v1/flows/${flow.id}`, { steps });
    assert.equal(upd.body.version, 2);
    assert.match((await simulate(t, phone, 'redeem', ch.id))[0], /^To redeem/, 'old conversation stays on v1');
    await simulate(t, phone, 'points', ch.id);
    assert.deepEqual(await simulate(t, phone, 'redeem', ch.id), ['Version two: come by the shop.']);
    const msgs = await t.api('GET', `/v1/messages?flow_id=${flow.id}&direction=out&limit=100`);
    const versions = msgs.body.messages.map((m: any) => m.flow_version).sort();
    assert.deepEqual(versions, [1, 1, 2, 2]);
  });

  const cardCodeLookup =
    'finds the member by a card code in the message when the flow asks; unknown senders get the configured answer';
  it(cardCodeLookup, async () => {
    const { program, member } = await seedMember(t, { phone: '+385911000007', points: 77 });
    const ch = await createChannel(t, {
      provider: 'simulator',
      sender: '+10000000007',
      settings: { unknown_sender_reply: 'Channel default' },
    });
    // Another number sees the card's balance, not the person (see test/security/card-code-lookup.test.ts).
    const steps = pointsFlow(program.id).steps.map((s) =>
      s.type === 'find_member' ? { ...s, by: 'phone_or_card_code' as const, card_code_reveals: 'balance' as const } : s,
    );
    await createPointsFlow(t, program.id, { channels: [ch.id], steps });
    const byCode = await simulate(t, '+385911000070', `POINTS ${member.code}`, ch.id);
    assert.match(byCode[0], /^Hi there, you have 77 points/);
    const punctuated = await simulate(t, '+385911000070', `Points: ${member.code}.`, ch.id);
    assert.match(punctuated[0], /^Hi there, you have 77 points/);
    const unknown = await simulate(t, '+385911000071', 'POINTS', ch.id);
    assert.deepEqual(unknown, [`We couldn't find a ${program.name} card for this number. Reply JOIN to join.`]);
    const unknownCode = await simulate(t, '+385911000071', 'POINTS NOPE1234', ch.id);
    assert.equal(unknownCode.length, 1);
    assert.match(unknownCode[0], /couldn't find/);
  });

  it('JOIN enrols an unknown sender when the program allows it, and not otherwise', async () => {
    const open = (
      await t.api('POST', '/v1/loyalties', {
        name: 'Open program',
        auto_join: true,
        voucher: { loyalty_card: { points: 50 } },
      })
    ).body;
    const closed = (await t.api('POST', '/v1/loyalties', { name: 'Closed program', auto_join: false })).body;
    const chOpen = await createChannel(t, { provider: 'simulator', sender: '+10000000081' });
    const chClosed = await createChannel(t, { provider: 'simulator', sender: '+10000000082' });
    await createFlow(t, { ...joinFlow(open.id), channels: [chOpen.id] });
    await createPointsFlow(t, open.id, { channels: [chOpen.id] });
    await createFlow(t, { ...joinFlow(closed.id), channels: [chClosed.id] });
    const phone = '+385911000008';
    const welcome = await simulate(t, phone, 'join', chOpen.id);
    assert.match(welcome[0], /^Welcome to Open program! Your card is \S+ and you have 50 points/);
    const customers = await t.api('GET', `/v1/customers?phone=${encodeURIComponent(phone)}`);
    assert.equal(customers.body.customers.length, 1);
    // Joining twice does not create a second card.
    const again = await simulate(t, phone, 'JOIN', chOpen.id);
    assert.equal(again[0], welcome[0]);
    assert.match((await simulate(t, phone, 'points', chOpen.id))[0], /you have 50 points/);
    assert.deepEqual(await simulate(t, '+385911000009', 'join', chClosed.id), [
      'Closed program is not open for sign-up by message.',
    ]);
    assert.equal(
      (await t.api('GET', `/v1/customers?phone=${encodeURIComponent('+385911000009')}`)).body.customers.length,
      0,
    );
  });

  it('branches on membership, balance, tier and reward conditions through context providers', async () => {
    const phone = '+385911000010';
    const { program } = await seedMember(t, { phone, points: 500 });
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000000010' });
    const flow = await createPointsFlow(t, program.id, { channels: [ch.id] });
    // No rewards feature yet: the balance reply.
    assert.match((await simulate(t, phone, 'points', ch.id))[0], /Redeem them for a treat/);
    // A rewards module registers its variables: the cheapest reward costs 400.
    const messaging = t.server.services.messaging;
    const restoreRewards = messaging.registerContextProvider('rewards', () => ({
      cheapest_cost: 400,
      affordable: [{ id: 'rw_1', name: 'a free coffee', cost: 400 }],
    }));
    const restoreTier = messaging.registerContextProvider('tier', () => ({ id: 'tier_gold', name: 'Gold' }));
    try {
      assert.deepEqual(await simulate(t, phone, 'points', ch.id), [
        'Hi Ana, you have 500 points: enough for a free coffee! Reply REDEEM to claim it.',
      ]);
      await createFlow(t, {
        name: 'tier',
        program_id: program.id,
        channels: [ch.id],
        triggers: [{ keywords: ['TIER'] }],
        steps: [
          { id: 'find', type: 'find_member', next: 'b' },
          {
            id: 'b',
            type: 'branch',
            cases: [
              { when: { all: [{ tier_is: 'gold' }, { balance_gte: 1000 }] }, next: 'rich_gold' },
              { when: { tier_is: 'Gold' }, next: 'gold' },
            ],
            else: 'other',
          },
          { id: 'rich_gold', type: 'reply', template: 'rich gold' },
          {
            id: 'gold',
            type: 'reply',
            template: 'You are {{ tier.name }} with {{ balances.points.balance }} {{ balances.points.unit }}.',
          },
          { id: 'other', type: 'reply', template: 'no tier' },
        ],
      });
      assert.deepEqual(await simulate(t, phone, 'tier', ch.id), ['You are Gold with 500 points.']);
    } finally {
      // Leave the registry as the other tests expect it.
      restoreRewards();
      restoreTier();
    }
    assert.ok(flow.id);
  });

  it('sees the member tier from the tiers module', async () => {
    const phone = '+385911000015';
    const program = (await t.api('POST', '/v1/loyalties', { name: 'Tiered program' })).body;
    const tiers = await t.api('POST', `/v1/loyalties/${program.id}/tiers`, [
      { name: 'Bronze', points: { from: 0, to: 999 } },
      { name: 'Silver', points: { from: 1000, to: 2999 } },
      { name: 'Gold', points: { from: 3000 } },
    ]);
    assert.equal(tiers.status, 200, JSON.stringify(tiers.body));
    await addMember(t, program.id, { phone, points: 2641, name: 'Tia' });
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000000015' });
    await createFlow(t, {
      name: 'tier',
      program_id: program.id,
      channels: [ch.id],
      triggers: [{ keywords: ['TIER'] }],
      steps: [
        { id: 'find', type: 'find_member', next: 'b' },
        { id: 'b', type: 'branch', cases: [{ when: { tier_is: 'silver' }, next: 'silver' }], else: 'other' },
        {
          id: 'silver',
          type: 'reply',
          template: '{{ tier.name }}: {{ tier.next.points_needed }} points to {{ tier.next.name }}.',
        },
        { id: 'other', type: 'reply', template: 'tier {{ tier.name | default: "none" }}' },
      ],
    });
    assert.deepEqual(await simulate(t, phone, 'tier', ch.id), ['Silver: 359 points to Gold.']);
  });

  it('calls an external HTTP API and maps its JSON into variables', async () => {
    const phone = '+385911000011';
    const { program, member } = await seedMember(t, { phone, points: 5 });
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000000011' });
    const seen: string[] = [];
    const api = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers['x-card']}`);
      if (req.url?.startsWith('/fail')) {
        res.writeHead(503).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ data: { status: 'VIP', offers: [{ title: 'Free cake' }] } }));
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    const port = (api.address() as any).port;
    try {
      await createFlow(t, {
        name: 'api',
        program_id: program.id,
        channels: [ch.id],
        triggers: [{ keywords: ['OFFERS'] }, { keywords: ['BROKEN'] }],
        steps: [
          { id: 'find', type: 'find_member', next: 'route' },
          {
            id: 'route',
            type: 'branch',
            cases: [{ when: { var: 'message.keyword', equals: 'BROKEN' }, next: 'call_fail' }],
            else: 'call',
          },
          {
            id: 'call',
            type: 'http',
            url: `http://127.0.0.1:${port}/offers/{{ membership.code }}`,
            headers: { 'X-Card': '{{ membership.code }}' },
            save_as: 'crm',
            map: { status: 'data.status', first_offer: 'data.offers[0].title' },
            next: 'say',
            on_error: 'sorry',
          },
          {
            id: 'call_fail',
            type: 'http',
            url: `http://127.0.0.1:${port}/fail`,
            save_as: 'crm',
            next: 'say',
            on_error: 'sorry',
          },
          { id: 'say', type: 'reply', template: '{{ crm.status }}: {{ crm.first_offer }}' },
          { id: 'sorry', type: 'reply', template: 'Offers are unavailable ({{ crm.status }}).' },
        ],
      });
      assert.deepEqual(await simulate(t, phone, 'offers', ch.id), ['VIP: Free cake']);
      assert.equal(seen[0], `GET /offers/${member.code} ${member.code}`);
      assert.deepEqual(await simulate(t, phone, 'broken', ch.id), ['Offers are unavailable (503).']);
    } finally {
      api.close();
    }
  });

  it('refuses private HTTP targets unless the operator allows them', async () => {
    const strict = await startTestServer({ config: { allowPrivateTargets: false } });
    try {
      const { program } = await seedMember(strict, { phone: '+385911000012' });
      const ch = await createChannel(strict, { provider: 'simulator', sender: '+10000000012' });
      await createFlow(strict, {
        name: 'ssrf',
        program_id: program.id,
        channels: [ch.id],
        triggers: [{ keywords: ['X'] }],
        steps: [
          { id: 'call', type: 'http', url: 'http://127.0.0.1:1/secret', next: 'ok', on_error: 'blocked' },
          { id: 'ok', type: 'reply', template: 'reached' },
          { id: 'blocked', type: 'reply', template: 'blocked: {{ api.ok }}' },
        ],
      });
      assert.deepEqual(await simulate(strict, '+385911000012', 'x', ch.id), ['blocked: false']);
    } finally {
      await strict.close();
    }
  });

  it('keeps other members apart: a second member gets their own balance', async () => {
    const { program } = await seedMember(t, { phone: '+385911000013', points: 1 });
    await addMember(t, program.id, { phone: '+385911000014', points: 999, name: 'Bo' });
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000000013' });
    await createPointsFlow(t, program.id, { channels: [ch.id] });
    assert.match((await simulate(t, '+385911000014', 'points', ch.id))[0], /^Hi Bo, you have 999 points/);
    assert.match((await simulate(t, '+385911000013', 'points', ch.id))[0], /^Hi Ana, you have 1 points/);
  });
});
