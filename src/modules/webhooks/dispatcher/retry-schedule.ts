// When a failed delivery is tried again: pure functions of the attempt number, the receiver's
// `Retry-After` and a random source, so the schedule can be checked without a clock or a server.

/** Delays after attempt 1, 2, ... 7 (Svix's schedule): 8 attempts over about 27.6 hours. */
export const RETRY_DELAYS_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000];
export const MAX_ATTEMPTS = RETRY_DELAYS_MS.length + 1;
/** A receiver's `Retry-After` never postpones a retry by more than this. */
export const MAX_RETRY_AFTER_MS = 24 * 3600_000;

/**
 * The wait a `Retry-After` header asks for, in ms from `nowMs`: delay-seconds (`120`) or an
 * HTTP-date; a date in the past is 0; capped at MAX_RETRY_AFTER_MS. Null when absent or unreadable.
 * Of a repeated header the first counts.
 */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return null;
  if (/^\d+$/.test(v.trim())) return Math.min(Number(v.trim()) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.min(Math.max(0, at - nowMs), MAX_RETRY_AFTER_MS);
}

/**
 * The wait before the attempt after `attempt` (1-based), or null when `attempt` was the last:
 * the schedule's delay with ±20 % jitter (`random` in [0, 1); 0.5 gives the exact delay),
 * never shorter than the receiver's `Retry-After` (`retryAfterMs`). `random` is called only when
 * there is a next attempt.
 */
export function retryDelayMs(attempt: number, random: () => number, retryAfterMs: number | null): number | null {
  if (attempt >= MAX_ATTEMPTS) return null;
  const base = RETRY_DELAYS_MS[attempt - 1];
  const jittered = Math.round(base * (0.8 + 0.4 * random()));
  return Math.max(jittered, retryAfterMs ?? 0);
}
