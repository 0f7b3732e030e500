import { DateTime } from 'luxon';

// Calendar arithmetic of the time engine, on the program's wall clock (an IANA zone). No domain.
//
// Month anniversary n of an anchor (a subscription's created_at, the date a member entered a tier)
// is the anchor plus n months, counted from the anchor every time (never from the previous
// anniversary), with the day clamped to the end of a shorter month: 31 January → 28/29 February,
// 31 March, 30 April; 29 February → 28 February in other years. The wall-clock time of day is
// kept across DST changes; a time that does not exist that day (the spring-forward gap) moves
// forward by the gap (luxon). Month 12, 24, … are the year anniversaries. n = 0 is never one.

export type ReminderUnit = 'day' | 'week' | 'month';
export interface Reminder {
  unit: ReminderUnit;
  value: number;
}

/** An instant on the `zone` wall clock (stored instants are ISO UTC; Date.parse is far cheaper than fromISO). */
export function inZone(at: string | Date | number, zone: string): DateTime {
  const ms = typeof at === 'string' ? Date.parse(at) : typeof at === 'number' ? at : at.getTime();
  return DateTime.fromMillis(ms, { zone });
}

/** Month anniversary `n` (n ≥ 1) of `anchor` on the `zone` wall clock. */
export function monthAnniversary(anchor: string | Date | DateTime, n: number, zone: string): DateTime {
  const a = anchor instanceof DateTime ? anchor : inZone(anchor, zone);
  // luxon's plus({months}) clamps the day to the target month's end, from the anchor itself.
  return a.plus({ months: n });
}

/** The first month anniversary strictly after `after`, with its number (≥ 1). */
export function nextMonthAnniversary(
  anchor: string | DateTime,
  after: Date | number,
  zone: string,
): { n: number; at: DateTime } {
  const afterMs = typeof after === 'number' ? after : after.getTime();
  const a = anchor instanceof DateTime ? anchor : inZone(anchor, zone);
  const t = inZone(afterMs, zone);
  // An estimate from the calendar months between them, then corrected by at most a step or two.
  let n = Math.max(1, (t.year - a.year) * 12 + (t.month - a.month));
  let at = a.plus({ months: n });
  while (n > 1) {
    const prev = a.plus({ months: n - 1 });
    if (prev.toMillis() <= afterMs) break;
    n--;
    at = prev;
  }
  while (at.toMillis() <= afterMs) {
    n++;
    at = a.plus({ months: n });
  }
  return { n, at };
}

/** `at` moved back by the reminder's offset on the same wall clock (a month back clamps like above). */
export function reminderMoment(at: DateTime, reminder: Reminder): DateTime {
  if (reminder.unit === 'day') return at.minus({ days: reminder.value });
  if (reminder.unit === 'week') return at.minus({ weeks: reminder.value });
  return at.minus({ months: reminder.value });
}

export interface YearReminderDue {
  /** When the reminder is due. */
  at: DateTime;
  /** The year anniversary it announces (month 12·year). */
  anniversary: DateTime;
  year: number;
  reminder: Reminder;
}

/**
 * The first reminder strictly after `after` of the year anniversaries of `anchor`: for each year
 * y ≥ 1 and each reminder r, the anniversary of month 12y moved back by r. Reminders that would
 * fall before the anchor itself are never due. Several reminders due at the same moment (a week and
 * 7 days) are one: the first in the list. Null without reminders.
 */
export function nextYearReminder(
  anchor: string,
  reminders: readonly Reminder[],
  after: Date | number,
  zone: string,
): YearReminderDue | null {
  if (reminders.length === 0) return null;
  const afterMs = typeof after === 'number' ? after : after.getTime();
  const a = inZone(anchor, zone);
  const anchorMs = a.toMillis();
  // The longest offset is at most a few years (schema: value ≤ 1000 days/weeks/months ≈ 83 years is
  // allowed; the search starts at the year the reminder can first be after `after`).
  const { n } = nextMonthAnniversary(a, afterMs, zone);
  let best: YearReminderDue | null = null;
  const firstYear = Math.max(1, Math.ceil(n / 12));
  for (const reminder of reminders) {
    for (let year = firstYear; ; year++) {
      const anniversary = a.plus({ months: year * 12 });
      const at = reminderMoment(anniversary, reminder);
      if (at.toMillis() > afterMs) {
        if (at.toMillis() > anchorMs && (!best || at.toMillis() < best.at.toMillis()))
          best = { at, anniversary, year, reminder };
        if (at.toMillis() > anchorMs) break;
      }
      if (year > firstYear + 2000) break;
    }
  }
  return best;
}

/**
 * The first reminder strictly after `after` before a single moment `target` (a lot's or a
 * voucher's expiry): `target` moved back by each reminder, the earliest still after `after`.
 */
export function nextReminderBefore(
  target: string,
  reminders: readonly Reminder[],
  after: Date | number,
  zone: string,
): { at: DateTime; reminder: Reminder } | null {
  const afterMs = typeof after === 'number' ? after : after.getTime();
  const t = inZone(target, zone);
  let best: { at: DateTime; reminder: Reminder } | null = null;
  for (const reminder of reminders) {
    const at = reminderMoment(t, reminder);
    if (at.toMillis() > afterMs && at.toMillis() < t.toMillis() && (!best || at.toMillis() < best.at.toMillis()))
      best = { at, reminder };
  }
  return best;
}

/** Reminders sorted and without duplicates (same unit and value). */
export function normalizeReminders(list: readonly Reminder[] | null | undefined): Reminder[] {
  const seen = new Set<string>();
  const out: Reminder[] = [];
  for (const r of list ?? []) {
    const key = `${r.unit}:${r.value}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ unit: r.unit, value: r.value });
  }
  return out;
}

/** ISO-8601 UTC of a DateTime (how every instant is stored). */
export const utcIso = (d: DateTime): string => new Date(d.toMillis()).toISOString();
