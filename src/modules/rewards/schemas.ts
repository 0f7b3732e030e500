import {
  AnyObject,
  Answer,
  IdParam,
  ListQuery,
  Nullable,
  PathParams,
  type Static,
  StringEnum,
  Type,
} from '../../http/schema.ts';

// Voucherify's documents and SDK disagree on a few inputs; both forms are accepted and one answered
// (spec notes, section 5 item 7): coin ratios as strings or numbers (numbers out), `sku` or
// `sku_id` (`sku_id` out), an assignment list or a single assignment (a list out on the loyalty
// routes), `type` given or implied by `parameters`.

const Ratio = Type.Union([Type.Number(), Type.String({ maxLength: 40 })]);

const RewardParametersBody = Type.Object({
  campaign: Type.Optional(
    Type.Object({
      id: Type.String({ minLength: 1, maxLength: 200 }),
      type: Type.Optional(StringEnum(['DISCOUNT_COUPONS', 'GIFT_VOUCHERS', 'LOYALTY_PROGRAM'])),
      balance: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
    }),
  ),
  coin: Type.Optional(Type.Object({ exchange_ratio: Ratio, points_ratio: Type.Optional(Ratio) })),
  product: Type.Optional(
    Type.Object({
      id: Type.String({ minLength: 1, maxLength: 200 }),
      sku_id: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
      sku: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
    }),
  ),
});

const RewardFields = {
  type: Type.Optional(StringEnum(['CAMPAIGN', 'COIN', 'MATERIAL'])),
  parameters: Type.Optional(RewardParametersBody),
  stock: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }))),
  attributes: Type.Optional(
    Nullable(
      Type.Object({
        image_url: Type.Optional(Nullable(Type.String({ maxLength: 2000 }))),
        description: Type.Optional(Nullable(Type.String({ maxLength: 5000 }))),
      }),
    ),
  ),
  metadata: Type.Optional(Nullable(AnyObject())),
};

export const RewardBody = Type.Object({ name: Type.String({ minLength: 1, maxLength: 500 }), ...RewardFields });
export type RewardInput = Static<typeof RewardBody>;
export const RewardUpdateBody = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
  ...RewardFields,
});

export const RewardListQuery = Type.Object({ ...ListQuery, assignment_id: Type.Optional(Type.String()) });
export const PageQuery = Type.Object(ListQuery);

const LoyaltyParameters = Type.Object({
  loyalty: Type.Optional(
    Type.Object({
      points: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }))),
      auto_redeem: Type.Optional(Nullable(Type.Boolean())),
    }),
  ),
});

const AssignmentFields = {
  parameters: Type.Optional(LoyaltyParameters),
  validation_rules: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 50 })),
};

/** One assignment: `reward` on the loyalty routes, `campaign` on the reward routes. */
export const AssignmentItem = Type.Object({
  reward: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  campaign: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  ...AssignmentFields,
});
export type AssignmentInput = Static<typeof AssignmentItem>;
export const AssignmentBody = Type.Union([AssignmentItem, Type.Array(AssignmentItem, { minItems: 1, maxItems: 100 })]);
export const AssignmentUpdateBody = Type.Object(AssignmentFields);
export type AssignmentUpdate = Static<typeof AssignmentUpdateBody>;

export const MemberRewardsQuery = Type.Object({
  ...ListQuery,
  affordable_only: Type.Optional(Type.Boolean()),
});

/** `reward` is optional here so that its absence is Voucherify's `missing_reward`, not a schema error. */
export const RedeemBody = Type.Object({
  reward: Type.Optional(
    Type.Object({
      id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
      assignment_id: Type.Optional(Type.String({ maxLength: 200 })),
      points: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
    }),
  ),
  order: Type.Optional(
    Nullable(
      Type.Object({
        id: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
        source_id: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
        status: Type.Optional(Nullable(Type.String({ maxLength: 50 }))),
        amount: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }))),
        items: Type.Optional(Nullable(Type.Array(AnyObject(), { maxItems: 500 }))),
        metadata: Type.Optional(Nullable(AnyObject())),
      }),
    ),
  ),
  metadata: Type.Optional(Nullable(AnyObject())),
});
export type RedeemInput = Static<typeof RedeemBody>;

export const Reward = Answer('reward');
export const Assignment = Answer('reward_assignment');
export const Redemption = Answer('redemption');
export const RewardParams = IdParam('rewardId', 'Reward id (rew_...)');
export const RewardAssignmentParams = PathParams({ rewardId: 'Reward id', assignmentId: 'Reward assignment id' });
export const ProgramParams = IdParam('campaignId', 'Loyalty campaign id');
export const ProgramAssignmentParams = PathParams({ campaignId: 'Loyalty campaign id', assignmentId: 'Assignment id' });
export const TierParams = PathParams({ campaignId: 'Loyalty campaign id', tierId: 'Loyalty tier id' });
export const MemberParams = IdParam('memberId', 'Card code or v_ id');
export const ProgramMemberParams = PathParams({ campaignId: 'Loyalty campaign id', memberId: 'Card code or v_ id' });
