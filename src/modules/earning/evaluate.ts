import { DateTime, Duration } from 'luxon';

// Pure evaluation of earning rules: time windows, conditions, the points calculation, multipliers
// and cap periods. No database here: the service compiles each rule once (cached per program) and
// the ingestion hot path only calls the compiled closures.

export type CalculationType =
  | 'ORDER_AMOUNT'
  | 'ORDER_TOTAL_AMOUNT'
  | 'ORDER_METADATA'
  | 'ORDER_ITEMS_QUANTITY'
  | 'ORDER_ITEMS_AMOUNT'
  | 'CUSTOMER_METADATA'
  | 'CUSTOM_EVENT_METADATA';

export interface Ratio {
  every: number;
  points: number;
  property?: string;
  object?: 'products_collection' | 'product' | 'sku';
  id?: string;
  applicable_to?: { object: 'products_collection' | 'product' | 'sku'; id: string }[];
}

export type LoyaltyDefinition =
  | { type: 'FIXED'; points: number }
  | {
      type: 'PROPORTIONAL';
      calculation_type: CalculationType;
      order?: { amount?: Ratio; total_amount?: Ratio; metadata?: Ratio };
      order_items?: { quantity?: Ratio; amount?: Ratio };
      customer?: { metadata?: Ratio };
      custom_event?: { metadata?: Ratio };
    };

export interface DailyHours {
  start_time: string;
  expiration_time: string;
  days_of_week?: number[];
}

export interface TimeWindow {
  start_date?: string | null;
  expiration_date?: string | null;
  validity_day_of_week?: number[] | null;
  validity_hours?: { daily: DailyHours[] } | null;
  validity_timeframe?: { interval: string; duration: string } | null;
}

export interface Multiplier extends TimeWindow {
  multiplier: number;
  name?: string;
}

export type CapPeriod = 'DAY' | 'WEEK' | 'MONTH' | 'FOREVER';
export interface Limit {
  period: CapPeriod;
  max_points: number;
}

export type ConditionOp =
  | '$is'
  | '$is_not'
  | '$in'
  | '$not_in'
  | '$more_than'
  | '$more_than_or_equal'
  | '$less_than'
  | '$less_than_or_equal'
  | '$exists';
export type Conditions = Record<string, Partial<Record<ConditionOp, unknown>>>;

/** An earning rule as given to and returned by the API (Voucherify's shape plus Tally's extensions). */
export interface RuleDefinition extends TimeWindow {
  event: string;
  loyalty: LoyaltyDefinition;
  source?: { banner?: string; object_id?: string; object_type?: 'campaign' };
  custom_event?: { schema_id?: string } | null;
  loyalty_tier?: { id: string } | null;
  pending_points?: { period_type: 'DAY'; period_value: number } | null;
  expiration_rules?: Record<string, unknown> | null;
  metadata?: Record<string, unknown> | null;
  validation_rule_id?: string | null;
  active?: boolean;
  /** Tally: the rule applies only when all of these hold. */
  conditions?: Conditions | null;
  /** Tally: points are multiplied while a window is open ("double points on weekends"). */
  multipliers?: Multiplier[] | null;
  /** Tally: at most `max_points` per customer (card) per period, in the program's time zone. */
  limits?: Limit[] | null;
}

export interface OrderItem {
  product_id?: string | null;
  sku_id?: string | null;
  quantity?: number | null;
  amount?: number | null;
  price?: number | null;
  collection_ids?: string[] | null;
  product?: { id?: string; source_id?: string } | null;
  sku?: { id?: string; source_id?: string } | null;
}

export interface ActivityFacts {
  event: string;
  /** Metadata of the custom event, or of the order. */
  metadata: Record<string, unknown>;
  customer: { id: string; source_id: string | null; metadata: Record<string, unknown> };
  order?: {
    id: string;
    source_id: string | null;
    amount: number | null;
    total_amount: number | null;
    discount_amount: number | null;
    items: OrderItem[];
    metadata: Record<string, unknown>;
    status: string;
  };
  /** Ids of the member's current tiers (all tier groups). */
  tierIds: string[];
}

// ---- time windows ----

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

