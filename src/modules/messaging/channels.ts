import { pageByNumber } from '../../storage/paging.ts';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { AppContext } from '../../context.ts';
import { forbidden, invalid, notFound, unauthenticated } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson, toJson } from '../../lib/json.ts';
import { toE164 } from '../../lib/phone.ts';
import { parseHttpUrl, UnsafeUrlError } from '../../lib/url-guard.ts';
import type { Executor } from '../../storage/database.ts';
import { infobipBaseUrl } from './providers/infobip.ts';
import { verifyTwilioSignature } from './providers/twilio.ts';
import type { ChannelForSend } from './providers/types.ts';
import type { ChannelCredentials, ChannelInput, ChannelSettings, InboundAuth } from './schemas.ts';
import type { MsgChannelsTable } from './tables.ts';
import { templateError } from './templates.ts';
import { SharedTtlCache } from '../../lib/ttl-cache.ts';
import { matchesDigest, type OpenedDigest, type SecretBox } from '../../lib/secret-box.ts';
import { openCredentials, openInboundDigest, sealCredentials, sealInboundAuth } from './secrets.ts';

// Channels: one provider account and number. Credentials and inbound secrets are write-only:
// stored (sealed or digested: secrets.ts), used, never returned, never logged.

export type ChannelRow = MsgChannelsTable;
export type Provider = NonNullable<ChannelInput['provider']>;

export const DEFAULT_SETTINGS: Required<Omit<ChannelSettings, 'unknown_sender_reply' | 'catch_all_reply'>> = {
  rate_per_second: 10,
  twilio_reply: 'api',
  opt_out_reply: 'You are unsubscribed and will receive no further messages. Reply START to subscribe again.',
  opt_in_reply: 'You are subscribed again. Reply STOP to unsubscribe.',
  timeout_ms: 10_000,
};

interface ParsedChannel {
  settings: ChannelSettings & typeof DEFAULT_SETTINGS;
  /** `inbound_auth` as stored: the type, the Basic username, digests of the secrets (secrets.ts). */
  auth: StoredInboundAuth;
  /** SHA-256 of the Basic username, compared with the caller's in constant time. */
  usernameDigest?: Buffer;
  /** Opened on first use (the secret key is needed). */
  credentials?: ChannelCredentials;
  digests?: { token: OpenedDigest | null; password: OpenedDigest | null };
}

/** `inbound_auth` as stored. */
type StoredInboundAuth = { type: InboundAuth['type']; username?: string } & Record<string, unknown>;

// The JSON columns of a channel row, parsed once per row object: the hot path gets the same cached
// row (ChannelService.findCached) for every callback within a few seconds. Rows are never mutated
// (an update makes a new object), so an entry never goes stale.
const parsedRows = new WeakMap<ChannelRow, ParsedChannel>();

function parsed(row: ChannelRow): ParsedChannel {
  let p = parsedRows.get(row);
  if (!p) {
    p = {
      settings: { ...DEFAULT_SETTINGS, ...fromJson<ChannelSettings>(row.settings, {}) },
      auth: fromJson<StoredInboundAuth>(row.inbound_auth, { type: 'none' }),
    };
    parsedRows.set(row, p);
  }
  return p;
}

/** The channel's settings with defaults (shared: do not modify). */
export function channelSettings(row: ChannelRow): Readonly<ChannelSettings & typeof DEFAULT_SETTINGS> {
  return parsed(row).settings;
}

export function publicBase(ctx: AppContext, row: ChannelRow, req?: FastifyRequest): string {
  const base =
    row.public_url ??
    ctx.config.publicUrl ??
    (req ? `${req.protocol}://${req.headers.host}` : `http://${ctx.config.host}:${ctx.config.port}`);
  return base.replace(/\/+$/, '');
}

