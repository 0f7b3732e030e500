import type { Generated } from 'kysely';

// Table types of the core. Feature modules add their own tables by augmenting `DB`
// from their own `tables.ts` (declare module '../../storage/schema.ts' { interface DB { ... } }),
// so no module has to edit this file to own a table.
//
// Conventions, identical on SQLite and PostgreSQL:
// - timestamps are ISO-8601 UTC strings (TEXT), which sort correctly as text;
// - JSON is TEXT (see lib/json.ts); booleans are INTEGER 0/1;
// - amounts are BIGINT bounded to the safe-integer range.

export interface ApiKeysTable {
  id: string;
  name: string;
  app_id: string;
  token_hash: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface CustomersTable {
  id: string;
  source_id: string | null;
  name: string | null;
  email: string | null;
  phone: string | null;
  description: string | null;
  birthdate: string | null;
  address: string | null;
  metadata: string | null;
  created_at: string;
  updated_at: string | null;
}

export interface ProgramsTable {
  id: string;
  name: string;
  description: string | null;
  type: string;
  auto_join: number;
  join_once: number;
  active: number;
  start_date: string | null;
  expiration_date: string | null;
  timezone: string;
  metadata: string | null;
  voucher: string;
  /** Voucherify fields this engine stores and returns but does not act on (category, etc.). */
  extra: string | null;
  created_at: string;
  updated_at: string | null;
  deleted_at: string | null;
}

export interface BalanceDefinitionsTable {
  id: string;
  program_id: string;
  name: string;
  unit: string;
  min_value: number | null;
  max_value: number | null;
  is_default: number;
  expiration: string | null;
  metadata: string | null;
  created_at: string;
  updated_at: string | null;
  /** Reminders before points expire (JSON `[{unit, value}]`; null: none). Migration 0005. */
  reminders?: string | null;
}

export interface MembershipsTable {
  id: string;
  code: string;
  program_id: string;
  customer_id: string;
  status: string;
  /** `${program_id}:${customer_id}` when the program is join-once: the unique index enforces it. */
  join_key: string | null;
  metadata: string | null;
  created_at: string;
  updated_at: string | null;
  revoked_at: string | null;
  /** External subscription id given at import (null: the `id` stands for it in the events). */
  loyalty_subscription_id: string | null;
}

export interface BalancesTable {
  membership_id: string;
  balance_definition_id: string;
  program_id: string;
  balance: number;
  points: number;
  pending_points: number;
  expired_points: number;
  subtracted_points: number;
  created_at: string;
  updated_at: string;
}

export interface LedgerEntriesTable {
  seq: Generated<number>;
  id: string;
  membership_id: string;
  program_id: string;
  balance_definition_id: string;
  customer_id: string | null;
  type: string;
  points: number;
  balance_after: number;
  source_id: string | null;
  source: string | null;
  reason: string | null;
  details: string | null;
  related_transaction_id: string | null;
  created_at: string;
}

export interface PointLotsTable {
  id: string;
  membership_id: string;
  balance_definition_id: string;
  ledger_entry_id: string;
  points: number;
  remaining: number;
  expires_at: string | null;
  created_at: string;
}

export interface OutboxEventsTable {
  seq: Generated<number>;
  id: string;
  type: string;
  data: string;
  resource_type: string | null;
  resource_id: string | null;
  program_id: string | null;
  created_at: string;
}

export interface IdempotencyKeysTable {
  scope: string;
  key: string;
  method: string;
  path: string;
  request_hash: string;
  status_code: number | null;
  response_body: string | null;
  created_at: string;
}

export interface ScheduledJobsTable {
  id: string;
  kind: string;
  run_at: string;
  payload: string | null;
  /** Set for work that must happen once (an anniversary, an expiry): a second schedule is a no-op. */
  unique_key: string | null;
  state: string;
  attempts: number;
  locked_by: string | null;
  locked_until: string | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

/** SQLite's cache bus log (src/lib/cache-bus.ts). */
export interface CacheChangesTable {
  seq: Generated<number>;
  origin: string;
  topic: string;
  key: string | null;
  created_at: string;
}

export interface DB {
  api_keys: ApiKeysTable;
  customers: CustomersTable;
  programs: ProgramsTable;
  balance_definitions: BalanceDefinitionsTable;
  memberships: MembershipsTable;
  balances: BalancesTable;
  ledger_entries: LedgerEntriesTable;
  point_lots: PointLotsTable;
  outbox_events: OutboxEventsTable;
  idempotency_keys: IdempotencyKeysTable;
  scheduled_jobs: ScheduledJobsTable;
  cache_changes: CacheChangesTable;
}
