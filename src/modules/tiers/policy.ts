import { DateTime, Duration } from 'luxon';

// Voucherify's `loyalty_tiers_expiration`: how members qualify for tiers and when a tier lapses.
// All periods are calendar periods on the program's wall clock.

export type QualificationPeriod = 'MONTH' | 'QUARTER' | 'HALF_YEAR' | 'YEAR';
export interface TierPolicy {
  qualification_type: 'BALANCE' | 'POINTS_IN_PERIOD';
  qualification_period?: QualificationPeriod;
  start_date?: { type: 'IMMEDIATE' | 'NEXT_PERIOD' };
  expiration_date?: {
    type: 'END_OF_PERIOD' | 'END_OF_NEXT_PERIOD' | 'BALANCE_DROP' | 'CUSTOM';
    extend?: string;
    rounding?: unknown;
  };
}

/** Without a policy: tiers follow the current balance, up and down, immediately. */
export const DEFAULT_POLICY: TierPolicy = {
  qualification_type: 'BALANCE',
  start_date: { type: 'IMMEDIATE' },
  expiration_date: { type: 'BALANCE_DROP' },
};

export function validatePolicy(p: TierPolicy): string | null {
  if (!p || typeof p !== 'object') return 'loyalty_tiers_expiration must be an object';
  if (!['BALANCE', 'POINTS_IN_PERIOD'].includes(p.qualification_type))
    return 'qualification_type must be BALANCE or POINTS_IN_PERIOD';
  if (p.qualification_period && !['MONTH', 'QUARTER', 'HALF_YEAR', 'YEAR'].includes(p.qualification_period))
    return 'qualification_period must be MONTH, QUARTER, HALF_YEAR or YEAR';
  if (p.qualification_type === 'POINTS_IN_PERIOD' && !p.qualification_period)
    return 'qualification_period is required for POINTS_IN_PERIOD';
  if (p.start_date && !['IMMEDIATE', 'NEXT_PERIOD'].includes(p.start_date.type))
    return 'start_date.type must be IMMEDIATE or NEXT_PERIOD';
  if (p.expiration_date) {
    if (!['END_OF_PERIOD', 'END_OF_NEXT_PERIOD', 'BALANCE_DROP', 'CUSTOM'].includes(p.expiration_date.type))
      return 'expiration_date.type must be END_OF_PERIOD, END_OF_NEXT_PERIOD, BALANCE_DROP or CUSTOM';
    if (p.expiration_date.extend !== undefined && !Duration.fromISO(p.expiration_date.extend).isValid)
      return 'expiration_date.extend must be an ISO-8601 duration such as P1M';
  }
  return null;
}

export function periodStart(period: QualificationPeriod, at: Date, zone: string): DateTime {
  const d = DateTime.fromJSDate(at, { zone });
  switch (period) {
    case 'MONTH':
      return d.startOf('month');
    case 'QUARTER':
      return d.startOf('quarter');
    case 'HALF_YEAR':
      return d.startOf('year').set({ month: d.month <= 6 ? 1 : 7 });
    case 'YEAR':
      return d.startOf('year');
  }
}

const LENGTH: Record<QualificationPeriod, { months: number }> = {
  MONTH: { months: 1 },
  QUARTER: { months: 3 },
  HALF_YEAR: { months: 6 },
  YEAR: { months: 12 },
};

export interface PeriodBounds {
  start: DateTime;
  end: DateTime;
  prevStart: DateTime;
  nextEnd: DateTime;
}

// Every credit of a member with tiers evaluates its tier, and the zoned calendar arithmetic of the
// bounds costs more than the rest of the evaluation: the bounds are kept per period kind and zone
// while `at` stays inside the period (DateTimes are immutable, so sharing them is safe).
const boundsCache = new Map<string, { bounds: PeriodBounds; startMs: number; endMs: number }>();

/** The qualification period containing `at` on the `zone` wall clock, with its neighbours' bounds. */
export function periodBounds(period: QualificationPeriod, at: Date, zone: string): PeriodBounds {
  const key = `${period}|${zone}`;
  const ms = at.getTime();
  const hit = boundsCache.get(key);
  if (hit && ms >= hit.startMs && ms < hit.endMs) return hit.bounds;
  const start = periodStart(period, at, zone);
  const end = start.plus(LENGTH[period]);
  const bounds = { start, end, prevStart: start.minus(LENGTH[period]), nextEnd: end.plus(LENGTH[period]) };
  if (boundsCache.size >= 1000) boundsCache.clear();
  boundsCache.set(key, { bounds, startMs: start.toMillis(), endMs: end.toMillis() });
  return bounds;
}

export function extend(at: DateTime, policy: TierPolicy): DateTime {
  const e = policy.expiration_date?.extend;
  return e ? at.plus(Duration.fromISO(e)) : at;
}
