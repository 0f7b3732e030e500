import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CONFIG_FLAGS, loadConfig, type Config } from './config.ts';
import { systemClock } from './lib/clock.ts';
import { CacheBus } from './lib/cache-bus.ts';
import { ApiKeyService } from './modules/api-keys/service.ts';
import { generateSecretKey, SecretKeyError, SecretOpenError } from './lib/secret-box.ts';
import { serveProcesses } from './cluster.ts';
import { buildServer, migrateDatabase, prepareDatabase, sealedColumns } from './server.ts';
import { openDatabase, parseDatabaseUrl } from './storage/database.ts';
import { rotateSecrets } from './storage/sealed.ts';

const USAGE = `tally: self-hosted loyalty engine

Usage:
  tally serve                  start the HTTP server (what \`npm start\` runs)
  tally migrate                bring the database schema up to date
  tally keys create --name N   create an API key (the token is shown once)
  tally keys list              list API keys
  tally keys revoke ID         revoke a key by id or app id
  tally demo                   set up a demo program and serve it (needs the messaging module)
  tally secrets rotate         re-encrypt every stored secret with the current (first) secret key
  tally secrets generate-key   print a new random key for TALLY_SECRET_KEY
  tally --help                 this text

The CLI works on the database of DATABASE_URL (default: sqlite:./data/tally.db, relative to the
current directory): give it the same DATABASE_URL as the server.

Options (each also read from the environment variable in brackets):
  --port N (PORT, 3000)          --host H (HOST, 127.0.0.1)
  --database-url U (DATABASE_URL, sqlite:./data/tally.db; or postgres://...)
  --log-level L (LOG_LEVEL, info)
  --app-id ID --app-token T (TALLY_APP_ID, TALLY_APP_TOKEN: make sure this key exists at start)
  --public-url URL (TALLY_PUBLIC_URL: this server's public base URL, for provider callbacks)
  --allow-private-targets (TALLY_ALLOW_PRIVATE_TARGETS: webhooks to private/loopback addresses)
  --body-limit BYTES (TALLY_BODY_LIMIT, 1048576: largest request body accepted)
  --event-retention-days N (TALLY_EVENT_RETENTION_DAYS, 30; 0 keeps events forever)
  --message-retention-days N (TALLY_MESSAGE_RETENTION_DAYS, 90; 0 keeps messages forever)
  --retention-batch N (TALLY_RETENTION_BATCH, 5000: rows of a table deleted per transaction)
  --workers N (TALLY_WORKERS, 1: serve processes sharing the port; PostgreSQL only, SQLite is one writer)
  --sqlite-synchronous S (TALLY_SQLITE_SYNCHRONOUS, NORMAL; FULL: every commit also survives a power loss)
  --json (keys create/list: machine-readable output)

Environment only (never a flag, so it stays out of the process list):
  TALLY_SECRET_KEY   key(s) encrypting stored secrets, the current one first (default on SQLite:
                     a key file beside the database, ./data/tally.key; required on PostgreSQL)
`;

function parse(argv: string[]) {
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    name: { type: 'string' },
    help: { type: 'boolean' },
    json: { type: 'boolean' },
  };
  for (const f of CONFIG_FLAGS) options[f] = { type: f === 'allow-private-targets' ? 'boolean' : 'string' };
  return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
}