export function presentChannel(ctx: AppContext, row: ChannelRow, req?: FastifyRequest) {
  const creds = fromJson<Record<string, unknown>>(row.credentials, {});
  const auth = parsed(row).auth;
  const base = publicBase(ctx, row, req);
  return {
    id: row.id,
    name: row.name,
    provider: row.provider,
    type: row.type,
    sender: row.sender,
    // Which credentials are set, never their values.
    credentials_set: Object.keys(creds).sort(),
    inbound_auth: { type: auth.type, ...(auth.type === 'basic' ? { username_set: true } : {}) },
    public_url: row.public_url,
    settings: channelSettings(row),
    inbound_url: row.provider === 'simulator' ? null : `${base}/v1/channels/${row.id}/inbound`,
    reports_url: row.provider === 'simulator' ? null : `${base}/v1/channels/${row.id}/reports`,
    created_at: row.created_at,
    updated_at: row.updated_at,
    object: 'channel' as const,
  };
}

const REQUIRED_CREDS: Record<Provider, (keyof ChannelCredentials)[]> = {
  infobip: ['base_url', 'api_key'],
  twilio: ['account_sid', 'auth_token'],
  simulator: [],
};

function bad(field: string, message: string) {
  return invalid('invalid_channel', 'Invalid channel', `${field} ${message}`, [{ field, message }]);
}

/** Whether `given` is the channel's Basic username (kept in clear: it names the account, it is no secret). */
function matchesUsername(row: ChannelRow, given: string): boolean {
  // Hash first so lengths match and timing tells nothing about the username.
  const p = parsed(row);
  p.usernameDigest ??= createHash('sha256')
    .update(p.auth.username ?? '')
    .digest();
  return timingSafeEqual(createHash('sha256').update(given).digest(), p.usernameDigest);
}

function secretsOf(box: SecretBox, row: ChannelRow): Required<Pick<ParsedChannel, 'credentials' | 'digests'>> {
  const p = parsed(row);
  p.credentials ??= openCredentials(box, row.id, row.credentials);
  p.digests ??= {
    token: openInboundDigest(box, row.id, p.auth, 'token'),
    password: openInboundDigest(box, row.id, p.auth, 'password'),
  };
  return { credentials: p.credentials, digests: p.digests };
}

export class ChannelService {
  /** Channels by id for provider callbacks and sends (cleared by writes, in every process: cache-bus.ts). */
  private cache: SharedTtlCache<ChannelRow | null>;

  constructor(private ctx: AppContext) {
    this.cache = new SharedTtlCache(ctx.caches, 'channels', 5000);
  }

  /** A channel for the hot path (callbacks): cached for a few seconds. */
  async findCached(db: Executor, id: string): Promise<ChannelRow | undefined> {
    return (await this.cache.getOr(id, async () => (await this.find(db, id)) ?? null)) ?? undefined;
  }

