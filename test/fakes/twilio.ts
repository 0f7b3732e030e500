import { randomBytes } from 'node:crypto';
import twilio from 'twilio';
import { FakeProvider, sendJson, type Recorded } from './http.ts';

// A fake Twilio REST API: POST /2010-04-01/Accounts/{Sid}/Messages.json with HTTP Basic
// AccountSid:AuthToken, form-encoded To/From/Body (or ContentSid + ContentVariables for a template);
// answers 201 with a Message resource.
// Inbound webhook fixtures are signed with the twilio package's own helper.

export interface TwilioSent {
  to: string;
  from: string | null;
  body: string;
  sid: string;
  statusCallback: string | null;
  /** A Content API template message: ContentSid and its ContentVariables. */
  contentSid?: string | null;
  contentVariables?: Record<string, string> | null;
}

export class FakeTwilio extends FakeProvider {
  readonly sent: TwilioSent[] = [];
  failures: (number | 'hang')[] = [];

  constructor(
    readonly accountSid = `AC${randomBytes(16).toString('hex')}`,
    readonly authToken = randomBytes(16).toString('hex'),
  ) {
    super();
  }
  protected handle(req: Recorded, res: import('node:http').ServerResponse) {
    const json = (status: number, body: unknown) => sendJson(res, status, body);
    const expected = `Basic ${Buffer.from(`${this.accountSid}:${this.authToken}`).toString('base64')}`;
    if (req.headers.authorization !== expected) return json(401, { code: 20003, message: 'Authenticate', status: 401 });
    const failure = this.failures.shift();
    if (failure === 'hang') return;
    if (typeof failure === 'number')
      return json(failure, { code: 20500, message: 'Internal Server Error', status: failure });
    if (req.method === 'POST' && req.path === `/2010-04-01/Accounts/${this.accountSid}/Messages.json`) {
      const form = new URLSearchParams(req.raw);
      const sid = `SM${randomBytes(16).toString('hex')}`;
      const contentSid = form.get('ContentSid');
      // Twilio wants Body or ContentSid (error 21619 otherwise).
      if (!form.get('Body') && !contentSid)
        return json(400, { code: 21619, message: 'A text message body or media urls must be specified.', status: 400 });
      const variables = form.get('ContentVariables');
      this.sent.push({
        to: form.get('To') ?? '',
        from: form.get('From'),
        body: form.get('Body') ?? '',
        sid,
        statusCallback: form.get('StatusCallback'),
        contentSid,
        contentVariables: variables ? JSON.parse(variables) : null,
      });
      return json(201, {
        sid,
        account_sid: this.accountSid,
        to: form.get('To'),
        from: form.get('From'),
        body: form.get('Body'),
        status: 'queued',
        num_segments: '1',
        direction: 'outbound-api',
        api_version: '2010-04-01',
        date_created: new Date().toUTCString(),
        uri: `/2010-04-01/Accounts/${this.accountSid}/Messages/${sid}.json`,
      });
    }
    return json(404, { code: 20404, message: 'The requested resource was not found', status: 404 });
  }

  async waitForSent(n: number, ms = 5000) {
    const start = Date.now();
    while (this.sent.length < n) {
      if (Date.now() - start > ms) throw new Error(`expected ${n} sent messages, got ${this.sent.length}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Inbound webhook params as Twilio posts them for an SMS. */
  inboundParams(
    from: string,
    to: string,
    body: string,
    sid = `SM${randomBytes(16).toString('hex')}`,
  ): Record<string, string> {
    return {
      ToCountry: 'US',
      ToState: 'CA',
      SmsMessageSid: sid,
      NumMedia: '0',
      ToCity: 'SAN FRANCISCO',
      FromZip: '',
      SmsSid: sid,
      FromState: '',
      SmsStatus: 'received',
      FromCity: '',
      Body: body,
      FromCountry: 'HR',
      To: to,
      MessagingServiceSid: '',
      ToZip: '94105',
      NumSegments: '1',
      MessageSid: sid,
      AccountSid: this.accountSid,
      From: from,
      ApiVersion: '2010-04-01',
    };
  }

  /** X-Twilio-Signature for `url` and `params`, computed by the twilio package. */
  sign(url: string, params: Record<string, string>): string {
    return twilio.getExpectedTwilioSignature(this.authToken, url, params);
  }
}

/** POSTs a signed Twilio webhook. */
export async function postTwilio(url: string, params: Record<string, string>, signature: string | null) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(signature ? { 'x-twilio-signature': signature } : {}),
    },
    body: new URLSearchParams(params).toString(),
  });
  return { status: res.status, text: await res.text(), headers: res.headers };
}
