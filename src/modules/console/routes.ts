import cookie from '@fastify/cookie';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../../context.ts';
import type { Services } from '../../services.ts';
import { ConsoleApi } from './api.ts';
import { CONTENT_SECURITY_POLICY, loadAssets } from './assets.ts';
import { html } from './html.ts';
import { page } from './layout.ts';
import { type ConsoleSession, csrfMatches, SESSION_TTL_MS } from './sessions.ts';
import { apiKeyPages } from './pages/api-keys.ts';
import { flowPages } from './pages/flows.ts';
import { messagePages } from './pages/messages.ts';
import { reportPages } from './pages/reports.ts';
import { memberPages } from './pages/members.ts';
import { overviewPages } from './pages/overview.ts';
import { programPages } from './pages/programs.ts';
import { simulatorPages } from './pages/simulator.ts';
import { webhookPages } from './pages/webhooks.ts';

export const SESSION_COOKIE = 'tally_console';

declare module 'fastify' {
  interface FastifyRequest {
    consoleSession?: ConsoleSession;
  }
}

/** What every page handler gets: the session, the API as the session's key, the services for reports. */
export interface PageContext {
  req: FastifyRequest;
  reply: FastifyReply;
  session: ConsoleSession;
  api: ConsoleApi;
  services: Services;
  ctx: AppContext;
}

export type Handler = (pc: PageContext) => Promise<unknown>;

/** Registers a console page: `get('/console/x', handler)`. */
export interface ConsoleRouter {
  get(path: string, handler: Handler): void;
  post(path: string, handler: Handler): void;
}

export const sendPage = (reply: FastifyReply, body: string, status = 200) =>
  reply.code(status).type('text/html; charset=utf-8').send(body);

export async function consoleRoutes(app: FastifyInstance, ctx: AppContext, services: Services): Promise<void> {
  const assets = loadAssets();
  await app.register(async (scope) => {
    await scope.register(cookie);
    // Console routes carry no API key: the session cookie stands for one (checked below). They are
    // pages, not API operations, so they stay out of the OpenAPI document.
    scope.addHook('onRoute', (route) => {
      route.config = { ...(route.config as object), public: true } as typeof route.config;
      route.schema = { ...route.schema, hide: true };
    });
    scope.addHook('onSend', async (_req, reply, payload) => {
      reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
      reply.header('x-content-type-options', 'nosniff');
      reply.header('referrer-policy', 'no-referrer');
      reply.header('x-frame-options', 'DENY');
      if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
      return payload;
    });

    scope.get('/console/assets/:name', async (req, reply) => {
      const asset = assets.get((req.params as { name: string }).name);
      if (!asset) return reply.code(404).type('text/plain').send('Not found');
      return reply.type(asset.type).header('cache-control', 'public, max-age=3600').send(asset.body);
    });

    scope.get('/console/sign-in', async (req, reply) => {
      const session = await services.consoleSessions.find(req.cookies[SESSION_COOKIE]);
      if (session) return reply.redirect('/console', 303);
      return sendPage(reply, signInPage());
    });

    scope.post('/console/sign-in', async (req, reply) => {
      const body = (req.body ?? {}) as { app_id?: string; app_token?: string };
      const appId = String(body.app_id ?? '').trim();
      const token = String(body.app_token ?? '').trim();
      const signed = appId && token ? await services.consoleSessions.signIn(appId, token) : undefined;
      if (!signed)
        return sendPage(reply, signInPage('That App ID and App token do not match an active API key.', appId), 401);
      reply.setCookie(SESSION_COOKIE, signed.token, {
        path: '/console',
        httpOnly: true,
        sameSite: 'strict',
        secure: req.protocol === 'https',
        maxAge: SESSION_TTL_MS / 1000,
      });
      return reply.redirect('/console', 303);
    });

    const router: ConsoleRouter = {
      get: (path, handler) => scope.get(path, (req, reply) => run(req, reply, handler, false)),
      post: (path, handler) => scope.post(path, (req, reply) => run(req, reply, handler, true)),
    };

    async function run(req: FastifyRequest, reply: FastifyReply, handler: Handler, changes: boolean) {
      const session = await services.consoleSessions.find(req.cookies[SESSION_COOKIE]);
      if (!session) {
        if (req.headers['hx-request']) return reply.header('hx-redirect', '/console/sign-in').code(401).send('');
        return reply.redirect('/console/sign-in', 303);
      }
      if (changes) {
        // SameSite=Strict keeps the cookie off cross-site requests; the token is the second lock.
        const sent = req.headers['x-csrf-token'] ?? (req.body as { _csrf?: unknown } | undefined)?._csrf;
        if (!csrfMatches(session, sent)) {
          return sendPage(
            reply,
            page(
              { title: 'Request refused', session, error: 'The form was stale or not sent by the console.' },
              html``,
            ),
            403,
          );
        }
      }
      req.consoleSession = session;
      return handler({ req, reply, session, api: new ConsoleApi(app, session), services, ctx });
    }

    router.post('/console/sign-out', async ({ reply, session }) => {
      await services.consoleSessions.signOut(session.id);
      reply.clearCookie(SESSION_COOKIE, { path: '/console' });
      return reply.redirect('/console/sign-in', 303);
    });

    for (const register of [
      overviewPages,
      memberPages,
      programPages,
      simulatorPages,
      flowPages,
      reportPages,
      webhookPages,
      messagePages,
      apiKeyPages,
    ])
      register(router);
  });
}

function signInPage(error?: string, appId = ''): string {
  return page(
    { title: 'Sign in', error },
    html`<form method="post" action="/console/sign-in" class="card narrow">
  <p>Sign in with an API key. To make one, run this where the server runs:</p>
  <pre>npx tally keys create --name console</pre>
  <label for="app_id">App ID</label>
  <input id="app_id" name="app_id" autocomplete="username" required value="${appId}">
  <label for="app_token">App token</label>
  <input id="app_token" name="app_token" type="password" autocomplete="current-password" required>
  <button type="submit">Sign in</button>
</form>`,
  );
}
