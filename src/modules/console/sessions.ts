import { createHash, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../../lib/clock.ts';
import { newId, randomString } from '../../lib/ids.ts';
import type { SecretBox } from '../../lib/secret-box.ts';
import type { Executor } from '../../storage/database.ts';
import type { ApiKeyService } from '../api-keys/service.ts';
import './tables.ts';

// Console sessions. Signing in checks the API key like any API request; the browser then holds
// a random session token (httpOnly cookie) whose SHA-256 is all the database keeps. The API
// token is kept sealed, so each console request calls the API as that key: revoking the key
// signs its sessions out, and the console can never do what the key could not.

export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

export interface ConsoleSession {
  id: string;
  csrfToken: string;
  appId: string;
  apiKeyId: string;
  /** The API token, opened (held in memory for the request only). */
  apiToken: string;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const sealContext = (id: string) => `console_sessions:${id}`;

export class ConsoleSessionService {
  constructor(
    private db: Executor,
    private clock: Clock,
    private secrets: SecretBox,
    private apiKeys: ApiKeyService,
  ) {}

  /** Signs in with an API key; undefined when the key is unknown or revoked. Answers the cookie's token. */
  async signIn(appId: string, apiToken: string): Promise<{ token: string; session: ConsoleSession } | undefined> {
    const key = await this.apiKeys.verify(appId, apiToken);
    if (!key) return undefined;
    const id = newId('ses');
    const token = randomString(43);
    const csrfToken = randomString(32);
    const now = this.clock.nowMs();
    await this.db
      .insertInto('console_sessions')
      .values({
        id,
        token_hash: sha256(token),
        csrf_token: csrfToken,
        api_key_id: key.id,
        app_id: key.app_id,
        sealed_token: this.secrets.seal(apiToken, sealContext(id)),
        created_at: new Date(now).toISOString(),
        expires_at: new Date(now + SESSION_TTL_MS).toISOString(),
      })
      .execute();
    // Expired sessions go as new ones come: no background job for a table this small.
    await this.db.deleteFrom('console_sessions').where('expires_at', '<', new Date(now).toISOString()).execute();
    return { token, session: { id, csrfToken, appId: key.app_id, apiKeyId: key.id, apiToken } };
  }

  /** The live session of a cookie token, with its API key still valid; undefined otherwise. */
  async find(token: string | undefined): Promise<ConsoleSession | undefined> {
    if (!token) return undefined;
    const row = await this.db
      .selectFrom('console_sessions')
      .selectAll()
      .where('token_hash', '=', sha256(token))
      .where('expires_at', '>', this.clock.nowIso())
      .executeTakeFirst();
    if (!row) return undefined;
    let apiToken: string;
    try {
      apiToken = this.secrets.open(row.sealed_token, sealContext(row.id));
    } catch {
      // Sealed under a key that was retired since: the session is over.
      return undefined;
    }
    if (!(await this.apiKeys.verify(row.app_id, apiToken))) return undefined;
    return { id: row.id, csrfToken: row.csrf_token, appId: row.app_id, apiKeyId: row.api_key_id, apiToken };
  }

  async signOut(id: string): Promise<void> {
    await this.db.deleteFrom('console_sessions').where('id', '=', id).execute();
  }
}

/** Constant-time comparison of the CSRF token a request sent with the session's. */
export function csrfMatches(session: ConsoleSession, sent: unknown): boolean {
  if (typeof sent !== 'string') return false;
  const a = Buffer.from(sha256(sent));
  const b = Buffer.from(sha256(session.csrfToken));
  return timingSafeEqual(a, b);
}
