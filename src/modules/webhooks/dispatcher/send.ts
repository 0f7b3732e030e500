import { performance } from 'node:perf_hooks';
import { request, type Agent, type Dispatcher as UndiciDispatcher } from 'undici';
import type { AppContext } from '../../../context.ts';
import { openEndpointSecret } from '../secrets.ts';
import { signedHeaders } from '../signing.ts';
import { parseRetryAfter } from './retry-schedule.ts';
import { succeeded, type Claimed, type EndpointRow, type OutEvent, type Outcome } from './types.ts';

/** Bytes of the receiver's answer kept on the attempt. */
export const RESPONSE_EXCERPT_BYTES = 1024;
/**
 * Bytes of the receiver's answer read at most: a short body is read to its end so the connection
 * can be used again; past this the connection is dropped.
 */
const RESPONSE_READ_BYTES = 64 * 1024;

/** The delivery body: `{id, type, created_at, data}` (data is stored as JSON text already). */
export function deliveryBody(e: OutEvent): string {
  const head = `{"id":${JSON.stringify(e.id)},"type":${JSON.stringify(e.type)}`;
  return `${head},"created_at":${JSON.stringify(e.created_at)},"data":${e.data}}`;
}

/**
 * The first RESPONSE_EXCERPT_BYTES bytes of a response (cut by bytes, then decoded). The body is
 * read up to RESPONSE_READ_BYTES, not only to the excerpt, so that the usual short answer leaves
 * the connection reusable (lib/egress.ts's readCapped stops at its limit, which would drop it).
 */
async function readExcerpt(body: UndiciDispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size < RESPONSE_EXCERPT_BYTES) chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > RESPONSE_READ_BYTES) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, RESPONSE_EXCERPT_BYTES).toString('utf8');
}

/** Sends deliveries: one signed POST each, over an agent whose connections go through ctx.egress. */
export class Sender {
  private readonly agent: Agent;
  /** Signing secrets in clear by their stored (sealed) form: opened once, not per delivery. */
  private openedSecrets = new Map<string, string>();

  constructor(
    private ctx: AppContext,
    connectionsPerEndpoint: number,
    private readonly timeoutMs: number,
  ) {
    // Every connection's address is checked where it is made (private targets refused unless allowed).
    this.agent = ctx.egress.agent({ connections: connectionsPerEndpoint, keepAliveTimeoutMs: 30_000, pipelining: 1 });
  }

  /** Sends `c` to `endpoint`; never throws: a failure is an outcome with an error. */
  async send(endpoint: EndpointRow, c: Claimed): Promise<Omit<Outcome, 'resolve'>> {
    const body = deliveryBody(c.event);
    const at = this.ctx.clock.nowIso();
    const timestamp = Math.floor(this.ctx.clock.nowMs() / 1000);
    const started = performance.now();
    let statusCode: number | null = null;
    let response: string | null = null;
    let error: string | null = null;
    let retryAfterMs: number | null = null;
    try {
      // Signed inside the try: a secret that cannot be opened (a tampered row) is a failed attempt
      // on record, not a send that never settles.
      const headers = {
        'content-type': 'application/json',
        'user-agent': 'Tally-Webhooks/1',
        ...signedHeaders(this.secretsOf(endpoint), c.event.id, timestamp, body),
      };
      const res = await request(endpoint.target_url, {
        method: 'POST',
        headers,
        body,
        dispatcher: this.agent,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      statusCode = res.statusCode;
      retryAfterMs = parseRetryAfter(res.headers['retry-after'], this.ctx.clock.nowMs());
      response = await readExcerpt(res.body);
    } catch (err) {
      const e = err as { name?: string; code?: string; message?: string };
      error =
        e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT'
          ? `timeout after ${this.timeoutMs} ms`
          : `${e.code ?? e.name ?? 'error'}: ${e.message ?? String(err)}`.slice(0, 500);
    }
    const durationMs = Math.round(performance.now() - started);
    this.ctx.metrics
      .counter('tally_webhook_attempts_total', 'Webhook delivery attempts by outcome', ['outcome'])
      .inc({ outcome: succeeded(statusCode) ? 'success' : 'failure' });
    return { claimed: c, endpoint, statusCode, durationMs, response, error, retryAfterMs, at };
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  private secretsOf(endpoint: EndpointRow): string[] {
    const secrets = [this.openSecret(endpoint.id, endpoint.secret)];
    if (
      endpoint.previous_secret &&
      endpoint.previous_secret_expires_at &&
      endpoint.previous_secret_expires_at > this.ctx.clock.nowIso()
    ) {
      secrets.push(this.openSecret(endpoint.id, endpoint.previous_secret));
    }
    return secrets;
  }

  private openSecret(endpointId: string, stored: string): string {
    let secret = this.openedSecrets.get(stored);
    if (secret === undefined) {
      secret = openEndpointSecret(this.ctx.secrets, endpointId, stored);
      if (this.openedSecrets.size >= 10_000) this.openedSecrets.clear();
      this.openedSecrets.set(stored, secret);
    }
    return secret;
  }
}
