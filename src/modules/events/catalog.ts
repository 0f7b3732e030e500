import { REFERENCE_EVENTS, type ReferenceAttribute } from './catalog/reference.ts';
import {
  CUSTOMER_REFERRED,
  CUSTOMER_REWARDED,
  referredExample,
  referredSchema,
  rewardedExample,
  rewardedSchema,
} from './catalog/referrals.ts';

// The event catalog: every event type Tally can emit, each with a JSON Schema of its `data`.
//
// Loyalty events are generated from the reference descriptions (catalog/reference.ts, generated
// from the documentation's attribute tables) with these rules, documented in docs/events.md:
// - every documented attribute is required, and nothing else is allowed (additionalProperties: false);
// - Numeric → number, Bool → boolean, String → string, Object → object;
// - `balance_definition.metadata` is an object whatever its documented type (the tables say "String"
//   in five events and "Object" in one; every example shows an object, and that is what we emit);
// - dates (`*_at`, `*_date`, `valid_from`) are ISO-8601 strings (format date-time);
// - the attributes of NULLABLE below may be null (a value that does not exist, e.g. the expiry of a
//   non-expiring credit); every other attribute is never null.
// The points-added/points-expired pair has no attribute table: its schema is written here from
// seed 001 (`{customer, campaign, voucher, balance, transaction}`, each with its main fields).

export type JsonSchema = Record<string, unknown>;

export interface EventTypeInfo {
  type: string;
  title: string;
  group: 'balance' | 'membership' | 'subscription' | 'tier' | 'voucher' | 'loyalty_card' | 'operational' | 'referral';
  /** Operational events are about Tally itself (webhook endpoints), not about loyalty data. */
  operational: boolean;
  /** True when the current code base emits it; the others are reserved for features to come. */
  emitted: boolean;
  schema: JsonSchema;
  example: Record<string, unknown>;
}

export const POINTS_ADDED = 'customer.voucher.loyalty_card.points_added';
export const POINTS_EXPIRED = 'customer.voucher.loyalty_card.points_expired';
export const ENDPOINT_DISABLED = 'webhook_endpoint_disabled';

/** The loyalty catalog of the issue, in the order of the documentation. */
export const LOYALTY_EVENT_TYPES = [
  'balance_minimum_value_reached',
  'balance_maximum_value_reached',
  'balance_transaction_unauthorized',
  'balance_expiration_reminder',
  'balance_value_expired',
  'balance_value_updated',
  'membership_anniversary_reminder',
  'subscription_created',
  'subscription_revoked',
  'subscription_member_added',
  'subscription_member_removed',
  'subscription_month_anniversary',
  'subscription_year_anniversary',
  'tier_association_updated',
  'tier_association_month_anniversary',
  'tier_association_year_anniversary',
  'tier_anniversary_reminder',
  'voucher_created',
  'voucher_redeemed',
  'voucher_expired',
  'voucher_revoked',
  'voucher_redeem_unauthorized',
  'voucher_attribution_failed',
  'voucher_expiration_reminder',
  POINTS_ADDED,
  POINTS_EXPIRED,
] as const;

/** The voucher events the vouchers module emits (`voucher_expiration_reminder` belongs to the time engine). */
const VOUCHER_EVENTS = [
  'voucher_created',
  'voucher_redeemed',
  'voucher_expired',
  'voucher_revoked',
  'voucher_redeem_unauthorized',
  'voucher_attribution_failed',
];

/** The anniversaries and reminders the time engine fires; each carries the moment it was due. */
const TIME_EVENTS = [
  'subscription_month_anniversary',
  'subscription_year_anniversary',
  'tier_association_month_anniversary',
  'tier_association_year_anniversary',
  'membership_anniversary_reminder',
  'tier_anniversary_reminder',
  'balance_expiration_reminder',
  'voucher_expiration_reminder',
];

/** Types written by the code that exists today (the others are reserved for later features). */
const EMITTED = new Set<string>([
  'balance_minimum_value_reached',
  'balance_maximum_value_reached',
  'balance_transaction_unauthorized',
  'balance_value_expired',
  'balance_value_updated',
  'subscription_created',
  'subscription_revoked',
  'tier_association_updated',
  POINTS_ADDED,
  POINTS_EXPIRED,
  ENDPOINT_DISABLED,
  // Vouchers module.
  ...VOUCHER_EVENTS,
  // The time engine (src/modules/time).
  ...TIME_EVENTS,
  // Households (members module).
  'subscription_member_added',
  'subscription_member_removed',
  // Referrals (Tally extensions, catalog/referrals.ts).
  CUSTOMER_REFERRED,
  CUSTOMER_REWARDED,
]);

