import type { Selectable } from 'kysely';
import type { WebhookEndpointsTable } from '../tables.ts';

// What the dispatcher's parts hand each other: a claimed delivery, the outcome of sending it, the
// attempt recorded for it.

export type EndpointRow = Selectable<WebhookEndpointsTable>;

export const REQUEST_TIMEOUT_MS = 15_000;
/** A claim outlives the request timeout; an expired lease means the sender died. */
export const LEASE_MS = 30_000;
export const DISABLE_AFTER_MS = 5 * 24 * 3600_000;

export interface OutEvent {
  id: string;
  type: string;
  created_at: string;
  data: string;
}

export type AttemptTrigger = 'scheduled' | 'manual' | 'test';

export interface Claimed {
  seq: number | null;
  endpoint_id: string;
  event: OutEvent;
  attempt: number;
  manual: boolean;
  trigger: AttemptTrigger;
  /** Direct attempts (resend/test) do not hold the delivery's lease and do not reschedule it. */
  direct: boolean;
}

export interface AttemptRecord {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  attempt: number;
  trigger: string;
  status: 'succeeded' | 'failed';
  status_code: number | null;
  duration_ms: number;
  response: string | null;
  error: string | null;
  next_attempt_at: string | null;
  created_at: string;
}

/** The answer to one send (or its failure), until it is recorded. */
export interface Outcome {
  claimed: Claimed;
  endpoint: EndpointRow;
  statusCode: number | null;
  durationMs: number;
  response: string | null;
  error: string | null;
  retryAfterMs: number | null;
  at: string;
  /** A manual attempt's caller, answered once the attempt is recorded. */
  resolve?: (a: AttemptRecord) => void;
}

/** Whether a status code is a success (2xx). */
export function succeeded(statusCode: number | null): boolean {
  return statusCode !== null && statusCode >= 200 && statusCode < 300;
}
