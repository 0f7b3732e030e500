import { randomUUID } from 'node:crypto';
import { FakeProvider, sendJson, type Recorded } from './http.ts';

// A fake Infobip API speaking the documented formats (shared/reference/providers.md): checks
// `Authorization: App <key>`, accepts POST /sms/3/messages, /whatsapp/1/message/text and
// /whatsapp/1/message/template, answers
// like Infobip; can be told to fail (5xx) or hang the next calls. Also builds inbound payloads.

export interface SentMessage {
  channel: 'sms' | 'whatsapp';
  from: string;
  to: string;
  text: string;
  messageId: string | null;
  notifyUrl: string | null;
  /** A WhatsApp template message: its name, language and body placeholders. */
  template?: { name: string; language: string; placeholders: string[] };
}

export class FakeInfobip extends FakeProvider {
  readonly sent: SentMessage[] = [];
  /** Next calls answer with these statuses (e.g. [503, 503]); 'hang' never answers. */
  failures: (number | 'hang')[] = [];
  rejectedAuth = 0;

  constructor(readonly apiKey = 'ib-key-0123456789abcdef') {
    super();
  }

  protected handle(req: Recorded, res: import('node:http').ServerResponse) {
    const json = (status: number, body: unknown) => sendJson(res, status, body);
    if (req.headers.authorization !== `App ${this.apiKey}`) {
      this.rejectedAuth++;
      return json(401, {
        requestError: { serviceException: { messageId: 'UNAUTHORIZED', text: 'Invalid login details' } },
      });
    }
    const failure = this.failures.shift();
    if (failure === 'hang') return; // never answers: the client's timeout fires
    if (typeof failure === 'number')
      return json(failure, {
        requestError: { serviceException: { messageId: 'GENERAL_ERROR', text: 'Something went wrong' } },
      });
    const body = JSON.parse(req.raw || '{}');
    if (req.method === 'POST' && req.path === '/sms/3/messages') {
      const out = [];
      for (const m of body.messages ?? []) {
        for (const d of m.destinations ?? []) {
          const messageId = d.messageId ?? randomUUID();
          this.sent.push({
            channel: 'sms',
            from: m.sender,
            to: d.to,
            text: m.content?.text,
            messageId,
            notifyUrl: m.webhooks?.delivery?.url ?? null,
          });
          out.push({
            messageId,
            status: {
              groupId: 1,
              groupName: 'PENDING',
              id: 26,
              name: 'MESSAGE_ACCEPTED',
              description: 'Message sent to next instance',
            },
            destination: d.to,
            details: { messageCount: 1 },
          });
        }
      }
      return json(200, { bulkId: randomUUID(), messages: out });
    }
    if (req.method === 'POST' && req.path === '/whatsapp/1/message/text') {
      const messageId = body.messageId ?? randomUUID();
      this.sent.push({
        channel: 'whatsapp',
        from: body.from,
        to: body.to,
        text: body.content?.text,
        messageId,
        notifyUrl: body.notifyUrl ?? null,
      });
      return json(200, {
        to: body.to,
        messageCount: 1,
        messageId,
        status: {
          groupId: 1,
          groupName: 'PENDING',
          id: 7,
          name: 'PENDING_ENROUTE',
          description: 'Message sent to next instance',
        },
      });
    }
    if (req.method === 'POST' && req.path === '/whatsapp/1/message/template') {
      const out = [];
      for (const m of body.messages ?? []) {
        const messageId = m.messageId ?? randomUUID();
        const c = m.content ?? {};
        if (typeof c.templateName !== 'string' || typeof c.language !== 'string') {
          return json(400, {
            requestError: {
              serviceException: {
                messageId: 'BAD_REQUEST',
                text: 'content.templateName and content.language are required',
              },
            },
          });
        }
        const template = {
          name: c.templateName,
          language: c.language,
          placeholders: c.templateData?.body?.placeholders ?? [],
        };
        this.sent.push({
          channel: 'whatsapp',
          from: m.from,
          to: m.to,
          text: '',
          messageId,
          notifyUrl: m.notifyUrl ?? null,
          template,
        });
        out.push({
          to: m.to,
          messageCount: 1,
          messageId,
          status: {
            groupId: 1,
            groupName: 'PENDING',
            id: 7,
            name: 'PENDING_ENROUTE',
            description: 'Message sent to next instance',
          },
        });
      }
      return json(200, { messages: out, bulkId: randomUUID() });
    }
    return json(404, { requestError: { serviceException: { messageId: 'NOT_FOUND', text: 'Not found' } } });
  }

