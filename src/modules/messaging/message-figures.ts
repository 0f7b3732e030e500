// What one message adds to its flow's figures of its UTC day, as bits (the flow report's running
// figures, live-days.ts). A message keeps the bits last folded into its day (`report_counted`), so
// a later change of status moves each count once, whatever folds it and however often.

/** Every message of the day (`messages`: a day shows in a report when it has any). */
export const COUNTED = 1;
/** An outbound message a provider accepted (`sent_at` set). */
export const SENT = 2;
export const DELIVERED = 4;
export const FAILED = 8;
/** An outbound message that reached (or is on its way to) a member: the member was messaged. */
export const MESSAGED = 16;
/** An inbound message: `inbound`, and its alias in `keyword_matches`. */
export const INBOUND = 32;
/** An inbound message from a member: the member wrote to the flow. */
export const WRITING = 64;
/** The bits that are about a member (per-day distinct members), not counts. */
export const MEMBER_BITS = MESSAGED | WRITING;

/** Statuses of an outbound message that never reached the member: not "messaged". */
export const NOT_MESSAGED = ['skipped', 'cancelled'];

export interface MessageFacts {
  direction: string;
  status: string;
  sent_at: string | null;
  membership_id: string | null;
}

/** The bits a message adds to its day in its current state. */
export function figuresOf(m: MessageFacts): number {
  if (m.direction !== 'out') return COUNTED | INBOUND | (m.membership_id ? WRITING : 0);
  let bits = COUNTED;
  if (m.sent_at) bits |= SENT;
  if (m.status === 'delivered') bits |= DELIVERED;
  if (m.status === 'failed') bits |= FAILED;
  if (m.membership_id && !NOT_MESSAGED.includes(m.status)) bits |= MESSAGED;
  return bits;
}

/** How one bit moves from `before` to `after`: -1, 0 or +1. */
export const bitChange = (before: number, after: number, bit: number) => (after & bit ? 1 : 0) - (before & bit ? 1 : 0);

/** The day's counts a message moves from `before` to `after` (each -1, 0 or +1). */
export function countChange(before: number, after: number) {
  const d = (bit: number) => bitChange(before, after, bit);
  return {
    messages: d(COUNTED),
    messages_sent: d(SENT),
    delivered: d(DELIVERED),
    failed: d(FAILED),
    inbound: d(INBOUND),
  };
}

export type DayCounts = ReturnType<typeof countChange>;

/**
 * Moves a day's counts by what a message changes from `before` to `after` (a day computed from its
 * messages adds each from 0; the running figures move by what changed); returns the change.
 */
export function moveCounts(day: DayCounts, before: number, after: number): DayCounts {
  const c = countChange(before, after);
  day.messages += c.messages;
  day.messages_sent += c.messages_sent;
  day.delivered += c.delivered;
  day.failed += c.failed;
  day.inbound += c.inbound;
  return c;
}

/**
 * How a member's standing on a day changes its distinct counts: `before` and `after` are the
 * MEMBER_BITS of all the member's messages of the day together. A member replied on a day when
 * the flow both messaged them and heard from them that day.
 */
export function memberChange(before: number, after: number) {
  const on = (bits: number, bit: number) => (bits & bit ? 1 : 0);
  const replied = (bits: number) => on(bits, MESSAGED) & on(bits, WRITING);
  return {
    messaged: on(after, MESSAGED) - on(before, MESSAGED),
    writing: on(after, WRITING) - on(before, WRITING),
    replied: replied(after) - replied(before),
  };
}

/**
 * Adds `n` matches of a keyword alias to a day's or a window's `keyword_matches`. Aliases are
 * words a flow chooses, `constructor`, `toString` and `__proto__` among them: only the object's own
 * keys count, and the alias is defined as an own key (an assignment to `__proto__` would be lost).
 */
export function addMatches(matches: Record<string, number>, alias: string, n: number): void {
  const value = (Object.hasOwn(matches, alias) ? matches[alias] : 0) + n;
  Object.defineProperty(matches, alias, { value, enumerable: true, writable: true, configurable: true });
}
