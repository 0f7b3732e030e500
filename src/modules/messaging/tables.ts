import type { Generated } from 'kysely';

// Tables of the messaging module (channels, flows and their versions, messages, sessions,
// consent, broadcasts). Same conventions as the core: ISO timestamps as TEXT, JSON as TEXT,
// booleans as INTEGER 0/1.

export interface MsgChannelsTable {
  id: string;
  name: string;
  provider: string;
  type: string;
  sender: string;
  /** JSON of the provider credentials; write-only (never returned, never logged). */
  credentials: string | null;
  /** JSON: {type:'basic', username, password} | {type:'token', token} | {type:'twilio_signature'} | {type:'none'} */
  inbound_auth: string | null;
  public_url: string | null;
  /** JSON: rate_per_second, twilio_reply ('api'|'twiml'), opt_out_reply, opt_in_reply, timeout_ms, ... */
  settings: string | null;
  created_at: string;
  updated_at: string | null;
  deleted_at: string | null;
}

export interface MsgFlowsTable {
  id: string;
  program_id: string;
  name: string;
  current_version: number;
  active: number;
  created_at: string;
  updated_at: string | null;
  deleted_at: string | null;
}

export interface MsgFlowVersionsTable {
  id: string;
  flow_id: string;
  version: number;
  definition: string;
  created_at: string;
}

export interface MsgTriggersTable {
  id: string;
  flow_id: string;
  program_id: string;
  /** Normalised keyword, or '*' for a catch-all. */
  keyword: string;
  /** The alias as the flow spells it (reports count matches per alias). */
  alias: string;
  match: string;
  /** Bound channel, or '' when the flow listens on every channel. */
  channel_id: string;
  created_at: string;
}

export interface MsgMessagesTable {
  id: string;
  channel_id: string;
  direction: string;
  /** `${channel_id}:${provider message id}` for inbound messages: the unique index deduplicates provider retries. */
  inbound_key: string | null;
  provider_message_id: string | null;
  from_number: string;
  to_number: string;
  text: string;
  status: string;
  error: string | null;
  attempts: number;
  next_attempt_at: string | null;
  locked_until: string | null;
  flow_id: string | null;
  flow_version: number | null;
  keyword: string | null;
  conversation_id: string | null;
  broadcast_id: string | null;
  in_reply_to: string | null;
  program_id: string | null;
  customer_id: string | null;
  membership_id: string | null;
  /** 1 for opt-out/opt-in confirmations: sent even to an opted-out number. */
  system: number;
  created_at: string;
  updated_at: string;
  sent_at: string | null;
  delivered_at: string | null;
  /** JSON WhatsAppTemplate of a template message (`text` then holds a readable preview). */
  template: string | null;
}

/** The figures of a flow's day, as msg_flow_days and msg_flow_live_days both keep them (a report reads these). */
export const FLOW_DAY_FIGURES = [
  'day',
  'messages',
  'messages_sent',
  'delivered',
  'failed',
  'inbound',
  'keyword_matches',
  'members_messaged',
  'members_replied',
  'redemptions_within_7_days',
  'points_redeemed_within_7_days',
] as const;

/** One flow's figures of one final UTC day (migration 0291; reports.ts). */
export interface MsgFlowDaysTable {
  flow_id: string;
  /** YYYY-MM-DD (UTC). */
  day: string;
  /** Every message of the day; 0 records a final day without traffic. */
  messages: number;
  messages_sent: number;
  delivered: number;
  failed: number;
  inbound: number;
  /** JSON object: alias → inbound matches. */
  keyword_matches: string;
  members_messaged: number;
  members_replied: number;
  redemptions_within_7_days: number;
  points_redeemed_within_7_days: number | string;
  /** MemberSketch (member-sketch.ts) of the members messaged that day; NULL before migration 0292. */
  messaged_sketch: string | null;
  /** MemberSketch of the members who wrote to the flow that day; NULL before migration 0292. */
  writing_sketch: string | null;
  created_at: string;
}

/**
 * One flow's running figures of one UTC day not yet final (migration 0293; live-days.ts): the
 * columns of msg_flow_days, kept as messages and redemptions are written.
 */
