import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from '../helpers/server.ts';

// Redemptions at once: stock and balance are never spent twice (both backends).

describe('reward redemptions under concurrency', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  const ok = async (method: string, path: string, body?: unknown) => {
    const res = await t.api(method, path, body);
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const count = async (type: string) =>
    Number(
      (
        await t.server.ctx.database.db
          .selectFrom('ledger_entries')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('type', '=', type)
          .executeTakeFirstOrThrow()
      ).n,
    );

  it('20 members redeem a MATERIAL reward with stock 1 at once: exactly one succeeds', async () => {
    const program = await createProgram(t);
    const reward = await ok('POST', '/v1/rewards', {
      name: 'Last one',
      stock: 1,
      parameters: { product: { id: 'p1' } },
    });
    await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 10 } } },
    ]);
    const members = [];
    for (let i = 0; i < 20; i++) {
      const m = await createMember(t, program.id);
      await ok('POST', `/v1/loyalties/members/${m.code}/balance`, { points: 10 });
      members.push(m);
    }
    const before = await count('POINTS_REDEMPTION');
    const results = await Promise.all(
      members.map((m) =>
        t.api('POST', `/v1/loyalties/${program.id}/members/${m.code}/redemption`, { reward: { id: reward.id } }),
      ),
    );
    const won = results.filter((r) => r.status === 200);
    assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
    for (const r of results.filter((x) => x.status !== 200)) {
      assert.equal(r.status, 422);
      assert.equal(r.body.key, 'reward_out_of_stock');
    }
    const after = await ok('GET', `/v1/rewards/${reward.id}`);
    assert.equal(after.redeemed, 1);
    // Each refusal is kept as a FAILURE record of the reward, naming the card and the reason.
    const failed = (await ok('GET', '/v1/redemptions?result=FAILURE&limit=100')).redemptions.filter(
      (r: any) => r.related_object_id === reward.id,
    );
    assert.equal(failed.length, 19);
    for (const r of failed) {
      assert.equal(r.status, 'FAILED');
      assert.equal(r.failure_code, 'reward_out_of_stock');
      assert.ok(members.some((m) => m.id === r.loyalty_card.id));
    }
    assert.equal((await count('POINTS_REDEMPTION')) - before, 1);
    const balances = await Promise.all(
      members.map(async (m) => (await ok('GET', `/v1/loyalties/members/${m.code}`)).loyalty_card.balance),
    );
    assert.deepEqual(balances.sort(), [0, ...Array(19).fill(10)].sort());
  });

  it('a balance covering one redemption, redeemed twice at once (by code and by id): one succeeds', async () => {
    const program = await createProgram(t);
    const reward = await ok('POST', '/v1/rewards', { name: 'Coffee', parameters: { product: { id: 'coffee' } } });
    await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 60 } } },
    ]);
    for (let round = 0; round < 3; round++) {
      const m = await createMember(t, program.id);
      await ok('POST', `/v1/loyalties/members/${m.code}/balance`, { points: 100 });
      const results = await Promise.all(
        [m.code, m.id].map((who) =>
          t.api('POST', `/v1/loyalties/members/${who}/redemption`, { reward: { id: reward.id } }),
        ),
      );
      const statuses = results.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 400], JSON.stringify(results.map((r) => r.body)));
      assert.equal(results.find((r) => r.status === 400)!.body.key, 'loyalty_card_points_exceeded');
      assert.equal((await ok('GET', `/v1/loyalties/members/${m.code}`)).loyalty_card.balance, 40);
    }
    const failed = (await ok('GET', '/v1/redemptions?result=FAILURE&limit=100')).redemptions.filter(
      (r: any) => r.related_object_id === reward.id,
    );
    assert.deepEqual(
      failed.map((r: any) => r.failure_code),
      Array(3).fill('loyalty_card_points_exceeded'),
    );
  });

  it('one redemption rolled back by 8 requests at once: one rollback, the points back once', async () => {
    const program = await createProgram(t);
    const reward = await ok('POST', '/v1/rewards', { name: 'Scarf', stock: 3, parameters: { product: { id: 's' } } });
    await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 30 } } },
    ]);
    const m = await createMember(t, program.id);
    await ok('POST', `/v1/loyalties/members/${m.code}/balance`, { points: 50 });
    const r = await ok('POST', `/v1/loyalties/members/${m.code}/redemption`, { reward: { id: reward.id } });
    const before = await count('POINTS_REFUND');
    const results = await Promise.all(
      Array.from({ length: 8 }, () => t.api('POST', `/v1/redemptions/${r.id}/rollback`)),
    );
    const statuses = results.map((x) => x.status).sort();
    assert.deepEqual(statuses, [200, ...Array(7).fill(422)], JSON.stringify(results.map((x) => x.body)));
    for (const x of results.filter((y) => y.status === 422)) assert.equal(x.body.key, 'already_rolled_back');
    assert.equal((await count('POINTS_REFUND')) - before, 1);
    assert.equal((await ok('GET', `/v1/loyalties/members/${m.code}`)).loyalty_card.balance, 50);
    assert.equal((await ok('GET', `/v1/rewards/${reward.id}`)).redeemed, 0);
  });
});
