import {
  AnyObject,
  Answer,
  IdParam,
  ListQuery,
  Nullable,
  Reminders,
  StartingAfterId,
  type Static,
  StringEnum,
  Type,
} from '../../http/schema.ts';
import { CustomerRef } from '../customers/schemas.ts';

const Discount = Type.Object(
  {
    type: StringEnum(['AMOUNT', 'PERCENT', 'UNIT']),
    amount_off: Type.Optional(Type.Number({ minimum: 0, description: 'AMOUNT: cents off' })),
    percent_off: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    amount_limit: Type.Optional(Nullable(Type.Number({ minimum: 0, description: 'PERCENT: at most this many cents' }))),
    unit_off: Type.Optional(Type.Integer({ minimum: 0 })),
    unit_type: Type.Optional(Type.String({ description: 'UNIT: the product or SKU id given free' })),
    effect: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);
const Gift = Type.Object(
  { amount: Type.Optional(Type.Integer({ minimum: 0, description: 'Cents' })), effect: Type.Optional(Type.String()) },
  { additionalProperties: true },
);
const CodeConfig = Type.Object(
  {
    length: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    charset: Type.Optional(Type.String({ maxLength: 256 })),
    prefix: Type.Optional(Type.String({ maxLength: 100 })),
    postfix: Type.Optional(Type.String({ maxLength: 100 })),
    pattern: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: true },
);
const Redemption = Nullable(
  Type.Object({ quantity: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))) }, { additionalProperties: true }),
);
const date = () => Type.Optional(Nullable(Type.String({ format: 'date-time' })));

export const CampaignBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    description: Type.Optional(Nullable(Type.String({ maxLength: 5000 }))),
    campaign_type: Type.Optional(StringEnum(['DISCOUNT_COUPONS', 'GIFT_VOUCHERS', 'REFERRAL_PROGRAM'])),
    type: Type.Optional(StringEnum(['AUTO_UPDATE', 'STATIC'])),
    join_once: Type.Optional(Type.Boolean()),
    active: Type.Optional(Type.Boolean()),
    start_date: date(),
    expiration_date: date(),
    metadata: Type.Optional(Nullable(AnyObject())),
    reminders: Type.Optional(Nullable(Reminders)),
    vouchers_count: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
    voucher: Type.Optional(
      Type.Object(
        {
          type: Type.Optional(StringEnum(['DISCOUNT_VOUCHER', 'GIFT_VOUCHER'])),
          discount: Type.Optional(Nullable(Discount)),
          gift: Type.Optional(Nullable(Gift)),
          code_config: Type.Optional(Nullable(CodeConfig)),
          redemption: Type.Optional(Redemption),
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: true },
);
export type CampaignBody = Static<typeof CampaignBody>;

export const CampaignListQuery = Type.Object({
  ...ListQuery,
  campaign_type: Type.Optional(StringEnum(['DISCOUNT_COUPONS', 'GIFT_VOUCHERS', 'REFERRAL_PROGRAM'])),
});
export const CampaignParams = IdParam('campaignId', 'Voucher campaign id (camp_...) or name');

const ImportedCode = Type.Object(
  {
    code: Type.String({ minLength: 1, maxLength: 200 }),
    active: Type.Optional(Type.Boolean()),
    start_date: date(),
    expiration_date: date(),
    metadata: Type.Optional(Nullable(AnyObject())),
    redemption: Type.Optional(Redemption),
  },
  { additionalProperties: true },
);
/** Voucherify's array of vouchers; Tally also takes plain codes, or `{codes: [...]}`. */
export const ImportBody = Type.Union([
  Type.Array(Type.Union([ImportedCode, Type.String({ minLength: 1, maxLength: 200 })]), { maxItems: 10000 }),
  Type.Object({
    codes: Type.Array(Type.Union([ImportedCode, Type.String({ minLength: 1, maxLength: 200 })]), { maxItems: 10000 }),
  }),
]);
export type ImportBody = Static<typeof ImportBody>;

export const VoucherBody = Type.Object(
  {
    code: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    campaign: Type.Optional(Nullable(Type.String())),
    campaign_id: Type.Optional(Nullable(Type.String())),
    type: Type.Optional(StringEnum(['DISCOUNT_VOUCHER', 'GIFT_VOUCHER'])),
    discount: Type.Optional(Nullable(Discount)),
    gift: Type.Optional(Nullable(Gift)),
    start_date: date(),
    expiration_date: date(),
    active: Type.Optional(Type.Boolean()),
    metadata: Type.Optional(Nullable(AnyObject())),
    redemption: Type.Optional(Redemption),
    code_config: Type.Optional(Nullable(CodeConfig)),
  },
  { additionalProperties: true },
);
export type VoucherBody = Static<typeof VoucherBody>;

export const VoucherListQuery = Type.Object({
  ...ListQuery,
  ...StartingAfterId,
  campaign: Type.Optional(Type.String()),
  campaign_id: Type.Optional(Type.String()),
  customer: Type.Optional(Type.String({ description: 'Holder: customer id or source_id' })),
});
export const CodeParams = IdParam('code', 'Voucher code or id (v_...)');
export const DeleteQuery = Type.Object({ force: Type.Optional(Type.Boolean()) });

export const PublicationBody = Type.Object(
  {
    campaign: Type.Optional(
      Type.Union([
        Type.String(),
        Type.Object(
          { name: Type.Optional(Type.String()), id: Type.Optional(Type.String()) },
          { additionalProperties: true },
        ),
      ]),
    ),
    voucher: Type.Optional(Type.String({ description: 'A code to publish (instead of a campaign)' })),
    customer: CustomerRef,
    source_id: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
    channel: Type.Optional(Nullable(Type.String({ maxLength: 100 }))),
    metadata: Type.Optional(Nullable(AnyObject())),
    join_once: Type.Optional(
      Type.Boolean({ description: 'Voucherify documents it as a query parameter; the SDK sends it here' }),
    ),
  },
  { additionalProperties: true },
);
export type PublicationBody = Static<typeof PublicationBody>;
export const PublicationQuery = Type.Object({ join_once: Type.Optional(Type.Boolean()) });
export const PublicationListQuery = Type.Object({
  ...ListQuery,
  customer: Type.Optional(Type.String()),
  campaign: Type.Optional(Type.String()),
  voucher: Type.Optional(Type.String()),
});

const Order = Type.Object(
  {
    id: Type.Optional(Nullable(Type.String())),
    source_id: Type.Optional(Nullable(Type.String())),
    amount: Type.Optional(Nullable(Type.Integer({ minimum: 0, description: 'Cents' }))),
    items: Type.Optional(
      Nullable(
        Type.Array(
          Type.Object(
            {
              product_id: Type.Optional(Nullable(Type.String())),
              sku_id: Type.Optional(Nullable(Type.String())),
              source_id: Type.Optional(Nullable(Type.String())),
              quantity: Type.Optional(Nullable(Type.Integer({ minimum: 0 }))),
              price: Type.Optional(Nullable(Type.Integer({ minimum: 0 }))),
              amount: Type.Optional(Nullable(Type.Integer({ minimum: 0 }))),
            },
            { additionalProperties: true },
          ),
          { maxItems: 500 },
        ),
      ),
    ),
    metadata: Type.Optional(Nullable(AnyObject())),
  },
  { additionalProperties: true },
);

/** Body of `/vouchers/{code}/validate` and `/vouchers/{code}/redemption`. */
export const RedeemBody = Type.Object(
  {
    customer: Type.Optional(CustomerRef),
    order: Type.Optional(Nullable(Order)),
    metadata: Type.Optional(Nullable(AnyObject())),
    tracking_id: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
    gift: Type.Optional(Nullable(Type.Object({ credits: Type.Optional(Type.Integer({ minimum: 0 })) }))),
  },
  { additionalProperties: true },
);
export type RedeemBody = Static<typeof RedeemBody>;

/** Body of `/validations` and `/redemptions` (Voucherify's stackable form): one or more vouchers. */
export const StackBody = Type.Object(
  {
    redeemables: Type.Array(
      Type.Object(
        {
          object: StringEnum(['voucher']),
          id: Type.String({ minLength: 1, maxLength: 200, description: 'Voucher code' }),
          gift: Type.Optional(Nullable(Type.Object({ credits: Type.Optional(Type.Integer({ minimum: 0 })) }))),
        },
        { additionalProperties: true },
      ),
      { minItems: 1, maxItems: 5 },
    ),
    customer: Type.Optional(CustomerRef),
    order: Type.Optional(Nullable(Order)),
    metadata: Type.Optional(Nullable(AnyObject())),
    tracking_id: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
  },
  { additionalProperties: true },
);
export type StackBody = Static<typeof StackBody>;

export const RedemptionListQuery = Type.Object({
  ...ListQuery,
  ...StartingAfterId,
  customer: Type.Optional(Type.String()),
  voucher: Type.Optional(Type.String()),
  campaign: Type.Optional(Type.String()),
  result: Type.Optional(Type.Union([Type.Literal('SUCCESS'), Type.Literal('FAILURE')])),
  parent_redemption_id: Type.Optional(
    Type.String({ maxLength: 200, description: "A stacked redemption's children: its parent's id (r_...)" }),
  ),
});
export const RedemptionParams = IdParam('redemptionId', 'Redemption id (r_...)');
export const RollbackQuery = Type.Object({
  reason: Type.Optional(Type.String({ maxLength: 1000 })),
  tracking_id: Type.Optional(Type.String({ maxLength: 200 })),
});
export const RedeemablesQuery = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 100, default: 100 }) });
export const CustomerParams = IdParam('customerId', 'Customer id (cust_...) or source_id');

