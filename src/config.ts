import { parseSecretKeys } from './lib/secret-box.ts';

// Configuration comes from the environment, overridden by CLI flags of the same name
// (`--port 3001` overrides PORT). Everything has a default so `npm start` needs nothing.

export interface Config {
  port: number;
  host: string;
  databaseUrl: string;
  logLevel: string;
  appId?: string;
  appToken?: string;
  /**
   * TALLY_SECRET_KEY: the key (or keys, the current one first) that encrypt stored secrets. Unset:
   * a key file beside the SQLite database; required on PostgreSQL (secret-keys.ts).
   */
  secretKey?: string;
  /** Public base URL of this server (for provider callbacks and inbound URLs behind a proxy). */
  publicUrl?: string;
  /** Allow webhook, HTTP-step and provider targets on private and loopback addresses (local development, tests). */
  allowPrivateTargets: boolean;
  /** Largest request body accepted, in bytes. */
  bodyLimit: number;
  /** Days to keep emitted events (and their delivery attempts). 0 keeps them forever. */
  eventRetentionDays: number;
  /** Days to keep stored messages (inbound and outbound). 0 keeps them forever. */
  messageRetentionDays: number;
  /** Rows of one table the retention sweep deletes per transaction (modules/scheduler/retention.ts). */
  retentionBatch: number;
  /** `tally serve --workers N` (TALLY_WORKERS): server processes sharing the port; above 1 only on PostgreSQL. */
  processes: number;
  /** Run background workers (webhook delivery, scheduler). Off for one-shot CLI commands. */
  workers: boolean;
  /**
   * SQLite `synchronous` (WAL mode). NORMAL: a commit survives a crash of the process, but a power
   * loss or OS crash may lose the transactions committed since the last sync of the WAL (the
   * database stays consistent). FULL: the WAL is synced at every commit.
   */
  sqliteSynchronous: SqliteSynchronous;
  /**
   * TALLY_TIME_LOOKBACK_DAYS: after downtime, anniversaries and reminders that came due at most
   * this many days ago fire on restart; older ones are recorded as skipped (GET /v1/schedule/skipped).
   */
  timeLookbackDays: number;
  /** TALLY_TIME_BATCH_SIZE: due items fired per transaction (bounds the time engine's memory). */
  timeBatchSize: number;
}

export const SQLITE_SYNCHRONOUS = ['NORMAL', 'FULL'] as const;
export type SqliteSynchronous = (typeof SQLITE_SYNCHRONOUS)[number];

const FLAG_TO_ENV: Record<string, string> = {
  port: 'PORT',
  host: 'HOST',
  'database-url': 'DATABASE_URL',
  'log-level': 'LOG_LEVEL',
  'app-id': 'TALLY_APP_ID',
  'app-token': 'TALLY_APP_TOKEN',
  'public-url': 'TALLY_PUBLIC_URL',
  'allow-private-targets': 'TALLY_ALLOW_PRIVATE_TARGETS',
  'body-limit': 'TALLY_BODY_LIMIT',
  'event-retention-days': 'TALLY_EVENT_RETENTION_DAYS',
  'message-retention-days': 'TALLY_MESSAGE_RETENTION_DAYS',
  'retention-batch': 'TALLY_RETENTION_BATCH',
  workers: 'TALLY_WORKERS',
  'sqlite-synchronous': 'TALLY_SQLITE_SYNCHRONOUS',
  'time-lookback-days': 'TALLY_TIME_LOOKBACK_DAYS',
  'time-batch-size': 'TALLY_TIME_BATCH_SIZE',
};

export const CONFIG_FLAGS = Object.keys(FLAG_TO_ENV);

function bool(v: string | undefined, dflt: boolean): boolean {
  if (v === undefined || v === '') return dflt;
  return ['1', 'true', 'yes', 'on'].includes(v.toLowerCase());
}

function int(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${v}"`);
  return n;
}

function positive(name: string, v: string | undefined, dflt: number): number {
  const n = int(name, v, dflt);
  if (n === 0) throw new Error(`${name} must be a positive integer, got "${v}"`);
  return n;
}

/** Shortest TALLY_APP_TOKEN accepted: a token is the whole secret of a key. */
export const MIN_APP_TOKEN_LENGTH = 24;

function oneOf<T extends string>(name: string, v: string | undefined, allowed: readonly T[], dflt: T): T {
  if (v === undefined || v === '') return dflt;
  const found = allowed.find((a) => a === v.toUpperCase());
  if (!found) throw new Error(`${name} must be one of ${allowed.join(', ')}, got "${v}"`);
  return found;
}

export function loadConfig(
  flags: Record<string, string | boolean | undefined> = {},
  env: NodeJS.ProcessEnv = process.env,
): Config {
  const merged: Record<string, string | undefined> = { ...env };
  for (const [flag, envName] of Object.entries(FLAG_TO_ENV)) {
    const v = flags[flag];
    if (v !== undefined) merged[envName] = String(v);
  }
  const appToken = merged.TALLY_APP_TOKEN || undefined;
  if (appToken !== undefined && appToken.length < MIN_APP_TOKEN_LENGTH) {
    throw new Error(
      `TALLY_APP_TOKEN must be at least ${MIN_APP_TOKEN_LENGTH} characters (got ${appToken.length}): ` +
        'it is the whole secret of that API key. ' +
        'Use a long random value, e.g. `tly_sk_` followed by `openssl rand -hex 20`.',
    );
  }
  const secretKey = merged.TALLY_SECRET_KEY?.trim() || undefined;
  // Refused now, before anything starts, rather than at the first secret sealed.
  if (secretKey !== undefined) parseSecretKeys(secretKey);
  return {
    port: int('PORT', merged.PORT, 3000),
    host: merged.HOST || '127.0.0.1',
    databaseUrl: merged.DATABASE_URL || 'sqlite:./data/tally.db',
    logLevel: merged.LOG_LEVEL || 'info',
    appId: merged.TALLY_APP_ID || undefined,
    appToken,
    secretKey,
    publicUrl: merged.TALLY_PUBLIC_URL || undefined,
    allowPrivateTargets: bool(merged.TALLY_ALLOW_PRIVATE_TARGETS, false),
    bodyLimit: int('TALLY_BODY_LIMIT', merged.TALLY_BODY_LIMIT, 1024 * 1024),
    eventRetentionDays: int('TALLY_EVENT_RETENTION_DAYS', merged.TALLY_EVENT_RETENTION_DAYS, 30),
    messageRetentionDays: int('TALLY_MESSAGE_RETENTION_DAYS', merged.TALLY_MESSAGE_RETENTION_DAYS, 90),
    retentionBatch: positive('TALLY_RETENTION_BATCH', merged.TALLY_RETENTION_BATCH, 5000),
    processes: positive('TALLY_WORKERS', merged.TALLY_WORKERS, 1),
    workers: true,
    sqliteSynchronous: oneOf('TALLY_SQLITE_SYNCHRONOUS', merged.TALLY_SQLITE_SYNCHRONOUS, SQLITE_SYNCHRONOUS, 'NORMAL'),
    timeLookbackDays: int('TALLY_TIME_LOOKBACK_DAYS', merged.TALLY_TIME_LOOKBACK_DAYS, 7),
    timeBatchSize: Math.max(1, int('TALLY_TIME_BATCH_SIZE', merged.TALLY_TIME_BATCH_SIZE, 500)),
  };
}
