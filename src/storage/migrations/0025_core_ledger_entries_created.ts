import type { TallyMigration } from '../migrate.ts';

/** Ledger entries by time: the console's points-per-day chart reads the last 30 days of them. */
export const ledgerEntriesCreatedMigration: TallyMigration = {
  name: '0025_core_ledger_entries_created',
  async up(db) {
    await db.schema.createIndex('ledger_entries_created').on('ledger_entries').column('created_at').execute();
  },
};
