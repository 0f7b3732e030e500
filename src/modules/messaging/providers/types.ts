import { errors, request } from 'undici';
import { PrivateAddressError, readCapped, ResponseTooLargeError, type Egress } from '../../../lib/egress.ts';
import type { ChannelCredentials } from '../schemas.ts';

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
  // An answer too large to read is not retried: the provider may have accepted the message.
  if (err instanceof ResponseTooLargeError) {
    return { ok: false, retryable: false, error: `provider answer: ${err.message}` };
  }
  // A base_url that resolves inside is the channel's configuration (or an attack), not a passing fault.
  if (err instanceof PrivateAddressError) return { ok: false, retryable: false, error: `refused: ${err.message}` };
  const timedOut =
    err instanceof errors.HeadersTimeoutError ||
    err instanceof errors.BodyTimeoutError ||
    err instanceof errors.ConnectTimeoutError;
  return {
    ok: false,
    retryable: true,
    error: `network: ${timedOut ? 'timeout' : ((err as Error)?.message ?? String(err))}`,
  };
}

/**
 * Largest provider answer read, in bytes. Infobip's and Twilio's answers to a send are a few KB of
 * JSON; only the message id and, on failure, an excerpt are used.
 */
export const PROVIDER_RESPONSE_LIMIT = 64 * 1024;

/**
 * POSTs to a provider API through the server's guarded pools (one per timeout value: its connect
 * timeout and the request's header and body timeouts all bound the call; cheaper per message than
 * fetch with an AbortSignal). The base_url is the channel's, so each connection's address is checked
 * like a webhook's. Answers the status and the body text: at most PROVIDER_RESPONSE_LIMIT bytes, the
 * first of them when a refusal is larger. Throws on network errors, timeouts, refused addresses and
 * a larger success answer (ResponseTooLargeError).
 */
export async function providerPost(
  egress: Egress,
  url: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  const dispatcher = egress.pool({ connectTimeoutMs: timeoutMs, keepAliveTimeoutMs: 30_000 });
  const res = await request(url, {
    method: 'POST',
    headers,
    body,
    dispatcher,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const ok = res.statusCode >= 200 && res.statusCode < 300;
  return { status: res.statusCode, text: await readCapped(res, PROVIDER_RESPONSE_LIMIT, { truncate: !ok }) };
}

/** Digits-and-plus phone, E.164 where possible. */
export function plusNumber(raw: string): string {
  const s = raw.trim().replace(/^(whatsapp|sms|tel):/i, '');
  return s.startsWith('+') ? s : `+${s}`;
}
