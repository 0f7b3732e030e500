import type { FastifyInstance } from 'fastify';
import { ApiError } from './errors.ts';
import type { ApiKeyInfo, ApiKeyService } from '../modules/api-keys/service.ts';

declare module 'fastify' {
  interface FastifyRequest {
    apiKey?: ApiKeyInfo;
  }
  interface FastifyContextConfig {
    /** Routes open without an API key: health checks, docs, provider callbacks (they check their own secret). */
    public?: boolean;
  }
}

/**
 * Every route needs an API key (X-App-Id + X-App-Token, or Authorization: Bearer <token>)
 * unless its config says `public: true`.
 */
export function registerAuth(app: FastifyInstance, keys: ApiKeyService): void {
  app.addHook('onRequest', async (req) => {
    if (req.routeOptions?.config?.public) return;
    // Unknown routes fall through to the 404 handler; answering 401 there would hide typos.
    if (!req.routeOptions?.url) return;
    const appId = header(req.headers['x-app-id']);
    let token = header(req.headers['x-app-token']);
    const authz = header(req.headers.authorization);
    if (!token && authz?.toLowerCase().startsWith('bearer ')) token = authz.slice(7).trim();
    if (!token) {
      throw new ApiError(
        401,
        'unauthorized',
        'Unauthorized',
        'Missing API key: send X-App-Id and X-App-Token headers, or Authorization: Bearer <token>',
      );
    }
    const key = await keys.verify(appId || undefined, token);
    if (!key) throw new ApiError(401, 'unauthorized', 'Unauthorized', 'Invalid or revoked API key');
    req.apiKey = key;
  });
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
