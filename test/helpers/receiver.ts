import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

// A webhook receiver on a loopback port, as a customer would run one: records every request and
// answers with what the test decides (status, headers, body, or no answer at all).

export interface Received {
  headers: Record<string, string>;
  body: string;
  json: any;
  at: number;
}

export type Responder = (
  req: Received,
  n: number,
) => { status?: number; headers?: Record<string, string>; body?: string; hang?: boolean } | undefined;

export interface Receiver {
  url: string;
  received: Received[];
  respond: Responder;
  close(): Promise<void>;
}

export async function startReceiver(respond: Responder = () => undefined): Promise<Receiver> {
  const received: Received[] = [];
  const hanging = new Set<ServerResponse>();
  const state: Receiver = { url: '', received, respond, close: async () => undefined };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown = null;
      try {
        json = JSON.parse(body);
      } catch {
        /* not JSON */
      }
      const r: Received = { headers: req.headers as Record<string, string>, body, json, at: Date.now() };
      received.push(r);
      const answer = state.respond(r, received.length) ?? {};
      if (answer.hang) {
        hanging.add(res);
        return;
      }
      res.writeHead(answer.status ?? 200, { 'content-type': 'text/plain', ...(answer.headers ?? {}) });
      res.end(answer.body ?? 'ok');
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  state.close = async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return state;
}

/**
 * Verifies a delivery as a receiver would, with the `standardwebhooks` package. Its verify() checks
 * the timestamp against the real time (5 minutes); deliveries made under a test's manual clock far
 * from now are checked with the package's sign() instead (same signature computation).
 * Returns the parsed payload; throws when no signature matches.
 */
export function verifyDelivery(secret: string, r: Received): any {
  const wh = new Webhook(secret);
  const ts = Number(r.headers['webhook-timestamp']);
  const headers = {
    'webhook-id': r.headers['webhook-id'],
    'webhook-timestamp': r.headers['webhook-timestamp'],
    'webhook-signature': r.headers['webhook-signature'],
  };
  if (Math.abs(ts - Date.now() / 1000) < 240) return wh.verify(r.body, headers);
  const expected = wh.sign(headers['webhook-id'], new Date(ts * 1000), r.body);
  if (!headers['webhook-signature'].split(' ').includes(expected)) throw new Error('no matching signature');
  return JSON.parse(r.body);
}

export function voucherifySignatureOf(secret: string, body: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}
