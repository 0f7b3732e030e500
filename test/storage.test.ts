import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from './helpers/server.ts';

// ctx.transaction on both backends: concurrent transactions are each all-or-nothing (on SQLite they
// share a group commit, each in its own savepoint), and nobody hears "done" before the commit.
describe('storage transactions', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  it('concurrent transactions: a failing one undoes exactly its own writes', async () => {
    const { ctx } = t.server;
    const now = ctx.clock.nowIso();
    const customer = (id: string) => ({ id, source_id: id, name: null, email: null, phone: null, description: null, birthdate: null, address: null, metadata: null, created_at: now, updated_at: null });
    const results = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) =>
        ctx.transaction(async (trx) => {
          await trx.insertInto('customers').values(customer(`cust_tx_${i}_a`)).execute();
          await trx.insertInto('customers').values(customer(`cust_tx_${i}_b`)).execute();
          if (i % 3 === 0) throw new Error(`fail ${i}`);
          if (i % 3 === 1) await trx.insertInto('customers').values(customer(`cust_tx_${i}_a`)).execute(); // unique violation
          return i;
        }),
      ),
    );
    const ids = (await ctx.database.db.selectFrom('customers').select('id').where('id', 'like', 'cust_tx_%').execute()).map((r) => r.id).sort();
    const expected: string[] = [];
    results.forEach((r, i) => {
      if (i % 3 === 2) {
        assert.equal(r.status, 'fulfilled');
        assert.equal((r as PromiseFulfilledResult<number>).value, i);
        expected.push(`cust_tx_${i}_a`, `cust_tx_${i}_b`);
      } else assert.equal(r.status, 'rejected', `transaction ${i} rejects`);
    });
    assert.deepEqual(ids, expected.sort());
    // The connection is usable afterwards, inside and outside transactions.
    assert.equal(await ctx.transaction(async (trx) => (await trx.selectFrom('customers').select('id').where('id', '=', 'cust_tx_2_a').executeTakeFirst())?.id), 'cust_tx_2_a');
  });
});
