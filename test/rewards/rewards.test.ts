import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from '../helpers/server.ts';

// Rewards over HTTP: the catalogue, assignments (per-tier cost), the member's list, redemption of
// MATERIAL, COIN and LOYALTY_PROGRAM rewards, refusals that change nothing, and rollback.

describe('rewards', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  const ok = async (method: string, path: string, body?: unknown, headers?: Record<string, string>) => {
    const res = await t.api(method, path, body, headers);
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const addPoints = (code: string, points: number) =>
    ok('POST', `/v1/loyalties/members/${code}/balance`, {
      points,
      source_id: `add-${code}-${points}-${Math.random()}`,
    });
  const balanceOf = async (code: string) => (await ok('GET', `/v1/loyalties/members/${code}`)).loyalty_card.balance;

  it('creates, reads, updates, lists and deletes rewards of each type; both input forms accepted', async () => {
    const material = await ok('POST', '/v1/rewards', {
      name: 'Mug',
      type: 'MATERIAL',
      stock: 3,
      parameters: { product: { id: 'prod_mug', sku: 'sku_red' } },
      attributes: { description: 'A red mug', image_url: 'https://example.com/mug.png' },
    });
    assert.match(material.id, /^rew_/);
    assert.equal(material.object, 'reward');
    assert.equal(material.type, 'MATERIAL');
    assert.deepEqual(material.parameters, { product: { id: 'prod_mug', sku_id: 'sku_red' } });
    assert.equal(material.stock, 3);
    assert.equal(material.redeemed, 0);
    assert.equal(material.attributes.description, 'A red mug');

    const coin = await ok('POST', '/v1/rewards', {
      name: 'Pay with points',
      parameters: { coin: { exchange_ratio: '20', points_ratio: '100' } },
    });
    assert.equal(coin.type, 'COIN');
    assert.deepEqual(coin.parameters, { coin: { exchange_ratio: 20, points_ratio: 100 } });

    const program = await createProgram(t);
    const points = await ok('POST', '/v1/rewards', {
      name: 'Points elsewhere',
      parameters: { campaign: { id: program.id, balance: 50 } },
    });
    assert.deepEqual(points.parameters, { campaign: { id: program.id, type: 'LOYALTY_PROGRAM', balance: 50 } });

    const noBalance = await t.api('POST', '/v1/rewards', { name: 'x', parameters: { campaign: { id: program.id } } });
    assert.equal(noBalance.status, 400);
    assert.equal(noBalance.body.key, 'invalid_reward');
    const unknownCampaign = await t.api('POST', '/v1/rewards', {
      name: 'x',
      parameters: { campaign: { id: 'camp_nope', balance: 5 } },
    });
    assert.equal(unknownCampaign.status, 404);
    const mismatch = await t.api('POST', '/v1/rewards', {
      name: 'x',
      type: 'COIN',
      parameters: { product: { id: 'p' } },
    });
    assert.equal(mismatch.status, 400);

    const updated = await ok('PUT', `/v1/rewards/${material.id}`, { name: 'Big mug', stock: 5 });
    assert.equal(updated.name, 'Big mug');
    assert.equal(updated.stock, 5);
    assert.deepEqual(updated.parameters, material.parameters);
    const changeType = await t.api('PUT', `/v1/rewards/${material.id}`, {
      parameters: { coin: { exchange_ratio: 1 } },
    });
    assert.equal(changeType.status, 400);

    const got = await ok('GET', `/v1/rewards/${material.id}`);
    assert.equal(got.name, 'Big mug');
    const list = await ok('GET', '/v1/rewards?limit=2');
    assert.equal(list.object, 'list');
    assert.equal(list.data_ref, 'data');
    assert.equal(list.data.length, 2);
    assert.ok(list.total >= 3);

    // Delete is refused while assigned, with Voucherify's ResourceInUseError fields.
    const [assignment] = await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: material.id, parameters: { loyalty: { points: 10 } } },
    ]);
    const inUse = await t.api('DELETE', `/v1/rewards/${material.id}`);
    assert.equal(inUse.status, 400);
    assert.equal(inUse.body.key, 'resource_in_use');
    assert.deepEqual(inUse.body.related_object_ids, [assignment.id]);
    assert.equal(inUse.body.related_object_type, 'reward_assignment');
    assert.equal(inUse.body.related_object_total, 1);
    assert.equal((await t.api('DELETE', `/v1/loyalties/${program.id}/rewards/${assignment.id}`)).status, 204);
    assert.equal((await t.api('DELETE', `/v1/rewards/${material.id}`)).status, 204);
    assert.equal((await t.api('GET', `/v1/rewards/${material.id}`)).status, 404);
  });

  it('assigns rewards on both sides; per-tier costs (MULTIPLY, CUSTOM) in tier and member views', async () => {
    const program = await createProgram(t);
    const a = await ok('POST', '/v1/rewards', { name: 'A', parameters: { product: { id: 'pa' } } });
    const b = await ok('POST', '/v1/rewards', { name: 'B', parameters: { product: { id: 'pb' } }, stock: 0 });
    const c = await ok('POST', '/v1/rewards', { name: 'C', parameters: { product: { id: 'pc' } } });

    // Loyalty side: a list in, a list out; a single object in, a list out.
    const created = await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: a.id, parameters: { loyalty: { points: 100 } } },
      { reward: b.id, parameters: { loyalty: { points: 10 } } },
    ]);
    assert.equal(created.length, 2);
    assert.match(created[0].id, /^rewa_/);
    assert.equal(created[0].object, 'reward_assignment');
    assert.equal(created[0].related_object_id, program.id);
    assert.equal(created[0].related_object_type, 'campaign');
    assert.equal(created[0].parameters.loyalty.points, 100);
    const single = await ok('POST', `/v1/loyalties/${program.id}/rewards`, {
      reward: c.id,
      parameters: { loyalty: { points: 300 } },
    });
    assert.ok(Array.isArray(single));
    // Reward side: the same assignment twice is a conflict.
    const dup = await t.api('POST', `/v1/rewards/${a.id}/assignments`, {
      campaign: program.id,
      parameters: { loyalty: { points: 1 } },
    });
    assert.equal(dup.status, 409);
    const noPoints = await t.api('POST', `/v1/rewards/${a.id}/assignments`, { campaign: (await createProgram(t)).id });
    assert.equal(noPoints.status, 400);

    const listed = await ok('GET', `/v1/rewards/${a.id}/assignments`);
    assert.equal(listed.total, 1);
    const viaRa = await ok('GET', `/v1/loyalties/${program.id}/reward-assignments/${created[0].id}`);
    assert.equal(viaRa.reward_id, a.id);
    assert.equal((await ok('GET', `/v1/loyalties/${program.id}/reward-assignments/${created[0].id}/reward`)).id, a.id);
    assert.equal((await ok('GET', `/v1/loyalties/${program.id}/rewards`)).total, 3);
    const put = await ok('PUT', `/v1/rewards/${a.id}/assignments/${created[0].id}`, {
      parameters: { loyalty: { points: 120 } },
    });
    assert.equal(put.parameters.loyalty.points, 120);

    // Tiers: Silver from 0 (A costs x0.5), Gold from 1000 (C at a custom 30).
    const tiers = await ok('POST', `/v1/loyalties/${program.id}/tiers`, [
      { name: 'Silver', points: { from: 0, to: 999 }, rewards: { [a.id]: { type: 'MULTIPLY', multiplier: 0.5 } } },
      { name: 'Gold', points: { from: 1000 }, rewards: { [c.id]: { type: 'CUSTOM', points: 30 } } },
    ]);
    const silver = tiers.find((x: any) => x.name === 'Silver') ?? tiers[0];
    const gold = tiers.find((x: any) => x.name === 'Gold') ?? tiers[1];
    const silverView = await ok('GET', `/v1/loyalties/${program.id}/tiers/${silver.id}/rewards`);
    const costIn = (view: any, id: string) =>
      view.data.find((d: any) => d.reward.id === id)?.assignment.parameters.loyalty.points;
    assert.equal(silverView.data[0].object, 'loyalty_tier_reward');
    assert.equal(costIn(silverView, a.id), 60);
    assert.equal(costIn(silverView, c.id), 300);
    const goldView = await ok('GET', `/v1/loyalties/${program.id}/tiers/${gold.id}/rewards`);
    assert.equal(costIn(goldView, c.id), 30);

    const member = await createMember(t, program.id);
    await addPoints(member.code, 100);
    const mine = await ok('GET', `/v1/loyalties/members/${member.code}/rewards`);
    assert.equal(mine.data[0].object, 'loyalty_reward');
    assert.equal(costIn(mine, a.id), 60, 'silver member pays the silver cost');
    assert.equal(costIn(mine, b.id), undefined, 'out of stock is hidden');
    assert.equal(costIn(mine, c.id), 300);
    const affordable = await ok('GET', `/v1/loyalties/members/${member.code}/rewards?affordable_only=true`);
    assert.deepEqual(
      affordable.data.map((d: any) => d.reward.id),
      [a.id],
    );
    await addPoints(member.code, 1000);
    const asGold = await ok('GET', `/v1/loyalties/members/${member.code}/rewards?affordable_only=true`);
    assert.equal(costIn(asGold, c.id), 30, 'gold member pays the custom cost');
    assert.equal(costIn(asGold, a.id), 120);

    // Redeeming at the tier's cost.
    const before = await balanceOf(member.code);
    const redeemed = await ok('POST', `/v1/loyalties/${program.id}/members/${member.code}/redemption`, {
      reward: { id: c.id },
    });
    assert.equal(redeemed.amount, 30);
    assert.equal(redeemed.reward.loyalty_tier_id, gold.id);
    assert.equal(await balanceOf(member.code), before - 30);
  });

  it('redeems a MATERIAL reward: POINTS_REDEMPTION, stock taken, answer and event; rollback undoes it', async () => {
    const program = await createProgram(t);
    const reward = await ok('POST', '/v1/rewards', {
      name: 'Tote bag',
      stock: 2,
      parameters: { product: { id: 'prod_tote', sku_id: 'sku_tote_blue' } },
    });
    await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 40 } } },
    ]);
    const member = await createMember(t, program.id);
    await addPoints(member.code, 100);

    const r = await ok(
      'POST',
      `/v1/loyalties/${program.id}/members/${member.code}/redemption`,
      { reward: { id: reward.id }, metadata: { store: 'north' } },
      { 'idempotency-key': 'tote-1' },
    );
    assert.match(r.id, /^r_/);
    assert.equal(r.object, 'redemption');
    assert.equal(r.result, 'SUCCESS');
    assert.equal(r.status, 'SUCCEEDED');
    assert.equal(r.amount, 40);
    assert.equal(r.customer_id, member.holder_id);
    assert.equal(r.related_object_type, 'voucher');
    assert.equal(r.related_object_id, member.id);
    assert.equal(r.voucher.loyalty_card.balance, 60);
    assert.equal(r.reward.id, reward.id);
    assert.equal(r.reward.type, 'MATERIAL');
    assert.equal(r.reward.product.id, 'prod_tote');
    assert.equal(r.reward.sku.id, 'sku_tote_blue');
    assert.deepEqual(r.loyalty_card, { points: 40 });
    assert.deepEqual(r.metadata, { store: 'north' });
    assert.equal(r.order, null);

    // The same key replays the answer and spends nothing more.
    const replay = await ok(
      'POST',
      `/v1/loyalties/${program.id}/members/${member.code}/redemption`,
      { reward: { id: reward.id }, metadata: { store: 'north' } },
      { 'idempotency-key': 'tote-1' },
    );
    assert.equal(replay.id, r.id);
    assert.equal(await balanceOf(member.code), 60);
    assert.equal((await ok('GET', `/v1/rewards/${reward.id}`)).redeemed, 1);

    const txs = await ok('GET', `/v1/loyalties/members/${member.code}/transactions`);
    const debit = txs.data.find((x: any) => x.type === 'POINTS_REDEMPTION');
    assert.equal(debit.details.balance.points, -40);
    assert.equal(debit.details.redemption.id, r.id);
    assert.deepEqual(debit.details.reward, { id: reward.id, name: 'Tote bag' });
    assert.equal(debit.source, null);
    assert.equal(debit.reason, null);

    const events = await t.server.ctx.database.db
      .selectFrom('outbox_events')
      .selectAll()
      .where('type', '=', 'balance_value_updated')
      .execute();
    const ev = events.map((e) => JSON.parse(e.data)).find((d) => d.source_event_id === r.id);
    assert.ok(ev, 'balance_value_updated carries the redemption id');
    assert.deepEqual(ev.transaction, { type: 'debit', value: 40 });
    assert.equal(ev.value, 60);

    // The route without the campaign answers the same shape.
    const r2 = await ok('POST', `/v1/loyalties/members/${member.code}/redemption`, { reward: { id: reward.id } });
    assert.equal(r2.amount, 40);
    assert.equal(await balanceOf(member.code), 20);

    const rb = await ok('POST', `/v1/redemptions/${r.id}/rollback`, { reason: 'changed mind' });
    assert.match(rb.id, /^rr_/);
    assert.equal(rb.redemption, r.id);
    assert.equal(rb.status, 'SUCCEEDED');
    assert.equal(await balanceOf(member.code), 60);
    assert.equal((await ok('GET', `/v1/rewards/${reward.id}`)).redeemed, 1);
    const refund = (await ok('GET', `/v1/loyalties/members/${member.code}/transactions`)).data.find(
      (x: any) => x.type === 'POINTS_REFUND',
    );
    assert.equal(refund.details.rollback.id, rb.id);
    assert.equal(refund.details.balance.points, 40);
    const again = await t.api('POST', `/v1/redemptions/${r.id}/rollback`);
    assert.equal(again.status, 422);
    assert.equal(again.body.key, 'already_rolled_back');
    assert.equal(await balanceOf(member.code), 60);
    assert.equal((await t.api('POST', '/v1/redemptions/r_nope/rollback')).status, 404);
  });

  it('a redemption sees a changed cost, a removed assignment and a deleted reward at once', async () => {
    const program = await createProgram(t);
    const reward = await ok('POST', '/v1/rewards', { name: 'Pin', parameters: { product: { id: 'pin' } } });
    const [assignment] = await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 10 } } },
    ]);
    const member = await createMember(t, program.id);
    await addPoints(member.code, 100);
    const redeem = () =>
      t.api('POST', `/v1/loyalties/members/${member.code}/redemption`, { reward: { id: reward.id } });
    assert.equal((await redeem()).body.amount, 10);
    await ok('PUT', `/v1/loyalties/${program.id}/rewards/${assignment.id}`, {
      parameters: { loyalty: { points: 25 } },
    });
    assert.equal((await redeem()).body.amount, 25);
    await ok('PUT', `/v1/rewards/${reward.id}`, { name: 'Enamel pin' });
    assert.equal((await redeem()).body.reward.name, 'Enamel pin');
    await ok('DELETE', `/v1/loyalties/${program.id}/rewards/${assignment.id}`);
    const unassigned = await redeem();
    assert.equal(unassigned.status, 400, JSON.stringify(unassigned.body));
    assert.equal(unassigned.body.key, 'reward_not_assigned');
    assert.equal(await balanceOf(member.code), 40);
  });

  it('pays part of an order with a COIN reward, with the documented rounding', async () => {
    const program = await createProgram(t);
    const coin = await ok('POST', '/v1/rewards', {
      name: '100 = $20',
      type: 'COIN',
      parameters: { coin: { exchange_ratio: 20, points_ratio: 100 } },
    });
    const [assignment] = await ok('POST', `/v1/loyalties/${program.id}/rewards`, [{ reward: coin.id }]);
    assert.equal(assignment.parameters, undefined);
    const member = await createMember(t, program.id);
    await addPoints(member.code, 5000);

    const some = await ok('POST', `/v1/loyalties/${program.id}/members/${member.code}/redemption`, {
      reward: { id: coin.id, points: 150 },
      order: { amount: 45000 },
    });
    assert.equal(some.amount, 100);
    assert.equal(some.order.discount_amount, 2000);
    assert.equal(some.order.total_amount, 43000);
    const all = await ok('POST', `/v1/loyalties/${program.id}/members/${member.code}/redemption`, {
      reward: { id: coin.id },
      order: { id: 'ord_1', amount: 45000 },
    });
    assert.equal(all.amount, 2300);
    assert.equal(all.order.discount_amount, 45000);
    assert.equal(all.order.total_amount, 0);
    assert.equal(all.order.id, 'ord_1');
    assert.equal(await balanceOf(member.code), 5000 - 100 - 2300);

    const noOrder = await t.api('POST', `/v1/loyalties/${program.id}/members/${member.code}/redemption`, {
      reward: { id: coin.id },
    });
    assert.equal(noOrder.status, 400);
    assert.equal(noOrder.body.key, 'missing_order');
    const tooMany = await t.api('POST', `/v1/loyalties/${program.id}/members/${member.code}/redemption`, {
      reward: { id: coin.id, points: 999999 },
      order: { amount: 100 },
    });
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.body.key, 'loyalty_card_points_exceeded');
    assert.equal(await balanceOf(member.code), 2600);
  });

  it("a LOYALTY_PROGRAM reward adds points to the customer's card of the other program (joining it)", async () => {
    const source = await createProgram(t);
    const target = await createProgram(t);
    const reward = await ok('POST', '/v1/rewards', {
      name: 'Partner points',
      parameters: { campaign: { id: target.id, balance: 75 } },
    });
    await ok('POST', `/v1/rewards/${reward.id}/assignments`, {
      campaign: source.id,
      parameters: { loyalty: { points: 10 } },
    });
    const member = await createMember(t, source.id);
    await addPoints(member.code, 10);
    const r = await ok('POST', `/v1/loyalties/${source.id}/members/${member.code}/redemption`, {
      reward: { id: reward.id },
    });
    assert.equal(r.reward.voucher.campaign_id, target.id);
    assert.equal(r.reward.voucher.loyalty_card.balance, 75);
    assert.equal(r.reward.voucher.holder_id, member.holder_id);
    assert.equal(await balanceOf(member.code), 0);

    const rb = await ok('POST', `/v1/redemptions/${r.id}/rollback`);
    assert.equal(rb.status, 'SUCCEEDED');
    assert.equal(await balanceOf(member.code), 10);
    assert.equal(await balanceOf(r.reward.voucher.code), 0);
  });

  it('refuses bad input with the reason; nothing changes but the FAILURE records of refused attempts', async () => {
    const program = await createProgram(t);
    const other = await createProgram(t);
    const reward = await ok('POST', '/v1/rewards', { name: 'Cap', stock: 5, parameters: { product: { id: 'cap' } } });
    const elsewhere = await ok('POST', '/v1/rewards', { name: 'Hat', parameters: { product: { id: 'hat' } } });
    await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 500 } } },
    ]);
    await ok('POST', `/v1/loyalties/${other.id}/rewards`, [
      { reward: elsewhere.id, parameters: { loyalty: { points: 1 } } },
    ]);
    const member = await createMember(t, program.id);
    await addPoints(member.code, 100);
    const path = `/v1/loyalties/${program.id}/members/${member.code}/redemption`;
    const db = t.server.ctx.database.db;
    const count = async (table: 'ledger_entries' | 'redemptions' | 'outbox_events') =>
      Number(
        (
          await db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = {
      entries: await count('ledger_entries'),
      redemptions: await count('redemptions'),
      events: await count('outbox_events'),
    };

    const cases: [unknown, number, string][] = [
      [{}, 400, 'missing_reward'],
      [{ reward: {} }, 400, 'missing_reward'],
      [{ reward: { id: 'rew_unknown' } }, 404, 'reward_not_found'],
      [{ reward: { id: elsewhere.id } }, 400, 'reward_not_assigned'],
      [{ reward: { id: reward.id } }, 400, 'loyalty_card_points_exceeded'],
      [{ reward: { id: reward.id, points: 3 } }, 400, 'invalid_points'],
      [{ reward: { id: 5 } }, 400, 'invalid_payload'],
    ];
    for (const [body, status, key] of cases) {
      const res = await t.api('POST', path, body);
      assert.equal(res.status, status, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.key, key);
      assert.ok(res.body.details, 'says why');
    }
    const unknownMember = await t.api('POST', `/v1/loyalties/${program.id}/members/NOPE-1/redemption`, {
      reward: { id: reward.id },
    });
    assert.equal(unknownMember.status, 404);

    assert.equal(await balanceOf(member.code), 100);
    assert.equal((await ok('GET', `/v1/rewards/${reward.id}`)).redeemed, 0);
    // Nothing changed but the FAILURE records of the two refused attempts on a known card (an
    // unknown reward, too few points); requests malformed in a field leave none.
    assert.deepEqual(
      {
        entries: await count('ledger_entries'),
        redemptions: await count('redemptions'),
        events: await count('outbox_events'),
      },
      { ...before, redemptions: before.redemptions + 2 },
    );
    const failed = await ok('GET', '/v1/redemptions?result=FAILURE&limit=2');
    assert.deepEqual(failed.redemptions.map((r: any) => [r.failure_code, r.loyalty_card.id]).reverse(), [
      ['reward_not_found', member.id],
      ['loyalty_card_points_exceeded', member.id],
    ]);
  });
});
