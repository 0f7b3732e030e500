import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { assertLedgerInvariants } from './helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from './helpers/server.ts';
import { createChannel, createFlow, createPointsFlow, simulate } from './messaging/setup.ts';
import { allEvents, assertEventsMatchCatalog, ok } from './vouchers/helpers.ts';

// Households (issue #16): the member contacts of a card share its balances, tier and vouchers.

const uid = () => randomBytes(4).toString('hex');

describe('households: member contacts of a loyalty card', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  it('adds, lists and removes member contacts, each change an event of the catalog', async () => {
    const program = await createProgram(t, { name: 'Family Club' });
    const owner = await createMember(t, program.id);
    const kid = `kid-${uid()}`;
    const added = await ok(t, 'POST', `/v1/loyalties/members/${owner.code}/holders`, {
      holders: [{ source_id: kid, name: 'Kid' }, { source_id: `partner-${uid()}` }],
      metadata: { role: 'family' },
    });
    assert.equal(added.holders.length, 2);
    assert.deepEqual(
      added.holders.map((h: any) => h.member_id),
      [1, 2],
    );
    const [first, second] = added.holders;
    assert.equal(first.object, 'redeemable_holder');
    assert.equal(first.holder_role, 'MEMBER');
    assert.equal(first.redeemable_id, owner.id);
    assert.equal(first.campaign_id, program.id);
    assert.deepEqual(first.metadata, { role: 'family' });
    assert.match(first.id, /^mc_/);
    // The contact's redeemables list the shared card, as a MEMBER of it.
    const shared = await ok(t, 'GET', `/v1/customers/${first.customer_id}/redeemables`);
    assert.deepEqual(
      shared.data.map((r: any) => [r.redeemable_id, r.holder_role, r.voucher_type]),
      [[owner.id, 'MEMBER', 'LOYALTY_CARD']],
    );

    // Adding the same contact again answers it as it is, with no new event.
    const again = await ok(t, 'POST', `/v1/loyalties/${program.id}/members/${owner.code}/holders`, {
      holders: [kid],
    });
    assert.equal(again.holders[0].id, first.id);

    const list = await ok(t, 'GET', `/v1/loyalties/${program.id}/members/${owner.code}/holders`);
    assert.equal(list.object, 'list');
    assert.equal(list.data_ref, 'data');
    assert.equal(list.total, 2);
    assert.deepEqual(
      list.data.map((h: any) => h.id),
      [first.id, second.id],
    );

    await ok(t, 'DELETE', `/v1/loyalties/members/${owner.code}/holders/${first.id}`, undefined, 204);
    const gone = await t.api('DELETE', `/v1/loyalties/members/${owner.code}/holders/${first.id}`);
    assert.equal(gone.status, 404);
    assert.equal((await ok(t, 'GET', `/v1/loyalties/members/${owner.code}/holders`)).total, 1);
    // The member object shows its household, as a voucher shows its publications.
    const card = await ok(t, 'GET', `/v1/loyalties/${program.id}/members/${owner.code}`);
    assert.deepEqual(card.holders, { object: 'list', count: 1, url: `/v1/loyalties/members/${owner.code}/holders` });
    const members = await ok(t, 'GET', `/v1/loyalties/${program.id}/members`);
    assert.equal(members.vouchers[0].holders.count, 1);

    // Back again: a new number (numbers are never given twice).
    const back = await ok(t, 'POST', `/v1/loyalties/members/${owner.code}/holders`, { holders: [kid] });
    assert.equal(back.holders[0].member_id, 3);

    const events = (await allEvents(t)).filter((e) => e.type.startsWith('subscription_member'));
    assert.deepEqual(
      events.map((e) => [e.type, e.data.member_id]),
      [
        ['subscription_member_added', 1],
        ['subscription_member_added', 2],
        ['subscription_member_removed', 1],
        ['subscription_member_added', 3],
      ],
    );
    assert.deepEqual(events[0].data, {
      loyalty_program: { id: program.id, name: 'Family Club' },
      member_id: 1,
      loyalty_subscription_id: owner.id,
      customer_id: first.customer_id,
    });
    assertEventsMatchCatalog(events);
    const types = await ok(t, 'GET', '/v1/event-types/subscription_member_added');
    assert.equal(types.emitted, true);
  });

  it('refuses a contact in two subscriptions of one program, the owner, a revoked card, unknown holders', async () => {
    const program = await createProgram(t);
    const a = await createMember(t, program.id);
    const b = await createMember(t, program.id);
    const shared = `shared-${uid()}`;
    await ok(t, 'POST', `/v1/loyalties/members/${a.code}/holders`, { holders: [{ source_id: shared }] });
    const twice = await t.api('POST', `/v1/loyalties/members/${b.code}/holders`, { holders: [shared] });
    assert.equal(twice.status, 409);
    assert.equal(twice.body.key, 'member_of_other_subscription');
    assert.ok(twice.body.request_id);
    // All or nothing: the other contact of the refused request was not added either.
    const mixed = await t.api('POST', `/v1/loyalties/members/${b.code}/holders`, {
      holders: [{ source_id: `fresh-${uid()}` }, shared],
    });
    assert.equal(mixed.status, 409);
    assert.equal((await ok(t, 'GET', `/v1/loyalties/members/${b.code}/holders`)).total, 0);

    // The holder of a card of the program cannot be a contact in it, nor in its own card.
    const own = await t.api('POST', `/v1/loyalties/members/${b.code}/holders`, { holders: [a.holder_id] });
    assert.equal(own.status, 409);
    assert.equal(own.body.key, 'holds_own_subscription');
    const self = await t.api('POST', `/v1/loyalties/members/${a.code}/holders`, { holders: [a.holder_id] });
    assert.equal(self.body.key, 'holder_is_owner');

    // Nor can a contact join the program with a card of its own.
    const join = await t.api('POST', `/v1/loyalties/${program.id}/members`, { customer: shared });
    assert.equal(join.status, 409);
    assert.equal(join.body.key, 'member_of_other_subscription');

    // Another program is another subscription: allowed.
    const other = await createProgram(t);
    const c = await createMember(t, other.id);
    await ok(t, 'POST', `/v1/loyalties/members/${c.code}/holders`, { holders: [shared] });

    // The wrong campaign, an unknown card or holder: 404; a bad body: 400.
    assert.equal((await t.api('GET', `/v1/loyalties/${other.id}/members/${a.code}/holders`)).status, 404);
    assert.equal((await t.api('GET', '/v1/loyalties/members/NOPE/holders')).status, 404);
    assert.equal((await t.api('DELETE', `/v1/loyalties/members/${a.code}/holders/mc_nope`)).status, 404);
    const empty = await t.api('POST', `/v1/loyalties/members/${a.code}/holders`, { holders: [] });
    assert.equal(empty.status, 400);

    // A revoked card takes no new contacts.
    await ok(t, 'DELETE', `/v1/loyalties/${program.id}/members/${b.code}`);
    const revoked = await t.api('POST', `/v1/loyalties/members/${b.code}/holders`, {
      holders: [{ source_id: `x-${uid()}` }],
    });
    assert.equal(revoked.status, 422);
    assert.equal(revoked.body.key, 'loyalty_card_inactive');
  });

  it('imports a member with its external subscription id and a start in the past', async () => {
    const program = await createProgram(t, { name: 'Imported Club' });
    const created_at = '2024-01-31T10:00:00.000Z';
    const res = await t.api('POST', `/v1/loyalties/${program.id}/members`, {
      customer: { source_id: `imp-${uid()}` },
      loyalty_subscription_id: 'brevo-sub-1',
      created_at,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.created_at, created_at);
    assert.equal(res.body.loyalty_subscription_id, 'brevo-sub-1');
    const got = await ok(t, 'GET', `/v1/loyalties/members/${res.body.code}`);
    assert.equal(got.created_at, created_at);

    const dup = await t.api('POST', `/v1/loyalties/${program.id}/members`, {
      customer: { source_id: `imp-${uid()}` },
      loyalty_subscription_id: 'brevo-sub-1',
    });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.key, 'duplicate_subscription_id');
    const future = await t.api('POST', `/v1/loyalties/${program.id}/members`, {
      customer: { source_id: `imp-${uid()}` },
      created_at: new Date(Date.now() + 86_400_000).toISOString(),
    });
    assert.equal(future.status, 400);
    assert.equal(future.body.key, 'created_at_in_future');

    await ok(t, 'POST', `/v1/loyalties/members/${res.body.code}/holders`, {
      holders: [{ source_id: `imp-kid-${uid()}` }],
    });
    await ok(t, 'DELETE', `/v1/loyalties/${program.id}/members/${res.body.code}`);
    const events = (await allEvents(t)).filter(
      (e) => e.resource_id === res.body.id || e.data?.loyalty_subscription_id === 'brevo-sub-1',
    );
    const created = events.find((e) => e.type === 'subscription_created');
    assert.deepEqual(created.data, {
      created_at,
      loyalty_program: { id: program.id, name: 'Imported Club' },
      loyalty_subscription_id: 'brevo-sub-1',
    });
    for (const type of ['subscription_member_added', 'subscription_revoked']) {
      assert.equal(events.find((e) => e.type === type)?.data.loyalty_subscription_id, 'brevo-sub-1', type);
    }
    assertEventsMatchCatalog(events);
  });

  it("a member contact's custom events and paid orders earn into the shared card, not a card of its own", async () => {
    const program = await createProgram(t, { auto_join: true });
    await ok(t, 'POST', `/v1/loyalties/${program.id}/earning-rules`, [
      { event: 'visit', loyalty: { type: 'FIXED', points: 10 } },
      {
        event: 'order.paid',
        loyalty: {
          type: 'PROPORTIONAL',
          calculation_type: 'ORDER_AMOUNT',
          order: { amount: { every: 100, points: 1 } },
        },
      },
    ]);
    const owner = await createMember(t, program.id);
    const contact = `hh-${uid()}`;
    await ok(t, 'POST', `/v1/loyalties/members/${owner.code}/holders`, { holders: [{ source_id: contact }] });

    // Named by source_id only (the one-statement lookup) and given whole (the other path).
    const visit = await ok(t, 'POST', '/v1/events', { event: 'visit', customer: { source_id: contact } });
    assert.equal(visit.earned.points, 10);
    await ok(t, 'POST', '/v1/events', { event: 'visit', customer: { source_id: contact, name: 'Kid' } });
    await ok(t, 'POST', '/v1/events', { event: 'visit', customer: contact, loyalty: { code: owner.code } });
    await ok(t, 'POST', '/v1/orders', { customer: { source_id: contact }, amount: 5000, status: 'PAID' });
    const card = await ok(t, 'GET', `/v1/loyalties/members/${owner.code}`);
    assert.equal(card.loyalty_card.points, 80);
    // Auto-join did not give the contact a card of its own.
    const cards = await ok(t, 'GET', `/v1/loyalties/${program.id}/members?customer=${contact}`);
    assert.equal(cards.total, 0);
    // The card's events name its holder, the owner.
    const added = (await allEvents(t)).filter(
      (e) => e.type === 'customer.voucher.loyalty_card.points_added' && e.data.voucher.code === owner.code,
    );
    assert.ok(added.length >= 4);
    for (const e of added) assert.equal(e.data.customer.id, owner.holder_id);

    // Removed from the household: its next visit auto-joins it with a card of its own.
    const holder = (await ok(t, 'GET', `/v1/loyalties/members/${owner.code}/holders`)).data[0];
    await ok(t, 'DELETE', `/v1/loyalties/members/${owner.code}/holders/${holder.id}`, undefined, 204);
    await ok(t, 'POST', '/v1/events', { event: 'visit', customer: { source_id: contact } });
    assert.equal((await ok(t, 'GET', `/v1/loyalties/members/${owner.code}`)).loyalty_card.points, 80);
    assert.equal((await ok(t, 'GET', `/v1/loyalties/${program.id}/members?customer=${contact}`)).total, 1);
  });

  it("a member contact's phone number finds the shared card in a keyword flow", async () => {
    const program = await createProgram(t, { name: 'Phone Club' });
    const owner = await createMember(t, program.id, { source_id: `ph-${uid()}`, name: 'Ana', phone: '+385911700001' });
    await ok(t, 'POST', `/v1/loyalties/members/${owner.code}/balance`, { points: 120 });
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000000701' });
    await createPointsFlow(t, program.id, { channels: [ch.id] });
    const stranger = await simulate(t, '+385911700002', 'POINTS', ch.id);
    assert.match(stranger[0], /couldn't find/);
    await ok(t, 'POST', `/v1/loyalties/members/${owner.code}/holders`, {
      holders: [{ source_id: `ph-kid-${uid()}`, name: 'Ivo', phone: '+385911700002' }],
    });
    const replies = await simulate(t, '+385911700002', 'POINTS', ch.id);
    assert.match(replies[0], new RegExp(`Hi Ivo, you have 120 points on card ${owner.code}`));

    // A flow that looks cards up by code answers a contact naming the shared card as its holder,
    // and a stranger naming it as an unknown code (card_code_reveals: none).
    const byCode = await createChannel(t, { provider: 'simulator', sender: '+10000000702' });
    await createFlow(t, {
      name: 'Card balance',
      program_id: program.id,
      channels: [byCode.id],
      triggers: [{ keywords: ['CARD'] }],
      unknown_sender_reply: 'No such card.',
      steps: [
        { id: 'find', type: 'find_member', by: 'card_code', next: 'reply' },
        { id: 'reply', type: 'reply', template: '{{ customer.name }}: {{ points }}' },
      ],
    });
    assert.deepEqual(await simulate(t, '+385911700002', `CARD ${owner.code}`, byCode.id), ['Ivo: 120']);
    assert.deepEqual(await simulate(t, '+385911700003', `CARD ${owner.code}`, byCode.id), ['No such card.']);
  });

  it('concurrent adds: one contact to two cards keeps one; contacts added at once get distinct numbers', async () => {
    const program = await createProgram(t);
    const a = await createMember(t, program.id);
    const b = await createMember(t, program.id);
    const contact = `race-${uid()}`;
    await ok(t, 'POST', '/v1/customers', { source_id: contact });
    const both = await Promise.all(
      [a, b].map((card) => t.api('POST', `/v1/loyalties/members/${card.code}/holders`, { holders: [contact] })),
    );
    assert.deepEqual(both.map((r) => r.status).sort(), [200, 409], JSON.stringify(both.map((r) => r.body)));

    const many = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        t.api('POST', `/v1/loyalties/members/${a.code}/holders`, { holders: [{ source_id: `many-${i}-${uid()}` }] }),
      ),
    );
    for (const r of many) assert.equal(r.status, 200, JSON.stringify(r.body));
    const list = await ok(t, 'GET', `/v1/loyalties/members/${a.code}/holders`);
    const numbers = list.data.map((h: any) => h.member_id);
    assert.equal(new Set(numbers).size, numbers.length);
    assert.equal(list.total, both[0].status === 200 ? 7 : 6);
  });

  it('imports members in bulk, all or none, with their subscription ids and start dates', async () => {
    const program = await createProgram(t, { name: 'Bulk Club' });
    const items = [1, 2, 3].map((i) => ({
      customer: { source_id: `bulk-${i}-${uid()}` },
      loyalty_subscription_id: `ext-${i}`,
      created_at: `2023-0${i}-15T08:00:00.000Z`,
    }));
    const imported = await ok(t, 'POST', `/v1/loyalties/${program.id}/members/import`, { members: items });
    assert.equal(imported.total, 3);
    assert.deepEqual(
      imported.vouchers.map((m: any) => [m.loyalty_subscription_id, m.created_at]),
      items.map((i) => [i.loyalty_subscription_id, i.created_at]),
    );
    // One refused item refuses the batch, naming it; nothing of it was imported.
    const bad = await t.api('POST', `/v1/loyalties/${program.id}/members/import`, {
      members: [
        { customer: { source_id: `bulk-4-${uid()}` }, loyalty_subscription_id: 'ext-4' },
        { customer: { source_id: `bulk-5-${uid()}` }, loyalty_subscription_id: 'ext-1' },
      ],
    });
    assert.equal(bad.status, 409);
    assert.equal(bad.body.key, 'duplicate_subscription_id');
    assert.match(bad.body.details, /^members\[1\]: /);
    assert.equal((await ok(t, 'GET', `/v1/loyalties/${program.id}/members`)).total, 3);
    const created = (await allEvents(t)).filter(
      (e) => e.type === 'subscription_created' && e.program_id === program.id,
    );
    assert.deepEqual(created.map((e) => e.data.loyalty_subscription_id).sort(), ['ext-1', 'ext-2', 'ext-3']);
    assertEventsMatchCatalog(created);
  });
});
