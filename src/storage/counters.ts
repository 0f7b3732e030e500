/**
 * Slotted counters: a count kept beside the rows it counts, changed in the same transaction as the
 * insert or delete, so a list's `total` is read from a few rows instead of counting the list.
 *
 * Invariant (every slotted counter table: members' `program_member_counts`, customers'
 * `customer_counts`): for each counted key, the SUM of `n` over its slots equals the number of
 * rows it counts, at every commit. A single slot means nothing alone (the migration's backfill
 * puts the whole count of existing rows in slot 0, so a slot may go negative as those rows go).
 *
 * Why slots: on PostgreSQL an `UPDATE … SET n = n + 1` locks its row until COMMIT, so one row per
 * counter would queue every concurrent insert of one program (or every new customer) behind the
 * previous one's commit. Each change instead picks one of COUNTER_SLOTS rows by its row's id
 * (`counterSlot`), so concurrent writers meet on a row 1 time in COUNTER_SLOTS. Writers never read
 * the counter: every change is one upsert that adds its delta in SQL (`n = n + excluded.n`), so
 * no update is lost. A transaction that changes several slots (an import) may deadlock with
 * another doing the same in the opposite order; PostgreSQL breaks it and the transaction runs
 * again (`transaction()` retries deadlocks): a stall, never a wrong count.
 */
export const COUNTER_SLOTS = 16;

/** The slot of a row's changes: a hash of its id (FNV-1a), so its insert and its delete use the same slot. */
export function counterSlot(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % COUNTER_SLOTS;
}
