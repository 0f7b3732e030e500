import type { FastifyInstance } from 'fastify';
import type { ConsoleSession } from './sessions.ts';

// The console calls the public API in-process (Fastify's inject: no socket, same routes, same
// validation, same authorization) as the signed-in key. So it shows exactly what the API would,
// its validation errors are the API's own, and an Idempotency-Key from a form makes a second
// click a replay.

// biome-ignore lint/suspicious/noExplicitAny: an API answer is JSON, read by the page that asked for it
export type Json = any;

export interface ApiAnswer<T = Json> {
  status: number;
  ok: boolean;
  body: T;
}

/** The API's error body ({code, key, message, details}); details may name fields or flow steps. */
export interface ApiError {
  code?: number;
  key?: string;
  message?: string;
  details?: unknown;
}

export class ConsoleApi {
  constructor(
    private app: FastifyInstance,
    private session: ConsoleSession,
  ) {}

  async call<T = Json>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiAnswer<T>> {
    const res = await this.app.inject({
      method,
      url,
      headers: {
        'x-app-id': this.session.appId,
        'x-app-token': this.session.apiToken,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    let parsed: unknown;
    try {
      parsed = res.body ? JSON.parse(res.body) : undefined;
    } catch {
      parsed = res.body;
    }
    return { status: res.statusCode, ok: res.statusCode < 300, body: parsed as T };
  }

  get<T = Json>(url: string) {
    return this.call<T>('GET', url);
  }
  post<T = Json>(url: string, body?: unknown, headers?: Record<string, string>) {
    return this.call<T>('POST', url, body ?? {}, headers);
  }
  put<T = Json>(url: string, body: unknown) {
    return this.call<T>('PUT', url, body);
  }
  delete<T = Json>(url: string) {
    return this.call<T>('DELETE', url);
  }
}

/** `?a=1&b=x` from the defined entries. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

export const enc = encodeURIComponent;

/** The items of an API list answer (`{object: 'list', data_ref, [data_ref]: [...]}`). */
export function listItems<T = Json>(body: Json): T[] {
  if (!body || typeof body !== 'object') return [];
  const items = body[body.data_ref ?? 'data'];
  return Array.isArray(items) ? items : [];
}
