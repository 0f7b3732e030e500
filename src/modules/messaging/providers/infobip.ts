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

// Infobip: inbound SMS (MO_JSON_2) and WhatsApp batches, outbound `POST /sms/3/messages` and
// `POST /whatsapp/1/message/text` (and `/whatsapp/1/message/template` for template messages), delivery
// reports. Auth on every call: `Authorization: App <key>`.

export function infobipBaseUrl(raw: string): string {
  const withScheme = /^https?:\/\//i.test(raw) ? raw : `https://${raw}`;
  return withScheme.replace(/\/+$/, '');
}

const noPlus = (e164: string) => e164.replace(/^\+/, '');

/** Text of an inbound WhatsApp message: typed text, or the title (else id) of a tapped button or list item. */
function whatsappText(message: Record<string, unknown> | undefined): string {
  if (!message) return '';
  const type = String(message.type ?? '');
  if (typeof message.text === 'string' && (type === 'TEXT' || type === 'BUTTON' || type === '')) return message.text;
  if (type === 'BUTTON' && typeof message.payload === 'string') return message.payload;
  if (type === 'INTERACTIVE_BUTTON_REPLY' || type === 'INTERACTIVE_LIST_REPLY') {
    const title = typeof message.title === 'string' ? message.title : '';
    const id = typeof message.id === 'string' ? message.id : '';
    return title || id;
  }
  return typeof message.caption === 'string' ? message.caption : '';
}

// The fields read from Infobip's payloads: each is checked before use, whatever the provider sent.
interface InfobipInbound {
  messageId?: unknown;
  from?: unknown;
  to?: unknown;
  text?: unknown;
  message?: Record<string, unknown>;
  contact?: { name?: unknown };
}
interface InfobipReport {
  messageId?: unknown;
  status?: { groupName?: unknown; name?: unknown };
  error?: { name?: unknown };
}

export function parseInfobipInbound(body: unknown): InboundMessage[] {
  const results = (body as { results?: unknown })?.results;
  if (!Array.isArray(results)) return [];
  const out: InboundMessage[] = [];
  for (const r of results as (InfobipInbound | null)[]) {
    if (!r || typeof r !== 'object' || typeof r.messageId !== 'string' || typeof r.from !== 'string') continue;
    const isWhatsapp = r.message && typeof r.message === 'object';
    const text = isWhatsapp ? whatsappText(r.message) : typeof r.text === 'string' ? r.text : '';
    out.push({
      providerMessageId: r.messageId,
      from: toE164(r.from) ?? r.from,
      to: typeof r.to === 'string' ? (toE164(r.to) ?? r.to) : '',
      text,
      kind: isWhatsapp ? String(r.message?.type ?? 'TEXT') : 'SMS',
      contactName: typeof r.contact?.name === 'string' ? r.contact.name : null,
    });
  }
  return out;
}

export function parseInfobipReports(body: unknown): DeliveryReport[] {
  const results = (body as { results?: unknown })?.results;
  if (!Array.isArray(results)) return [];
  const out: DeliveryReport[] = [];
  for (const r of results as (InfobipReport | null)[]) {
    if (typeof r?.messageId !== 'string') continue;
    const group = String(r.status?.groupName ?? '').toUpperCase();
    const status =
      group === 'DELIVERED'
        ? 'delivered'
        : ['UNDELIVERABLE', 'EXPIRED', 'REJECTED'].includes(group)
          ? 'failed'
          : 'sent';
    const name = r.status?.name ? `/${r.status.name}` : '';
    const cause = r.error?.name && r.error.name !== 'NO_ERROR' ? ` (${r.error.name})` : '';
    const error = status === 'failed' ? `${group}${name}${cause}` : null;
    out.push({ providerMessageId: r.messageId, status, error });
  }
  return out;
}

export async function sendInfobip(egress: Egress, channel: ChannelForSend, msg: OutgoingMessage): Promise<SendResult> {
  const { base_url, api_key } = channel.credentials;
  if (!base_url || !api_key) return { ok: false, retryable: false, error: 'channel has no base_url/api_key' };
  const base = infobipBaseUrl(base_url);
  let url: string;
  let payload: unknown;
  if (channel.type === 'whatsapp' && msg.template) {
    url = `${base}/whatsapp/1/message/template`;
    payload = {
      messages: [
        {
          from: noPlus(channel.sender),
          to: noPlus(msg.to),
          messageId: msg.id,
          content: {
            templateName: msg.template.name,
            templateData: { body: { placeholders: msg.template.placeholders } },
            language: msg.template.language,
          },
          callbackData: msg.id,
          ...(msg.reportUrl ? { notifyUrl: msg.reportUrl } : {}),
        },
      ],
    };
  } else if (channel.type === 'whatsapp') {
    url = `${base}/whatsapp/1/message/text`;
    payload = {
      from: noPlus(channel.sender),
      to: noPlus(msg.to),
      messageId: msg.id,
      content: { text: msg.text },
      callbackData: msg.id,
      ...(msg.reportUrl ? { notifyUrl: msg.reportUrl } : {}),
    };
  } else {
    url = `${base}/sms/3/messages`;
    payload = {
      messages: [
        {
          sender: channel.sender.startsWith('+') ? noPlus(channel.sender) : channel.sender,
          destinations: [{ to: noPlus(msg.to), messageId: msg.id }],
          content: { text: msg.text },
          webhooks: { ...(msg.reportUrl ? { delivery: { url: msg.reportUrl } } : {}), callbackData: msg.id },
        },
      ],
    };
  }
  try {
    const headers = { authorization: `App ${api_key}`, 'content-type': 'application/json', accept: 'application/json' };
    const { status, text } = await providerPost(egress, url, headers, JSON.stringify(payload), channel.timeoutMs);
    if (status < 200 || status >= 300) return httpFailure(status, text);
    let body: { messageId?: unknown; messages?: { messageId?: unknown }[] } | null = null;
    try {
      body = JSON.parse(text);
    } catch {
      /* tolerate */
    }
    // The text API answers one message; the SMS and template APIs a `messages` list.
    const id = body?.messageId ?? body?.messages?.[0]?.messageId;
    return { ok: true, providerMessageId: typeof id === 'string' ? id : msg.id };
  } catch (err) {
    return networkFailure(err);
  }
}
