import type { JsonSchema } from '../catalog.ts';

// Tally extensions to the loyalty catalog: Voucherify's `customer.referred` and `customer.rewarded`
// (webhook-events-customer: EventCustomerReferred `{customer, referrer, campaign, voucher,
// redemption|custom_event}`, EventCustomerRewardedData), written by the referral conversion
// (src/workflows/referrals.ts). Every attribute listed is present; the ones a conversion may not
// have (its redemption, its custom event, the tier, the reward, the balance) are null then.
// Tally adds `referral_id` (rfl_...) and, on customer.rewarded, `role` (REFERRER | REFEREE).

const str = { type: 'string' };
const nstr = { type: ['string', 'null'] };
const date = { type: 'string', format: 'date-time' };
const obj = (required: string[], properties: Record<string, JsonSchema>, nullable = false): JsonSchema => ({
  type: nullable ? ['object', 'null'] : 'object',
  required,
  properties,
});

const customer = obj(['id', 'source_id', 'name', 'email', 'metadata', 'object'], {
  id: str,
  source_id: nstr,
  name: nstr,
  email: nstr,
  metadata: { type: 'object' },
  object: { const: 'customer' },
});
const common = {
  voucher: obj(['id', 'code', 'type', 'campaign', 'campaign_id', 'is_referral_code', 'referrer_id', 'object'], {
    id: str,
    code: str,
    type: str,
    campaign: nstr,
    campaign_id: nstr,
    is_referral_code: { const: true },
    holder_id: nstr,
    referrer_id: str,
    created_at: date,
    object: { const: 'voucher' },
  }),
  campaign: obj(['id', 'name', 'campaign_type', 'object'], {
    id: str,
    name: str,
    campaign_type: { const: 'REFERRAL_PROGRAM' },
    type: str,
    is_referral_code: { const: true },
    object: { const: 'campaign' },
  }),
  redemption: obj(['id', 'object'], { id: str, object: { const: 'redemption' } }, true),
  custom_event: obj(['id', 'type', 'object'], { id: str, type: str, object: { const: 'event' } }, true),
  referral_id: { ...str, description: 'Tally: the referral (rfl_...)' },
};

export const CUSTOMER_REFERRED = 'customer.referred';
export const CUSTOMER_REWARDED = 'customer.rewarded';

export const referredSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['customer', 'referrer', 'campaign', 'voucher', 'redemption', 'custom_event', 'referral_id'],
  properties: { customer, referrer: customer, ...common },
};

export const rewardedSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'customer',
    'holder',
    'voucher',
    'campaign',
    'redemption',
    'reward',
    'referral_tier',
    'balance',
    'custom_event',
    'customer_event',
    'role',
    'referral_id',
  ],
  properties: {
    customer,
    holder: { type: 'null' },
    ...common,
    reward: obj(['id', 'name', 'type', 'object'], { id: str, name: str, type: str, object: { const: 'reward' } }, true),
    referral_tier: obj(
      ['id', 'campaign_id', 'banner', 'parameters'],
      {
        id: str,
        campaign_id: str,
        banner: str,
        parameters: obj(['event_type'], { event_type: { enum: ['each_referee', 'min_referees'] } }),
      },
      true,
    ),
    balance: {
      type: ['object', 'null'],
      properties: { amount: { type: 'integer' }, points: { type: 'integer' } },
      additionalProperties: false,
    },
    customer_event: { type: 'null' },
    role: { enum: ['REFERRER', 'REFEREE'], description: 'Tally: who the reward went to' },
  },
};

const exampleCustomer = {
  id: 'cust_7Jb2x0Qd9mKcT1rYwZ4nA8sE',
  source_id: 'friend-1',
  name: 'Maja',
  email: null,
  metadata: {},
  object: 'customer',
};
const exampleCommon = {
  voucher: {
    id: 'v_3kXwq1rT8bNmC0dLz5YpA2uE',
    code: 'REF-8K2P',
    type: 'DISCOUNT_VOUCHER',
    campaign: 'Bring a friend',
    campaign_id: 'camp_9Qm1Zx4Lr7Tb2Wc8Yn0Ka5Vd',
    is_referral_code: true,
    holder_id: 'cust_2Lw8Nc5Rk1Xz7Qa4Tb9Ym0Ud',
    referrer_id: 'cust_2Lw8Nc5Rk1Xz7Qa4Tb9Ym0Ud',
    created_at: '2025-06-01T09:00:00.000Z',
    object: 'voucher',
  },
  campaign: {
    id: 'camp_9Qm1Zx4Lr7Tb2Wc8Yn0Ka5Vd',
    name: 'Bring a friend',
    campaign_type: 'REFERRAL_PROGRAM',
    type: 'AUTO_UPDATE',
    is_referral_code: true,
    object: 'campaign',
  },
  redemption: { id: 'r_5Tb2Wc8Yn0Ka5Vd9Qm1Zx4Lr7', object: 'redemption' },
  custom_event: null,
  referral_id: 'rfl_1Zx4Lr7Tb2Wc8Yn0Ka5Vd9Qm',
};

export const referredExample = {
  customer: exampleCustomer,
  referrer: { ...exampleCustomer, id: 'cust_2Lw8Nc5Rk1Xz7Qa4Tb9Ym0Ud', source_id: 'ana', name: 'Ana' },
  ...exampleCommon,
};

export const rewardedExample = {
  customer: { ...exampleCustomer, id: 'cust_2Lw8Nc5Rk1Xz7Qa4Tb9Ym0Ud', source_id: 'ana', name: 'Ana' },
  holder: null,
  ...exampleCommon,
  reward: null,
  referral_tier: {
    id: 'rft_4Lr7Tb2Wc8Yn0Ka5Vd9Qm1Zx',
    campaign_id: 'camp_9Qm1Zx4Lr7Tb2Wc8Yn0Ka5Vd',
    banner: '100 points for every friend',
    parameters: { event_type: 'each_referee' },
  },
  balance: { points: 100 },
  customer_event: null,
  role: 'REFERRER',
};
