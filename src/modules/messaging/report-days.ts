// Date arithmetic of the flow report's daily roll-up (msg_flow_days, migration 0291): which days of
// a window are final (read from the roll-up) and which are still computed from the messages.

export const DAY_MS = 86_400_000;
/** A redemption counts for a flow message sent at most this long before it. */
export const ATTRIBUTION_MS = 7 * DAY_MS;
/**
 * How long after its end a day's figures may still change: redemptions up to 7 days after its
 * last message, plus a day for late delivery reports (a status moving to delivered or failed).
 * Invariant: a day is FINAL once it ended more than this long ago; only final days are rolled up,
 * and a rolled-up day is never recomputed.
 */
export const FINAL_AFTER_MS = ATTRIBUTION_MS + DAY_MS;

export interface Range {
  from: number;
  to: number;
}

export const floorDay = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS;
const ceilDay = (ms: number) => Math.ceil(ms / DAY_MS) * DAY_MS;

/** The UTC day (YYYY-MM-DD) of an instant. */
export const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** Whether the UTC day starting at `dayStartMs` is final at `nowMs` (ended more than 8 days ago). */
export function isFinalDay(dayStartMs: number, nowMs: number): boolean {
  return nowMs - (floorDay(dayStartMs) + DAY_MS) > FINAL_AFTER_MS;
}

/**
 * Splits the report window [from, to) at `now`: `final` is the run of whole UTC days inside the
 * window that are final (one run: finality only grows with age), `live` the rest — at most a
 * partial first day before it and the recent part after it (the last ~9 days and a partial last
 * day), so what is computed from messages stays bounded whatever the window's length.
 */
export function splitWindow(from: number, to: number, now: number): { final: Range | null; live: Range[] } {
  if (from >= to) return { final: null, live: [] };
  const fa = ceilDay(from);
  // The end of the last final day: day start s is final iff s < now - DAY - FINAL_AFTER.
  const fb = Math.min(floorDay(to), ceilDay(now - DAY_MS - FINAL_AFTER_MS));
  if (fa >= fb) return { final: null, live: [{ from, to }] };
  const live: Range[] = [];
  if (from < fa) live.push({ from, to: fa });
  if (fb < to) live.push({ from: fb, to });
  return { final: { from: fa, to: fb }, live };
}

/**
 * Splits a recent (not final) part of a window into the days read whole from the running figures
 * (msg_flow_live_days, live-days.ts) and the ranges still computed from messages. A day is read
 * whole when the range holds all of it, or holds it from its start up to `now` (no message of it
 * is later yet), and it started on or after `liveFrom` (days before kept no running figures); a
 * partial day at either end of an explicit date-time window is computed, as is a day before
 * `liveFrom`.
 */
export function liveParts(r: Range, now: number, liveFrom: number): { stored: string[]; computed: Range[] } {
  const stored: string[] = [];
  const computed: Range[] = [];
  for (let s = floorDay(r.from); s < r.to; s += DAY_MS) {
    const from = Math.max(s, r.from);
    const to = Math.min(s + DAY_MS, r.to);
    const whole = from === s && (to === s + DAY_MS || r.to >= now);
    if (whole && s >= liveFrom) stored.push(dayOf(s));
    else {
      const last = computed[computed.length - 1];
      if (last && last.to === from) last.to = to;
      else computed.push({ from, to });
    }
  }
  return { stored, computed };
}

/** The UTC days of a day-aligned range [from, to), in order. */
export function daysIn(r: Range): string[] {
  const out: string[] = [];
  for (let t = floorDay(r.from); t < r.to; t += DAY_MS) out.push(dayOf(t));
  return out;
}

/**
 * Groups UTC days into runs of consecutive days, each as a day-aligned [from, to) of at most
 * `maxDays` days (what one roll-up computation reads: its days plus 7 days of look-ahead).
 */
export function dayRuns(days: string[], maxDays = 31): Range[] {
  const starts = [...new Set(days)].map((d) => Date.parse(`${d}T00:00:00.000Z`)).sort((a, b) => a - b);
  const out: Range[] = [];
  for (const s of starts) {
    const last = out[out.length - 1];
    if (last && last.to === s && last.to - last.from < maxDays * DAY_MS) last.to = s + DAY_MS;
    else out.push({ from: s, to: s + DAY_MS });
  }
  return out;
}