export interface MsgFlowLiveDaysTable
  extends Omit<MsgFlowDaysTable, 'messaged_sketch' | 'writing_sketch' | 'created_at'> {
  messaged_sketch: string;
  writing_sketch: string;
  /** Raised each time the fold changes the sketches (migration 0295): what a cached union keys on. */
  sketch_revision: number;
  updated_at: string;
}

/**
 * A redemption credited to a flow's day (the day of the flow's latest message to the customer in
 * the 7 days before it), written in the redemption's transaction; a rollback marks it. Folded into
 * the day's running figures like a message (`report_pending`, `report_counted` 0 or 1).
 */
export interface MsgFlowRedemptionsTable {
  redemption_id: string;
  flow_id: string;
  day: string;
  points: number | string;
  rolled_back: number;
  report_pending: number;
  report_counted: number;
  created_at: string;
}

/** How many of a member's messages of a day count them as messaged / writing (live-days.ts). */
export interface MsgFlowMemberDaysTable {
  flow_id: string;
  day: string;
  membership_id: string;
  messaged: number;
  writing: number;
}

/**
 * A write that may have changed a flow message's figures (its insert, a change of its status), in
 * the write's transaction; the fold (live-days.ts) deletes the rows it folded. Migration 0294.
 */
export interface MsgFlowReportQueueTable {
  seq: Generated<number>;
  message_id: string;
}

/** The bits (message-figures.ts) a flow message's day holds of it, until the day is final. */
export interface MsgFlowMessageFiguresTable {
  day: string;
  message_id: string;
  counted: number;
}

/**
 * One row: the first UTC day whose running figures are complete (messages and redemptions of
 * earlier days were written before migration 0293 kept them); '1970-01-01' on a new database.
 * A fold locks it, so that folds run one at a time (live-days.ts).
 */
export interface MsgReportStateTable {
  id: number;
  live_from: string;
}

export interface MsgConversationsTable {
  id: string;
  channel_id: string;
  phone: string;
  flow_id: string;
  flow_version: number;
  step_id: string;
  state: string;
  vars: string | null;
  expires_at: string;
  created_at: string;
  updated_at: string;
}

export interface MsgConsentsTable {
  phone: string;
  status: string;
  channel_id: string | null;
  updated_at: string;
}

export interface MsgConsentEventsTable {
  seq: Generated<number>;
  id: string;
  phone: string;
  action: string;
  channel_id: string | null;
  keyword: string | null;
  message_id: string | null;
  created_at: string;
}

export interface MsgBroadcastsTable {
  id: string;
  flow_id: string;
  flow_version: number;
  program_id: string;
  channel_id: string;
  filters: string | null;
  /** The text template (Liquid), or the WhatsApp template's name when `template` is set. */
  text: string;
  /** JSON {name, language, placeholders} of a WhatsApp template broadcast (placeholders in Liquid). */
  template: string | null;
  total: number;
  queued: number;
  skipped: number;
  created_at: string;
  /** preparing (chunks still to write) | queued (every recipient written) | cancelled */
  status: string;
  /** The `limit` asked for: at most this many recipients. */
  max_recipients: number | null;
  /** (created_at, id) of the last membership prepared: the next chunk starts after it. */
  cursor_created_at: string | null;
  cursor_id: string | null;
  first_send_at: string | null;
  last_send_at: string | null;
  updated_at: string | null;
}

declare module '../../storage/schema.ts' {
  interface DB {
    msg_channels: MsgChannelsTable;
    msg_flows: MsgFlowsTable;
    msg_flow_versions: MsgFlowVersionsTable;
    msg_triggers: MsgTriggersTable;
    msg_messages: MsgMessagesTable;
    msg_conversations: MsgConversationsTable;
    msg_consents: MsgConsentsTable;
    msg_consent_events: MsgConsentEventsTable;
    msg_broadcasts: MsgBroadcastsTable;
    msg_flow_days: MsgFlowDaysTable;
    msg_flow_live_days: MsgFlowLiveDaysTable;
    msg_flow_redemptions: MsgFlowRedemptionsTable;
    msg_flow_member_days: MsgFlowMemberDaysTable;
    msg_report_state: MsgReportStateTable;
    msg_flow_report_queue: MsgFlowReportQueueTable;
    msg_flow_message_figures: MsgFlowMessageFiguresTable;
  }
}
