import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FlowDefinition, Step } from '../../src/modules/messaging/flows/definition.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { addMember, createChannel, createFlow, seedMember, simulate } from '../messaging/setup.ts';

// Attack: a stranger who learns a card code (printed on a card, a receipt, a screenshot) texts
// `POINTS <code>` and gets the member's name, balance and whatever the reply shows. find_member
// looks up card codes only when the flow says so, and then shows another number nothing about the
// member unless the flow says how much (card_code_reveals).

const OWNER = '+385913000001';
const STRANGER = '+385913000002';
const REPLY =
  'Name={{ customer.name }} Email={{ customer.email }} Phone={{ customer.phone }} ' +
  'Points={{ points }} Card={{ membership.code }}';
const NOT_FOUND = 'No card for this number.';

describe('security: a card code does not answer anyone', () => {
  let t: TestServer;
  let program: { id: string };
  let member: { code: string };
  let senders = 0;

  before(async () => {
    t = await startTestServer();
    ({ program, member } = await seedMember(t, { phone: OWNER, points: 4321, name: 'Ana Secretname' }));
  });
  after(() => t.close());

  /** A channel of its own with a POINTS flow whose find_member step has these fields. */
  async function channelWith(find: Partial<Extract<Step, { type: 'find_member' }>>, extra: Step[] = []) {
    const ch = await createChannel(t, { provider: 'simulator', sender: `+1000000300${senders++}` });
    const def: FlowDefinition = {
      name: 'Points',
      program_id: program.id,
      channels: [ch.id],
      triggers: [{ keywords: ['POINTS'] }],
      unknown_sender_reply: NOT_FOUND,
      steps: [
        { id: 'find', type: 'find_member', next: 'reply', ...find },
        { id: 'reply', type: 'reply', template: REPLY, next: extra[0]?.id ?? null },
        ...extra,
      ],
    };
    await createFlow(t, def);
    return ch.id as string;
  }

  const personal = (text: string) => /Secretname|4321|@|385913000001/.test(text);

  it('by default (by: phone) a card code from another number finds nothing; the owner gets their data', async () => {
    const ch = await channelWith({});
    assert.deepEqual(await simulate(t, STRANGER, `POINTS ${member.code}`, ch), [NOT_FOUND]);
    const own = await simulate(t, OWNER, 'POINTS', ch);
    assert.equal(own.length, 1);
    assert.match(own[0], /Name=Ana Secretname .*Points=4321 Card=/);
  });

  it('card-code lookup, no card_code_reveals: a stranger cannot tell a valid code from a wrong one', async () => {
    for (const by of ['card_code', 'phone_or_card_code'] as const) {
      const ch = await channelWith({ by });
      const valid = await simulate(t, STRANGER, `POINTS ${member.code}`, ch);
      const wrong = await simulate(t, STRANGER, 'POINTS NOPE12345', ch);
      assert.deepEqual(valid, [NOT_FOUND], by);
      assert.deepEqual(wrong, [NOT_FOUND], by);
      // The member's own number, with the code or (phone_or_card_code) without.
      assert.match((await simulate(t, OWNER, `POINTS ${member.code}`, ch))[0], /Name=Ana Secretname .*Points=4321/, by);
    }
  });

  it("a stranger who is a member gets their own data, never the code's owner's", async () => {
    const strangerMember = await addMember(t, program.id, { phone: '+385913000003', points: 7, name: 'Ivo' });
    const ch = await channelWith({ by: 'phone_or_card_code' });
    const got = await simulate(t, '+385913000003', `POINTS ${member.code}`, ch);
    assert.equal(got.length, 1);
    assert.ok(!personal(got[0]), got[0]);
    assert.match(got[0], new RegExp(`Name=Ivo .*Points=7 Card=${strangerMember.code}`));
  });

  it('card_code_reveals: balance shows another number the card and its balance, nothing about the person', async () => {
    const ch = await channelWith({ by: 'card_code', card_code_reveals: 'balance' }, [
      { id: 'wait', type: 'wait', replies: [{ keywords: ['MORE'], next: 'more' }] },
      { id: 'more', type: 'reply', template: 'More: {{ customer.name }} {{ customer.phone }} {{ points }}' },
    ]);
    const got = await simulate(t, STRANGER, `POINTS ${member.code}`, ch);
    assert.deepEqual(got, [`Name= Email= Phone= Points=4321 Card=${member.code}`]);
    // The follow-up in the same conversation is no more revealing.
    assert.deepEqual(await simulate(t, STRANGER, 'MORE', ch), ['More:   4321']);
    // The owner still gets everything.
    assert.match((await simulate(t, OWNER, `POINTS ${member.code}`, ch))[0], /Name=Ana Secretname/);
    // The replies to the stranger are not filed under the member's customer.
    const query = `phone=${encodeURIComponent(STRANGER)}&channel_id=${ch}&direction=out&limit=10`;
    const out = await t.api('GET', `/v1/messages?${query}`);
    assert.equal(out.body.messages.length, 2);
    for (const m of out.body.messages) assert.equal(m.customer_id, null);
  });

  it('card_code_reveals: all is the explicit choice to answer any number as the member', async () => {
    const ch = await channelWith({ by: 'card_code', card_code_reveals: 'all' });
    assert.match((await simulate(t, STRANGER, `POINTS ${member.code}`, ch))[0], /Name=Ana Secretname .*Points=4321/);
  });

  it('refuses an unknown card_code_reveals, or one without a card-code lookup', async () => {
    const base = { name: 'x', program_id: program.id, triggers: [{ keywords: ['REVEAL'] }] };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ id: 'f', type: 'find_member', by: 'card_code', card_code_reveals: 'x' }, /must be one of: none, balance, all/],
      [{ id: 'f', type: 'find_member', card_code_reveals: 'all' }, /applies only with by: card_code or phone_or_c/],
      [{ id: 'f', type: 'find_member', by: 'phone', card_code_reveals: 'none' }, /applies only with by/],
      [{ id: 'f', type: 'find_member', by: 'name' }, /must be one of: phone, card_code, phone_or_card_code/],
    ];
    for (const [step, message] of cases) {
      const res = await t.api('POST', '/v1/flows', { ...base, steps: [step] });
      assert.equal(res.status, 400, JSON.stringify(step));
      assert.equal(res.body.errors?.[0]?.field, step.by === 'name' ? 'steps[0].by' : 'steps[0].card_code_reveals');
      assert.match(res.body.details, message);
    }
  });
});
