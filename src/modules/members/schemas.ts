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
