import { type Kysely, sql } from 'kysely';
import type { TallyMigration } from '../../storage/migrate.ts';

// Households: the member contacts of a membership (subscription), who share its balances, tier and
// vouchers. A removed contact keeps its row (removed_at), so its member number is never given again.
export const membersContactsMigration: TallyMigration = {
  name: '0850_members_contacts',
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('membership_contacts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('membership_id', 'text', (c) => c.notNull().references('memberships.id'))
      .addColumn('program_id', 'text', (c) => c.notNull())
      .addColumn('customer_id', 'text', (c) => c.notNull())
      // The seed's numeric `member_id`: 1, 2, 3 … per membership, in the order contacts were added.
      .addColumn('member_no', 'integer', (c) => c.notNull())
      .addColumn('metadata', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('removed_at', 'text')
      .execute();
    await db.schema
      .createIndex('membership_contacts_number')
      .on('membership_contacts')
      .columns(['membership_id', 'member_no'])
      .unique()
      .execute();
    // A contact belongs to at most one subscription per program (while it is a member of it).
    await db.schema
      .createIndex('membership_contacts_one_per_program')
      .on('membership_contacts')
      .columns(['program_id', 'customer_id'])
      .unique()
      .where(sql.ref('removed_at'), 'is', null)
      .execute();
    await db.schema
      .createIndex('membership_contacts_customer')
      .on('membership_contacts')
      .columns(['customer_id', 'program_id'])
      .execute();
  },
};

// The count of a program's memberships (all, and the ACTIVE ones), kept by MemberService in the
// transaction that inserts or revokes a card, in COUNTER_SLOTS rows per program (src/storage/counters.ts:
// the sum over a program's slots is its count). The members list's `total` and the program's
// `members` read it instead of counting the program's cards. Backfilled from the cards there are.
/**
 * Counts each program's memberships into slot 0 of an empty program_member_counts (the backfill;
 * bench:scale's loader too).
 */
export const MEMBER_COUNTS_BACKFILL = `insert into program_member_counts (program_id, slot, n, active)
  select program_id, 0, count(*), sum(case when status = 'ACTIVE' then 1 else 0 end)
  from memberships group by program_id`;

export const memberCountsMigration: TallyMigration = {
  name: '0851_members_counts',
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('program_member_counts')
      .addColumn('program_id', 'text', (c) => c.notNull())
      .addColumn('slot', 'integer', (c) => c.notNull())
      .addColumn('n', 'integer', (c) => c.notNull())
      .addColumn('active', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('program_member_counts_pk', ['program_id', 'slot'])
      .execute();
    await sql.raw(MEMBER_COUNTS_BACKFILL).execute(db);
  },
};
