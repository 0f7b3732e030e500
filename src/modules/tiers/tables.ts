// Tables of the program-rules module (tier side). Types only; see migrations.ts.

export interface TierGroupsTable {
  id: string;
  program_id: string;
  name: string;
  is_default: number;
  /** Balance definition the group qualifies on (null: the program's default points balance). */
  balance_definition_id: string | null;
  /** The group's own `loyalty_tiers_expiration` (null: the program's). JSON. */
  qualification: string | null;
  metadata: string | null;
  created_at: string;
  updated_at: string | null;
  /** Tier anniversary reminders (JSON `[{unit, value}]`; null: none). Migration 0302. */
  reminders?: string | null;
  /** When members move up / down (TierStrategy). Migration 0303; 'real_time' by default. */
  upgrade_strategy?: TierStrategy;
  downgrade_strategy?: TierStrategy;
}

/** When a tier group applies a tier change: at once, or at the card's or the tier's year anniversary. */
export type TierStrategy = 'real_time' | 'membership_anniversary' | 'tier_anniversary';

export interface TiersTable {
  id: string;
  program_id: string;
  tier_group_id: string;
  name: string;
  points_from: number;
  points_to: number | null;
  /** Voucherify's `earning_rules` mapping {ern_id: {type: MULTIPLY, multiplier} | {type: CUSTOM, points}}. JSON. */
  earning_rules: string | null;
  rewards: string | null;
  metadata: string | null;
  created_at: string;
  updated_at: string | null;
}

/** The current tier of a membership in a tier group (one row per membership and group). */
export interface MemberTiersTable {
  membership_id: string;
  tier_group_id: string;
  program_id: string;
  tier_id: string | null;
  attributed_at: string;
  /** When the tier is re-evaluated under a period or CUSTOM policy (null: only on balance change). */
  expires_at: string | null;
  updated_at: string;
}

/** Every tier change: the history of tier associations. */
export interface TierAssociationsTable {
  id: string;
  membership_id: string;
  tier_group_id: string;
  program_id: string;
  from_tier_id: string | null;
  tier_id: string | null;
  upgraded: number;
  attributed_at: string;
  source_event_id: string | null;
}

declare module '../../storage/schema.ts' {
  interface DB {
    tier_groups: TierGroupsTable;
    tiers: TiersTable;
    member_tiers: MemberTiersTable;
    tier_associations: TierAssociationsTable;
  }
}