export function minutesOf(hhmm: string): number {
  const m = HHMM.exec(hhmm);
  if (!m) throw new Error(`bad time ${hhmm}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/**
 * The program-zone wall clock at the minute of `ms`. Building a zoned DateTime is the costliest part
 * of evaluating windows and cap periods, and every event of a minute shares it: cache per zone and
 * minute (zone offsets are whole minutes, so the local day, hour and minute are exact).
 */
const localCache = new Map<string, DateTime>();
export function localMinute(ms: number, zone: string): DateTime {
  const minute = Math.floor(ms / 60000);
  const key = `${zone}|${minute}`;
  let dt = localCache.get(key);
  if (!dt) {
    dt = DateTime.fromMillis(minute * 60000, { zone });
    if (localCache.size >= 1000) localCache.clear();
    localCache.set(key, dt);
  }
  return dt;
}

/** Sunday = 0 ... Saturday = 6 (Voucherify's numbering). */
const dow = (dt: DateTime) => dt.weekday % 7;

/** Is the window open at `at`, reading days and hours on the wall clock of `zone`? */
export function windowOpen(w: TimeWindow, at: Date, zone: string): boolean {
  const ms = at.getTime();
  if (w.start_date && ms < Date.parse(w.start_date)) return false;
  if (w.expiration_date && ms >= Date.parse(w.expiration_date)) return false;
  if (!w.validity_day_of_week?.length && !w.validity_hours?.daily?.length && !w.validity_timeframe) return true;
  const local = localMinute(ms, zone);
  if (w.validity_day_of_week?.length && !w.validity_day_of_week.includes(dow(local))) return false;
  if (w.validity_hours?.daily?.length) {
    const minute = local.hour * 60 + local.minute;
    const today = dow(local);
    const yesterday = (today + 6) % 7;
    const open = w.validity_hours.daily.some((p) => {
      const start = minutesOf(p.start_time);
      const end = minutesOf(p.expiration_time);
      const days = p.days_of_week?.length ? p.days_of_week : null;
      if (start < end) return minute >= start && minute < end && (!days || days.includes(today));
      // Wraps midnight (22:00-02:00): the part after midnight belongs to the day it started.
      if (minute >= start) return !days || days.includes(today);
      if (minute < end) return !days || days.includes(yesterday);
      return false;
    });
    if (!open) return false;
  }
  if (w.validity_timeframe) {
    // Recurs every `interval` from start_date, open for `duration`; steps are calendar steps in
    // the program's zone, so "every day from 18:00 for 3 hours" stays at 18:00 across DST changes.
    const start = DateTime.fromISO(w.start_date ?? '', { zone });
    const interval = Duration.fromISO(w.validity_timeframe.interval);
    const duration = Duration.fromISO(w.validity_timeframe.duration);
    if (!start.isValid || !interval.isValid || !duration.isValid) return false;
    const approx = interval.toMillis();
    if (approx <= 0) return false;
    const k0 = Math.floor((ms - start.toMillis()) / approx);
    for (let k = Math.max(0, k0 - 1); k <= k0 + 1; k++) {
      const from = start.plus(interval.mapUnits((v) => v * k));
      const to = from.plus(duration);
      if (ms >= from.toMillis() && ms < to.toMillis()) return true;
    }
    return false;
  }
  return true;
}

export function validateWindow(w: TimeWindow, field: string): string | null {
  if (w.start_date && Number.isNaN(Date.parse(w.start_date))) return `${field}start_date is not a date-time`;
  if (w.expiration_date && Number.isNaN(Date.parse(w.expiration_date)))
    return `${field}expiration_date is not a date-time`;
  if (w.start_date && w.expiration_date && Date.parse(w.start_date) >= Date.parse(w.expiration_date))
    return `${field}start_date must be before expiration_date`;
  for (const p of w.validity_hours?.daily ?? []) {
    if (!HHMM.test(p.start_time) || !HHMM.test(p.expiration_time))
      return `${field}validity_hours.daily times must be HH:mm`;
    if (p.start_time === p.expiration_time)
      return `${field}validity_hours.daily start_time and expiration_time must differ`;
  }
  if (w.validity_timeframe) {
    if (!w.start_date) return `${field}validity_timeframe needs start_date`;
    const i = Duration.fromISO(w.validity_timeframe.interval);
    const d = Duration.fromISO(w.validity_timeframe.duration);
    if (!i.isValid || i.toMillis() <= 0)
      return `${field}validity_timeframe.interval must be an ISO-8601 duration such as P1D`;
    if (!d.isValid || d.toMillis() <= 0)
      return `${field}validity_timeframe.duration must be an ISO-8601 duration such as PT1H`;
  }
  return null;
}

// ---- caps ----

/** The key of the cap period containing `at`, on the program's wall clock (weeks are ISO weeks, Monday first). */
export function periodKey(period: CapPeriod, at: Date, zone: string): string {
  if (period === 'FOREVER') return 'forever';
  const d = localMinute(at.getTime(), zone);
  if (period === 'DAY') return d.toISODate()!;
  if (period === 'WEEK') return `${d.weekYear}-W${String(d.weekNumber).padStart(2, '0')}`;
  return d.toFormat('yyyy-MM');
}

// ---- conditions ----

const OPS = new Set<ConditionOp>([
  '$is',
  '$is_not',
  '$in',
  '$not_in',
  '$more_than',
  '$more_than_or_equal',
  '$less_than',
  '$less_than_or_equal',
  '$exists',
]);
const ORDER_PATH = 'order\\.(amount|total_amount|discount_amount|items_quantity|status|metadata\\..+)';
const OTHER_PATHS = 'customer\\.source_id|event\\.metadata\\..+|metadata\\..+';
const PATH = new RegExp(`^(loyalty_tier|customer\\.metadata\\.[^.].*|${OTHER_PATHS}|${ORDER_PATH})$`);

export function validateConditions(c: Conditions): string | null {
  for (const [path, ops] of Object.entries(c)) {
    if (!PATH.test(path))
      return (
        `conditions: unknown path "${path}" (use customer.metadata.*, event.metadata.*, order.metadata.*, ` +
        'order.amount, order.total_amount, order.items_quantity, loyalty_tier)'
      );
    if (!ops || typeof ops !== 'object' || Object.keys(ops).length === 0)
      return `conditions.${path} must be an object of operators`;
    for (const [op, v] of Object.entries(ops)) {
      if (!OPS.has(op as ConditionOp)) return `conditions.${path}: unknown operator ${op}`;
      if ((op === '$in' || op === '$not_in') && !Array.isArray(v)) return `conditions.${path}.${op} must be an array`;
      if (op.startsWith('$more') || op.startsWith('$less'))
        if (typeof v !== 'number') return `conditions.${path}.${op} must be a number`;
      if (op === '$exists' && typeof v !== 'boolean') return `conditions.${path}.$exists must be a boolean`;
    }
  }
  return null;
}

function lookup(facts: ActivityFacts, path: string): unknown {
  const [head, ...rest] = path.split('.');
  let root: unknown;
  if (head === 'customer') root = facts.customer;
  else if (head === 'event') root = { metadata: facts.metadata };
  else if (head === 'metadata') root = facts.metadata;
  else if (head === 'order') {
    if (!facts.order) return undefined;
    if (rest[0] === 'items_quantity') return facts.order.items.reduce((s, i) => s + (Number(i.quantity) || 0), 0);
    root = facts.order;
  }
  let cur: unknown = root;
  for (const p of rest) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

const eq = (a: unknown, b: unknown) =>
  a === b ||
  (typeof a === 'number' && typeof b === 'string' && String(a) === b) ||
  (typeof b === 'number' && typeof a === 'string' && a === String(b));

function opHolds(op: ConditionOp, expected: unknown, actual: unknown): boolean {
  const defined = actual !== undefined && actual !== null;
  switch (op) {
    case '$exists':
      return expected ? defined : !defined;
    case '$is':
      return defined && eq(actual, expected);
    case '$is_not':
      return !defined || !eq(actual, expected);
    case '$in':
      return defined && (expected as unknown[]).some((e) => eq(actual, e));
    case '$not_in':
      return !defined || !(expected as unknown[]).some((e) => eq(actual, e));
    default: {
      const n =
        typeof actual === 'number' ? actual : typeof actual === 'string' && actual.trim() !== '' ? Number(actual) : NaN;
      if (Number.isNaN(n)) return false;
      const e = expected as number;
      if (op === '$more_than') return n > e;
      if (op === '$more_than_or_equal') return n >= e;
      if (op === '$less_than') return n < e;
      return n <= e;
    }
  }
}

/** Compiles conditions into one predicate; the failing path is returned for the explanation. */
export function compileConditions(c: Conditions | null | undefined): (facts: ActivityFacts) => string | null {
  if (!c || Object.keys(c).length === 0) return () => null;
  const checks = Object.entries(c).map(([path, ops]) => {
    const entries = Object.entries(ops) as [ConditionOp, unknown][];
    if (path === 'loyalty_tier') {
      return (f: ActivityFacts) => {
        const ok = entries.every(([op, v]) => {
          if (op === '$exists') return v ? f.tierIds.length > 0 : f.tierIds.length === 0;
          if (op === '$is' || op === '$in') return f.tierIds.some((t) => opHolds(op, v, t));
          if (op === '$is_not' || op === '$not_in') return f.tierIds.every((t) => opHolds(op, v, t));
          return false;
        });
        return ok ? null : path;
      };
    }
    return (f: ActivityFacts) => {
      const actual = lookup(f, path);
      return entries.every(([op, v]) => opHolds(op, v, actual)) ? null : path;
    };
  });
  return (facts) => {
    for (const check of checks) {
      const failed = check(facts);
      if (failed) return failed;
    }
    return null;
  };
}

// ---- points ----

export interface Calculation {
  type: 'FIXED' | 'PROPORTIONAL';
  calculation_type?: CalculationType;
  property?: string;
  value?: number;
  every?: number;
  points_per_every?: number;
  points: number;
}

function ratioOf(l: Extract<LoyaltyDefinition, { type: 'PROPORTIONAL' }>): Ratio | undefined {
  switch (l.calculation_type) {
    case 'ORDER_AMOUNT':
      return l.order?.amount;
    case 'ORDER_TOTAL_AMOUNT':
      return l.order?.total_amount;
    case 'ORDER_METADATA':
      return l.order?.metadata;
    case 'ORDER_ITEMS_QUANTITY':
      return l.order_items?.quantity;
    case 'ORDER_ITEMS_AMOUNT':
      return l.order_items?.amount;
    case 'CUSTOMER_METADATA':
      return l.customer?.metadata;
    case 'CUSTOM_EVENT_METADATA':
      return l.custom_event?.metadata;
  }
}

export function validateLoyalty(l: LoyaltyDefinition): string | null {
  if (l.type === 'FIXED')
    return Number.isSafeInteger(l.points) && l.points > 0 ? null : 'loyalty.points must be a positive integer';
  const r = ratioOf(l);
  const where = {
    ORDER_AMOUNT: 'order.amount',
    ORDER_TOTAL_AMOUNT: 'order.total_amount',
    ORDER_METADATA: 'order.metadata',
    ORDER_ITEMS_QUANTITY: 'order_items.quantity',
    ORDER_ITEMS_AMOUNT: 'order_items.amount',
    CUSTOMER_METADATA: 'customer.metadata',
    CUSTOM_EVENT_METADATA: 'custom_event.metadata',
  }[l.calculation_type];
  if (!where) return 'loyalty.calculation_type is not supported';
  if (!r) return `loyalty.${where} is required for calculation_type ${l.calculation_type}`;
  if (!Number.isSafeInteger(r.every) || r.every < 1) return `loyalty.${where}.every must be a positive integer`;
  if (!Number.isSafeInteger(r.points) || r.points < 1) return `loyalty.${where}.points must be a positive integer`;
  if (['ORDER_METADATA', 'CUSTOMER_METADATA', 'CUSTOM_EVENT_METADATA'].includes(l.calculation_type) && !r.property) {
    return `loyalty.${where}.property is required for calculation_type ${l.calculation_type}`;
  }
  return null;
}

function numeric(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return null;
}

function itemMatches(item: OrderItem, r: Ratio): boolean {
  const targets = r.applicable_to?.length
    ? r.applicable_to
    : r.object && r.id
      ? [{ object: r.object, id: r.id }]
      : null;
  if (!targets) return true;
  return targets.some((t) => {
    if (t.object === 'product')
      return item.product_id === t.id || item.product?.id === t.id || item.product?.source_id === t.id;
    if (t.object === 'sku') return item.sku_id === t.id || item.sku?.id === t.id || item.sku?.source_id === t.id;
    return (item.collection_ids ?? []).includes(t.id);
  });
}

/** Base points of a rule for an activity (before tier mappings, multipliers and caps). */
export function basePoints(l: LoyaltyDefinition, f: ActivityFacts): Calculation {
  if (l.type === 'FIXED') return { type: 'FIXED', points: l.points };
  const r = ratioOf(l)!;
  let value: number | null = null;
  switch (l.calculation_type) {
    case 'ORDER_AMOUNT':
      value = f.order?.amount ?? null;
      break;
    case 'ORDER_TOTAL_AMOUNT':
      value = f.order
        ? (f.order.total_amount ?? (f.order.amount !== null ? f.order.amount - (f.order.discount_amount ?? 0) : null))
        : null;
      break;
    case 'ORDER_METADATA':
      value = f.order ? numeric(f.order.metadata[r.property!]) : null;
      break;
    case 'ORDER_ITEMS_QUANTITY':
      value = f.order
        ? f.order.items.filter((i) => itemMatches(i, r)).reduce((s, i) => s + (numeric(i.quantity) ?? 0), 0)
        : null;
      break;
    case 'ORDER_ITEMS_AMOUNT':
      value = f.order
        ? f.order.items
            .filter((i) => itemMatches(i, r))
            .reduce((s, i) => s + (numeric(i.amount) ?? (numeric(i.price) ?? 0) * (numeric(i.quantity) ?? 1)), 0)
        : null;
      break;
    case 'CUSTOMER_METADATA':
      value = numeric(f.customer.metadata[r.property!]);
      break;
    case 'CUSTOM_EVENT_METADATA':
      value = numeric(f.metadata[r.property!]);
      break;
  }
  const v = value !== null && value > 0 ? value : 0;
  return {
    type: 'PROPORTIONAL',
    calculation_type: l.calculation_type,
    ...(r.property ? { property: r.property } : {}),
    value: value ?? 0,
    every: r.every,
    points_per_every: r.points,
    points: Math.floor(v / r.every) * r.points,
  };
}
