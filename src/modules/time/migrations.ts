import type { TallyMigration } from '../../storage/migrate.ts';

// The time engine's tables (range 0800-0849).
// - due_items: one row per subject and kind of timed work (a card's next subscription anniversary,
//   its next membership reminder, its next tier anniversary in a group, ...), with the moment it is
//   next due. The worker finds due work by the index on next_at, never by scanning members, and
//   advances next_at in the transaction that fires the item.
// - due_skips: occurrences that came due longer ago than the look-back (the server was down):
//   recorded, not sent.
export const timeDueItemsMigration: TallyMigration = {
  name: '0800_time_due_items',
  async up(db) {
    await db.schema
      .createTable('due_items')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('subject_id', 'text', (c) => c.notNull())
      .addColumn('scope_id', 'text', (c) => c.notNull())
      .addColumn('program_id', 'text')
      .addColumn('anchor_at', 'text', (c) => c.notNull())
      .addColumn('next_at', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('due_items_subject', ['kind', 'subject_id', 'scope_id'])
      .execute();
    await db.schema.createIndex('due_items_next').on('due_items').columns(['next_at']).execute();

    await db.schema
      .createTable('due_skips')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('event_types', 'text', (c) => c.notNull())
      .addColumn('subject_id', 'text', (c) => c.notNull())
      .addColumn('scope_id', 'text', (c) => c.notNull())
      .addColumn('program_id', 'text')
      .addColumn('due_at', 'text', (c) => c.notNull())
      .addColumn('skipped_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('due_skips_due').on('due_skips').columns(['due_at', 'id']).execute();
  },
};
