import type { TallyMigration } from '../migrate.ts';

/**
 * Ledger entries by time: the console's points-per-day chart sums the last 30 days of them. The
 * index also holds type and points, so that sum reads the index alone (no row lookups).
 */
export const ledgerEntriesCreatedMigration: TallyMigration = {
  name: '0025_core_ledger_entries_created',
  async up(db) {
    await db.schema
      .createIndex('ledger_entries_created')
      .on('ledger_entries')
      .columns(['created_at', 'type', 'points'])
      .execute();
  },
};
