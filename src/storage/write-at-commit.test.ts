import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import { freshDatabaseUrl } from '../../test/helpers/server.ts';
import { isUniqueViolation, openDatabase, type Database, type Executor } from './database.ts';
import { writeAtCommit } from './hot.ts';

// writeAtCommit keeps a transaction's last writes on PostgreSQL and sends them before the COMMIT
// (or before any other query of the transaction); on SQLite they run at once. Either way the
// transaction must behave exactly as if each write had run where it was called.
describe('writes at commit', () => {
  let database: Database;
  let drop: () => Promise<void>;
  const db = () => database.db as unknown as Kysely<any>;
  const counter = (trx: Executor, id: string, by: number) => ({
    key: 'test.bump',
    params: [by, id],
    build: () =>
      (trx as unknown as Kysely<any>)
        .updateTable('wac_counters')
        .set({ n: sql`n + ${by}` })
        .where('id', '=', id),
  });
  const insert = (trx: Executor, id: string) => ({
    key: 'test.insert',
    params: [id, 0],
    build: () => (trx as unknown as Kysely<any>).insertInto('wac_counters').values({ id, n: 0 }),
  });
  const value = async (on: Executor, id: string) => {
    const row = await (on as unknown as Kysely<any>)
      .selectFrom('wac_counters')
      .select('n')
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? undefined : Number(row.n);
  };

  before(async () => {
    const fresh = await freshDatabaseUrl();
    drop = fresh.drop;
    database = openDatabase(fresh.url);
    await sql`create table wac_counters (id text primary key, n bigint not null)`.execute(db());
  });
  after(async () => {
    await database.close();
    await drop();
  });

  it('a read later in the transaction sees the kept writes; two writes of one shape both apply', async () => {
    await database.transaction(async (trx) => {
      await writeAtCommit(trx, [insert(trx, 'a')]);
      await writeAtCommit(trx, [counter(trx, 'a', 5)]);
      // Same shape again (a second update of the same row): kept apart, never in one statement.
      await writeAtCommit(trx, [counter(trx, 'a', 7)]);
      assert.equal(await value(trx, 'a'), 12);
      await writeAtCommit(trx, [counter(trx, 'a', 30)]);
    });
    assert.equal(await value(database.db, 'a'), 42);
  });

  it('a rollback drops the kept writes; a kept write that fails fails the whole transaction', async () => {
    await database.transaction(async (trx) => {
      await writeAtCommit(trx, [insert(trx, 'b')]);
    });
    await assert.rejects(
      database.transaction(async (trx) => {
        await writeAtCommit(trx, [counter(trx, 'b', 1)]);
        throw new Error('refused');
      }),
      /refused/,
    );
    assert.equal(await value(database.db, 'b'), 0);
    const failed = await database
      .transaction(async (trx) => {
        await writeAtCommit(trx, [counter(trx, 'b', 3)]);
        // A duplicate key: on PostgreSQL it fails only when sent, just before the COMMIT.
        await writeAtCommit(trx, [insert(trx, 'b')]);
      })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    assert.ok(isUniqueViolation(failed), `a unique violation, got ${String(failed)}`);
    assert.equal(await value(database.db, 'b'), 0, 'the update kept with it was not applied');
    // The connection is usable afterwards (nothing kept from the failed transaction leaks into the next).
    await database.transaction(async (trx) => {
      await writeAtCommit(trx, [counter(trx, 'b', 2)]);
    });
    assert.equal(await value(database.db, 'b'), 2);
  });

  it('outside a transaction the writes run at once', async () => {
    await writeAtCommit(database.db, [insert(database.db, 'c'), counter(database.db, 'c', 4)].slice(0, 1));
    await writeAtCommit(database.db, [counter(database.db, 'c', 4)]);
    assert.equal(await value(database.db, 'c'), 4);
  });
});
