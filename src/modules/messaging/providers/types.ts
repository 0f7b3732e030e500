import { Agent, errors, request } from 'undici';

// What a provider adapter does: parse its inbound payloads and delivery reports, and send.

export interface InboundMessage {
  providerMessageId: string;
  /** Sender in E.164 (or the raw value when it is not a phone number). */
  from: string;
  to: string;
  text: string;
  /** Provider's message type (TEXT, INTERACTIVE_BUTTON_REPLY, SMS...). */
  kind: string;
  contactName?: string | null;
}

/**
 * The longest inbound text kept, in UTF-16 code units. A WhatsApp text is at most 4,096 characters
 * and a long SMS is a few hundred (Twilio joins at most 1,600), so a member never reaches it; a
 * callback carrying more is cut here rather than refused: a provider answered 4xx retries (or
 * drops the batch's other messages), and the member would get nothing at all.
 */
export const MAX_INBOUND_TEXT = 4096;
/** The longest sender profile name kept (the customer name a `join` step may create: 500 at most). */
export const MAX_CONTACT_NAME = 200;

/** Cuts `text` to at most `max` code units without splitting a surrogate pair (an emoji). */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text;
  const code = text.charCodeAt(max - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

/** The message with its text and contact name within the limits above. */
export function boundInbound(msg: InboundMessage): InboundMessage {
  if (msg.text.length <= MAX_INBOUND_TEXT && (msg.contactName ?? '').length <= MAX_CONTACT_NAME) return msg;
  return {
    ...msg,
    text: cutText(msg.text, MAX_INBOUND_TEXT),
    contactName: msg.contactName == null ? msg.contactName : cutText(msg.contactName, MAX_CONTACT_NAME),
  };
}

export interface DeliveryReport {
  providerMessageId: string;
  /** Tally status: sent | delivered | failed */
  status: 'sent' | 'delivered' | 'failed';
  error?: string | null;
}

/**
 * An approved WhatsApp template: what a business-initiated WhatsApp message must be outside the
 * 24 h window the member's own message opens. `name` is the template's name on Infobip, its
 * Content SID (HX...) on Twilio; `placeholders` fill {{1}}, {{2}}, ... of its body.
 */
export interface WhatsAppTemplate {
  name: string;
  language: string;
  placeholders: string[];
}

export interface OutgoingMessage {
  id: string;
  to: string;
  text: string;
  /** Send this template instead of `text` (WhatsApp channels). */
  template?: WhatsAppTemplate | null;
  /** URL for delivery reports, when this server's public URL is known. */
  reportUrl?: string | null;
}

export type SendResult =
  | { ok: true; providerMessageId: string | null }
  | { ok: false; retryable: boolean; error: string };

export interface ChannelCredentials {
  base_url?: string;
  api_key?: string;
  account_sid?: string;
  auth_token?: string;
  messaging_service_sid?: string;
}

export interface ChannelForSend {
  id: string;
  provider: string;
  type: string;
  sender: string;
  credentials: ChannelCredentials;
  timeoutMs: number;
}

/** Classifies a failed HTTP answer or a network error. */
export function httpFailure(status: number, body: string): SendResult {
  const retryable = status >= 500 || status === 429 || status === 408;
  return { ok: false, retryable, error: `HTTP ${status}: ${body.slice(0, 300)}` };
}

export function networkFailure(err: unknown): SendResult {
  const timedOut = err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError || err instanceof errors.ConnectTimeoutError;
  return { ok: false, retryable: true, error: `network: ${timedOut ? 'timeout' : ((err as Error)?.message ?? String(err))}` };
}

// One connection pool per timeout value (channels use one or two): its connect timeout and the
// request's header and body timeouts all bound the call. Cheaper per message than fetch with an
// AbortSignal, which builds WHATWG streams and a transferable signal each time.
const agents = new Map<number, Agent>();

/** POSTs to a provider API; answers the status and the body text. Throws on network errors and timeouts. */
export async function providerPost(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  let dispatcher = agents.get(timeoutMs);
  if (!dispatcher) {
    dispatcher = new Agent({ connect: { timeout: timeoutMs }, keepAliveTimeout: 30_000 });
    agents.set(timeoutMs, dispatcher);
  }
  const res = await request(url, { method: 'POST', headers, body, dispatcher, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  return { status: res.statusCode, text: await res.body.text() };
}

/** Digits-and-plus phone, E.164 where possible. */
export function plusNumber(raw: string): string {
  const s = raw.trim().replace(/^(whatsapp|sms|tel):/i, '');
  return s.startsWith('+') ? s : `+${s}`;
}