export const Campaign = Answer('campaign');
export const Voucher = Answer('voucher');
export const Publication = Answer('publication');
export const RedemptionAnswer = Answer('redemption');
export const RollbackAnswer = Answer('redemption_rollback');
const OrderAnswer = Nullable(AnyObject({ description: 'The order after the discounts' }));

/**
 * Answer of `POST /v1/redemptions`: the children, and with several redeemables their parent
 * (Voucherify's `parent_redemption`), and the order after all of them.
 */
export const StackAnswer = Type.Object(
  {
    redemptions: Type.Array(RedemptionAnswer),
    parent_redemption: Type.Optional(RedemptionAnswer),
    order: OrderAnswer,
  },
  { additionalProperties: true },
);

/** Body of `POST /v1/redemptions/{parentRedemptionId}/rollbacks` (Voucherify's; `reason` also in the query). */
export const StackRollbackBody = Type.Object(
  {
    reason: Type.Optional(Type.String({ maxLength: 1000 })),
    tracking_id: Type.Optional(Type.String({ maxLength: 200 })),
    customer: Type.Optional(Type.Unknown()),
    order: Type.Optional(Type.Unknown()),
    metadata: Type.Optional(Nullable(AnyObject())),
  },
  { additionalProperties: true },
);

/** Answer of the stack rollback: each child's rollback, the parent's, and the order. */
export const StackRollbackAnswer = Type.Object(
  {
    rollbacks: Type.Array(RollbackAnswer),
    parent_rollback: Type.Optional(RollbackAnswer),
    order: OrderAnswer,
  },
  { additionalProperties: true },
);
export const ParentRedemptionParams = IdParam('parentRedemptionId', 'Parent redemption id (r_...)');