  private async validate(input: ChannelInput, current?: ChannelRow): Promise<void> {
    const provider = (input.provider ?? current?.provider) as Provider;
    const type = input.type ?? current?.type;
    const creds = { ...fromJson<ChannelCredentials>(current?.credentials, {}), ...(input.credentials ?? {}) };
    for (const k of REQUIRED_CREDS[provider])
      if (!creds[k]) throw bad(`credentials.${k}`, `is required for ${provider}`);
    const sender = input.sender ?? current?.sender;
    if (!sender) throw bad('sender', 'is required');
    if (
      (provider === 'twilio' || type === 'whatsapp') &&
      !toE164(sender) &&
      !(provider === 'twilio' && creds.messaging_service_sid)
    ) {
      throw bad('sender', 'must be a phone number (E.164)');
    }
    const urls = [
      input.credentials?.base_url && provider === 'infobip'
        ? infobipBaseUrl(input.credentials.base_url)
        : input.credentials?.base_url,
      input.public_url,
    ];
    for (const u of urls) {
      if (!u) continue;
      try {
        if (u === input.public_url) parseHttpUrl(u);
        else await this.ctx.egress.check(u);
      } catch (err) {
        if (err instanceof UnsafeUrlError)
          throw bad(u === input.public_url ? 'public_url' : 'credentials.base_url', err.message);
        throw err;
      }
    }
    // The stored form keeps only the type (and username) in clear; a new value is checked in full.
    const auth = input.inbound_auth ?? fromJson<StoredInboundAuth | null>(current?.inbound_auth, null);
    if (provider === 'infobip') {
      if (!auth || (auth.type !== 'basic' && auth.type !== 'token')) {
        throw bad('inbound_auth', 'must be {type:"basic", username, password} or {type:"token", token} for infobip');
      }
      const given = input.inbound_auth;
      if (given?.type === 'token' && (given.token ?? '').length < 16)
        throw bad('inbound_auth.token', 'must be at least 16 characters');
      if (given?.type === 'basic' && !given.username) throw bad('inbound_auth.username', 'is required');
      if (given?.type === 'basic' && (given.password ?? '').length < 12)
        throw bad('inbound_auth.password', 'must be at least 12 characters');
    }
    if (provider === 'twilio' && auth && auth.type !== 'twilio_signature')
      throw bad('inbound_auth', 'twilio channels are verified with X-Twilio-Signature');
    const s = input.settings;
    if (s?.twilio_reply === 'twiml' && provider !== 'twilio')
      throw bad('settings.twilio_reply', 'applies to twilio channels only');
    // The settings that are Liquid templates (rendered as replies): checked like a flow's.
    for (const field of ['unknown_sender_reply', 'catch_all_reply'] as const) {
      const source = s?.[field];
      const error = typeof source === 'string' ? templateError(source) : null;
      if (error) throw bad(`settings.${field}`, `is not a valid Liquid template: ${error}`);
    }
  }

  async create(db: Executor, input: ChannelInput): Promise<ChannelRow> {
    if (!input.provider) throw bad('provider', 'is required');
    if (!input.name) throw bad('name', 'is required');
    await this.validate(input);
    const now = this.ctx.clock.nowIso();
    const provider = input.provider;
    const auth: InboundAuth =
      provider === 'twilio'
        ? { type: 'twilio_signature' }
        : provider === 'simulator'
          ? { type: 'none' }
          : input.inbound_auth!;
    const id = newId('chn');
    const row: ChannelRow = {
      id,
      name: input.name,
      provider,
      type: input.type ?? 'sms',
      sender: toE164(input.sender!) ?? input.sender!,
      credentials: toJson(sealCredentials(this.ctx.secrets, id, input.credentials ?? {})),
      inbound_auth: toJson(sealInboundAuth(this.ctx.secrets, id, auth)),
      public_url: input.public_url ?? null,
      settings: toJson(input.settings ?? {}),
      created_at: now,
      updated_at: null,
      deleted_at: null,
    };
    await db.insertInto('msg_channels').values(row).execute();
    return row;
  }

  async update(db: Executor, row: ChannelRow, input: ChannelInput): Promise<ChannelRow> {
    if (input.provider && input.provider !== row.provider) throw bad('provider', 'cannot change; create a new channel');
    await this.validate(input, row);
    const patch: Partial<ChannelRow> = { updated_at: this.ctx.clock.nowIso() };
    if (input.name !== undefined) patch.name = input.name;
    if (input.type !== undefined) patch.type = input.type;
    if (input.sender !== undefined) patch.sender = toE164(input.sender) ?? input.sender;
    if (input.credentials !== undefined) {
      patch.credentials = toJson({
        ...fromJson(row.credentials, {}),
        ...sealCredentials(this.ctx.secrets, row.id, input.credentials),
      });
    }
    if (input.inbound_auth !== undefined && row.provider === 'infobip') {
      patch.inbound_auth = toJson(sealInboundAuth(this.ctx.secrets, row.id, { ...input.inbound_auth }));
    }
    if (input.public_url !== undefined) patch.public_url = input.public_url;
    if (input.settings !== undefined) patch.settings = toJson({ ...fromJson(row.settings, {}), ...input.settings });
    await db.updateTable('msg_channels').set(patch).where('id', '=', row.id).execute();
    await this.cache.invalidate(row.id, db);
    return { ...row, ...patch };
  }

