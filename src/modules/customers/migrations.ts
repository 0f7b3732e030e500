import { type Kysely, sql } from 'kysely';
import type { TallyMigration } from '../../storage/migrate.ts';

// The number of customers, kept by CustomerService in the transaction that inserts or deletes one,
// in COUNTER_SLOTS rows (src/storage/counters.ts: the sum over the slots is the count). The
// unfiltered customers list's `total` reads it instead of counting the table. Backfilled from the
// customers there are. (Customers' tables are core's: numbered in core's range, after 0025.)
/** Counts the customers into slot 0 of an empty customer_counts (the backfill; bench:scale's loader too). */
export const CUSTOMER_COUNTS_BACKFILL = 'insert into customer_counts (slot, n) select 0, count(*) from customers';

export const customerCountsMigration: TallyMigration = {
  name: '0026_customers_counts',
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('customer_counts')
      .addColumn('slot', 'integer', (c) => c.primaryKey())
      .addColumn('n', 'integer', (c) => c.notNull())
      .execute();
    await sql.raw(CUSTOMER_COUNTS_BACKFILL).execute(db);
  },
};

/**
 * Customers by name (`GET /v1/customers?name=`, the console's member search by name) read the
 * index instead of the whole table; with `created_at, id` after it, a page of one name is read in
 * its order.
 */
export const customerNameIndexMigration: TallyMigration = {
  name: '0027_customers_name',
  async up(db: Kysely<any>) {
    await db.schema.createIndex('customers_name').on('customers').columns(['name', 'created_at', 'id']).execute();
  },
};
