import {
  AnyObject,
  Answer,
  IdParam,
  PagedQuery,
  Nullable,
  PathParams,
  type Static,
  StringEnum,
  Type,
} from '../../http/schema.ts';
import { CustomerRef } from '../customers/schemas.ts';
import { ExpirationRules } from '../loyalties/schemas.ts';
import type { RuleDefinition } from './evaluate.ts';

// The rule's parts are written as JSON Schema: a rule's type is its domain definition
// (RuleDefinition, evaluate.ts), which the service validates in depth.
const dateTime = { type: ['string', 'null'], format: 'date-time' };
const ratio = {
  type: 'object',
  required: ['every', 'points'],
  properties: {
    every: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    points: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    property: { type: 'string', minLength: 1, maxLength: 200 },
    points_formula: { type: 'string' },
    object: { type: 'string', enum: ['products_collection', 'product', 'sku'] },
    id: { type: 'string' },
    applicable_to: {
      type: 'array',
      items: {
        type: 'object',
        required: ['object', 'id'],
        properties: {
          object: { type: 'string', enum: ['products_collection', 'product', 'sku'] },
          id: { type: 'string' },
        },
      },
    },
  },
};
const loyalty = {
  type: 'object',
  required: ['type'],
  description: 'FIXED {points} or PROPORTIONAL {calculation_type, <ratio at its place>}',
  properties: {
    type: { type: 'string', enum: ['FIXED', 'PROPORTIONAL'] },
    points: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    calculation_type: {
      type: 'string',
      enum: [
        'ORDER_AMOUNT',
        'ORDER_TOTAL_AMOUNT',
        'ORDER_METADATA',
        'ORDER_ITEMS_QUANTITY',
        'ORDER_ITEMS_AMOUNT',
        'CUSTOMER_METADATA',
        'CUSTOM_EVENT_METADATA',
      ],
    },
    order: { type: 'object', properties: { amount: ratio, total_amount: ratio, metadata: ratio } },
    order_items: { type: 'object', properties: { quantity: ratio, amount: ratio } },
    customer: { type: 'object', properties: { metadata: ratio } },
    custom_event: { type: 'object', properties: { metadata: ratio } },
  },
};
const hhmm = { type: 'string', pattern: '^([01]\\d|2[0-3]):[0-5]\\d$' };
const days = { type: ['array', 'null'], items: { type: 'integer', minimum: 0, maximum: 6 }, maxItems: 7 };
const windowProps = {
  start_date: dateTime,
  expiration_date: dateTime,
  validity_day_of_week: days,
  validity_hours: {
    type: ['object', 'null'],
    required: ['daily'],
    properties: {
      daily: {
        type: 'array',
        maxItems: 20,
        items: {
          type: 'object',
          required: ['start_time', 'expiration_time'],
          properties: { start_time: hhmm, expiration_time: hhmm, days_of_week: days },
        },
      },
    },
  },
  validity_timeframe: {
    type: ['object', 'null'],
    required: ['interval', 'duration'],
    properties: { interval: { type: 'string' }, duration: { type: 'string' } },
  },
};
const ruleProps = {
  event: { type: 'string', minLength: 1, maxLength: 200, description: '`order.paid` or the name of a custom event' },
  loyalty,
  source: {
    type: 'object',
    properties: {
      banner: { type: 'string', maxLength: 500 },
      object_id: { type: 'string' },
      object_type: { type: 'string', enum: ['campaign'] },
    },
  },
  custom_event: { type: ['object', 'null'], properties: { schema_id: { type: 'string' } } },
  loyalty_tier: {
    type: ['object', 'null'],
    required: ['id'],
    properties: { id: { type: 'string', description: 'Tier id, or __ANY__' } },
  },
  pending_points: {
    type: ['object', 'null'],
    required: ['period_type', 'period_value'],
    properties: {
      period_type: { type: 'string', enum: ['DAY'] },
      period_value: { type: 'integer', minimum: 1, maximum: 90 },
    },
  },
  expiration_rules: ExpirationRules,
  metadata: { type: ['object', 'null'], additionalProperties: true },
  validation_rule_id: { type: ['string', 'null'] },
  active: { type: 'boolean' },
  ...windowProps,
  conditions: {
    type: ['object', 'null'],
    description:
      'Tally: {"customer.metadata.vip": {"$is": true}, "order.amount": {"$more_than_or_equal": 5000}, ' +
      '"loyalty_tier": {"$in": ["ltr_..."]}}',
    additionalProperties: { type: 'object' },
  },
  multipliers: {
    type: ['array', 'null'],
    maxItems: 20,
    description: 'Tally: points × multiplier while the window is open (program time zone)',
    items: {
      type: 'object',
      required: ['multiplier'],
      properties: {
        multiplier: { type: 'number', exclusiveMinimum: 0, maximum: 1000 },
        name: { type: 'string', maxLength: 200 },
        ...windowProps,
      },
    },
  },
  limits: {
    type: ['array', 'null'],
    maxItems: 4,
    description: 'Tally: at most max_points per customer card per period (program time zone)',
    items: {
      type: 'object',
      required: ['period', 'max_points'],
      properties: {
        period: { type: 'string', enum: ['DAY', 'WEEK', 'MONTH', 'FOREVER'] },
        max_points: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
      },
    },
  },
};