const OFFER_OPTIONAL = ['offer.public_description', 'offer.public_image', 'offer.public_name'];

/** Attributes that may be null, per type (see docs/events.md). */
export const NULLABLE: Record<string, string[]> = {
  balance_value_updated: ['expiration_date'],
  voucher_created: ['expires_at', 'valid_from', ...OFFER_OPTIONAL],
  // A voucher published outside a loyalty program has no program and no card (docs/time.md).
  voucher_expiration_reminder: ['valid_from', ...OFFER_OPTIONAL, 'loyalty_program', 'membership'],
  voucher_expired: OFFER_OPTIONAL,
  voucher_redeemed: OFFER_OPTIONAL,
  voucher_revoked: OFFER_OPTIONAL,
  voucher_redeem_unauthorized: OFFER_OPTIONAL,
  // No tier before the first association / none after leaving every tier: the whole object is null.
  tier_association_updated: ['from_tier', 'to_tier'],
};

// Vouchers that do not come from a loyalty program (a campaign's publication) have no
// `loyalty_program`; an unknown code has no `offer` either (docs/events.md).
for (const type of VOUCHER_EVENTS) {
  NULLABLE[type] = [...(NULLABLE[type] ?? []), 'loyalty_program'];
}
NULLABLE.voucher_redeem_unauthorized.push('offer');

/**
 * Tally's extra attributes (documented in docs/events.md), optional, beside the documented ones:
 * `customer_id` on the voucher events, whose seed payloads have no way to find the member.
 */
const EXTRA_ATTRIBUTES: Record<string, Record<string, JsonSchema>> = Object.fromEntries(
  VOUCHER_EVENTS.map((t) => [
    t,
    { customer_id: { type: ['string', 'null'], description: 'Tally: the customer holding the voucher (cust_...)' } },
  ]),
);
// `due_at` on the time engine's events: the moment the anniversary or reminder was due (the event's
// created_at is when it fired: later after downtime).
EXTRA_ATTRIBUTES.voucher_expiration_reminder = {
  customer_id: { type: ['string', 'null'], description: 'Tally: the customer holding the voucher (cust_...)' },
};
for (const t of TIME_EVENTS)
  EXTRA_ATTRIBUTES[t] = {
    ...EXTRA_ATTRIBUTES[t],
    due_at: { type: 'string', format: 'date-time', description: 'Tally: the moment this was due' },
  };

// Households: `member_id` is the contact's number in its subscription (1, 2, 3 …); beside it, which
// subscription and which customer (docs/events.md).
for (const t of ['subscription_member_added', 'subscription_member_removed']) {
  EXTRA_ATTRIBUTES[t] = {
    loyalty_subscription_id: {
      type: 'string',
      description: 'Tally: the subscription (card) the contact joined or left',
    },
    customer_id: { type: 'string', description: 'Tally: the member contact (cust_...)' },
  };
}

const isDatePath = (path: string) => {
  const leaf = path.split('.').pop()!;
  return leaf.endsWith('_at') || leaf.endsWith('_date') || leaf === 'valid_from';
};

function leafSchema(type: string, attr: ReferenceAttribute, nullable: boolean): JsonSchema {
  let schema: JsonSchema;
  if (attr.path === 'balance_definition.metadata' || type === 'Object') {
    schema = { type: 'object', additionalProperties: true };
  } else if (attr.type === 'Numeric') schema = { type: 'number' };
  else if (attr.type === 'Bool') schema = { type: 'boolean' };
  else if (attr.type === 'String')
    schema = isDatePath(attr.path) ? { type: 'string', format: 'date-time' } : { type: 'string' };
  else throw new Error(`unknown attribute type ${attr.type} of ${attr.path}`);
  if (nullable) {
    if (schema.type === 'object') schema = { type: ['object', 'null'], additionalProperties: true };
    else schema = { ...schema, type: [schema.type as string, 'null'] };
  }
  return { ...schema, description: attr.description };
}

interface Node {
  type: 'object';
  additionalProperties: false;
  required: string[];
  properties: Record<string, Node | JsonSchema>;
}

/** A node of a schema being walked down by path. */
interface SchemaWalk {
  type?: unknown;
  properties?: Record<string, SchemaWalk>;
}

