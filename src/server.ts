import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import formbody from '@fastify/formbody';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Config } from './config.ts';
import { makeTransaction, type AppContext } from './context.ts';
import { registerAuth } from './http/auth.ts';
import { registerBodyParsing } from './http/body.ts';
import { registerErrorHandling } from './http/errors.ts';
import { registerHealth } from './http/health.ts';
import { registerIdempotency } from './http/idempotency.ts';
import { createMetrics, registerMetrics } from './http/metrics.ts';
import { redactUrl, REDACTED } from './http/redact.ts';
import { registerValidation } from './http/validation.ts';
import { CacheBus } from './lib/cache-bus.ts';
import { systemClock, type Clock } from './lib/clock.ts';
import { Egress } from './lib/egress.ts';
import type { ResolveHost } from './lib/url-guard.ts';
import { modules } from './modules/index.ts';
import type { Stopper } from './modules/module.ts';
import { Outbox } from './modules/events/outbox.ts';
import { Retention } from './modules/scheduler/retention.ts';
import { Scheduler } from './modules/scheduler/scheduler.ts';
import { idempotencyRetention } from './http/idempotency-retention.ts';
import { createContainer, type Services } from './services.ts';
import { openDatabase, type Database, type OpenOptions } from './storage/database.ts';
import { migrateToLatest } from './storage/migrate.ts';
import { checkSecretKeys, secretBoxLoader } from './storage/sealed.ts';
import type { Workflows } from './workflows/index.ts';
import { workflowRoutes } from './workflows/routes.ts';

export interface TallyServer {
  app: FastifyInstance;
  ctx: AppContext;
  services: Services;
  /** The cross-module actions, bound to `services`. */
  workflows: Workflows;
  /** Starts listening (and the background workers when config.workers). Returns the base URL. */
  listen(): Promise<string>;
  /** Graceful: stop accepting, let in-flight requests finish, stop workers, close the database. */
  close(): Promise<void>;
}

export interface BuildOptions {
  clock?: Clock;
  /** Use an already open database (tests share one per file). */
  database?: Database;
  logger?: FastifyBaseLogger | false;
  /** How outgoing requests resolve host names (tests answer what they choose); the system's by default. */
  resolveHost?: ResolveHost;
  /** Where the server's own logger writes (default stdout); tests read what was logged. */
  logStream?: NodeJS.WritableStream;
}

export const PACKAGE_VERSION = '0.1.0';

export const sealedColumns = () => modules.flatMap((m) => m.sealedColumns ?? []);

/**
 * Brings the schema of an open database up to date (idempotent). Answers the loader of the secret
 * box, which a migration that seals stored secrets loads (TALLY_SECRET_KEY or the key file).
 */
export async function migrateDatabase(database: Database, url: string, secretKey: string | undefined) {
  const secrets = secretBoxLoader(url, secretKey, database.db, sealedColumns());
  const result = await migrateToLatest(
    database.db,
    database.dialect,
    modules.flatMap((m) => m.migrations ?? []),
    { secrets },
  );
  return { secrets, result };
}

/** Opens the database and brings its schema up to date (idempotent). */
export async function prepareDatabase(url: string, opts: { secretKey?: string } & OpenOptions = {}): Promise<Database> {
  const database = openDatabase(url, opts);
  try {
    await migrateDatabase(database, url, opts.secretKey);
  } catch (err) {
    await database.close();
    throw err;
  }
  return database;
}

/**
 * The secret box of a server: from TALLY_SECRET_KEY or the key file, refused when it cannot open
 * the secrets already stored (a wrong or missing key stops the start with a clear message).
 */
async function openSecrets(database: Database, config: Config) {
  const secrets = await (await migrateDatabase(database, config.databaseUrl, config.secretKey)).secrets();
  await checkSecretKeys(database.db, secrets, sealedColumns());
  return secrets;
}

