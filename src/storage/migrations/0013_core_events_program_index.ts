import type { TallyMigration, UntypedDb } from '../migrate.ts';

// Found missing by test/plans.test.ts (issue #18): `GET /v1/events?program_id=` walked the whole
// outbox (newest first, filtering on the program). With this index it reads the program's events
// only, newest first, up to the page's limit; filtered by type too, the planner picks this one or
// `outbox_type_seq`, whichever is narrower.
export const eventsProgramIndexMigration: TallyMigration = {
  name: '0013_core_events_program_index',
  async up(db: UntypedDb) {
    await db.schema.createIndex('outbox_program_seq').on('outbox_events').columns(['program_id', 'seq']).execute();
  },
};
