// Pay with points (COIN rewards): how many points an order discount costs, and how much it is.
//
// Amounts are in the currency's smallest unit (cents), as Voucherify's orders. A COIN reward trades
// `points_ratio` points for `exchange_ratio` currency units (`exchange_ratio` 20, `points_ratio` 100:
// 100 points = 20.00 = 2000 cents off). Rounding, in this order:
// - Points are spent in whole units of `points_ratio`: a member asking to spend 150 points at
//   `points_ratio` 100 spends 100 (the 50 left over would buy nothing); fewer than `points_ratio`
//   points buy nothing and are refused.
// - Never more units than the order needs: `ceil(amount / unit value)`; the last unit may be worth
//   more than what is left to pay, and the discount is then capped at the order amount (Voucherify's
//   example: 45000 cents at 2000 cents per 100 points costs 2300 points and takes 45000 off).
// - Without `points`, the member pays as much of the order as their balance allows, in whole units.
// - A unit's value is `exchange_ratio × 100` cents, rounded to 6 decimals (so 0.29 × 100 is 29, not
//   28.999999999999996); a discount of fractional cents rounds down to a whole cent.

export interface CoinRatio {
  exchange_ratio: number;
  points_ratio: number;
}

export interface CoinQuote {
  /** Points spent: a whole number of `points_ratio` units. */
  points: number;
  /** Cents taken off the order (≤ the order amount). */
  discount: number;
}

/** Why a quote is impossible: too few points asked, or a balance too low for one unit. */
export type CoinRefusal = 'points_below_ratio' | 'balance_below_ratio';

const unitCents = (r: CoinRatio) => Math.round(r.exchange_ratio * 100 * 1e6) / 1e6;

export function coinQuote(
  ratio: CoinRatio,
  orderAmount: number,
  opts: { points?: number; balance: number },
): CoinQuote | CoinRefusal {
  const unit = unitCents(ratio);
  const needed = Math.ceil(orderAmount / unit);
  const available = Math.floor((opts.points ?? opts.balance) / ratio.points_ratio);
  if (available < 1) return opts.points !== undefined ? 'points_below_ratio' : 'balance_below_ratio';
  const units = Math.min(available, needed);
  return { points: units * ratio.points_ratio, discount: Math.min(orderAmount, Math.floor(units * unit)) };
}

/** Coin ratios arrive as strings (the SDK) or numbers (the OpenAPI); answers carry numbers. */
export function toRatioNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  return undefined;
}
