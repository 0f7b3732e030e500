import {
  AnyObject,
  Answer,
  ListQuery,
  Nullable,
  PathParams,
  type Static,
  StringEnum,
  Type,
} from '../../http/schema.ts';
import { CustomerRef } from '../customers/schemas.ts';

// Referral tiers (Tally's API for Voucherify's dashboard-only referrer rewards), holders of a
// referral code, and a customer's referral status. The campaign's own `referral_program` comes in
// with POST /v1/campaigns (vouchers module) and is checked by the service (`checkProgram`).

const TierReward = Type.Union([
  Type.Object({
    type: Type.Literal('POINTS'),
    points: Type.Integer({ minimum: 1, maximum: 1_000_000_000 }),
    campaign_id: Type.String({ minLength: 1, maxLength: 200, description: 'The loyalty program (camp_...) credited' }),
  }),
  Type.Object({
    type: Type.Literal('REWARD'),
    id: Type.String({ minLength: 1, maxLength: 200, description: 'A reward of the catalogue (rew_...)' }),
  }),
]);

const TierConditions = Type.Object(
  {
    referee: Type.Optional(
      Type.Object(
        {
          metadata: Type.Optional(
            Type.Unsafe<Record<string, string | number | boolean | null>>({
              type: 'object',
              additionalProperties: { type: ['string', 'number', 'boolean', 'null'] },
              description: 'Each key must equal this value in the referee customer’s metadata',
            }),
          ),
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: true, description: 'Only referees matching these earn the tier (metadata equality)' },
);

const TierFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  banner: Type.Optional(Nullable(Type.String({ maxLength: 1000 }))),
  event: StringEnum(['EACH_REFEREE', 'MIN_REFEREES'], {
    description: 'EACH_REFEREE: every referee; MIN_REFEREES: once, when the referred count reaches `referees`',
  }),
  referees: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
  reward: TierReward,
  conditions: Type.Optional(Nullable(TierConditions)),
  metadata: Type.Optional(Nullable(AnyObject())),
};
export const TierBody = Type.Object(TierFields);
export type TierBody = Static<typeof TierBody>;
export const TierUpdateBody = Type.Partial(Type.Object(TierFields));
export type TierUpdateBody = Static<typeof TierUpdateBody>;

export const TierParams = PathParams({ campaignId: 'Referral campaign id (camp_...)' });
export const TierIdParams = PathParams({ campaignId: 'Referral campaign id (camp_...)', tierId: 'rft_...' });
export const Tier = Answer('referral_tier');

export const HolderParams = PathParams({ memberId: 'The referral code (or its voucher id)' });
export const CampaignHolderParams = PathParams({
  campaignId: 'Referral campaign id (camp_...)',
  memberId: 'The referral code (or its voucher id)',
});
export const HolderIdParams = PathParams({
  campaignId: 'Referral campaign id (camp_...)',
  memberId: 'The referral code (or its voucher id)',
  holderId: 'The holder (rfh_...) or its customer id',
});
export const HolderIdUnscopedParams = PathParams({
  memberId: 'The referral code (or its voucher id)',
  holderId: 'The holder (rfh_...) or its customer id',
});
export const HolderBody = Type.Object({
  holders: Type.Array(CustomerRef, { minItems: 1, maxItems: 100, description: 'The referees to add (upserted)' }),
  metadata: Type.Optional(Nullable(AnyObject())),
});
export type HolderBody = Static<typeof HolderBody>;
export const HolderListQuery = Type.Object({ ...ListQuery });

export const CustomerReferralParams = PathParams({ customerId: 'Customer id (cust_...) or source_id' });
export const ReferralStatus = Answer('customer_referrals');
