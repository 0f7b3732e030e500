import { createHmac, randomBytes } from 'node:crypto';

// Signatures of a delivery:
// - Standard Webhooks (standardwebhooks.com v1): `webhook-signature: v1,<base64 HMAC-SHA256>` of
//   `${webhook-id}.${webhook-timestamp}.${body}`, keyed with the base64-decoded part of the
//   `whsec_` secret. During a rotation both secrets sign: `v1,<new> v1,<old>`.
// - Voucherify: `x-voucherify-signature: <hex HMAC-SHA256 of the body>`, keyed with the secret
//   string itself (the current secret; `x-voucherify-signature-previous` carries the old one
//   while it is still valid).

const SECRET_PREFIX = 'whsec_';

/** A new signing secret: `whsec_` + base64 of 24 random bytes. */
export function newSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(24).toString('base64')}`;
}

const keyCache = new Map<string, Buffer>();
function keyOf(secret: string): Buffer {
  let key = keyCache.get(secret);
  if (!key) {
    key = Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
    if (keyCache.size > 10_000) keyCache.clear();
    keyCache.set(secret, key);
  }
  return key;
}

export function standardSignature(secret: string, msgId: string, timestampSec: number, body: string): string {
  const mac = createHmac('sha256', keyOf(secret)).update(`${msgId}.${timestampSec}.${body}`).digest('base64');
  return `v1,${mac}`;
}

export function voucherifySignature(secret: string, body: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/** The signing headers of one attempt. `secrets[0]` is the current secret, the rest still-valid old ones. */
export function signedHeaders(
  secrets: string[],
  msgId: string,
  timestampSec: number,
  body: string,
): Record<string, string> {
  const headers: Record<string, string> = {
    'webhook-id': msgId,
    'webhook-timestamp': String(timestampSec),
    'webhook-signature': secrets.map((s) => standardSignature(s, msgId, timestampSec, body)).join(' '),
    'x-voucherify-signature': voucherifySignature(secrets[0], body),
  };
  if (secrets.length > 1) headers['x-voucherify-signature-previous'] = voucherifySignature(secrets[1], body);
  return headers;
}
