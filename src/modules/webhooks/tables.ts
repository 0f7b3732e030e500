import type { Generated } from 'kysely';

// Tables of the webhooks module (migration 0100_webhooks).

export interface WebhookEndpointsTable {
  id: string;
  target_url: string;
  description: string | null;
  /** JSON array of event types, or ["*"]. */
  events: string;
  active: number;
  /** `whsec_...`: signs every delivery. Stored as is (it must be usable to sign). */
  secret: string;
  /** The secret before the last rotation; keeps signing beside the new one until previous_secret_expires_at. */
  previous_secret: string | null;
  previous_secret_expires_at: string | null;
  /** Why the endpoint was disabled by Tally: "gone" (410) or "failing" (5 days of failures). */
  disabled_reason: string | null;
  /** First failure of the current failing streak; null after any success. */
  failing_since: string | null;
  created_at: string;
  updated_at: string;
}

/** One message (event) for one endpoint, with its retry state. */
export interface WebhookDeliveriesTable {
  seq: Generated<number>;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  event_created_at: string;
  /** pending | sending | succeeded | failed */
  status: string;
  attempts: number;
  /** 1 for a manual resend/recover/test: one attempt, no schedule. */
  manual: number;
  next_attempt_at: string | null;
  lease_until: string | null;
  leased_by: string | null;
  last_status_code: number | null;
  created_at: string;
  updated_at: string;
}

export interface WebhookAttemptsTable {
  seq: Generated<number>;
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  /** 1-based number of this attempt of this delivery. */
  attempt: number;
  /** scheduled | manual | test */
  trigger: string;
  /** succeeded | failed */
  status: string;
  status_code: number | null;
  duration_ms: number;
  /** First 1 KB of the response body. */
  response: string | null;
  error: string | null;
  /** When the next attempt is due (null: none: success, exhausted, manual, or endpoint disabled). */
  next_attempt_at: string | null;
  created_at: string;
}

/** SQLite: how far the webhook fan-out has read the outbox (storage/sqlite/outbox-progress.ts). */
export interface OutboxCursorsTable {
  name: string;
  last_seq: number;
  updated_at: string;
}

/** PostgreSQL: events the webhook fan-out has not read, filled by a trigger (storage/postgres/outbox-progress.ts). */
export interface OutboxPendingTable {
  seq: number;
}

declare module '../../storage/schema.ts' {
  interface OutboxEventsTable {
    /**
     * 1: never fanned out to endpoints (an endpoint's test event). Fan-out progress is the
     * cursor or the pending table, not this flag (0101_outbox_progress).
     */
    dispatched: Generated<number>;
  }
  interface DB {
    outbox_cursors: OutboxCursorsTable;
    outbox_pending: OutboxPendingTable;
    webhook_endpoints: WebhookEndpointsTable;
    webhook_deliveries: WebhookDeliveriesTable;
    webhook_attempts: WebhookAttemptsTable;
  }
}
