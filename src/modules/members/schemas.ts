import {
  AnyObject,
  IdParam,
  PagedQuery,
  Nullable,
  PathParams,
  type Static,
  StartingAfterId,
  StringEnum,
  Type,
} from '../../http/schema.ts';
import { CustomerRef } from '../customers/schemas.ts';

/** A member (loyalty card) as answered; its other fields are listed in the API docs. */
export const Member = Type.Unsafe<Record<string, unknown>>({
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string' },
    code: { type: 'string' },
    type: { type: 'string', enum: ['LOYALTY_CARD'] },
    loyalty_card: {
      type: 'object',
      properties: {
        points: { type: 'integer' },
        balance: { type: 'integer' },
        next_expiration_date: { type: ['string', 'null'] },
        next_expiration_points: { type: ['integer', 'null'] },
        pending_points: { type: 'integer' },
        expired_points: { type: 'integer' },
        subtracted_points: { type: 'integer' },
      },
    },
    holder_id: { type: 'string' },
    loyalty_subscription_id: {
      type: ['string', 'null'],
      description: "Tally: the subscription's id in another system",
    },
    holders: {
      type: 'object',
      description: 'Tally: the member contacts sharing the card (its household): how many, and where listed',
      properties: { object: { type: 'string' }, count: { type: 'integer' }, url: { type: 'string' } },
    },
    object: { type: 'string', enum: ['voucher'] },
  },
});

export const AddMemberBody = Type.Object({
  customer: CustomerRef,
  voucher: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 120,
      pattern: '^\\S+$',
      description: 'Card code to use instead of a generated one',
    }),
  ),
  metadata: Type.Optional(Nullable(AnyObject())),
  source_id: Type.Optional(Type.String()),
  channel: Type.Optional(Type.String()),
  // Imports from another system (Brevo's loyaltySubscriptionId and creationDate).
  loyalty_subscription_id: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 64,
      description: "The subscription's id in another system (unique per program); the events carry it",
    }),
  ),
  created_at: Type.Optional(
    Type.String({
      format: 'date-time',
      description: 'When the subscription began (an import; not in the future): anniversaries count from it',
    }),
  ),
});
export type AddMemberBody = Static<typeof AddMemberBody>;

export const MemberListQuery = PagedQuery({
  ...StartingAfterId,
  customer: Type.Optional(Type.String({ description: 'Customer id' })),
  status: Type.Optional(StringEnum(['ACTIVE', 'REVOKED'])),
});
export type MemberListQuery = Static<typeof MemberListQuery>;

export const CampaignParams = IdParam('campaignId', 'Loyalty campaign id');
export const MemberParams = IdParam('memberId', 'Card code or v_ id');
export const CampaignMemberParams = PathParams({ campaignId: 'Loyalty campaign id', memberId: 'Card code or v_ id' });

// ---- households: the member contacts of a card, shaped as Voucherify's redeemable holders ----

export const HolderParams = PathParams({ memberId: 'Card code or v_ id', holderId: 'Member contact id (mc_...)' });
export const CampaignHolderParams = PathParams({
  campaignId: 'Loyalty campaign id',
  memberId: 'Card code or v_ id',
  holderId: 'Member contact id (mc_...)',
});

export const AddHoldersBody = Type.Object({
  holders: Type.Array(CustomerRef, {
    minItems: 1,
    maxItems: 100,
    description: 'Customers to add as member contacts (by id or source_id, or given whole: upserted)',
  }),
  metadata: Type.Optional(Nullable(AnyObject({ description: 'Stored on each member contact added' }))),
});
export type AddHoldersBody = Static<typeof AddHoldersBody>;

/** A member contact as a redeemable holder (`holder_role` MEMBER, `member_id` the events' number). */
export const Holder = Type.Unsafe<Record<string, unknown>>({
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string' },
    member_id: { type: 'integer' },
    customer_id: { type: 'string' },
    holder_role: { type: 'string', enum: ['MEMBER'] },
    object: { type: 'string', enum: ['redeemable_holder'] },
  },
});

/** Members imported from another system: each a join (usually with loyalty_subscription_id and created_at). */
export const ImportMembersBody = Type.Object({
  members: Type.Array(AddMemberBody, { minItems: 1, maxItems: 1000 }),
});
