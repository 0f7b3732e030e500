import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdkModule from '@voucherify/sdk';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from '../helpers/server.ts';

// The official Voucherify SDK, unchanged, driving Tally's rewards: only apiUrl points elsewhere.
const { VoucherifyServerSide } = ((sdkModule as any).default ?? sdkModule) as typeof import('@voucherify/sdk');

describe('@voucherify/sdk rewards against Tally', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  it('client.rewards.* and loyalties reward calls: create, assign, member rewards, redeem, roll back', async () => {
    const client = VoucherifyServerSide({ applicationId: t.appId, secretKey: t.token, apiUrl: t.url });
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    await t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: 500 });

    const reward: any = await client.rewards.create({
      name: 'Water bottle',
      type: 'MATERIAL',
      stock: 10,
      parameters: { product: { id: 'prod_bottle', sku: 'sku_bottle_1l' } },
      attributes: { description: 'One litre' },
    } as any);
    assert.match(reward.id, /^rew_/);
    assert.equal(reward.parameters.product.sku_id, 'sku_bottle_1l');
    const coin: any = await client.rewards.create({
      name: 'Points pay',
      type: 'COIN',
      parameters: { coin: { exchange_ratio: '1', points_ratio: '10' } },
    } as any);
    assert.deepEqual(coin.parameters.coin, { exchange_ratio: 1, points_ratio: 10 });

    assert.equal(((await client.rewards.get(reward.id)) as any).name, 'Water bottle');
    const updated: any = await client.rewards.update({ id: reward.id, name: 'Bottle', stock: 5 } as any);
    assert.equal(updated.name, 'Bottle');
    assert.equal(updated.stock, 5);
    const list: any = await client.rewards.list({ limit: 10 });
    assert.ok(list.data.some((r: any) => r.id === reward.id));

    // Reward side.
    const other = await createProgram(t);
    const ra: any = await client.rewards.createAssignment(reward.id, {
      campaign: other.id,
      parameters: { loyalty: { points: 7 } },
    });
    assert.match(ra.id, /^rewa_/);
    assert.equal(((await client.rewards.getAssignment(reward.id, ra.id)) as any).related_object_id, other.id);
    const raUpdated: any = await client.rewards.updateAssignment(reward.id, {
      id: ra.id,
      parameters: { loyalty: { points: 8 } },
    } as any);
    assert.equal(raUpdated.parameters.loyalty.points, 8);
    assert.equal(((await client.rewards.listAssignments(reward.id)) as any).total, 1);
    await client.rewards.deleteAssignment(reward.id, ra.id);
    assert.equal(((await client.rewards.listAssignments(reward.id)) as any).total, 0);

    // Loyalty side.
    const created: any = await client.loyalties.createRewardAssignments(program.id, [
      { reward: reward.id, parameters: { loyalty: { points: 120 } } },
    ] as any);
    assert.ok(Array.isArray(created));
    const assignment = created[0];
    assert.equal(assignment.reward_id, reward.id);
    const listed: any = await client.loyalties.listRewardAssignments(program.id);
    assert.equal(listed.total, 1);
    assert.equal(((await client.loyalties.getRewardAssignment(program.id, assignment.id)) as any).id, assignment.id);
    const changed: any = await client.loyalties.updateRewardAssignment(program.id, {
      id: assignment.id,
      parameters: { loyalty: { points: 100 } },
    });
    assert.equal(changed.parameters.loyalty.points, 100);
    assert.equal(((await client.loyalties.getRewardDetails(program.id, assignment.id)) as any).id, reward.id);

    const mine: any = await client.loyalties.listMemberRewards(member.code, { affordable_only: true });
    assert.equal(mine.object, 'list');
    assert.deepEqual(
      mine.data.map((d: any) => [d.reward.id, d.assignment.parameters.loyalty.points, d.object]),
      [[reward.id, 100, 'loyalty_reward']],
    );

    const redemption: any = await client.loyalties.redeemReward(program.id, member.code, {
      reward: { id: reward.id },
      metadata: { desk: 'front' },
    });
    assert.match(redemption.id, /^r_/);
    assert.equal(redemption.result, 'SUCCESS');
    assert.equal(redemption.amount, 100);
    assert.equal(redemption.voucher.loyalty_card.balance, 400);
    assert.equal(redemption.reward.product.id, 'prod_bottle');

    const rolledBack: any = await client.redemptions.rollback(redemption.id, { reason: 'returned' } as any);
    assert.equal(rolledBack.redemption, redemption.id);
    assert.equal(((await client.loyalties.getMember(program.id, member.code)) as any).loyalty_card.balance, 500);

    // SDK errors carry Tally's key.
    await assert.rejects(
      client.loyalties.redeemReward(program.id, member.code, { reward: { id: 'rew_nope' } }),
      (e: any) => {
        assert.equal(e.code, 404);
        assert.equal(e.key, 'reward_not_found');
        return true;
      },
    );
    await assert.rejects(client.rewards.delete(reward.id), (e: any) => e.key === 'resource_in_use');
    await client.loyalties.deleteRewardAssignment(program.id, assignment.id);
    await client.rewards.delete(reward.id);
    await assert.rejects(client.rewards.get(reward.id), (e: any) => e.code === 404);
  });
});
