import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertLedgerInvariants } from '../../../test/helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from '../../../test/helpers/server.ts';

describe('points ledger', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  it('adds and removes points, newest transaction first', async () => {
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    const add = await t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: 120, reason: 'welcome' });
    assert.equal(add.status, 200);
    assert.deepEqual(
      {
        points: add.body.points,
        total: add.body.total,
        balance: add.body.balance,
        object: add.body.object,
        type: add.body.type,
      },
      { points: 120, total: 120, balance: 120, object: 'balance', type: 'loyalty_card' },
    );
    const remove = await t.api('POST', `/v1/loyalties/${program.id}/members/${member.code}/balance`, { points: -20 });
    assert.equal(remove.status, 200);
    assert.equal(remove.body.balance, 100);
    const txs = await t.api('GET', `/v1/loyalties/members/${member.code}/transactions`);
    assert.equal(txs.status, 200);
    assert.deepEqual(
      txs.body.data.map((x: any) => x.type),
      ['POINTS_REMOVAL', 'POINTS_ADDITION'],
    );
    assert.equal(txs.body.data[0].details.balance.balance, 100);
  });

  it('refuses a removal beyond the balance and changes nothing', async () => {
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    await t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: 10 });
    const res = await t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: -11 });
    assert.equal(res.status, 422);
    assert.equal(res.body.key, 'insufficient_balance');
    const card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.balance, 10);
  });
});
