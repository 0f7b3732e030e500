import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { createChannel, createPointsFlow, seedMember, simulate } from '../messaging/setup.ts';

// The `rewards` template variable comes from real rewards: the seed flow's
// `balance_gte_cheapest_reward` branch and `{{ rewards.affordable[0].name }}` at the member's price.

describe('rewards in messages', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  it('the points flow nudges to redeem once the balance covers the cheapest reward in stock', async () => {
    const phone = '+385911000777';
    const { program, member } = await seedMember(t, { phone, points: 300 });
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000000777' });
    await createPointsFlow(t, program.id, { channels: [ch.id] });
    // No reward yet: the plain balance reply.
    assert.match((await simulate(t, phone, 'points', ch.id))[0], /Redeem them for a treat/);

    const coffee = (
      await t.api('POST', '/v1/rewards', { name: 'a free coffee', parameters: { product: { id: 'coffee' } } })
    ).body;
    const soldOut = (
      await t.api('POST', '/v1/rewards', { name: 'a mug', stock: 0, parameters: { product: { id: 'mug' } } })
    ).body;
    await t.api('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: coffee.id, parameters: { loyalty: { points: 400 } } },
      { reward: soldOut.id, parameters: { loyalty: { points: 10 } } },
    ]);
    // 300 points, the cheapest reward in stock costs 400: still the balance reply.
    assert.match((await simulate(t, phone, 'points', ch.id))[0], /Redeem them for a treat/);

    await t.api('POST', `/v1/loyalties/members/${member.code ?? member.id}/balance`, { points: 150 });
    assert.deepEqual(await simulate(t, phone, 'points', ch.id), [
      'Hi Ana, you have 450 points: enough for a free coffee! Reply REDEEM to claim it.',
    ]);

    const services = t.server.services;
    const db = t.server.ctx.database.db;
    const vars = await services.messaging.context.build({
      db,
      services: { ...services, joinProgram: t.server.workflows.joinProgram },
      program: await services.programs.get(db, program.id),
      customer: null,
      membership: await services.members.get(db, member.code ?? member.id),
    });
    const rewards = vars.rewards as any;
    assert.equal(rewards.cheapest_cost, 400);
    assert.deepEqual(
      rewards.all.map((r: any) => [r.name, r.cost]),
      [['a free coffee', 400]],
    );
    assert.equal(rewards.affordable.length, 1);
  });
});
