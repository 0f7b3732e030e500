import { createHash, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../../lib/clock.ts';
import { newId, randomString } from '../../lib/ids.ts';
import type { CacheBus } from '../../lib/cache-bus.ts';
import { SharedTtlCache } from '../../lib/ttl-cache.ts';
import { type Executor, isUniqueViolation } from '../../storage/database.ts';

// API keys: an application id (public) and a secret token, stored as SHA-256 and nothing else of it
// (no prefix). Tokens are 40 random base62 characters (~238 bits), so a fast hash is enough; there
// is nothing to brute-force. A key is found by its app id (X-App-Id) or by that digest (Bearer).

export interface ApiKeyInfo {
  id: string;
  name: string;
  app_id: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface CreatedApiKey extends ApiKeyInfo {
  token: string;
}

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

export class ApiKeyService {
  // Verified keys are cached briefly: authentication is on every request's hot path. A revocation
  // reaches the other processes' caches through the cache bus (at once on PostgreSQL).
  private cache: SharedTtlCache<ApiKeyInfo>;

  constructor(
    private db: Executor,
    private clock: Clock,
    bus: CacheBus,
  ) {
    this.cache = new SharedTtlCache<ApiKeyInfo>(bus, 'api-keys', 5000);
  }

  async create(name: string, fixed?: { appId: string; token: string }): Promise<CreatedApiKey> {
    const token = fixed?.token ?? `tly_sk_${randomString(40)}`;
    const row = {
      id: newId('key'),
      name,
      app_id: fixed?.appId ?? `app_${randomString(20)}`,
      token_hash: hashToken(token),
      created_at: this.clock.nowIso(),
      last_used_at: null,
      revoked_at: null,
    };
    await this.db.insertInto('api_keys').values(row).execute();
    const { token_hash: _h, ...info } = row;
    return { ...info, token };
  }

  /** Makes sure the given key exists and is active (TALLY_APP_ID + TALLY_APP_TOKEN at start). */
  async ensure(appId: string, token: string): Promise<'created' | 'updated' | 'unchanged'> {
    const existing = await this.db.selectFrom('api_keys').selectAll().where('app_id', '=', appId).executeTakeFirst();
    if (!existing) {
      try {
        await this.create('environment', { appId, token });
        return 'created';
      } catch (err) {
        // Several processes starting at once (`tally serve --workers N`) each ensure the key: one
        // creates it, the others find it when they look again.
        if (!isUniqueViolation(err)) throw err;
        return this.ensure(appId, token);
      }
    }
    if (existing.token_hash === hashToken(token) && !existing.revoked_at) return 'unchanged';
    await this.db
      .updateTable('api_keys')
      .set({ token_hash: hashToken(token), revoked_at: null })
      .where('id', '=', existing.id)
      .execute();
    await this.cache.invalidate(undefined);
    return 'updated';
  }

  async list(): Promise<ApiKeyInfo[]> {
    return this.db
      .selectFrom('api_keys')
      .select(['id', 'name', 'app_id', 'created_at', 'last_used_at', 'revoked_at'])
      .orderBy('created_at')
      .execute();
  }

  async countActive(): Promise<number> {
    const r = await this.db
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('revoked_at', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /** Revokes by key id or app id. Returns false when nothing matched. */
  async revoke(idOrAppId: string): Promise<boolean> {
    const res = await this.db
      .updateTable('api_keys')
      .set({ revoked_at: this.clock.nowIso() })
      .where((eb) => eb.or([eb('id', '=', idOrAppId), eb('app_id', '=', idOrAppId)]))
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    await this.cache.invalidate(undefined);
    return Number(res.numUpdatedRows) > 0;
  }

  /** Verifies X-App-Id + X-App-Token (appId given) or a bearer token (appId undefined). */
  async verify(appId: string | undefined, token: string): Promise<ApiKeyInfo | null> {
    const hash = hashToken(token);
    const cacheKey = `${appId ?? ''}:${hash}`;
    const hit = this.cache.get(cacheKey);
    if (hit) return hit;
    const version = this.cache.version;
    const now = this.clock.nowMs();
    let q = this.db.selectFrom('api_keys').selectAll().where('revoked_at', 'is', null);
    q = appId !== undefined ? q.where('app_id', '=', appId) : q.where('token_hash', '=', hash);
    const row = await q.executeTakeFirst();
    if (!row) return null;
    const a = Buffer.from(row.token_hash, 'hex');
    const b = Buffer.from(hash, 'hex');
    if (a.length !== b.length || !timingSafeEqual(a, b)) return null;
    const { token_hash: _h, ...info } = row;
    this.cache.setIfUnchanged(cacheKey, info, version);
    if (!row.last_used_at || now - Date.parse(row.last_used_at) > 60_000) {
      // Recorded at most once a minute per key, off the request's critical path.
      void Promise.resolve(
        this.db.updateTable('api_keys').set({ last_used_at: this.clock.nowIso() }).where('id', '=', row.id).execute(),
      ).catch(() => undefined);
    }
    return info;
  }
}
