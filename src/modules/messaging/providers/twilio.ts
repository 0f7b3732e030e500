import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Egress } from '../../../lib/egress.ts';
import { toE164 } from '../../../lib/phone.ts';
import {
  httpFailure,
  networkFailure,
  providerPost,
  type ChannelForSend,
  type DeliveryReport,
  type InboundMessage,
  type OutgoingMessage,
  type SendResult,
} from './types.ts';

// Twilio: form-encoded inbound webhooks checked with X-Twilio-Signature, replies through the REST
// API (`Messages.json`) or as TwiML in the webhook answer, status callbacks.

type Params = Record<string, unknown>;

/** base64(HMAC-SHA1(authToken, url + each param name and value, names sorted)). */
export function twilioSignature(authToken: string, url: string, params: Params): string {
  let data = url;
  for (const key of Object.keys(params).sort()) {
    const v = params[key];
    const values = Array.isArray(v) ? [...v].map(String).sort() : [v === undefined || v === null ? '' : String(v)];
    for (const value of values) data += key + value;
  }
  return createHmac('sha1', authToken).update(Buffer.from(data, 'utf8')).digest('base64');
}

export function verifyTwilioSignature(
  authToken: string,
  signature: string | undefined,
  urls: string[],
  params: Params,
): boolean {
  if (!signature) return false;
  const given = Buffer.from(signature);
  for (const url of urls) {
    const expected = Buffer.from(twilioSignature(authToken, url, params));
    if (expected.length === given.length && timingSafeEqual(expected, given)) return true;
  }
  return false;
}

export function parseTwilioInbound(body: unknown): InboundMessage[] {
  const p = (body ?? {}) as Record<string, unknown>;
  const sid =
    typeof p.MessageSid === 'string' ? p.MessageSid : typeof p.SmsMessageSid === 'string' ? p.SmsMessageSid : null;
  if (!sid || typeof p.From !== 'string') return [];
  const from = String(p.From);
  return [
    {
      providerMessageId: sid,
      from: toE164(from) ?? from,
      to: typeof p.To === 'string' ? (toE164(p.To) ?? p.To) : '',
      // A tapped WhatsApp quick reply carries ButtonText / ButtonPayload besides Body.
      text: typeof p.Body === 'string' && p.Body !== '' ? p.Body : typeof p.ButtonText === 'string' ? p.ButtonText : '',
      kind: from.startsWith('whatsapp:') ? 'WHATSAPP' : 'SMS',
      contactName: typeof p.ProfileName === 'string' ? p.ProfileName : null,
    },
  ];
}

export function parseTwilioReport(body: unknown): DeliveryReport[] {
  const p = (body ?? {}) as Record<string, unknown>;
  const sid = p.MessageSid ?? p.SmsSid;
  const s = String(p.MessageStatus ?? p.SmsStatus ?? '');
  if (typeof sid !== 'string' || !s) return [];
  const status =
    s === 'delivered' || s === 'read' ? 'delivered' : s === 'failed' || s === 'undelivered' ? 'failed' : 'sent';
  return [
    {
      providerMessageId: sid,
      status,
      error: status === 'failed' ? `${s}${p.ErrorCode ? ` (${p.ErrorCode})` : ''}` : null,
    },
  ];
}

const escapeXml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function twiml(replies: string[]): string {
  const messages = replies.map((r) => `<Message>${escapeXml(r)}</Message>`).join('');
  return `<?xml version="1.0" encoding="UTF-8"?><Response>${messages}</Response>`;
}

export async function sendTwilio(egress: Egress, channel: ChannelForSend, msg: OutgoingMessage): Promise<SendResult> {
  const { account_sid, auth_token, messaging_service_sid } = channel.credentials;
  if (!account_sid || !auth_token)
    return { ok: false, retryable: false, error: 'channel has no account_sid/auth_token' };
  const base = (channel.credentials.base_url ?? 'https://api.twilio.com').replace(/\/+$/, '');
  const wa = channel.type === 'whatsapp';
  const form = new URLSearchParams();
  form.set('To', wa ? `whatsapp:${msg.to}` : msg.to);
  if (messaging_service_sid) form.set('MessagingServiceSid', messaging_service_sid);
  else form.set('From', wa ? `whatsapp:${channel.sender}` : channel.sender);
  if (msg.template) {
    // A Content API template: its SID and the values of its numbered variables.
    form.set('ContentSid', msg.template.name);
    form.set(
      'ContentVariables',
      JSON.stringify(Object.fromEntries(msg.template.placeholders.map((v, i) => [String(i + 1), v]))),
    );
  } else form.set('Body', msg.text);
  if (msg.reportUrl) form.set('StatusCallback', msg.reportUrl);
  try {
    const { status, text } = await providerPost(
      egress,
      `${base}/2010-04-01/Accounts/${encodeURIComponent(account_sid)}/Messages.json`,
      {
        authorization: `Basic ${Buffer.from(`${account_sid}:${auth_token}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      form.toString(),
      channel.timeoutMs,
    );
    if (status < 200 || status >= 300) return httpFailure(status, text);
    let body: { sid?: unknown } | null = null;
    try {
      body = JSON.parse(text);
    } catch {
      /* tolerate */
    }
    return { ok: true, providerMessageId: typeof body?.sid === 'string' ? body.sid : null };
  } catch (err) {
    return networkFailure(err);
  }
}
