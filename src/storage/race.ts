import { isUniqueViolation } from './database.ts';

// Signals that end a transaction early. Throwing out of the function given to `transaction()` rolls
// back everything it wrote; what the caller does next depends on the signal:
//
// - LostRace (this file): the transaction lost a race with a concurrent one. It inserted a row
//   whose unique key a transaction that committed first had just taken (a generated card code, a
//   join-once membership, a new customer or order, an activity's key, an idempotency key). Nothing
//   it wrote is kept, so running the whole transaction again is safe, and that run sees the
//   winner's row (the new card, "already a member", the first ingestion's answer).
//   `retryOnLostRace` runs it again a few times; the unique violation itself is turned into a
//   LostRace where the insert happens (`lostRaceOn`), so callers never read database errors.
// - Rollback with an answer (kept private to their module, each caught right around its
//   transaction): `DuplicateInbound` (messaging/flows/engine.ts: a copy of the same provider
//   message was stored first; the answer is "duplicate") and `ChunkTaken`
//   (messaging/broadcast.ts: another process prepared this broadcast chunk first; the answer is
//   "keep going"). These are not retried: the other transaction did the work.

/** The transaction lost a race with a concurrent one; safe to run again (it wrote nothing). */
export class LostRace extends Error {
  constructor(what = 'a concurrent transaction took the same unique key first') {
    super(what);
    this.name = 'LostRace';
  }
}

/** Rethrows `err` as a LostRace when it is a unique violation (the insert lost a race), else as is. */
export function lostRaceOn(err: unknown, what?: string): never {
  if (isUniqueViolation(err)) throw new LostRace(what);
  throw err;
}

/**
 * Runs `fn` (a whole transaction) again while it loses a race, at most `attempts` times in all;
 * the last LostRace is thrown to the caller. `alsoRetry`: other errors that mean the same (a unique
 * violation that surfaced at COMMIT, where it cannot be told apart from its insert).
 */
export async function retryOnLostRace<T>(
  fn: () => Promise<T>,
  attempts = 5,
  alsoRetry?: (err: unknown) => boolean,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if ((err instanceof LostRace || alsoRetry?.(err)) && attempt < attempts) continue;
      throw err;
    }
  }
}
