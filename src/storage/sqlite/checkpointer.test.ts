import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sql } from 'kysely';
import { openDatabase } from '../database.ts';

// The WAL checkpointer thread of an SQLite file database: it checkpoints without the serving
// connection, and under sustained writes it makes the WAL start over instead of growing for ever.
test('SQLite: checkpoints run off the serving connection; the WAL stays bounded under sustained writes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-ckpt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'ckpt.db');
  const restartAbovePages = 64;
  const database = openDatabase(`sqlite:${file}`, { walRestartAbovePages: restartAbovePages });
  t.after(() => database.close());
  await sql`create table blobs (id integer primary key, body text not null)`.execute(database.db);

  // 8,000 rows of ~4 KB in transactions of 20 concurrent writers: ~32 MB through the WAL, 120
  // times the restart threshold. (The thread needs a few tens of ms to start: the first rounds
  // run before any checkpoint.)
  const body = 'x'.repeat(4000);
  let largestWal = 0;
  for (let round = 0; round < 400; round++) {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        database.transaction((trx) =>
          sql`insert into blobs (id, body) values (${round * 20 + i + 1}, ${body})`.execute(trx),
        ),
      ),
    );
    if (existsSync(`${file}-wal`)) largestWal = Math.max(largestWal, statSync(`${file}-wal`).size);
    // Let the checkpointer thread run between rounds as a steady request stream would.
    await new Promise((r) => setTimeout(r, 2));
  }
  const written = 8000 * 4000;
  assert.ok(largestWal > 0, 'the database is in WAL mode');
  // Without start-overs the WAL would hold all of it; the file stays at its high-water mark. (Half
  // of it, not less: with the other test files loading both cores, the thread may lag a while.)
  assert.ok(
    largestWal < written / 2,
    `the WAL started over (largest ${largestWal} bytes for ${written} bytes written)`,
  );

  // Nothing lost, and once writes stop every frame reaches the database file without this
  // connection checkpointing (wal_autocheckpoint is 0 on it).
  const { n } = (await sql<{ n: number }>`select count(*) as n from blobs`.execute(database.db)).rows[0];
  assert.equal(n, 8000);
  assert.equal(
    (await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(database.db)).rows[0]
      .wal_autocheckpoint,
    0,
  );
  // The pages reach the database file itself: only a checkpoint writes there.
  let fileSize = 0;
  // Up to 30 s: on a loaded machine (other test files on both cores) the thread may lag.
  for (let i = 0; i < 600 && fileSize < written; i++) {
    await new Promise((r) => setTimeout(r, 50));
    fileSize = statSync(file).size;
  }
  assert.ok(fileSize >= written, `the checkpointer thread copied the pages into the database file (${fileSize} bytes)`);

  await database.close();
  await database.close(); // twice is harmless (t.after closes too)
  // Closing stops the thread and the last connection removes the WAL.
  assert.equal(existsSync(`${file}-wal`), false);
});
