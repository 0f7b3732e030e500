// Tables of the customers module beyond the core `customers`. Types only; see migrations.ts.

/** The number of customers, split in slots (src/storage/counters.ts): the sum of `n` is the count. */
export interface CustomerCountsTable {
  slot: number;
  n: number;
}

declare module '../../storage/schema.ts' {
  interface DB {
    customer_counts: CustomerCountsTable;
  }
}