/** JSON Schema of a documented attribute table: nested objects, every attribute required. */
export function schemaFromAttributes(eventType: string, attributes: ReferenceAttribute[]): JsonSchema {
  const root: Node = { type: 'object', additionalProperties: false, required: [], properties: {} };
  const nullable = new Set(NULLABLE[eventType] ?? []);
  for (const attr of attributes) {
    const parts = attr.path.split('.').map((p) => p.trim());
    let node = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const key = parts[i];
      if (!node.properties[key]) {
        node.properties[key] = { type: 'object', additionalProperties: false, required: [], properties: {} };
        node.required.push(key);
      }
      node = node.properties[key] as Node;
    }
    const leaf = parts[parts.length - 1];
    if (!node.required.includes(leaf)) node.required.push(leaf);
    node.properties[leaf] = leafSchema(attr.type, { ...attr, path: parts.join('.') }, nullable.has(parts.join('.')));
  }
  // A nullable object (e.g. tier_association_updated.from_tier): null, or the object with all its attributes.
  for (const path of nullable) {
    let node: SchemaWalk | undefined = root;
    for (const key of path.split('.')) node = node?.properties?.[key];
    if (node && node.type === 'object' && node.properties) node.type = ['object', 'null'];
  }
  return root as unknown as JsonSchema;
}

const str = { type: 'string' };
const nstr = { type: ['string', 'null'] };
const date = { type: 'string', format: 'date-time' };
const ndate = { type: ['string', 'null'], format: 'date-time' };
const obj = (required: string[], properties: Record<string, unknown>) => ({
  type: 'object',
  additionalProperties: true,
  required,
  properties,
});

/** Seed 001: the Voucherify card event, with the main fields of each of its five objects. */
export const pointsEventSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['customer', 'campaign', 'voucher', 'balance', 'transaction'],
  properties: {
    customer: obj(['id', 'name', 'source_id', 'metadata', 'object'], {
      id: str,
      name: nstr,
      source_id: nstr,
      metadata: { type: 'object' },
      object: { const: 'customer' },
    }),
    campaign: obj(
      [
        'id',
        'name',
        'campaign_type',
        'type',
        'is_referral_code',
        'voucher',
        'auto_join',
        'join_once',
        'active',
        'metadata',
        'start_date',
        'expiration_date',
        'created_at',
        'object',
      ],
      {
        id: str,
        name: str,
        description: nstr,
        campaign_type: { const: 'LOYALTY_PROGRAM' },
        type: str,
        is_referral_code: { type: 'boolean' },
        voucher: obj(['type', 'loyalty_card', 'code_config'], {
          type: { const: 'LOYALTY_CARD' },
          loyalty_card: { type: 'object' },
          code_config: { type: 'object' },
        }),
        auto_join: { type: 'boolean' },
        join_once: { type: 'boolean' },
        active: { type: 'boolean' },
        category_id: nstr,
        category: nstr,
        metadata: { type: 'object' },
        start_date: ndate,
        expiration_date: ndate,
        created_at: date,
        updated_at: ndate,
        object: { const: 'campaign' },
      },
    ),
    voucher: obj(
      [
        'id',
        'code',
        'loyalty_card',
        'type',
        'campaign',
        'campaign_id',
        'is_referral_code',
        'holder_id',
        'active',
        'created_at',
        'redemption',
        'metadata',
        'object',
      ],
      {
        id: str,
        code: str,
        loyalty_card: obj(['points', 'balance'], { points: { type: 'number' }, balance: { type: 'number' } }),
        type: { const: 'LOYALTY_CARD' },
        campaign: str,
        campaign_id: str,
        is_referral_code: { type: 'boolean' },
        holder_id: str,
        category_id: nstr,
        active: { type: 'boolean' },
        created_at: date,
        updated_at: ndate,
        redemption: { type: 'object' },
        start_date: ndate,
        expiration_date: ndate,
        metadata: { type: 'object' },
        object: { const: 'voucher' },
      },
    ),
    balance: obj(['type', 'total', 'object', 'points', 'balance', 'related_object'], {
      type: { const: 'loyalty_card' },
      total: { type: 'number' },
      object: { const: 'balance' },
      points: { type: 'number' },
      balance: { type: 'number' },
      related_object: obj(['id', 'type'], { id: str, type: { const: 'voucher' } }),
    }),
    transaction: obj(
      [
        'id',
        'source_id',
        'voucher_id',
        'campaign_id',
        'source',
        'reason',
        'type',
        'details',
        'related_transaction_id',
        'created_at',
      ],
      {
        id: str,
        source_id: nstr,
        voucher_id: str,
        campaign_id: str,
        source: nstr,
        reason: nstr,
        type: str,
        details: { type: 'object' },
        related_transaction_id: nstr,
        created_at: date,
      },
    ),
  },
};

const endpointDisabledSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['endpoint_id', 'target_url', 'description', 'reason', 'failing_since', 'disabled_at'],
  properties: {
    endpoint_id: { type: 'string', description: 'Webhook endpoint id (whep_...)' },
    target_url: { type: 'string', description: 'The endpoint URL' },
    description: { type: ['string', 'null'] },
    reason: {
      enum: ['gone', 'failing'],
      description: '"gone": the receiver answered 410; "failing": every attempt failed for 5 days',
    },
    failing_since: { ...ndate, description: 'Time of the first failure of the current failing streak' },
    disabled_at: { ...date },
  },
};

function groupOf(type: string): EventTypeInfo['group'] {
  if (type.startsWith('customer.voucher.loyalty_card')) return 'loyalty_card';
  if (type.startsWith('webhook_')) return 'operational';
  if (type.startsWith('membership_')) return 'membership';
  return type.split('_')[0] as EventTypeInfo['group'];
}

function build(): EventTypeInfo[] {
  const list: EventTypeInfo[] = [];
  for (const type of LOYALTY_EVENT_TYPES) {
    if (type === POINTS_ADDED || type === POINTS_EXPIRED) {
      const ref = REFERENCE_EVENTS[POINTS_ADDED];
      list.push({
        type,
        title: type === POINTS_ADDED ? 'Loyalty card points added' : 'Loyalty card points expired',
        group: 'loyalty_card',
        operational: false,
        emitted: EMITTED.has(type),
        schema: pointsEventSchema,
        example: type === POINTS_ADDED ? ref.example : expiredExample(ref.example),
      });
      continue;
    }
    const ref = REFERENCE_EVENTS[type];
    if (!ref?.attributes) throw new Error(`event ${type} has no reference description`);
    list.push({
      type,
      title: ref.title,
      group: groupOf(type),
      operational: false,
      emitted: EMITTED.has(type),
      schema: withExtras(type, schemaFromAttributes(type, ref.attributes)),
      example: ref.example,
    });
  }
  // Tally extensions: Voucherify's referral events (catalog/referrals.ts, docs/events.md).
  list.push(
    {
      type: CUSTOMER_REFERRED,
      title: 'Customer referred',
      group: 'referral',
      operational: false,
      emitted: true,
      schema: referredSchema,
      example: referredExample,
    },
    {
      type: CUSTOMER_REWARDED,
      title: 'Customer rewarded',
      group: 'referral',
      operational: false,
      emitted: true,
      schema: rewardedSchema,
      example: rewardedExample,
    },
  );
  list.push({
    type: ENDPOINT_DISABLED,
    title: 'Webhook endpoint disabled',
    group: 'operational',
    operational: true,
    emitted: true,
    schema: endpointDisabledSchema,
    example: {
      endpoint_id: 'whep_7Jb2x0Qd9mKcT1rYwZ4nA8sE',
      target_url: 'https://crm.example.com/hooks/tally',
      description: 'CRM sync',
      reason: 'failing',
      failing_since: '2025-06-05T07:09:01.696Z',
      disabled_at: '2025-06-10T07:09:01.696Z',
    },
  });
  return list;
}

function withExtras(type: string, schema: JsonSchema): JsonSchema {
  const extra = EXTRA_ATTRIBUTES[type];
  if (!extra) return schema;
  return { ...schema, properties: { ...(schema.properties as Record<string, unknown>), ...extra } };
}

/** The seed-001 example turned into an expiry: negative points, a POINTS_EXPIRATION transaction. */
function expiredExample(added: Record<string, unknown>): Record<string, unknown> {
  const ex = structuredClone(added) as Record<string, unknown> & {
    balance: Record<string, unknown>;
    voucher: Record<string, unknown>;
    transaction: Record<string, unknown>;
  };
  ex.balance = { ...ex.balance, points: -40, total: 2601, balance: 2601 };
  ex.voucher.loyalty_card = { points: 2601, balance: 2601 };
  ex.transaction = {
    ...ex.transaction,
    type: 'POINTS_EXPIRATION',
    source: 'tally-scheduler',
    reason: 'Points expired',
    source_id: null,
    details: { balance: ex.balance },
  };
  return ex;
}

export const EVENT_CATALOG: EventTypeInfo[] = build();
export const EVENT_TYPES = new Map(EVENT_CATALOG.map((e) => [e.type, e]));

export function isKnownEventType(type: string): boolean {
  return EVENT_TYPES.has(type);
}
