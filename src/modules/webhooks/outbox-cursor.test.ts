import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freshDatabaseUrl } from '../../../test/helpers/server.ts';
import { systemClock } from '../../lib/clock.ts';
import { openDatabase } from '../../storage/db.ts';
import { migrateToLatest } from '../../storage/migrate.ts';
import { modules } from '../index.ts';
import { outboxCursorMigration } from './migrations.ts';
import { eventsAfter, lockCursor, moveCursor, readCursor } from './outbox-cursor.ts';

describe('outbox cursor', () => {
  it('an upgraded database keeps the events not yet fanned out ahead of the cursor, the others behind it', async () => {
    const { url, drop } = await freshDatabaseUrl();
    const database = openDatabase(url);
    try {
      const all = modules.flatMap((m) => m.migrations ?? []);
      // The schema as it was before the cursor: fanned-out events carried dispatched = 1.
      await migrateToLatest(database.db, database.dialect, all.filter((m) => m !== outboxCursorMigration));
      const now = systemClock.nowIso();
      const event = (id: string, dispatched: number) => ({ id, type: 'balance_value_updated', data: '{}', resource_type: null, resource_id: null, program_id: null, created_at: now, dispatched });
      await database.db.insertInto('outbox_events').values([event('evt_old1', 1), event('evt_old2', 1), event('evt_new1', 0), event('evt_new2', 0)]).execute();
      await migrateToLatest(database.db, database.dialect, all);

      const cursor = await readCursor(database.db);
      assert.ok(cursor);
      const ahead = await eventsAfter(database.db, database.dialect, cursor, 10);
      const ids = async (seqs: number[]) =>
        (await database.db.selectFrom('outbox_events').select('id').where('seq', 'in', seqs).orderBy('seq').execute()).map((r) => r.id);
      assert.deepEqual(await ids(ahead.map((e) => e.seq)), ['evt_new1', 'evt_new2']);

      // Moving the cursor past them leaves nothing ahead; a later event is ahead again.
      await database.transaction(async (trx) => {
        const locked = await lockCursor(trx, database.dialect);
        assert.deepEqual(locked, cursor);
        const last = ahead[ahead.length - 1];
        await moveCursor(trx, { xid: last.xid, seq: last.seq }, now);
      });
      const moved = (await readCursor(database.db))!;
      assert.equal((await eventsAfter(database.db, database.dialect, moved, 10)).length, 0);
      await database.transaction(async (trx) => {
        await trx.insertInto('outbox_events').values(event('evt_later', 0)).execute();
      });
      assert.deepEqual(await ids((await eventsAfter(database.db, database.dialect, moved, 10)).map((e) => e.seq)), ['evt_later']);
    } finally {
      await database.close();
      await drop();
    }
  });
});
