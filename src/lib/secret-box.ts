import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

// Secrets at rest. Pure: keys come in as bytes; where they are read from is secret-keys.ts.
//
// A sealed value is `enc:v1:<kid>:<iv>:<ciphertext+tag>` (base64url parts): AES-256-GCM with a
// random 96-bit IV under the key whose id is <kid>. The id is derived from the key itself, so the
// configured key list needs no names and a value names the one key that opens it. The caller's
// context (table, row id, field) is the GCM additional data: a value copied into another row or
// field does not open there.
//
// Key rotation: the box holds the current key first and older keys after. It seals with the
// current key and opens with whichever key the value names; `reseal` moves a value to the
// current key.
//
// Inbound secrets that are only compared (a provider's callback token or Basic password) are kept
// as a sealed salted SHA-256 digest (`sealDigest`): the clear value is never stored, and without
// the key a stolen database gives nothing to test guesses against (it works as an HMAC with the
// server key would), while a rotation can still move the digest to a new key without knowing the
// secret. A slow KDF was left out on purpose: these secrets are checked on every unauthenticated
// provider callback, where a deliberate slow hash turns each forged request into CPU time.

export const SEALED_PREFIX = 'enc:v1:';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const DIGEST_PREFIX = 'sha256:';

/** The key configuration is unusable (wrong length, bad encoding, missing). */
export class SecretKeyError extends Error {
  override name = 'SecretKeyError';
}

/** A sealed value cannot be opened: no configured key has its id, or it fails authentication. */
export class SecretOpenError extends Error {
  override name = 'SecretOpenError';
}

/** A new random key, base64: what TALLY_SECRET_KEY or a key file holds. */
export function generateSecretKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/**
 * Parses a key list: keys separated by commas or white space, the current key first. Each is 32
 * bytes written as 64 hex digits or as base64/base64url (44 or 43 characters). `source` names
 * where the list came from, for the error message.
 */
export function parseSecretKeys(spec: string, source = 'TALLY_SECRET_KEY'): Buffer[] {
  const parts = spec.split(/[\s,]+/).filter((p) => p !== '');
  if (parts.length === 0) throw new SecretKeyError(`${source} holds no key`);
  const keys = parts.map((part, i) => {
    const which = parts.length > 1 ? ` (key ${i + 1} of ${parts.length})` : '';
    let key: Buffer | undefined;
    if (/^[0-9a-fA-F]{64}$/.test(part)) key = Buffer.from(part, 'hex');
    else if (/^[A-Za-z0-9+/\-_]{43}={0,1}$/.test(part))
      key = Buffer.from(part.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (!key || key.length !== KEY_BYTES) {
      throw new SecretKeyError(
        `${source}${which} is not a 32-byte key written as base64 (44 characters) or hex (64 digits); ` +
          'generate one with `npx tally secrets generate-key` or `openssl rand -base64 32`',
      );
    }
    return key;
  });
  const ids = keys.map(keyIdOf);
  if (new Set(ids).size !== ids.length) throw new SecretKeyError(`${source} lists the same key twice`);
  return keys;
}

/** 8 base64url characters naming a key (from an HMAC of a constant under the key: reveals nothing of it). */
export function keyIdOf(key: Buffer): string {
  return createHmac('sha256', key).update('tally secret key id').digest('base64url').slice(0, 8);
}

/** Whether `v` is a sealed value (`enc:v1:...`). */
export function isSealed(v: unknown): v is string {
  return typeof v === 'string' && v.startsWith(SEALED_PREFIX);
}

export class SecretBox {
  private readonly keys: Map<string, Buffer>;
  /** Id of the key new values are sealed with. */
  readonly currentKeyId: string;

  constructor(keys: Buffer[]) {
    if (keys.length === 0) throw new SecretKeyError('no secret key');
    for (const k of keys)
      if (k.length !== KEY_BYTES) throw new SecretKeyError(`a secret key must be ${KEY_BYTES} bytes`);
    this.keys = new Map(keys.map((k) => [keyIdOf(k), k]));
    this.currentKeyId = keyIdOf(keys[0]);
  }

  /** Ids of every configured key, the current one first. */
  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  seal(plain: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.currentKeyId)!, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${SEALED_PREFIX}${this.currentKeyId}:${iv.toString('base64url')}:${body.toString('base64url')}`;
  }

  open(sealed: string, context: string): string {
    const { kid, iv, body } = split(sealed);
    const key = this.keys.get(kid);
    if (!key) {
      throw new SecretOpenError(
        `a stored secret was encrypted with key ${kid}, ` +
          `which is not among the configured keys (${this.keyIds.join(', ')}): ` +
          'set TALLY_SECRET_KEY (or the key file) to the key this database was written with',
      );
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw new SecretOpenError(
        `a stored secret (key ${kid}) does not authenticate: it was altered or belongs to another record`,
      );
    }
  }

  /** Id of the key `sealed` was sealed with. */
  keyIdOf(sealed: string): string {
    return split(sealed).kid;
  }

  /** `sealed` under the current key (the same string when it already is). */
  reseal(sealed: string, context: string): string {
    return this.keyIdOf(sealed) === this.currentKeyId ? sealed : this.seal(this.open(sealed, context), context);
  }

  /** A sealed salted digest of `secret`, for secrets that are only ever compared. */
  sealDigest(secret: string, context: string): string {
    const salt = randomBytes(16);
    return this.seal(
      `${DIGEST_PREFIX}${salt.toString('base64url')}:${saltedHash(salt, secret).toString('base64url')}`,
      context,
    );
  }

  /** Opens a sealed digest once, for many comparisons (`matchesDigest`). */
  openDigest(sealed: string, context: string): OpenedDigest {
    const plain = this.open(sealed, context);
    const m = /^sha256:([A-Za-z0-9_-]+):([A-Za-z0-9_-]+)$/.exec(plain);
    if (!m) throw new SecretOpenError('a stored secret digest is malformed');
    return { salt: Buffer.from(m[1], 'base64url'), hash: Buffer.from(m[2], 'base64url') };
  }
}

export interface OpenedDigest {
  salt: Buffer;
  hash: Buffer;
}

/** Whether `given` is the secret `digest` was made of (constant time in the secret). */
export function matchesDigest(given: string, digest: OpenedDigest): boolean {
  const h = saltedHash(digest.salt, given);
  return h.length === digest.hash.length && timingSafeEqual(h, digest.hash);
}

function saltedHash(salt: Buffer, secret: string): Buffer {
  return createHash('sha256').update(salt).update(secret, 'utf8').digest();
}

function split(sealed: string): { kid: string; iv: Buffer; body: Buffer } {
  const parts = sealed.startsWith(SEALED_PREFIX) ? sealed.slice(SEALED_PREFIX.length).split(':') : [];
  if (parts.length !== 3) throw new SecretOpenError('a stored secret is not in the enc:v1 format');
  const [kid, iv, body] = [parts[0], Buffer.from(parts[1], 'base64url'), Buffer.from(parts[2], 'base64url')];
  if (iv.length !== IV_BYTES || body.length < TAG_BYTES)
    throw new SecretOpenError('a stored secret is not in the enc:v1 format');
  return { kid, iv, body };
}