export const RuleBody = Type.Unsafe<RuleDefinition>({
  type: 'object',
  required: ['event', 'loyalty'],
  properties: ruleProps,
});
export const RulesBody = Type.Array(RuleBody, { minItems: 1, maxItems: 100 });
export const RuleUpdateBody = Type.Unsafe<Partial<RuleDefinition>>({ type: 'object', properties: ruleProps });
export const Rule = Answer('earning_rule');
export const RuleListQuery = PagedQuery({
  order: Type.Optional(StringEnum(['created_at', '-created_at', 'updated_at', '-updated_at'])),
});

export const CampaignParams = IdParam('campaignId', 'Loyalty campaign id');
export const RuleParams = PathParams({ campaignId: 'Loyalty campaign id', earningRuleId: 'Earning rule id (ern_...)' });
export const MemberParams = IdParam('memberId', 'Card code or v_ id');
export const CampaignMemberParams = PathParams({ campaignId: 'Loyalty campaign id', memberId: 'Card code or v_ id' });
export const PendingParams = PathParams({
  memberId: 'Card code or v_ id',
  pendingPointsId: 'Pending points id (pp_...)',
});

// ---- pending points ----

export const PendingPoints = Type.Unsafe<Record<string, unknown>>({
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string' },
    points: { type: 'integer' },
    object: { type: 'string', enum: ['pending_points'] },
  },
});
export const PendingQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10 })),
  order: Type.Optional(StringEnum(['id', '-id', 'created_at', '-created_at'])),
  starting_after_id: Type.Optional(Type.String()),
});
export type PendingQuery = Static<typeof PendingQuery>;
export const PendingList = Type.Object({
  object: Type.Optional(Type.String()),
  data_ref: Type.Optional(Type.String()),
  data: Type.Optional(Type.Array(PendingPoints)),
  has_more: Type.Optional(Type.Boolean()),
  more_starting_after: Type.Optional(Nullable(Type.String())),
});
export const PendingAdjustBody = Type.Object({
  points: Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER, not: { const: 0 } }),
});

// ---- custom events ----

export const EventBody = Type.Object({
  event: Type.String({ minLength: 1, maxLength: 200 }),
  customer: CustomerRef,
  metadata: Type.Optional(Nullable(AnyObject())),
  loyalty: Type.Optional(Nullable(Type.Object({ code: Type.String({ minLength: 1, maxLength: 200 }) }))),
  referral: Type.Optional(Type.Unsafe<Record<string, unknown> | null>({ type: ['object', 'null'] })),
  source_event_id: Type.Optional(
    Type.String({ minLength: 1, maxLength: 255, description: 'Your id of the event: the same id twice earns once' }),
  ),
});
export type EventBody = Static<typeof EventBody>;
export const EventHeaders = Type.Object({ 'idempotency-key': Type.Optional(Type.String({ maxLength: 255 })) });
export const EventAnswer = Type.Unsafe<Record<string, unknown>>({
  type: 'object',
  additionalProperties: true,
  properties: { object: { type: 'string', enum: ['event'] }, type: { type: 'string' } },
});

// ---- orders ----

const amount = () => Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const OrderItem = Type.Object(
  {
    product_id: Type.Optional(Nullable(Type.String())),
    sku_id: Type.Optional(Nullable(Type.String())),
    quantity: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000_000 })),
    amount: Type.Optional(amount()),
    price: Type.Optional(amount()),
    collection_ids: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: true },
);
export const OrderBody = Type.Object({
  id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  source_id: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 200 }))),
  status: Type.Optional(StringEnum(['CREATED', 'PAID', 'CANCELED', 'FULFILLED'])),
  amount: Type.Optional(amount()),
  discount_amount: Type.Optional(amount()),
  total_amount: Type.Optional(amount()),
  items: Type.Optional(Type.Array(OrderItem, { maxItems: 1000 })),
  metadata: Type.Optional(Nullable(AnyObject())),
  customer: Type.Optional(CustomerRef),
});
export type OrderInput = Static<typeof OrderBody>;
export const Order = Answer('order');
export const OrderParams = IdParam('orderId', 'ord_ id or source_id');
