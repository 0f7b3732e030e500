// Tables of the rewards module. Types only; see migrations.ts.

export interface RewardsTable {
  id: string;
  name: string;
  /** CAMPAIGN | COIN | MATERIAL. */
  type: string;
  /** `{campaign: {id, type, balance}}` | `{coin: {exchange_ratio, points_ratio}}` | `{product: {id, sku_id}}`. JSON. */
  parameters: string;
  /** Units that can be redeemed in all (null: unlimited). */
  stock: number | null;
  /** Units redeemed so far; only ever moved by a conditional update (`redeemed < stock`). */
  redeemed: number;
  /** `{image_url, description}`. JSON. */
  attributes: string | null;
  metadata: string | null;
  created_at: string;
  updated_at: string | null;
}

/** A reward offered by one loyalty program, at a points cost (unique per reward and program). */
export interface RewardAssignmentsTable {
  id: string;
  reward_id: string;
  program_id: string;
  /** Points the reward costs (null for COIN rewards, priced by their ratios). */
  points: number | null;
  auto_redeem: number | null;
  /** COIN assignments' validation rule ids. JSON. */
  validation_rules: string | null;
  created_at: string;
  updated_at: string | null;
}

declare module '../../storage/schema.ts' {
  interface DB {
    rewards: RewardsTable;
    reward_assignments: RewardAssignmentsTable;
  }
}
