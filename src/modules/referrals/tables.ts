// Tables of the referrals module. Types only; see migrations.ts.

/** A REFERRAL_PROGRAM campaign's `referral_program` (the campaign itself is a voucher campaign). */
export interface ReferralProgramsTable {
  campaign_id: string;
  /** `redemption` (the referee redeems the code) or `custom_event` (an event carries `referral.code`). */
  conversion_event_type: 'redemption' | 'custom_event';
  /** `{id?, name}` of the custom event that converts (custom_event programs). JSON. */
  custom_event: string | null;
  /** `{type: LOYALTY_CARD|GIFT_VOUCHER, amount, related_object_parent{id, name, object}}`. JSON. */
  referee_reward: string | null;
  /** Tally: only customers with no loyalty card may be referred (1) or anyone (0). */
  new_customers_only: number;
  created_at: string;
  updated_at: string | null;
}

/** A referrer reward of a referral program (`rft_`): for each referee, or once after N referees. */
export interface ReferralTiersTable {
  id: string;
  campaign_id: string;
  name: string;
  banner: string | null;
  /** EACH_REFEREE | MIN_REFEREES. */
  kind: 'EACH_REFEREE' | 'MIN_REFEREES';
  /** MIN_REFEREES: the referred count that earns it (EACH_REFEREE: 1). */
  referees: number;
  /** `{type: POINTS, points, campaign_id}` | `{type: REWARD, id}`. JSON. */
  reward: string;
  /** Conditions on the referee (`{referee: {metadata: {...}}}`). JSON. */
  conditions: string | null;
  metadata: string | null;
  created_at: string;
  updated_at: string | null;
  deleted_at: string | null;
}

/** One referee referred in one campaign (`rfl_`; unique per campaign and referee: referred once). */
export interface ReferralsTable {
  id: string;
  campaign_id: string;
  referrer_id: string;
  referee_id: string;
  voucher_id: string;
  code: string;
  /** `redemption` | `custom_event`. */
  conversion: 'redemption' | 'custom_event';
  /** The redemption (`r_`) or the custom event's activity id. */
  related_object_id: string;
  /** What names the conversion for retries (a redemption id, `event:<source_event_id>`). */
  source_key: string | null;
  created_at: string;
}

/** A reward given for a referral (`rfg_`): to the referee, or to the referrer by a tier. */
export interface ReferralRewardsTable {
  id: string;
  referral_id: string;
  campaign_id: string;
  tier_id: string | null;
  customer_id: string;
  role: 'REFERRER' | 'REFEREE';
  /** POINTS | GIFT_CREDITS | REWARD | DISCOUNT. */
  type: string;
  /** Points, or cents (gift credits, discount). */
  amount: number | null;
  reward_id: string | null;
  /** What was given (card, voucher, ledger entry). JSON. */
  details: string | null;
  created_at: string;
}

/** A referee holder of a referral code (`rfh_`), added by conversion or by the holders API. */
export interface ReferralHoldersTable {
  id: string;
  campaign_id: string;
  voucher_id: string;
  customer_id: string;
  created_at: string;
}

/**
 * A referrer's referred count in a campaign, moved by an upsert that returns the new count: the row
 * lock orders the conversions of one referrer, so "after N referees" is reached by exactly one.
 */
export interface ReferralCountsTable {
  campaign_id: string;
  referrer_id: string;
  referred: number;
}

declare module '../../storage/schema.ts' {
  interface DB {
    referral_programs: ReferralProgramsTable;
    referral_tiers: ReferralTiersTable;
    referrals: ReferralsTable;
    referral_rewards: ReferralRewardsTable;
    referral_holders: ReferralHoldersTable;
    referral_counts: ReferralCountsTable;
  }
}
