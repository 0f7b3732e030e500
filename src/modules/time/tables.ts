// Tables of the time engine. Types only; see migrations.ts.

/** What a due item is about; `scope_id` names the tier group or balance definition ('' for none). */
export type DueKind =
  | 'subscription_anniversary'
  | 'membership_reminder'
  | 'tier_anniversary'
  | 'tier_reminder'
  | 'balance_reminder'
  | 'voucher_reminder';

export interface DueItemsTable {
  id: string;
  kind: DueKind;
  /** The membership (a voucher for voucher reminders). */
  subject_id: string;
  scope_id: string;
  program_id: string | null;
  /** What the moments are counted from: created_at, the tier's attributed_at, an expiry. */
  anchor_at: string;
  /** The next moment this item is due (ISO UTC); indexed. */
  next_at: string;
  created_at: string;
  updated_at: string;
}

/** An occurrence that came due before the look-back: recorded instead of sent. */
export interface DueSkipsTable {
  id: string;
  kind: DueKind;
  /** The event types it would have emitted (JSON array). */
  event_types: string;
  subject_id: string;
  scope_id: string;
  program_id: string | null;
  due_at: string;
  skipped_at: string;
}

declare module '../../storage/schema.ts' {
  interface DB {
    due_items: DueItemsTable;
    due_skips: DueSkipsTable;
  }
}
