import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freshDatabaseUrl } from '../../../test/helpers/server.ts';
import { systemClock } from '../../lib/clock.ts';
import { openDatabase, type Executor } from '../../storage/database.ts';
import { migrateToLatest } from '../../storage/migrate.ts';
import { modules } from '../index.ts';
import { outboxProgressMigration } from './migrations.ts';

describe('outbox progress of the webhook fan-out', () => {
  it('an upgraded database keeps unread the events not fanned out; a failed take is undone', async () => {
    const { url, drop } = await freshDatabaseUrl();
    const database = openDatabase(url);
    const { db, dialect } = database;
    const progress = database.outboxProgress;
    try {
      const all = modules.flatMap((m) => m.migrations ?? []);
      // The schema as it was before: fanned-out events carried dispatched = 1.
      await migrateToLatest(
        db,
        dialect,
        all.filter((m) => m !== outboxProgressMigration),
      );
      const now = systemClock.nowIso();
      const event = (id: string, dispatched = 0) => ({
        id,
        type: 'balance_value_updated',
        data: '{}',
        resource_type: null,
        resource_id: null,
        program_id: null,
        created_at: now,
        dispatched,
      });
      await db
        .insertInto('outbox_events')
        .values([event('evt_old1', 1), event('evt_old2', 1), event('evt_new1'), event('evt_new2')])
        .execute();
      await migrateToLatest(db, dialect, all);

      const ids = async (seqs: number[], on: Executor = db) =>
        seqs.length === 0
          ? []
          : (await on.selectFrom('outbox_events').select('id').where('seq', 'in', seqs).orderBy('seq').execute()).map(
              (r) => r.id,
            );
      const readIds = async () =>
        (await db.selectFrom('outbox_events').select('id').where(progress.alreadyRead()).orderBy('seq').execute()).map(
          (r) => r.id,
        );
      assert.equal(await progress.hasUnread(db), true);
      assert.deepEqual(await readIds(), ['evt_old1', 'evt_old2']);

      // A fan-out whose transaction fails leaves them unread.
      await assert.rejects(
        database.transaction(async (trx) => {
          // (Read with the transaction's own executor: on SQLite the pool waits for the open batch.)
          assert.deepEqual(await ids(await progress.takeUnread(trx, 10, now), trx), ['evt_new1', 'evt_new2']);
          throw new Error('the fan-out failed');
        }),
        /the fan-out failed/,
      );
      assert.equal(await progress.hasUnread(db), true);

      const taken = await database.transaction((trx) => progress.takeUnread(trx, 10, now));
      assert.deepEqual(await ids(taken), ['evt_new1', 'evt_new2']);
      assert.equal(await progress.hasUnread(db), false);
      assert.deepEqual(await readIds(), ['evt_old1', 'evt_old2', 'evt_new1', 'evt_new2']);
      assert.deepEqual(await database.transaction((trx) => progress.takeUnread(trx, 10, now)), []);

      // New events are unread, a test event (dispatched = 1) never is.
      await database.transaction(async (trx) => {
        await trx
          .insertInto('outbox_events')
          .values([event('evt_later'), event('evt_test', 1)])
          .execute();
      });
      assert.equal(await progress.hasUnread(db), true);
      const later = await ids(await database.transaction((trx) => progress.takeUnread(trx, 10, now)));
      // SQLite's cursor passes over the test event (the fan-out skips it by its flag); PostgreSQL never lists it.
      assert.deepEqual(
        later.filter((id) => id !== 'evt_test'),
        ['evt_later'],
      );
      assert.equal(await progress.hasUnread(db), false);
    } finally {
      await database.close();
      await drop();
    }
  });
});