export async function buildServer(config: Config, opts: BuildOptions = {}): Promise<TallyServer> {
  const database = opts.database ?? openDatabase(config.databaseUrl, { sqliteSynchronous: config.sqliteSynchronous });
  let secrets: Awaited<ReturnType<typeof openSecrets>>;
  try {
    secrets = await openSecrets(database, config);
  } catch (err) {
    if (!opts.database) await database.close();
    throw err;
  }

  const app = Fastify({
    logger:
      opts.logger === false
        ? false
        : {
            level: config.logLevel,
            // Secrets never reach the log: API tokens, provider credentials, signatures.
            redact: {
              paths: [
                'req.headers.authorization',
                'req.headers["x-app-token"]',
                'req.headers["x-twilio-signature"]',
                '*.api_key',
                '*.auth_token',
                '*.secret',
                '*.previous_secret',
                '*.token',
                '*.password',
                '*.credentials',
                '*.inbound_auth',
              ],
              censor: REDACTED,
            },
            ...(opts.logStream ? { stream: opts.logStream } : {}),
            // Provider callbacks may carry a channel's secret token in the query string.
            serializers: {
              req: (req: {
                method: string;
                url: string;
                hostname?: string;
                ip?: string;
                socket?: { remotePort?: number };
              }) => ({
                method: req.method,
                url: redactUrl(req.url),
                host: req.hostname,
                remoteAddress: req.ip,
                remotePort: req.socket?.remotePort,
              }),
            },
          },
    bodyLimit: config.bodyLimit,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: false } },
  });
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });

  const signals = new EventEmitter();
  signals.setMaxListeners(100);
  const clock = opts.clock ?? systemClock;
  const metrics = createMetrics();
  const outbox = new Outbox(clock, metrics);
  const groupCommits = metrics.histogram(
    'tally_db_group_commit_transactions',
    'Transactions committed together by one database COMMIT ' +
      '(group commit: every SQLite write; on PostgreSQL balance changes and activities)',
    [],
    [1, 2, 4, 8, 16, 32, 64, 100],
  );
  database.onGroupCommit = (n) => groupCommits.observe(n);
  const transaction = makeTransaction(database, signals, outbox);
  const log = app.log;
  const scheduler = new Scheduler(database, clock, log, transaction);
  const caches = new CacheBus(database, log);
  await caches.start();
  const ctx: AppContext = {
    config,
    database,
    clock,
    log,
    metrics,
    scheduler,
    signals,
    caches,
    egress: new Egress({ allowPrivate: config.allowPrivateTargets, resolveHost: opts.resolveHost }),
    secrets,
    outbox,
    transaction,
  };
  const { services, workflows } = createContainer(ctx);
  const state = { shuttingDown: false };

  registerValidation(app);
  registerBodyParsing(app);
  registerErrorHandling(app);
  await app.register(formbody);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Tally API',
        version: PACKAGE_VERSION,
        description:
          'Self-hosted loyalty engine. ' +
          'Resource shapes follow Voucherify v1 (loyalties, members, balances, transactions). ' +
          'Authenticate with X-App-Id + X-App-Token, or Authorization: Bearer <token>. Writes accept Idempotency-Key.',
      },
      components: {
        securitySchemes: {
          appId: { type: 'apiKey', in: 'header', name: 'X-App-Id' },
          appToken: { type: 'apiKey', in: 'header', name: 'X-App-Token' },
          bearer: { type: 'http', scheme: 'bearer' },
        },
      },
      security: [{ appId: [], appToken: [] }, { bearer: [] }],
    },
  });
  // The reference page and its assets are public (registered before swagger-ui adds its routes).
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/docs')) route.config = { ...(route.config ?? {}), public: true } as never;
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', deepLinking: true },
    uiHooks: {},
  });
  app.get('/openapi.json', { schema: { hide: true }, config: { public: true } }, async () => app.swagger());

  registerMetrics(app, metrics);
  registerHealth(app, ctx, state);
  registerAuth(app, services.apiKeys);
  registerIdempotency(app, ctx);

  for (const m of modules) {
    if (m.routes) await m.routes(app, ctx, services);
    m.jobs?.(ctx, services);
  }
  // The routes whose action spans modules (joining a program, ingesting an activity).
  workflowRoutes(app, ctx, services, workflows);
  // Old rows of the hot tables go in batches (modules/scheduler/retention.ts); idempotency records
  // live for a day. The hourly jobs of earlier versions ('events.purge', 'maintenance.purge'),
  // possibly still pending in the database, run one batch.
  const retention = new Retention(scheduler, clock, log, config.retentionBatch);
  retention.add(idempotencyRetention);
  for (const m of modules) retention.add(...(m.retention?.(ctx, services) ?? []));
  for (const legacy of ['events.purge', 'maintenance.purge']) {
    scheduler.register(legacy, async (_job, trx) => void (await retention.sweepBatch(trx)));
  }

  const stoppers: Stopper[] = [];
  const server: TallyServer = {
    app,
    ctx,
    services,
    workflows,
    async listen() {
      await app.listen({ port: config.port, host: config.host });
      if (config.workers) {
        for (const m of modules) {
          const stop = await m.start?.(ctx, services);
          if (stop) stoppers.push(stop);
        }
        scheduler.start();
        stoppers.push(retention.start());
      }
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : config.port;
      return `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    },
    async close() {
      if (state.shuttingDown) return;
      state.shuttingDown = true;
      await app.close();
      for (const stop of stoppers.reverse()) await stop();
      await scheduler.stop();
      await ctx.egress.close();
      await caches.close();
      if (!opts.database) await database.close();
    },
  };
  return server;
}
