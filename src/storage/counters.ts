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
 * previous one's commit. Writers never read the counter: every change is one upsert that adds its
 * delta in SQL (`n = n + excluded.n`), so no update is lost.
 *
 * Which slot: the transaction's, not the row's (`counterSlot(trx)`): every change a transaction
 * makes to a counter goes to one slot, handed out in turn to transactions as they first count. A
 * transaction therefore holds at most one row of a key, so two transactions never lock two slots
 * of one key in opposite orders (a deadlock: PostgreSQL's group commit runs up to 32 requests in
 * one database transaction, and slots chosen per row would have each batch lock several slots in
 * arbitrary order). Concurrent transactions meet on a slot only when more than COUNTER_SLOTS count
 * at once. A row's insert and its delete may use different slots, hence slots that go negative.
 */
export const COUNTER_SLOTS = 16;

const slots = new WeakMap<object, number>();
let nextSlot = 0;

/** The counter slot of a transaction (or executor): the same for all its changes, given in turn. */
export function counterSlot(transaction: object): number {
  let slot = slots.get(transaction);
  if (slot === undefined) {
    slot = nextSlot;
    nextSlot = (nextSlot + 1) % COUNTER_SLOTS;
    slots.set(transaction, slot);
  }
  return slot;
}
