import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import net from 'node:net';
import { sql, type Kysely } from 'kysely';
import { freshDatabaseUrl } from '../../test/helpers/server.ts';
import { isUniqueViolation, openDatabase, type Database, type Executor } from './database.ts';
import { onTransactionConnection } from './postgres/connection.ts';
import { writeAtCommit } from './hot.ts';

// Transactions with a lane share database transactions (PostgreSQL group commit; SQLite batches
// every transaction). Each must still be atomic on its own: what one writes before it fails is
// undone, the others of its batch commit, and nobody hears "done" before the commit.
describe('group commit', () => {
  let database: Database;
  let drop: () => Promise<void>;
  const db = () => database.db as unknown as Kysely<any>;
  const q = (trx: Executor) => trx as unknown as Kysely<any>;
  const insert = (trx: Executor, id: string, n = 0) => ({
    key: 'gc.insert',
    params: [id, n],
    build: () => q(trx).insertInto('gc_rows').values({ id, n }),
  });
  const rows = async () =>
    Object.fromEntries(
      (await db().selectFrom('gc_rows').select(['id', 'n']).orderBy('id').execute()).map((r) => [r.id, Number(r.n)]),
    );

  before(async () => {
    const fresh = await freshDatabaseUrl();
    drop = fresh.drop;
    database = openDatabase(fresh.url, { lanes: 2 });
    await sql`create table gc_rows (id text primary key, n bigint not null)`.execute(db());
  });
  after(async () => {
    await database.close();
    await drop();
  });

  it('many transactions of one lane: each one that fails is undone alone, the others commit', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) =>
        database.transaction(
          async (trx) => {
            await q(trx)
              .insertInto('gc_rows')
              .values({ id: `a${String(i).padStart(2, '0')}`, n: i })
              .execute();
            // Every 7th writes and then throws: its insert must not survive.
            if (i % 7 === 3) throw new Error(`refused ${i}`);
            // Every 11th fails in the database after writing: its insert must not survive either.
            if (i % 11 === 5) await sql`insert into gc_rows (id, n) values (${`null-${i}`}, null)`.execute(trx);
            return i;
          },
          { lane: 'card-1' },
        ),
      ),
    );
    const expected: Record<string, number> = {};
    for (const [i, r] of results.entries()) {
      const refused = i % 7 === 3 || i % 11 === 5;
      assert.equal(r.status, refused ? 'rejected' : 'fulfilled', `transaction ${i}`);
      if (r.status === 'fulfilled') assert.equal(r.value, i);
      if (!refused) expected[`a${String(i).padStart(2, '0')}`] = i;
    }
    assert.deepEqual(
      await rows().then((all) => Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith('a')))),
      expected,
    );
  });

  it('a kept write that fails fails its own transaction only; its earlier writes are undone', async () => {
    await database.transaction((trx) => writeAtCommit(trx, [insert(trx, 'b-taken')]), { lane: 'x' });
    // On PostgreSQL a transaction's kept writes go out with the next one's first statement: the
    // duplicate fails there, and the next one (which writes first, or throws before any query)
    // must neither take the blame nor lose its own outcome.
    const ids = ['b1', 'b-taken', 'b2', 'b-taken', 'b-throws', 'b3'];
    const results = await Promise.allSettled(
      ids.map((id, i) =>
        database.transaction(
          async (trx) => {
            if (id === 'b-throws') throw new Error('refused before any query');
            await q(trx)
              .insertInto('gc_rows')
              .values({ id: `${id}-before-${i}`, n: 1 })
              .execute();
            // On PostgreSQL sent only after the function returned: the duplicate fails there.
            await writeAtCommit(trx, [insert(trx, id, 2)]);
          },
          { lane: 'x' },
        ),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'rejected', 'fulfilled'],
    );
    for (const i of [1, 3])
      assert.ok(
        isUniqueViolation((results[i] as PromiseRejectedResult).reason),
        String((results[i] as PromiseRejectedResult).reason),
      );
    assert.equal(((results[4] as PromiseRejectedResult).reason as Error).message, 'refused before any query');
    const all = await rows();
    for (const [i, id] of [
      [0, 'b1'],
      [2, 'b2'],
      [5, 'b3'],
    ] as const) {
      assert.equal(all[id], 2);
      assert.equal(all[`${id}-before-${i}`], 1);
    }
    assert.equal(all['b-taken-before-1'], undefined, 'the failed transaction kept none of its writes');
    assert.equal(all['b-taken-before-3'], undefined, 'the failed transaction kept none of its writes');
    assert.equal(all['b-taken'], 0, 'the first row is untouched');
  });

  it('answers only after the commit: what a transaction wrote is visible to others when it resolves', async () => {
    const seen = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        database
          .transaction(
            async (trx) => {
              await q(trx)
                .insertInto('gc_rows')
                .values({ id: `c${i}`, n: i })
                .execute();
            },
            { lane: `card-${i % 3}` },
          )
          // Read on the pool, outside any transaction: sees only committed rows.
          .then(() => db().selectFrom('gc_rows').select('n').where('id', '=', `c${i}`).executeTakeFirst()),
      ),
    );
    for (const [i, row] of seen.entries()) assert.equal(Number(row?.n), i, `c${i} committed before its answer`);
  });

  it('a lane whose connection is killed mid-batch goes on: the batch runs again, nothing is lost or doubled', {
    skip: process.env.TALLY_TEST_BACKEND === 'sqlite' && 'PostgreSQL only',
  }, async (t) => {
    if (database.dialect !== 'postgres') return t.skip('PostgreSQL only');
    await db().insertInto('gc_rows').values({ id: 'killed', n: 0 }).execute();
    let killed = false;
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        database.transaction(
          async (trx) => {
            await sql`update gc_rows set n = n + 1 where id = 'killed'`.execute(trx);
            if (i === 10 && !killed) {
              killed = true;
              // The backend serving this batch dies (a restart, an admin's pg_terminate_backend).
              const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
              await sql`select pg_terminate_backend(${rows[0].pid})`.execute(db());
              await sql`select 1`.execute(trx);
            }
          },
          { lane: 'killed' },
        ),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const row = await db().selectFrom('gc_rows').select('n').where('id', '=', 'killed').executeTakeFirstOrThrow();
    // Every transaction that answered "done" counts exactly once; none that failed counts.
    assert.equal(Number(row.n), ok);
    assert.ok(ok >= 29, `the lane went on after the kill (${ok} of 40 done)`);
    // And the lane still works.
    await database.transaction((trx) => sql`update gc_rows set n = n + 1 where id = 'killed'`.execute(trx), {
      lane: 'killed',
    });
    assert.equal(
      Number((await db().selectFrom('gc_rows').select('n').where('id', '=', 'killed').executeTakeFirstOrThrow()).n),
      ok + 1,
    );
  });

  it('concurrent increments of one row over several lanes lose no update', async () => {
    await db().insertInto('gc_rows').values({ id: 'counter', n: 0 }).execute();
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        database.transaction(
          async (trx) => {
            await sql`update gc_rows set n = n + 1 where id = 'counter'`.execute(trx);
          },
          // Lanes named differently may still meet on one row: they wait for each other's commit.
          { lane: i % 2 === 0 ? 'by-code' : 'by-id' },
        ),
      ),
    );
    assert.equal((await rows()).counter, 100);
  });

  const pgOnly = { skip: process.env.TALLY_TEST_BACKEND === 'sqlite' && 'PostgreSQL only' };
  const backendPid = async (trx: Executor) =>
    Number((await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0].pid);

  it('a key with an unfinished transaction keeps its lane; other keys go to the least busy lane', pgOnly, async (t) => {
    if (database.dialect !== 'postgres') return t.skip('PostgreSQL only');
    // Queued in one turn of the event loop: each lane takes its whole queue as one batch, on one
    // connection, so the backend's pid names the lane.
    const same = Array.from({ length: 20 }, () => database.transaction(backendPid, { lane: 'same-card' }));
    const others = Array.from({ length: 20 }, (_, i) => database.transaction(backendPid, { lane: `other-${i}` }));
    const samePids = new Set(await Promise.all(same));
    const otherPids = await Promise.all(others);
    assert.equal(samePids.size, 1, 'one card, one lane');
    assert.ok(
      !otherPids.some((pid) => samePids.has(pid)),
      'the other cards went to the idle lane, not behind the busy one',
    );

    // 40 different cards over the 2 lanes: 20 each (a hash of the key gives uneven queues).
    const spread = await Promise.all(
      Array.from({ length: 40 }, (_, i) => database.transaction(backendPid, { lane: `spread-${i}` })),
    );
    const perLane = new Map<number, number>();
    for (const pid of spread) perLane.set(pid, (perLane.get(pid) ?? 0) + 1);
    assert.deepEqual([...perLane.values()].sort(), [20, 20]);
  });

  it('statements nobody reads go out with the next one: a batch of n costs n + 2 socket writes', pgOnly, async (t) => {
    if (database.dialect !== 'postgres') return t.skip('PostgreSQL only');
    await Promise.all([1, 2, 3].map((i) => database.transaction(backendPid, { lane: `warm-${i}` })));
    const proto = net.Socket.prototype as unknown as {
      _write: (...a: unknown[]) => unknown;
      _writev: (...a: unknown[]) => unknown;
    };
    const [write, writev] = [proto._write, proto._writev];
    let writes = 0;
    proto._write = function (this: unknown, ...a: unknown[]) {
      writes++;
      return write.apply(this, a);
    };
    proto._writev = function (this: unknown, ...a: unknown[]) {
      writes++;
      return writev.apply(this, a);
    };
    const n = 10;
    try {
      // Each: one read, then kept writes (as a point addition: its card, then its entry and events).
      await Promise.all(
        Array.from({ length: n }, (_, i) =>
          database.transaction(
            async (trx) => {
              await sql`select 1`.execute(trx);
              await writeAtCommit(trx, [insert(trx, `w${i}`, i)]);
            },
            { lane: 'writes' },
          ),
        ),
      );
    } finally {
      proto._write = write;
      proto._writev = writev;
    }
    assert.equal(Object.keys(await rows()).filter((k) => /^w\d$/.test(k)).length, n);
    // BEGIN + SAVEPOINT + the first read; then per transaction its kept writes + RELEASE + SAVEPOINT
    // + the next one's read; the last one's kept writes alone; the last RELEASE + COMMIT. Sent one
    // by one it was 3n + 3.
    assert.ok(writes <= n + 2, `${writes} socket writes for ${n} transactions`);
  });

  it(
    'a deferred statement that fails fails the next statement with its own error; a rollback still succeeds',
    pgOnly,
    async (t) => {
      if (database.dialect !== 'postgres') return t.skip('PostgreSQL only');
      const err = await database
        .transaction(async (trx) => {
          await onTransactionConnection(trx, (connection) => connection.defer('RELEASE SAVEPOINT no_such_savepoint'));
          await sql`select 1`.execute(trx);
        })
        .then(
          () => undefined,
          (e: unknown) => e as { code?: string },
        );
      assert.equal(err?.code, '3B001', `the RELEASE's error (${JSON.stringify(err)})`);
      // The connection is clean for the next user: the transaction was rolled back.
      const { rows: after } = await sql<{ ok: number }>`select 1 as ok`.execute(db());
      assert.equal(after[0].ok, 1);
      // An empty transaction: BEGIN and COMMIT go out together.
      assert.equal(await database.transaction(async () => 'empty'), 'empty');
    },
  );
});
