import {
  AnyObject,
  Answer,
  IdParam,
  PagedQuery,
  Nullable,
  PathParams,
  Reminders,
  type Static,
  StringEnum,
  Type,
} from '../../http/schema.ts';
import type { TierPolicy } from './policy.ts';

/** How a tier changes an earning rule's points (the rule's id is the key). */
export type TierMapping = { type: 'MULTIPLY'; multiplier: number } | { type: 'CUSTOM'; points: number };

const Mapping = Type.Unsafe<TierMapping>({
  oneOf: [
    {
      type: 'object',
      required: ['type', 'multiplier'],
      properties: { type: { const: 'MULTIPLY' }, multiplier: { type: 'number', exclusiveMinimum: 0, maximum: 1000 } },
    },
    {
      type: 'object',
      required: ['type', 'points'],
      properties: {
        type: { const: 'CUSTOM' },
        points: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      },
    },
  ],
});

const points = (schema: object = {}) => ({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, ...schema });
const tierProps = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  points: Type.Object({
    from: Type.Integer(points()),
    to: Type.Optional(Nullable(Type.Integer(points()))),
  }),
  earning_rules: Type.Optional(
    Type.Unsafe<Record<string, TierMapping>>({
      type: 'object',
      additionalProperties: Mapping,
      description: '{ern_id: {type: MULTIPLY, multiplier} | {type: CUSTOM, points}}',
    }),
  ),
  rewards: Type.Optional(AnyObject()),
  metadata: Type.Optional(Nullable(AnyObject())),
};
export const TierBody = Type.Object({
  ...tierProps,
  tier_group_id: Type.Optional(Type.String({ description: 'Tally: the tier group (default group when absent)' })),
});
export type TierInput = Static<typeof TierBody>;
export const TiersBody = Type.Array(TierBody, { minItems: 1, maxItems: 100 });
export const TierUpdateBody = Type.Partial(Type.Object(tierProps));

/** The tier qualification policy (Voucherify's loyalty_tiers_expiration); validatePolicy checks it in depth. */
const Policy = Type.Unsafe<TierPolicy | null>({
  type: ['object', 'null'],
  required: ['qualification_type'],
  properties: {
    qualification_type: { type: 'string', enum: ['BALANCE', 'POINTS_IN_PERIOD'] },
    qualification_period: { type: 'string', enum: ['MONTH', 'QUARTER', 'HALF_YEAR', 'YEAR'] },
    start_date: {
      type: 'object',
      required: ['type'],
      properties: { type: { type: 'string', enum: ['IMMEDIATE', 'NEXT_PERIOD'] } },
    },
    expiration_date: {
      type: 'object',
      required: ['type'],
      properties: {
        type: { type: 'string', enum: ['END_OF_PERIOD', 'END_OF_NEXT_PERIOD', 'BALANCE_DROP', 'CUSTOM'] },
        extend: { type: 'string' },
        rounding: { type: 'object' },
      },
    },
  },
});
const Strategy = StringEnum(['real_time', 'membership_anniversary', 'tier_anniversary'], {
  description: "When members move: at the balance change, or at the card's or the tier's year anniversary",
});
const groupProps = {
  balance_definition_id: Type.Optional(
    Nullable(
      Type.String({
        description: 'Balance definition (id or name) the group qualifies on; the points balance when absent',
      }),
    ),
  ),
  loyalty_tiers_expiration: Type.Optional(Policy),
  metadata: Type.Optional(Nullable(AnyObject())),
  reminders: Type.Optional(Nullable(Reminders)),
  upgrade_strategy: Type.Optional(Strategy),
  downgrade_strategy: Type.Optional(Strategy),
};
export const GroupBody = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }), ...groupProps });
export const GroupUpdateBody = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  ...groupProps,
});
export type TierGroupInput = Static<typeof GroupUpdateBody>;

export const Tier = Answer('loyalty_tier');
export const Group = Answer('tier_group');
export const TierListQuery = PagedQuery({
  order: Type.Optional(Type.String()),
  tier_group_id: Type.Optional(Type.String()),
});

export const CampaignParams = IdParam('campaignId', 'Loyalty campaign id');
export const TierParams = PathParams({ campaignId: 'Loyalty campaign id', tierId: 'Tier id (ltr_...)' });
export const GroupParams = PathParams({ campaignId: 'Loyalty campaign id', groupId: 'Tier group id (tgrp_...)' });
export const MemberParams = IdParam('memberId', 'Card code or v_ id');
