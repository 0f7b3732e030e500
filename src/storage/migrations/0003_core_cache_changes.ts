import type { Kysely } from 'kysely';
import { autoIncrementType, type TallyMigration } from '../migrate.ts';

// The cache bus's log of changes on SQLite (src/lib/cache-bus.ts): a process that changes something
// other processes cache (an API key, a program, an earning rule) adds a row in the changing
// transaction; the other processes on the same file read the new rows every 250 ms. PostgreSQL
// deployments use NOTIFY instead and leave the table empty (both backends run the same migrations).
export const cacheChangesMigration: TallyMigration = {
  name: '0003_core_cache_changes',
  async up(db: Kysely<any>, dialect) {
    await db.schema
      .createTable('cache_changes')
      .addColumn('seq', autoIncrementType(dialect), (c) =>
        dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey(),
      )
      .addColumn('origin', 'text', (c) => c.notNull())
      .addColumn('topic', 'text', (c) => c.notNull())
      .addColumn('key', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
  },
};