async function withKeys<T>(config: Config, fn: (keys: ApiKeyService) => Promise<T>): Promise<T> {
  const database = await prepareDatabase(config.databaseUrl, {
    secretKey: config.secretKey,
    sqliteSynchronous: config.sqliteSynchronous,
  });
  try {
    // The bus tells running servers (PostgreSQL) that a key changed: a revocation applies at once.
    return await fn(new ApiKeyService(database.db, systemClock, new CacheBus(database)));
  } finally {
    await database.close();
  }
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const [command, sub, arg] = positionals;
  if (command === undefined) {
    // A bare `tally` used to start the server; asking for a command makes starting one deliberate.
    process.stderr.write(`tally needs a command (to start the server: tally serve, or npm start).\n\n${USAGE}`);
    return 2;
  }
  let config: Config;
  try {
    config = loadConfig(values as Record<string, string | boolean | undefined>);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  try {
    return await run(command, sub, arg, values, config);
  } catch (err) {
    // A key that is missing, malformed or not the database's: say so plainly, no stack trace.
    if (err instanceof SecretKeyError || err instanceof SecretOpenError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    const listenFailure = describeListenFailure(err, config);
    if (!listenFailure) throw err;
    process.stderr.write(listenFailure);
    return 1;
  }
}

/**
 * The database a command works on, as an operator should read it: a SQLite file's full path, a
 * PostgreSQL URL without its password.
 */
export function describeDatabase(url: string): string {
  const { dialect, target } = parseDatabaseUrl(url);
  if (dialect === 'sqlite') {
    return target === ':memory:' ? 'sqlite::memory: (in memory, gone at exit)' : `sqlite:${resolve(target)}`;
  }
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** What to tell an operator when the server cannot listen (a port in use, or not allowed); null for other errors. */
function describeListenFailure(err: unknown, config: Config): string | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const where = `${config.host}:${config.port}`;
  const next = config.port + 1;
  const choose = `Choose another port with --port N or PORT=N (for example --port ${next}, or PORT=${next} npm start).`;
  if (code === 'EADDRINUSE') {
    const who = 'is another `tally serve` or `tally demo` running?';
    return `Cannot listen on ${where}: the port is already in use (${who}).\n${choose}\n`;
  }
  if (code === 'EACCES') return `Cannot listen on ${where}: this user may not open that port.\n${choose}\n`;
  if (code === 'EADDRNOTAVAIL') {
    return `Cannot listen on ${where}: this machine has no such address. Choose another with --host H or HOST=H.\n`;
  }
  return null;
}

async function run(
  command: string,
  sub: string | undefined,
  arg: string | undefined,
  values: ReturnType<typeof parse>['values'],
  config: Config,
): Promise<number> {
  switch (command) {
    case 'serve':
      return config.processes > 1 ? serveProcesses(config, () => serve(config)) : serve(config);
    case 'migrate': {
      const database = openDatabase(config.databaseUrl, { sqliteSynchronous: config.sqliteSynchronous });
      try {
        const { result } = await migrateDatabase(database, config.databaseUrl, config.secretKey);
        const applied = (result.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
        for (const name of applied) process.stdout.write(`applied ${name}\n`);
        process.stdout.write(
          `database is up to date (${applied.length} migration${applied.length === 1 ? '' : 's'} applied; ` +
            `${describeDatabase(config.databaseUrl)})\n`,
        );
      } finally {
        await database.close();
      }
      return 0;
    }
    case 'keys':
      return withKeys(config, async (keys) => {
        if (sub === 'create') {
          if (typeof values.name !== 'string' || values.name.trim() === '') {
            process.stderr.write('keys create needs --name NAME (what the key is for)\n');
            return 2;
          }
          const key = await keys.create(values.name.trim());
          process.stdout.write(
            values.json
              ? `${JSON.stringify(key)}\n`
              : `Created API key "${key.name}"\n  X-App-Id:    ${key.app_id}\n  X-App-Token: ${key.token}\n` +
                  `  Database:    ${describeDatabase(config.databaseUrl)}\n` +
                  'The token is shown only now; store it safely. The key works on servers using this database ' +
                  '(start them with the same DATABASE_URL).\n',
          );
          return 0;
        }
        if (sub === 'list') {
          const list = await keys.list();
          if (values.json) process.stdout.write(`${JSON.stringify(list)}\n`);
          else
            for (const k of list)
              process.stdout.write(
                `${k.id}  ${k.app_id}  ${k.name}  ${k.revoked_at ? `revoked ${k.revoked_at}` : 'active'}\n`,
              );
          return 0;
        }
        if (sub === 'revoke' && arg) {
          const ok = await keys.revoke(arg);
          process.stdout.write(ok ? `revoked ${arg}\n` : `no active key ${arg}\n`);
          return ok ? 0 : 1;
        }
        process.stderr.write(USAGE);
        return 2;
      });
    case 'secrets':
      return secretsCommand(config, sub);
    case 'demo': {
      // The demo lives with the messaging module; this CLI works without it.
      const demoPath = './demo.ts';
      const demo = (await import(demoPath).catch(() => null)) as { runDemo(c: Config): Promise<number> } | null;
      if (!demo) {
        process.stderr.write('the demo needs the messaging module\n');
        return 1;
      }
      return demo.runDemo(config);
    }
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

async function secretsCommand(config: Config, sub: string | undefined): Promise<number> {
  if (sub === 'generate-key') {
    process.stdout.write(`${generateSecretKey()}\n`);
    return 0;
  }
  if (sub !== 'rotate') {
    process.stderr.write(USAGE);
    return 2;
  }
  const database = openDatabase(config.databaseUrl, { sqliteSynchronous: config.sqliteSynchronous });
  try {
    const box = await (await migrateDatabase(database, config.databaseUrl, config.secretKey)).secrets();
    const { changed, remaining } = await rotateSecrets(database, box, sealedColumns());
    for (const [column, n] of Object.entries(changed)) process.stdout.write(`${column}: ${n} re-encrypted\n`);
    if (remaining > 0) {
      process.stdout.write(`${remaining} secret(s) changed meanwhile and still use an older key: run it again\n`);
      return 1;
    }
    const others = box.keyIds.filter((k) => k !== box.currentKeyId);
    process.stdout.write(
      `Every stored secret now uses key ${box.currentKeyId}.` +
        (others.length > 0
          ? ` The other key(s) (${others.join(', ')}) can be removed; restart the servers after.\n`
          : '\n'),
    );
    return 0;
  } finally {
    await database.close();
  }
}

async function serve(config: Config): Promise<number> {
  const server = await buildServer(config);
  const keys = server.services.apiKeys;
  if (config.appId && config.appToken) {
    const result = await keys.ensure(config.appId, config.appToken);
    server.app.log.info({ app_id: config.appId, result }, 'API key from TALLY_APP_ID/TALLY_APP_TOKEN');
  }
  let url: string;
  try {
    url = await server.listen();
  } catch (err) {
    // Closed so the database and timers let the process exit with the caller's message and code.
    await server.close();
    throw err;
  }
  if ((await keys.countActive()) === 0) {
    process.stderr.write(
      '\nNo API key exists yet, so every /v1 request is refused with 401. Create one (same DATABASE_URL):\n' +
        '  npx tally keys create --name admin\n' +
        'or start with TALLY_APP_ID and TALLY_APP_TOKEN set to the key you want.\n\n',
    );
    server.app.log.warn(
      'No API key exists yet: every /v1 request will be refused. ' +
        'Create one with `npx tally keys create --name admin` ' +
        '(same DATABASE_URL), or start with TALLY_APP_ID and TALLY_APP_TOKEN set.',
    );
  }
  server.app.log.info({ url, database: server.ctx.database.dialect, docs: `${url}/docs` }, 'Tally is listening');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.app.log.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    await server.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  return new Promise<number>(() => undefined);
}
