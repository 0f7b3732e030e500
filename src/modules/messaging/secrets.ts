import { createHash } from 'node:crypto';
import { isSealed, type OpenedDigest, type SecretBox } from '../../lib/secret-box.ts';
import { fromJson } from '../../lib/json.ts';
import type { SealedColumn } from '../../storage/sealed.ts';
import type { ChannelCredentials } from './schemas.ts';

// A channel's secrets at rest (secret-box.ts). Provider credentials Tally must send (Infobip's API
// key, Twilio's auth token, which also checks Twilio's signatures) are sealed field by field in
// the `credentials` JSON; the other fields (base_url, account_sid, ...) stay readable. Inbound
// secrets Tally only compares (Infobip's callback token, the Basic password) are kept as sealed
// digests in `inbound_auth`: `{type:'token', token_digest}`, `{type:'basic', username, password_digest}`.

/** Credential fields that are secrets. */
export const SECRET_CREDENTIALS = ['api_key', 'auth_token'] as const;

const credentialContext = (channelId: string, field: string) => `msg_channels:${channelId}:credentials.${field}`;
const inboundContext = (channelId: string, field: string) => `msg_channels:${channelId}:inbound_auth.${field}`;

/** Clear fields of an older version's `inbound_auth` and the digest field each becomes. */
const INBOUND_DIGESTS = { token: 'token_digest', password: 'password_digest' } as const;
type InboundSecret = keyof typeof INBOUND_DIGESTS;

/**
 * `creds` with its secret fields sealed for channel `channelId`. Every given value is sealed, even
 * one that looks sealed: a caller cannot plant a value of its own making among the sealed ones.
 */
export function sealCredentials(
  box: SecretBox,
  channelId: string,
  creds: ChannelCredentials,
  keepSealed = false,
): ChannelCredentials {
  const out: Record<string, string | undefined> = { ...creds };
  for (const f of SECRET_CREDENTIALS) {
    const v = out[f];
    if (typeof v === 'string' && !(keepSealed && isSealed(v))) out[f] = box.seal(v, credentialContext(channelId, f));
  }
  return out;
}

/** The stored credentials in clear (values stored in clear by an older version are taken as they are). */
export function openCredentials(box: SecretBox, channelId: string, stored: string | null): ChannelCredentials {
  const creds: Record<string, string | undefined> = fromJson<Record<string, string>>(stored, {});
  for (const f of SECRET_CREDENTIALS) {
    const v = creds[f];
    if (isSealed(v)) creds[f] = box.open(v, credentialContext(channelId, f));
  }
  return creds;
}

/** `auth` (as given to the API) as stored: the type, the username, digests of the secrets; nothing else. */
export function sealInboundAuth(
  box: SecretBox,
  channelId: string,
  auth: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { type: auth.type };
  if (typeof auth.username === 'string') out.username = auth.username;
  return digestClearSecrets(box, channelId, out, auth);
}

/** `out` with the clear inbound secrets of `from` added as sealed digests. */
function digestClearSecrets(
  box: SecretBox,
  channelId: string,
  out: Record<string, unknown>,
  from: Record<string, unknown>,
) {
  for (const [clear, digest] of Object.entries(INBOUND_DIGESTS)) {
    const v = from[clear];
    if (typeof v !== 'string') continue;
    delete out[clear];
    out[digest] = box.sealDigest(v, inboundContext(channelId, clear));
  }
  return out;
}

/**
 * The digest of inbound secret `which` of a stored `inbound_auth`, opened for comparisons; null when
 * there is none. A clear value of an older version gets an unsalted digest made here.
 */
export function openInboundDigest(
  box: SecretBox,
  channelId: string,
  auth: Record<string, unknown>,
  which: InboundSecret,
): OpenedDigest | null {
  const sealed = auth[INBOUND_DIGESTS[which]];
  if (isSealed(sealed)) return box.openDigest(sealed, inboundContext(channelId, which));
  const clear = auth[which];
  if (typeof clear === 'string')
    return { salt: Buffer.alloc(0), hash: createHash('sha256').update(clear, 'utf8').digest() };
  return null;
}

function resealJson(
  value: string,
  box: SecretBox,
  fields: [field: string, context: string][],
): Record<string, unknown> | undefined {
  const obj = fromJson<Record<string, unknown>>(value, {});
  let changed = false;
  for (const [field, context] of fields) {
    const v = obj[field];
    if (!isSealed(v)) continue;
    const next = box.reseal(v, context);
    if (next !== v) {
      obj[field] = next;
      changed = true;
    }
  }
  return changed ? obj : undefined;
}

export const channelSealedColumns: SealedColumn[] = [
  {
    table: 'msg_channels',
    column: 'credentials',
    reseal(value, id, box) {
      const fields = SECRET_CREDENTIALS.map((f) => [f, credentialContext(id, f)] as [string, string]);
      const resealed = resealJson(value, box, fields) ?? fromJson<ChannelCredentials>(value, {});
      const sealed = sealCredentials(box, id, resealed, true);
      const next = JSON.stringify(sealed);
      return next === value ? undefined : next;
    },
    sealedValues: (value, id) =>
      SECRET_CREDENTIALS.flatMap((f) => {
        const v = fromJson<Record<string, unknown>>(value, {})[f];
        return isSealed(v) ? [{ sealed: v, context: credentialContext(id, f) }] : [];
      }),
  },
  {
    table: 'msg_channels',
    column: 'inbound_auth',
    reseal(value, id, box) {
      const fields = Object.entries(INBOUND_DIGESTS).map(
        ([clear, d]) => [d, inboundContext(id, clear)] as [string, string],
      );
      const resealed = resealJson(value, box, fields) ?? fromJson<Record<string, unknown>>(value, {});
      const next = JSON.stringify(digestClearSecrets(box, id, { ...resealed }, resealed));
      return next === value ? undefined : next;
    },
    sealedValues: (value, id) =>
      Object.entries(INBOUND_DIGESTS).flatMap(([clear, d]) => {
        const v = fromJson<Record<string, unknown>>(value, {})[d];
        return isSealed(v) ? [{ sealed: v, context: inboundContext(id, clear) }] : [];
      }),
  },
];
