// Tables of the program-rules module (earning side). Types only; see migrations.ts.

export interface EarningRulesTable {
  id: string;
  program_id: string;
  /** `order.paid` or the name of a custom event. */
  event: string;
  active: number;
  /** The rule as given (Voucherify shape plus Tally's conditions, multipliers, limits), JSON. */
  definition: string;
  created_at: string;
  updated_at: string | null;
}

/** One row per ingested activity: the unique key makes ingestion idempotent. */
export interface ProcessedActivitiesTable {
  key: string;
  id: string;
  kind: string;
  customer_id: string | null;
  /** The answer given the first time, replayed for a duplicate. */
  result: string | null;
  created_at: string;
}

export interface OrdersTable {
  id: string;
  source_id: string | null;
  customer_id: string | null;
  status: string;
  amount: number | null;
  discount_amount: number | null;
  total_amount: number | null;
  items: string | null;
  metadata: string | null;
  created_at: string;
  updated_at: string | null;
  paid_at: string | null;
}

/** Points a rule gave a membership in one period (caps). */
export interface EarningRuleUsageTable {
  earning_rule_id: string;
  membership_id: string;
  period_key: string;
  points: number;
}

export interface PendingPointsTable {
  id: string;
  program_id: string;
  membership_id: string;
  customer_id: string;
  balance_definition_id: string;
  earning_rule_id: string | null;
  order_id: string | null;
  points: number;
  status: string;
  activates_at: string;
  details: string | null;
  created_at: string;
  updated_at: string | null;
}

declare module '../../storage/schema.ts' {
  interface DB {
    earning_rules: EarningRulesTable;
    processed_activities: ProcessedActivitiesTable;
    orders: OrdersTable;
    earning_rule_usage: EarningRuleUsageTable;
    pending_points: PendingPointsTable;
  }
}