  async find(db: Executor, id: string): Promise<ChannelRow | undefined> {
    return db
      .selectFrom('msg_channels')
      .selectAll()
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
  }

  /** The oldest simulator channel not deleted: the one the simulator uses when not told which. */
  async firstSimulator(db: Executor): Promise<ChannelRow | undefined> {
    return db
      .selectFrom('msg_channels')
      .selectAll()
      .where('provider', '=', 'simulator')
      .where('deleted_at', 'is', null)
      .orderBy('created_at')
      .executeTakeFirst();
  }

  async get(db: Executor, id: string): Promise<ChannelRow> {
    const row = await this.find(db, id);
    if (!row) throw notFound('channel', id);
    return row;
  }

  async list(db: Executor, q: { limit: number; page: number }) {
    const base = db.selectFrom('msg_channels').where('deleted_at', 'is', null);
    return pageByNumber(base, q, (b) => b.selectAll().orderBy('created_at').orderBy('id'));
  }

  async softDelete(db: Executor, row: ChannelRow): Promise<void> {
    await db
      .updateTable('msg_channels')
      .set({ deleted_at: this.ctx.clock.nowIso() })
      .where('id', '=', row.id)
      .execute();
    await this.cache.invalidate(row.id, db);
  }

  forSend(row: ChannelRow): ChannelForSend {
    return {
      id: row.id,
      provider: row.provider,
      type: row.type,
      sender: row.sender,
      credentials: secretsOf(this.ctx.secrets, row).credentials,
      timeoutMs: channelSettings(row).timeout_ms,
    };
  }

  /**
   * Checks that a provider callback comes from the provider: Twilio's X-Twilio-Signature over the
   * public URL, Infobip's HTTP Basic credentials or secret token. Throws 401/403.
   */
  verifyCallback(row: ChannelRow, req: FastifyRequest): void {
    const { auth } = parsed(row);
    const { credentials, digests } = secretsOf(this.ctx.secrets, row);
    const header = (name: string) => {
      const v = req.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    if (row.provider === 'twilio') {
      const signature = header('x-twilio-signature');
      if (!signature) throw unauthenticated('signature_missing', 'X-Twilio-Signature is missing');
      const token = credentials.auth_token ?? '';
      const base = publicBase(this.ctx, row, req);
      const params = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
      if (!verifyTwilioSignature(token, signature, [`${base}${req.url}`], params)) {
        throw forbidden('signature_invalid', 'X-Twilio-Signature does not match this request');
      }
      return;
    }
    if (auth.type === 'basic') {
      const h = header('authorization');
      if (!h?.toLowerCase().startsWith('basic '))
        throw unauthenticated('credentials_missing', 'HTTP Basic credentials are required');
      const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      const password = digests.password;
      const ok =
        i >= 0 &&
        matchesUsername(row, decoded.slice(0, i)) &&
        password !== null &&
        matchesDigest(decoded.slice(i + 1), password);
      if (!ok) throw forbidden('credentials_invalid', 'HTTP Basic credentials do not match');
      return;
    }
    if (auth.type === 'token') {
      const q = (req.query ?? {}) as Record<string, unknown>;
      const given = typeof q.token === 'string' ? q.token : header('x-tally-token');
      if (!given) throw unauthenticated('token_missing', 'The channel secret token is required (?token=...)');
      if (!digests.token || !matchesDigest(given, digests.token))
        throw forbidden('token_invalid', 'The channel secret token does not match');
      return;
    }
    throw forbidden('inbound_disabled', 'This channel takes no provider callbacks');
  }
}