  /** Waits until `n` messages have been accepted. */
  async waitForSent(n: number, ms = 5000) {
    const start = Date.now();
    while (this.sent.length < n) {
      if (Date.now() - start > ms) throw new Error(`expected ${n} sent messages, got ${this.sent.length}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** An inbound SMS batch (MO_JSON_2), as Infobip forwards it. */
export function infobipSms(
  from: string,
  to: string,
  text: string,
  messageId = `${Date.now()}${Math.floor(Math.random() * 1e6)}`,
) {
  return {
    results: [
      {
        messageId,
        from: from.replace(/^\+/, ''),
        to: to.replace(/^\+/, ''),
        text,
        cleanText: text.split(/\s+/).slice(1).join(' '),
        keyword: text.split(/\s+/)[0]?.toUpperCase() ?? '',
        receivedAt: '2026-01-06T09:28:39.220+0000',
        smsCount: 1,
        price: { pricePerMessage: 0, currency: 'EUR' },
        callbackData: 'callbackData',
      },
    ],
    messageCount: 1,
    pendingMessageCount: 0,
  };
}

/** An inbound WhatsApp batch; `message` is e.g. {type:'TEXT', text} or {type:'INTERACTIVE_BUTTON_REPLY', id, title}. */
export function infobipWhatsapp(
  from: string,
  to: string,
  message: Record<string, unknown>,
  messageId = `wamid.${randomUUID()}`,
) {
  return {
    results: [
      {
        from: from.replace(/^\+/, ''),
        to: to.replace(/^\+/, ''),
        integrationType: 'WHATSAPP',
        receivedAt: '2026-01-01T10:10:00.000+0000',
        messageId,
        callbackData: 'callbackData',
        message,
        price: { pricePerMessage: 0, currency: 'EUR' },
        contact: { name: 'Frank' },
      },
    ],
    messageCount: 1,
    pendingMessageCount: 0,
  };
}

/** A delivery report batch. */
export function infobipReport(
  messageId: string,
  to: string,
  group: 'DELIVERED' | 'UNDELIVERABLE' | 'PENDING' | 'EXPIRED' | 'REJECTED',
) {
  const status =
    group === 'DELIVERED'
      ? {
          groupId: 3,
          groupName: 'DELIVERED',
          id: 5,
          name: 'DELIVERED_TO_HANDSET',
          description: 'Message delivered to handset',
        }
      : group === 'PENDING'
        ? {
            groupId: 1,
            groupName: 'PENDING',
            id: 7,
            name: 'PENDING_ENROUTE',
            description: 'Message sent to next instance',
          }
        : { groupId: 2, groupName: group, id: 9, name: `${group}_NOT_DELIVERED`, description: 'Message not delivered' };
  return {
    results: [
      {
        bulkId: randomUUID(),
        messageId,
        to: to.replace(/^\+/, ''),
        sentAt: '2026-01-06T09:28:40.000+0000',
        doneAt: '2026-01-06T09:28:42.000+0000',
        messageCount: 1,
        callbackData: messageId,
        price: { pricePerMessage: 0.01, currency: 'EUR' },
        status,
        error: { groupId: 0, groupName: 'OK', id: 0, name: 'NO_ERROR', description: 'No Error', permanent: false },
      },
    ],
  };
}
