import { DateTime } from 'luxon';

// Voucherify's `expiration_rules`: when points credited now expire, in the program's timezone.
// MONTH: `period_value` months from now, optionally rounded up to the end of the month, quarter,
// half-year or year (or to the end of month number `rounding_value` for PARTICULAR_MONTH).
// FIXED_DAY_OF_YEAR: the next `fixed_month`/`fixed_day` after now. Points expire at the end of
// that day (23:59:59.999 local time).

export interface ExpirationRules {
  period_type: 'MONTH' | 'FIXED_DAY_OF_YEAR';
  period_value?: number;
  rounding_type?: 'END_OF_MONTH' | 'END_OF_QUARTER' | 'END_OF_HALF_YEAR' | 'END_OF_YEAR' | 'PARTICULAR_MONTH';
  rounding_value?: number;
  fixed_month?: number;
  fixed_day?: number;
}

export function validateExpirationRules(r: ExpirationRules): string | null {
  if (r.period_type === 'MONTH') {
    if (!Number.isInteger(r.period_value) || (r.period_value as number) < 1)
      return 'period_value must be a positive integer for period_type MONTH';
    if (
      r.rounding_type === 'PARTICULAR_MONTH' &&
      !(Number.isInteger(r.rounding_value) && r.rounding_value! >= 1 && r.rounding_value! <= 12)
    ) {
      return 'rounding_value must be a month number 1-12 for rounding_type PARTICULAR_MONTH';
    }
    return null;
  }
  if (r.period_type === 'FIXED_DAY_OF_YEAR') {
    if (!r.fixed_month || !r.fixed_day)
      return 'fixed_month and fixed_day are required for period_type FIXED_DAY_OF_YEAR';
    const probe = DateTime.fromObject({ year: 2024, month: r.fixed_month, day: r.fixed_day });
    if (!probe.isValid) return 'fixed_month/fixed_day is not a valid date';
    return null;
  }
  return 'period_type must be MONTH or FIXED_DAY_OF_YEAR';
}

export function computeExpiry(rules: ExpirationRules, from: Date, timezone: string): Date {
  const start = DateTime.fromJSDate(from, { zone: timezone });
  let end: DateTime;
  if (rules.period_type === 'FIXED_DAY_OF_YEAR') {
    end = start.set({ month: rules.fixed_month!, day: rules.fixed_day! }).endOf('day');
    if (end <= start)
      end = end.plus({ years: 1 }).set({ month: rules.fixed_month!, day: rules.fixed_day! }).endOf('day');
    return end.toJSDate();
  }
  end = start.plus({ months: rules.period_value ?? 1 });
  switch (rules.rounding_type) {
    case 'END_OF_MONTH':
      end = end.endOf('month');
      break;
    case 'END_OF_QUARTER':
      end = end.endOf('quarter');
      break;
    case 'END_OF_HALF_YEAR':
      end = end.month <= 6 ? end.set({ month: 6 }).endOf('month') : end.set({ month: 12 }).endOf('month');
      break;
    case 'END_OF_YEAR':
      end = end.endOf('year');
      break;
    case 'PARTICULAR_MONTH': {
      let candidate = end.set({ month: rules.rounding_value! }).endOf('month');
      if (candidate < end) candidate = candidate.plus({ years: 1 }).endOf('month');
      end = candidate;
      break;
    }
    default:
      end = end.endOf('day');
  }
  return end.toJSDate();
}
