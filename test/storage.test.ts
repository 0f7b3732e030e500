import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backend, startTestServer, type TestServer } from './helpers/server.ts';

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
    const customer = (id: string) => ({
      id,
      source_id: id,
      name: null,
      email: null,
      phone: null,
      description: null,
      birthdate: null,
      address: null,
      metadata: null,
      created_at: now,
      updated_at: null,
    });
    const results = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) =>
        ctx.transaction(async (trx) => {
          await trx
            .insertInto('customers')
            .values(customer(`cust_tx_${i}_a`))
            .execute();
          await trx
            .insertInto('customers')
            .values(customer(`cust_tx_${i}_b`))
            .execute();
          if (i % 3 === 0) throw new Error(`fail ${i}`);
          if (i % 3 === 1)
            await trx
              .insertInto('customers')
              .values(customer(`cust_tx_${i}_a`))
              .execute(); // unique violation
          return i;
        }),
      ),
    );
    const ids = (await ctx.database.db.selectFrom('customers').select('id').where('id', 'like', 'cust_tx_%').execute())
      .map((r) => r.id)
      .sort();
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
    assert.equal(
      await ctx.transaction(
        async (trx) =>
          (await trx.selectFrom('customers').select('id').where('id', '=', 'cust_tx_2_a').executeTakeFirst())?.id,
      ),
      'cust_tx_2_a',
    );
  });
});

describe('storage: a schema change under cached statements', () => {
  it('reads and balance changes keep working after another process adds a column', async () => {
    const t = await startTestServer();
    try {
      const program = await (await t.api('POST', '/v1/loyalties', { name: 'Schema' })).body;
      const member = (
        await t.api('POST', `/v1/loyalties/${program.id}/members`, { customer: { source_id: 'schema-1' } })
      ).body;
      // Warm every pooled connection's prepared statements.
      await Promise.all(Array.from({ length: 30 }, () => t.api('GET', '/v1/customers/schema-1')));
      await Promise.all(
        Array.from({ length: 30 }, () => t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: 1 })),
      );
      const { sql } = await import('kysely');
      await sql`ALTER TABLE customers ADD COLUMN extra_note TEXT`.execute(t.server.ctx.database.db);
      await sql`ALTER TABLE balances ADD COLUMN extra_note TEXT`.execute(t.server.ctx.database.db);
      const reads = await Promise.all(Array.from({ length: 30 }, () => t.api('GET', '/v1/customers/schema-1')));
      assert.deepEqual([...new Set(reads.map((r) => r.status))], [200]);
      const writes = await Promise.all(
        Array.from({ length: 30 }, () => t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: 1 })),
      );
      assert.deepEqual([...new Set(writes.map((r) => r.status))], [200]);
      const card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
      assert.equal(card.body.loyalty_card.balance, 60);
    } finally {
      await t.close();
    }
  });
});

describe('storage: SQLite group commit when a batch fails', () => {
  it('a transaction that breaks the shared transaction rejects alone; the others are retried and commit', {
    skip: backend !== 'sqlite',
  }, async () => {
    const t = await startTestServer();
    try {
      const { ctx } = t.server;
      const { sql } = await import('kysely');
      const now = ctx.clock.nowIso();
      const row = (id: string) => ({
        id,
        source_id: id,
        name: null,
        email: null,
        phone: null,
        description: null,
        birthdate: null,
        address: null,
        metadata: null,
        created_at: now,
        updated_at: null,
      });
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          ctx.transaction(async (trx) => {
            await trx
              .insertInto('customers')
              .values(row(`cust_gc_${i}`))
              .execute();
            if (i === 7) {
              await sql`ROLLBACK`.execute(trx); // ends the shared transaction under everyone's feet
              throw new Error('boom');
            }
            return i;
          }),
        ),
      );
      results.forEach((r, i) => {
        if (i === 7) assert.equal(r.status === 'rejected' && (r.reason as Error).message, 'boom');
        else assert.deepEqual(r, { status: 'fulfilled', value: i });
      });
      const ids = (
        await ctx.database.db.selectFrom('customers').select('id').where('id', 'like', 'cust_gc_%').execute()
      )
        .map((r) => r.id)
        .sort();
      assert.deepEqual(
        ids,
        Array.from({ length: 20 }, (_, i) => `cust_gc_${i}`)
          .filter((id) => id !== 'cust_gc_7')
          .sort(),
      );
    } finally {
      await t.close();
    }
  });
});

describe('SQLite synchronous setting', { skip: backend !== 'sqlite' }, () => {
  it('is NORMAL by default and FULL with TALLY_SQLITE_SYNCHRONOUS=FULL', async () => {
    const { sql } = await import('kysely');
    // PRAGMA synchronous answers 1 for NORMAL, 2 for FULL.
    for (const [setting, expected] of [
      [undefined, 1],
      ['FULL', 2],
      ['NORMAL', 1],
    ] as const) {
      const t = await startTestServer({ config: setting ? { sqliteSynchronous: setting } : {} });
      try {
        const { rows } = await sql<{ synchronous: number }>`PRAGMA synchronous`.execute(t.server.ctx.database.db);
        assert.equal(rows[0]?.synchronous, expected, `${setting ?? 'default'}`);
      } finally {
        await t.close();
      }
    }
  });
});
