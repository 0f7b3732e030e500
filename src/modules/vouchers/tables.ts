// Tables of the vouchers module. Types only; see migrations.ts. Amounts are in cents (integers).

/** A voucher campaign (DISCOUNT_COUPONS or GIFT_VOUCHERS). Loyalty programs live in `programs`. */
export interface VoucherCampaignsTable {
  id: string;
  name: string;
  description: string | null;
  campaign_type: 'DISCOUNT_COUPONS' | 'GIFT_VOUCHERS' | 'REFERRAL_PROGRAM';
  /** AUTO_UPDATE: a publication generates a fresh code; STATIC: it takes one of the campaign's unpublished codes. */
  type: 'AUTO_UPDATE' | 'STATIC';
  /** The voucher template `{type, discount | gift, code_config, redemption}`. JSON. */
  voucher: string;
  active: number;
  join_once: number;
  start_date: string | null;
  expiration_date: string | null;
  metadata: string | null;
  /** Voucherify fields stored and echoed back as given (category, validity_*). JSON. */
  extra: string | null;
  created_at: string;
  updated_at: string | null;
  deleted_at: string | null;
  /** 1: the campaign has (had) unpublished codes, a publication looks for a free one first. Default 0. */
  pooled?: number;
}

export interface VouchersTable {
  id: string;
  code: string;
  campaign_id: string | null;
  /** The campaign's name (Voucherify's `campaign` field), kept in step when the campaign is renamed. */
  campaign_name: string | null;
  /** The loyalty program the voucher was issued from (a reward), for the events' `loyalty_program`. */
  program_id: string | null;
  type: 'DISCOUNT_VOUCHER' | 'GIFT_VOUCHER';
  /** `{type: AMOUNT|PERCENT|UNIT, amount_off | percent_off (+amount_limit) | unit_off (+unit_type)}`. JSON. */
  discount: string | null;
  gift_amount: number | null;
  gift_balance: number | null;
  start_date: string | null;
  expiration_date: string | null;
  active: number;
  /** Redemptions allowed (null: unlimited) and done. */
  quantity: number | null;
  redeemed_quantity: number;
  /** The customer the voucher is published to (null: not published, a free code of its campaign). */
  holder_id: string | null;
  published_at: string | null;
  /** The events' `offer` (the reward, or the campaign). JSON. */
  offer: string | null;
  metadata: string | null;
  /** When `voucher_expired` was emitted (once). */
  expired_at: string | null;
  /**
   * A referral code's referrer (the customer it was published to in a REFERRAL_PROGRAM campaign;
   * migration 0550); null for every other voucher.
   */
  referrer_id: string | null;
  created_at: string;
  updated_at: string | null;
  deleted_at: string | null;
}

export interface PublicationsTable {
  id: string;
  voucher_id: string;
  campaign_id: string | null;
  customer_id: string;
  source_id: string | null;
  channel: string | null;
  metadata: string | null;
  /** `campaign:customer` of a join_once publication (unique: one per customer), else null. */
  join_key: string | null;
  created_at: string;
}

/**
 * Every redemption (`r_` ids): voucher redemptions (kind `voucher`), reward redemptions
 * recorded by the rewards workflow (kind `reward`: reward_id, assignment_id, membership_id, points),
 * and the parent of a stacked redemption (kind `stack`: no voucher; its children name it in
 * `parent_redemption_id`).
 */
export interface RedemptionsTable {
  id: string;
  kind: 'voucher' | 'reward' | 'stack';
  voucher_id: string | null;
  voucher_code: string | null;
  campaign_id: string | null;
  program_id: string | null;
  customer_id: string | null;
  reward_id: string | null;
  assignment_id: string | null;
  membership_id: string | null;
  points: number | null;
  /** The discount given (discount vouchers) or the gift credits spent (gift vouchers). */
  amount: number | null;
  order: string | null;
  metadata: string | null;
  tracking_id: string | null;
  /** What the redemption produced (the rewards workflow's answer parts). JSON. */
  details: string | null;
  result: 'SUCCESS' | 'FAILURE';
  /** FAILED with `result: FAILURE` (a refused voucher redemption, kept for the record). */
  status: 'SUCCEEDED' | 'ROLLED_BACK' | 'FAILED';
  rollback_id: string | null;
  rollback_reason: string | null;
  rolled_back_at: string | null;
  /** A refused redemption (`result: FAILURE`): Voucherify's key of the refusal and its message. */
  failure_code?: string | null;
  failure_message?: string | null;
  /** A reward redemption's debit: the lots it took, `[{id, points}]` (the rollback restores them). JSON. */
  spent_lots?: string | null;
  /** A child of a stacked redemption: its parent's id (a `kind: 'stack'` row); migration 0503. */
  parent_redemption_id?: string | null;
  created_at: string;
}

declare module '../../storage/schema.ts' {
  interface DB {
    voucher_campaigns: VoucherCampaignsTable;
    vouchers: VouchersTable;
    publications: PublicationsTable;
    redemptions: RedemptionsTable;
  }
}
