import { sql } from 'kysely';
import { type KeyWalk, pageByCreated, pageByNumber } from '../../storage/paging.ts';
import type { AppContext } from '../../context.ts';
import {
  ALPHANUMERIC,
  allCodes,
  type CodeConfig,
  DEFAULT_CODE_CONFIG,
  generateCode,
  validateCodeConfig,
} from '../../lib/codes.ts';
import { conflict, DomainError, invalid, notFound, refused } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson, toJson } from '../../lib/json.ts';
import type { Executor } from '../../storage/database.ts';
import { SharedTtlCache } from '../../lib/ttl-cache.ts';
import type { OutgoingEvent } from '../events/outbox.ts';
import { insertIssuedVoucher, keepIssued, keepRedemption } from './issue.ts';
import { type Discount, discountAmount, giftCredits, type OrderInput, orderAfter } from './discount.ts';
import { failedRedemption } from './redemption-rows.ts';
import { stackOrder } from './stacks.ts';
import type { PublicationsTable, RedemptionsTable, VoucherCampaignsTable, VouchersTable } from './tables.ts';
import './tables.ts';

// Voucher campaigns, vouchers, publications, validation, redemption and the one `redemptions`
// table (voucher redemptions here, reward redemptions recorded by the rewards workflow).
//
// Invariants:
// - a code belongs to one voucher, ever (unique index; generation inserts with ON CONFLICT DO
//   NOTHING and tries another code); a pool that has no free code refuses, it never hands a code out
//   twice (free codes are taken under a row lock, FOR UPDATE SKIP LOCKED on PostgreSQL);
// - a redemption takes the voucher's row lock first, so `redeemed_quantity <= quantity` and
//   `gift_balance >= 0` hold under concurrent redemptions;
// - every event is written by the transaction that causes it; a refusal's event
//   (`voucher_redeem_unauthorized`, `voucher_attribution_failed`) is written by the caller's
//   `onRefused` transaction after the refused one rolled back (`recordRefusal`).

export type CampaignRow = VoucherCampaignsTable;
export type VoucherRow = VouchersTable;
export type PublicationRow = PublicationsTable;
export type RedemptionRow = RedemptionsTable;

/** The `offer` of the voucher events: the reward a voucher came from, or its campaign. */
export interface Offer {
  id: string;
  name: string;
  public_name: string | null;
  public_description: string | null;
  public_image: string | null;
}

export interface CampaignVoucher {
  type: 'DISCOUNT_VOUCHER' | 'GIFT_VOUCHER';
  discount?: Discount | null;
  gift?: { amount: number; effect?: string } | null;
  code_config: CodeConfig;
  redemption: { quantity: number | null };
}

export const EXPIRE_JOB = 'voucher.expire';

/**
 * What the referrals module does for the vouchers of REFERRAL_PROGRAM campaigns, passed at
 * construction (src/services.ts) so this module never imports referrals. Each runs in the caller's
 * transaction; a hook that throws rolls the whole change back.
 */
export interface ReferralHooks {
  /** A referral campaign was created or updated: validates and stores its `referral_program`. */
  campaignSaved(trx: Executor, campaign: CampaignRow, referralProgram: unknown, created: boolean): Promise<void>;
  /** The campaign's `referral_program` as Voucherify shows it. */
  programOf(db: Executor, campaignId: string): Promise<Record<string, unknown> | null>;
  /** A referral code was redeemed (the redemption row is written): the conversion of the referee. */
  redeemed(trx: Executor, r: { voucher: VoucherRow; redemption: RedemptionRow; customerId: string }): Promise<void>;
  /**
   * Why redeeming this referral code would not convert `customerId` (already referred in the
   * campaign, or not new in a new-customers-only one), or null: validation refuses what redemption
   * would, and a refused redemption is kept as a FAILURE record. `redeemed` checks again under its
   * locks; this is the early, unlocked answer.
   */
  refusal(db: Executor, r: { voucher: VoucherRow; customerId: string }): Promise<DomainError | null>;
}

const isReferral = (row: { campaign_type: string }) => row.campaign_type === 'REFERRAL_PROGRAM';

/** A redemption or validation refused for the voucher's state: its `voucher_redeem_unauthorized` event. */
export class VoucherRefusal extends DomainError {
  constructor(
    kind: 'refused' | 'not_found',
    key: string,
    message: string,
    details: string,
    readonly event: OutgoingEvent,
  ) {
    super(kind, key, message, details);
  }

  /** A refused redemption (not a validation): its `result: FAILURE` record, written with the event. */
  failure?: RedemptionRow;
  /** A refused stacked redemption: its parent's `result: FAILURE` record (the child's names it). */
  parentFailure?: RedemptionRow;
}

/** A publication refused because the campaign has no code left: its `voucher_attribution_failed` event. */
export class AttributionFailed extends DomainError {
  constructor(
    details: string,
    readonly event: OutgoingEvent,
  ) {
    super('refused', 'no_voucher_suitable_for_publication', 'No voucher suitable for publication', details);
  }
}

export function campaignVoucher(row: CampaignRow): CampaignVoucher {
  return fromJson<CampaignVoucher>(row.voucher, {
    type: 'DISCOUNT_VOUCHER',
    code_config: DEFAULT_CODE_CONFIG,
    redemption: { quantity: null },
  });
}

export function campaignOffer(row: CampaignRow): Offer {
  const metadata = fromJson<Record<string, unknown>>(row.metadata, {});
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  return {
    id: row.id,
    name: row.name,
    public_name: str(metadata.public_name) ?? row.name,
    public_description: row.description ?? str(metadata.public_description),
    public_image: str(metadata.image_url) ?? str(metadata.public_image),
  };
}

/** Voucherify's campaign object for a voucher campaign, plus Tally's `codes_left` (free codes). */
export function presentCampaign(
  row: CampaignRow,
  counts: { vouchers: number; free: number },
  referralProgram?: Record<string, unknown> | null,
) {
  const v = campaignVoucher(row);
  const extra = fromJson<Record<string, unknown>>(row.extra, {});
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    campaign_type: row.campaign_type,
    type: row.type,
    is_referral_code: isReferral(row),
    voucher: {
      type: v.type,
      ...(v.type === 'GIFT_VOUCHER' ? { gift: v.gift } : { discount: v.discount }),
      redemption: v.redemption,
      code_config: v.code_config,
      is_referral_code: isReferral(row),
    },
    ...(referralProgram ? { referral_program: referralProgram } : {}),
    auto_join: false,
    join_once: row.join_once === 1,
    active: row.active === 1,
    start_date: row.start_date,
    expiration_date: row.expiration_date,
    category: null,
    category_id: null,
    ...extra,
    metadata: fromJson(row.metadata, {}),
    vouchers_count: counts.vouchers,
    codes_left: counts.free,
    created_at: row.created_at,
    updated_at: row.updated_at,
    object: 'campaign' as const,
  };
}

/** Voucherify's voucher object. */
export function presentVoucher(row: VoucherRow) {
  const gift =
    row.type === 'GIFT_VOUCHER'
      ? { amount: Number(row.gift_amount ?? 0), balance: Number(row.gift_balance ?? 0), effect: 'APPLY_TO_ORDER' }
      : null;
  return {
    id: row.id,
    code: row.code,
    campaign: row.campaign_name,
    campaign_id: row.campaign_id,
    category: null,
    category_id: null,
    type: row.type,
    discount: fromJson<Discount | null>(row.discount, null),
    gift,
    loyalty_card: null,
    start_date: row.start_date,
    expiration_date: row.expiration_date,
    active: row.active === 1,
    additional_info: null,
    metadata: fromJson(row.metadata, {}),
    is_referral_code: !!row.referrer_id,
    holder_id: row.holder_id,
    referrer_id: row.referrer_id ?? null,
    created_at: row.created_at,
    updated_at: row.updated_at,
    redemption: {
      quantity: row.quantity,
      redeemed_quantity: row.redeemed_quantity,
      ...(gift ? { redeemed_amount: gift.amount - gift.balance } : {}),
      object: 'list' as const,
      url: `/v1/vouchers/${encodeURIComponent(row.code)}/redemption`,
    },
    publish: {
      object: 'list' as const,
      count: row.holder_id ? 1 : 0,
      url: `/v1/publications?voucher=${encodeURIComponent(row.code)}`,
    },
    object: 'voucher' as const,
  };
}

export function presentPublication(p: PublicationRow, voucher: VoucherRow) {
  return {
    id: p.id,
    object: 'publication' as const,
    created_at: p.created_at,
    customer_id: p.customer_id,
    tracking_id: p.customer_id,
    metadata: fromJson(p.metadata, {}),
    channel: p.channel ?? 'API',
    source_id: p.source_id,
    result: 'SUCCESS' as const,
    campaign_id: p.campaign_id,
    vouchers_id: [voucher.id],
    voucher: presentVoucher(voucher),
  };
}

/** What a redemption row is about (Voucherify's `related_object_type` and `related_object_id`). */
function relatedObject(r: RedemptionRow) {
  if (r.kind === 'stack') return { related_object_type: 'redemption', related_object_id: r.id };
  return r.kind === 'voucher'
    ? { related_object_type: 'voucher', related_object_id: r.voucher_id }
    : { related_object_type: 'reward', related_object_id: r.reward_id };
}

/**
 * Voucherify's redemption object; a reward redemption's own parts come from `details`. A stacked
 * redemption's parent has no voucher (`voucher: null`) and is its own related object; a child names
 * its parent in `redemption` and `parent_redemption_id`.
 */
export function presentRedemption(r: RedemptionRow, voucher?: VoucherRow | null) {
  return {
    id: r.id,
    object: 'redemption' as const,
    date: r.created_at,
    created_at: r.created_at,
    customer_id: r.customer_id,
    tracking_id: r.tracking_id,
    metadata: fromJson(r.metadata, {}),
    amount: r.amount === null ? null : Number(r.amount),
    redemption: r.parent_redemption_id ?? null,
    ...(r.parent_redemption_id ? { parent_redemption_id: r.parent_redemption_id } : {}),
    result: r.result,
    status: r.status,
    order: r.kind === 'stack' ? stackOrder(r) : fromJson(r.order, null),
    channel: { channel_id: null, channel_type: 'API' },
    ...relatedObject(r),
    ...(r.kind === 'stack' ? { voucher: null } : {}),
    ...(r.voucher_id
      ? { voucher: voucher ? presentVoucher(voucher) : { id: r.voucher_id, code: r.voucher_code } }
      : {}),
    ...(r.kind === 'reward'
      ? { reward: { id: r.reward_id, assignment_id: r.assignment_id }, loyalty_card: { id: r.membership_id } }
      : {}),
    ...(r.result === 'FAILURE' ? { failure_code: r.failure_code, failure_message: r.failure_message } : {}),
    ...(r.points !== null ? { points: Number(r.points) } : {}),
    ...fromJson<Record<string, unknown>>(r.details, {}),
    ...(r.rollback_id ? { rollback: { id: r.rollback_id, date: r.rolled_back_at, reason: r.rollback_reason } } : {}),
  };
}

export function presentRollback(r: RedemptionRow, voucher?: VoucherRow | null) {
  return {
    id: r.rollback_id,
    object: 'redemption_rollback' as const,
    date: r.rolled_back_at,
    customer_id: r.customer_id,
    tracking_id: r.tracking_id,
    reason: r.rollback_reason,
    amount: r.amount === null ? null : -Number(r.amount),
    result: 'SUCCESS' as const,
    status: 'SUCCEEDED' as const,
    redemption: r.id,
    order: r.kind === 'stack' ? stackOrder(r) : fromJson(r.order, null),
    channel: { channel_id: null, channel_type: 'API' },
    ...relatedObject(r),
    ...(voucher ? { voucher: presentVoucher(voucher) } : {}),
  };
}

// ---- inputs (the routes' schemas derive the same shapes) ----

export interface CampaignInput {
  name?: string;
  description?: string | null;
  campaign_type?: 'DISCOUNT_COUPONS' | 'GIFT_VOUCHERS' | 'REFERRAL_PROGRAM';
  type?: 'AUTO_UPDATE' | 'STATIC';
  join_once?: boolean;
  active?: boolean;
  start_date?: string | null;
  expiration_date?: string | null;
  metadata?: Record<string, unknown> | null;
  vouchers_count?: number;
  voucher?: {
    type?: 'DISCOUNT_VOUCHER' | 'GIFT_VOUCHER';
    discount?: Record<string, unknown> | null;
    gift?: { amount?: number; effect?: string } | null;
    code_config?: Partial<CodeConfig> | null;
    redemption?: { quantity?: number | null } | null;
  };
  [other: string]: unknown;
}

export interface VoucherInput {
  code?: string;
  campaign?: string | null;
  campaign_id?: string | null;
  type?: 'DISCOUNT_VOUCHER' | 'GIFT_VOUCHER';
  discount?: Record<string, unknown> | null;
  gift?: { amount?: number; effect?: string } | null;
  start_date?: string | null;
  expiration_date?: string | null;
  active?: boolean;
  metadata?: Record<string, unknown> | null;
  redemption?: { quantity?: number | null } | null;
  code_config?: Partial<CodeConfig> | null;
  [other: string]: unknown;
}

export interface ImportedCode {
  code: string;
  active?: boolean;
  expiration_date?: string | null;
  start_date?: string | null;
  metadata?: Record<string, unknown> | null;
  redemption?: { quantity?: number | null } | null;
}

export interface PublishInput {
  customerId: string;
  joinOnce?: boolean;
  sourceId?: string | null;
  channel?: string | null;
  metadata?: Record<string, unknown> | null;
  /** The events' offer (a reward); default: the campaign. */
  offer?: Offer;
  programId?: string | null;
  /** The events' source_event_id (a reward redemption); default: the publication id. */
  sourceEventId?: string;
}

export interface RedeemInput {
  customerId?: string | null;
  order?: OrderInput | null;
  metadata?: Record<string, unknown> | null;
  giftCredits?: number | null;
  trackingId?: string | null;
  /** A child of a stacked redemption: the parent's id (its row is written by the caller). */
  parentRedemptionId?: string | null;
}

export interface ValidationResult {
  voucher: VoucherRow;
  /** The discount (discount vouchers) or the credits (gift vouchers) the order gets. */
  amount: number;
  order: ReturnType<typeof orderAfter>;
}

const PAGE_CAP = 100;

function checkDiscount(d: Record<string, unknown> | null | undefined, field: string): Discount {
  const bad = (message: string) =>
    invalid('invalid_discount', 'Invalid discount', `${field} ${message}`, [{ field, message }]);
  if (!d || typeof d !== 'object') throw bad('is required for a discount voucher');
  const n = (k: string) => typeof d[k] === 'number' && Number.isFinite(d[k]) && (d[k] as number) >= 0;
  switch (d.type) {
    case 'AMOUNT':
      if (!n('amount_off') || !Number.isInteger(d.amount_off)) throw bad('.amount_off must be a whole number of cents');
      return { type: 'AMOUNT', amount_off: d.amount_off as number, effect: (d.effect as string) ?? 'APPLY_TO_ORDER' };
    case 'PERCENT':
      if (!n('percent_off') || (d.percent_off as number) > 100) throw bad('.percent_off must be between 0 and 100');
      if (d.amount_limit != null && !n('amount_limit')) throw bad('.amount_limit must be a number of cents');
      return {
        type: 'PERCENT',
        percent_off: d.percent_off as number,
        amount_limit: (d.amount_limit as number | undefined) ?? null,
        effect: (d.effect as string) ?? 'APPLY_TO_ORDER',
      };
    case 'UNIT':
      if (!n('unit_off') || !Number.isInteger(d.unit_off)) throw bad('.unit_off must be a whole number');
      if (typeof d.unit_type !== 'string' || !d.unit_type) throw bad('.unit_type must name a product or SKU');
      return {
        type: 'UNIT',
        unit_off: d.unit_off as number,
        unit_type: d.unit_type,
        effect: (d.effect as string) ?? 'ADD_MISSING_ITEMS',
      };
    default:
      throw bad('.type must be AMOUNT, PERCENT or UNIT');
  }
}

function checkGift(g: { amount?: number } | null | undefined, field: string): { amount: number; effect: string } {
  const amount = g?.amount ?? 0;
  if (!Number.isInteger(amount) || amount < 0) {
    throw invalid('invalid_gift', 'Invalid gift', `${field}.amount must be a whole number of cents (>= 0)`, [
      { field: `${field}.amount`, message: 'must be a whole number of cents' },
    ]);
  }
  return { amount, effect: 'APPLY_TO_ORDER' };
}

function checkQuantity(q: number | null | undefined): number | null {
  if (q === undefined || q === null) return null;
  if (!Number.isInteger(q) || q < 1) {
    throw invalid('invalid_quantity', 'Invalid redemption quantity', 'redemption.quantity must be at least 1', [
      { field: 'redemption.quantity', message: 'must be an integer >= 1 or null' },
    ]);
  }
  return q;
}

function checkCode(code: string): string {
  if (!code || code.length > 200 || /\s/.test(code)) {
    throw invalid('invalid_code', 'Invalid code', 'a code has 1 to 200 characters and no whitespace', [
      { field: 'code', message: 'must have 1-200 characters, no whitespace' },
    ]);
  }
  return code;
}

function codeConfig(c: Partial<CodeConfig> | null | undefined): CodeConfig {
  if (!c) return DEFAULT_CODE_CONFIG;
  const merged: CodeConfig = {
    length: c.length ?? (c.pattern ? 0 : DEFAULT_CODE_CONFIG.length),
    charset: c.charset ?? ALPHANUMERIC,
    prefix: c.prefix ?? '',
    postfix: c.postfix ?? '',
    pattern: c.pattern ?? '',
  };
  const problem = validateCodeConfig(merged);
  if (problem) {
    throw invalid('invalid_code_config', 'Invalid code_config', problem, [{ field: 'code_config', message: problem }]);
  }
  return merged;
}

/** Dates are stored as ISO-8601 UTC with milliseconds, so they compare as strings (the scheduler's run_at). */
function isoDate<T extends string | null | undefined>(d: T): T {
  if (!d) return d;
  const ms = Date.parse(d);
  if (Number.isNaN(ms)) throw invalid('invalid_date', 'Invalid date', `${d} is not an ISO-8601 date-time`);
  return new Date(ms).toISOString() as T;
}

/**
 * A referral campaign's voucher template: discount vouchers (the referee's discount, none when the
 * referee is rewarded otherwise), generated at publication, one code per referrer.
 */
function referralTemplate(input: CampaignInput): CampaignInput {
  const v = input.voucher ?? {};
  if (v.type === 'GIFT_VOUCHER') {
    throw invalid('invalid_voucher_type', 'Invalid voucher type', 'a referral code is a DISCOUNT_VOUCHER');
  }
  return {
    ...input,
    type: input.type ?? 'AUTO_UPDATE',
    join_once: input.join_once ?? true,
    voucher: { ...v, type: 'DISCOUNT_VOUCHER', discount: v.discount ?? { type: 'AMOUNT', amount_off: 0 } },
  };
}

const CAMPAIGN_EXTRA = [
  'category',
  'category_id',
  'validity_timeframe',
  'validity_day_of_week',
  'validity_hours',
  // Expiration reminders of the campaign's vouchers: the time engine reads them (docs/time.md).
  'reminders',
];

export class VoucherService {
  /**
   * Campaigns by id or name for the reward redemptions (`issue`, `addGiftBalance`), which would
   * otherwise read the same row on every redemption. Dropped by every change of a campaign, here
   * and (cache bus) in the other processes.
   */
  private campaigns: SharedTtlCache<CampaignRow | null>;

  constructor(
    private ctx: AppContext,
    private deps: {
      /** The loyalty program's `{id, name}` for the events (loyalties module). */
      programRef: (db: Executor, programId: string) => Promise<{ id: string; name: string } | null>;
      /** A voucher was published to a customer, in `db`'s transaction (the time engine plans its reminders). */
      onPublished?: (db: Executor, voucher: VoucherRow) => Promise<void>;
      /** The referrals module's part in referral campaigns and codes. */
      referrals?: ReferralHooks;
      /**
       * A customer's successful redemption (a voucher's, a reward's, a stack's child; what
       * `redemptionsOf` returns) was recorded, and one was rolled back, in `trx`'s transaction:
       * the messaging module credits it to the flows that messaged the customer before it.
       */
      redemptions?: {
        recorded: (
          trx: Executor,
          r: { id: string; customer_id: string; points: number; created_at: string },
        ) => Promise<void>;
        rolledBack: (trx: Executor, redemptionId: string) => Promise<void>;
      };
    },
  ) {
    this.campaigns = new SharedTtlCache(ctx.caches, 'voucher_campaigns', 5000);
  }

  /** The campaign (cached, see `campaigns`), or a 404. */
  private async cachedCampaign(db: Executor, idOrName: string): Promise<CampaignRow> {
    const row = await this.campaigns.getOr(idOrName, async () => (await this.findCampaign(db, idOrName)) ?? null);
    if (!row) throw notFound('campaign', idOrName);
    return row;
  }

  /** The campaign now has unpublished codes of its own: publications look for them first. */
  private async markPooled(db: Executor, campaign: CampaignRow): Promise<void> {
    if (campaign.pooled === 1) return;
    await db.updateTable('voucher_campaigns').set({ pooled: 1 }).where('id', '=', campaign.id).execute();
    campaign.pooled = 1;
    await this.campaigns.invalidate(undefined, db);
  }

  private now() {
    return this.ctx.clock.nowIso();
  }

  private referralHooks(): ReferralHooks {
    if (!this.deps.referrals) throw new Error('the vouchers service was built without referral hooks');
    return this.deps.referrals;
  }

  // ---- campaigns ----

  async findCampaign(db: Executor, idOrName: string): Promise<CampaignRow | undefined> {
    return db
      .selectFrom('voucher_campaigns')
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', idOrName), eb('name', '=', idOrName)]))
      .where('deleted_at', 'is', null)
      .orderBy('created_at')
      .executeTakeFirst();
  }

  async getCampaign(db: Executor, idOrName: string): Promise<CampaignRow> {
    const row = await this.findCampaign(db, idOrName);
    if (!row) throw notFound('campaign', idOrName);
    return row;
  }

  async campaignCounts(db: Executor, campaignId: string): Promise<{ vouchers: number; free: number }> {
    const r = await db
      .selectFrom('vouchers')
      .select((eb) => [
        eb.fn.countAll<number>().as('n'),
        eb.fn
          .sum<number>(
            eb
              .case()
              .when(eb.and([eb('holder_id', 'is', null), eb('active', '=', 1)]))
              .then(1)
              .else(0)
              .end(),
          )
          .as('free'),
      ])
      .where('campaign_id', '=', campaignId)
      .where('deleted_at', 'is', null)
      .executeTakeFirstOrThrow();
    return { vouchers: Number(r.n), free: Number(r.free ?? 0) };
  }

  async presentCampaignRow(db: Executor, row: CampaignRow) {
    const referralProgram = isReferral(row) ? await this.deps.referrals?.programOf(db, row.id) : null;
    return presentCampaign(row, await this.campaignCounts(db, row.id), referralProgram);
  }

  private campaignTemplate(input: CampaignInput, current?: CampaignVoucher): CampaignVoucher {
    const v = input.voucher ?? {};
    const type =
      v.type ??
      current?.type ??
      (input.campaign_type === 'GIFT_VOUCHERS' || v.gift ? 'GIFT_VOUCHER' : 'DISCOUNT_VOUCHER');
    if (current && current.type !== type) {
      throw invalid(
        'invalid_voucher_type',
        'Invalid voucher type',
        'a campaign keeps the voucher type it was created with',
      );
    }
    return {
      type,
      ...(type === 'GIFT_VOUCHER'
        ? {
            gift: v.gift !== undefined ? checkGift(v.gift, 'voucher.gift') : (current?.gift ?? checkGift(null, 'gift')),
          }
        : {
            discount:
              v.discount !== undefined || !current ? checkDiscount(v.discount, 'voucher.discount') : current.discount,
          }),
      code_config:
        v.code_config !== undefined ? codeConfig(v.code_config) : (current?.code_config ?? DEFAULT_CODE_CONFIG),
      redemption: {
        quantity:
          v.redemption !== undefined ? checkQuantity(v.redemption?.quantity) : (current?.redemption.quantity ?? null),
      },
    };
  }

  async createCampaign(db: Executor, input: CampaignInput): Promise<CampaignRow> {
    if (!input.name) {
      throw invalid('missing_name', 'Missing name', 'a campaign needs a name', [
        { field: 'name', message: 'is required' },
      ]);
    }
    if (await this.findCampaign(db, input.name)) {
      throw conflict('duplicate_found', 'Duplicate resource found', `A campaign named ${input.name} already exists`);
    }
    const referral = input.campaign_type === 'REFERRAL_PROGRAM';
    const shaped = referral ? referralTemplate(input) : input;
    const voucher = this.campaignTemplate(shaped);
    const campaignType = referral
      ? 'REFERRAL_PROGRAM'
      : voucher.type === 'GIFT_VOUCHER'
        ? 'GIFT_VOUCHERS'
        : 'DISCOUNT_COUPONS';
    if (input.campaign_type && input.campaign_type !== campaignType) {
      throw invalid(
        'invalid_campaign_type',
        'Invalid campaign type',
        `campaign_type ${input.campaign_type} does not match voucher.type ${voucher.type}`,
      );
    }
    const count = input.vouchers_count ?? 0;
    const row: CampaignRow = {
      id: newId('camp'),
      name: input.name,
      description: input.description ?? null,
      campaign_type: campaignType,
      type: shaped.type ?? (count > 0 ? 'STATIC' : 'AUTO_UPDATE'),
      voucher: toJson(voucher)!,
      active: input.active === false ? 0 : 1,
      join_once: shaped.join_once ? 1 : 0,
      start_date: isoDate(input.start_date) ?? null,
      expiration_date: isoDate(input.expiration_date) ?? null,
      metadata: toJson(input.metadata ?? {}),
      extra: toJson(Object.fromEntries(CAMPAIGN_EXTRA.filter((k) => input[k] !== undefined).map((k) => [k, input[k]]))),
      created_at: this.now(),
      updated_at: null,
      deleted_at: null,
    };
    if (count > 0) row.pooled = 1;
    await db.insertInto('voucher_campaigns').values(row).execute();
    await this.campaigns.invalidate(undefined, db);
    if (referral) await this.referralHooks().campaignSaved(db, row, input.referral_program, true);
    for (let i = 0; i < count; i++) await this.generateInCampaign(db, row);
    return row;
  }

  async updateCampaign(db: Executor, row: CampaignRow, input: CampaignInput): Promise<CampaignRow> {
    const patch: Partial<CampaignRow> = { updated_at: this.now() };
    if (input.name !== undefined && input.name !== row.name) {
      if (await this.findCampaign(db, input.name)) {
        throw conflict('duplicate_found', 'Duplicate resource found', `A campaign named ${input.name} already exists`);
      }
      patch.name = input.name;
    }
    if (input.description !== undefined) patch.description = input.description;
    if (input.type !== undefined) patch.type = input.type;
    if (input.join_once !== undefined) patch.join_once = input.join_once ? 1 : 0;
    if (input.active !== undefined) patch.active = input.active ? 1 : 0;
    if (input.start_date !== undefined) patch.start_date = isoDate(input.start_date);
    if (input.expiration_date !== undefined) patch.expiration_date = isoDate(input.expiration_date);
    if (input.metadata !== undefined) patch.metadata = toJson(input.metadata ?? {});
    if (input.voucher !== undefined) patch.voucher = toJson(this.campaignTemplate(input, campaignVoucher(row)))!;
    if (input.reminders !== undefined)
      patch.extra = toJson({ ...fromJson<Record<string, unknown>>(row.extra, {}), reminders: input.reminders });
    await db.updateTable('voucher_campaigns').set(patch).where('id', '=', row.id).execute();
    await this.campaigns.invalidate(undefined, db);
    if (patch.name) {
      await db.updateTable('vouchers').set({ campaign_name: patch.name }).where('campaign_id', '=', row.id).execute();
    }
    if (isReferral(row) && input.referral_program !== undefined) {
      await this.referralHooks().campaignSaved(db, row, input.referral_program, false);
    }
    return { ...row, ...patch };
  }

  /** Deletes the campaign and its vouchers (soft: codes stay taken); each published one is revoked. */
  async deleteCampaign(db: Executor, row: CampaignRow): Promise<void> {
    const now = this.now();
    await db.updateTable('voucher_campaigns').set({ deleted_at: now }).where('id', '=', row.id).execute();
    await this.campaigns.invalidate(undefined, db);
    const vouchers = await db
      .selectFrom('vouchers')
      .selectAll()
      .where('campaign_id', '=', row.id)
      .where('deleted_at', 'is', null)
      .execute();
    // Free codes were never anyone's: only the published vouchers are revoked (with an event).
    for (const v of vouchers) await this.remove(db, v, { sourceEventId: row.id, quiet: !v.holder_id });
  }

  async listCampaigns(q: { limit: number; page: number; campaign_type?: string }) {
    let base = this.ctx.database.db.selectFrom('voucher_campaigns').where('deleted_at', 'is', null);
    if (q.campaign_type) base = base.where('campaign_type', '=', q.campaign_type as CampaignRow['campaign_type']);
    return pageByNumber(base, q, (b) => b.selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc'));
  }

  /** Adds codes to a campaign's pool (unpublished vouchers); a code that exists refuses the whole import. */
  async importCodes(db: Executor, campaign: CampaignRow, codes: ImportedCode[]): Promise<number> {
    const seen = new Set<string>();
    for (const c of codes) {
      checkCode(c.code);
      if (seen.has(c.code)) throw conflict('duplicate_code', 'Duplicate code', `Code ${c.code} appears twice`);
      seen.add(c.code);
    }
    const list = [...seen];
    for (let i = 0; i < list.length; i += 500) {
      const taken = await db
        .selectFrom('vouchers')
        .select('code')
        .where('code', 'in', list.slice(i, i + 500))
        .execute();
      if (taken.length > 0) {
        throw conflict(
          'duplicate_code',
          'Duplicate code',
          `These codes already exist: ${taken
            .slice(0, 20)
            .map((t) => t.code)
            .join(', ')}`,
        );
      }
    }
    await this.markPooled(db, campaign);
    for (const c of codes) {
      const row = this.voucherRow(campaign, c.code, {
        active: c.active,
        expiration_date: c.expiration_date,
        start_date: c.start_date,
        metadata: c.metadata,
        redemption: c.redemption,
      });
      await db.insertInto('vouchers').values(row).execute();
      await this.scheduleExpiry(db, row.code, row);
    }
    return codes.length;
  }

  // ---- vouchers ----

  private voucherRow(campaign: CampaignRow | null, code: string, input: VoucherInput): VoucherRow {
    const template = campaign ? campaignVoucher(campaign) : null;
    const type = input.type ?? template?.type ?? (input.gift ? 'GIFT_VOUCHER' : 'DISCOUNT_VOUCHER');
    if (template && template.type !== type) {
      throw invalid(
        'invalid_voucher_type',
        'Invalid voucher type',
        `campaign ${campaign!.name} issues ${template.type}`,
      );
    }
    const gift =
      type === 'GIFT_VOUCHER'
        ? input.gift
          ? checkGift(input.gift, 'gift')
          : (template?.gift ?? checkGift(null, 'gift'))
        : null;
    const discount =
      type === 'DISCOUNT_VOUCHER'
        ? input.discount
          ? checkDiscount(input.discount, 'discount')
          : template
            ? template.discount
            : checkDiscount(undefined, 'discount')
        : null;
    const start = input.start_date !== undefined ? isoDate(input.start_date) : (campaign?.start_date ?? null);
    const end =
      input.expiration_date !== undefined ? isoDate(input.expiration_date) : (campaign?.expiration_date ?? null);
    if (start && end && Date.parse(start) >= Date.parse(end)) {
      throw invalid('invalid_dates', 'Invalid dates', 'start_date must be before expiration_date', [
        { field: 'expiration_date', message: 'must be after start_date' },
      ]);
    }
    return {
      id: newId('v'),
      code,
      campaign_id: campaign?.id ?? null,
      campaign_name: campaign?.name ?? null,
      program_id: null,
      type,
      discount: toJson(discount),
      gift_amount: gift ? gift.amount : null,
      gift_balance: gift ? gift.amount : null,
      start_date: start,
      expiration_date: end,
      active: input.active === false ? 0 : 1,
      quantity:
        input.redemption !== undefined
          ? checkQuantity(input.redemption?.quantity)
          : (template?.redemption.quantity ?? null),
      redeemed_quantity: 0,
      holder_id: null,
      published_at: null,
      offer: campaign ? toJson(campaignOffer(campaign)) : null,
      metadata: toJson(input.metadata ?? {}),
      expired_at: null,
      referrer_id: null,
      created_at: this.now(),
      updated_at: null,
      deleted_at: null,
    };
  }

  /** `voucher_expired` at the expiration date (once: the job's key names the voucher and the date). */
  private async scheduleExpiry(db: Executor, code: string, row?: VoucherRow): Promise<void> {
    const v = row ?? (await this.find(db, code));
    if (!v?.expiration_date) return;
    await this.ctx.scheduler.schedule(db, {
      kind: EXPIRE_JOB,
      runAt: v.expiration_date,
      payload: { voucher_id: v.id, expiration_date: v.expiration_date },
      uniqueKey: `${EXPIRE_JOB}:${v.id}:${v.expiration_date}`,
    });
  }

  async find(db: Executor, codeOrId: string): Promise<VoucherRow | undefined> {
    return db
      .selectFrom('vouchers')
      .selectAll()
      .where((eb) => eb.or([eb('code', '=', codeOrId), eb('id', '=', codeOrId)]))
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
  }

  /** The voucher by code or id, deleted or not (a deleted voucher's code stays taken). */
  private async findAny(db: Executor, codeOrId: string): Promise<Pick<VoucherRow, 'id'> | undefined> {
    return db
      .selectFrom('vouchers')
      .select('id')
      .where((eb) => eb.or([eb('code', '=', codeOrId), eb('id', '=', codeOrId)]))
      .executeTakeFirst();
  }

  async get(db: Executor, codeOrId: string): Promise<VoucherRow> {
    const row = await this.find(db, codeOrId);
    if (!row) throw notFound('voucher', codeOrId);
    return row;
  }

  /** The voucher's row, locked for the rest of the transaction (FOR UPDATE on PostgreSQL). */
  private async lock(db: Executor, codeOrId: string): Promise<VoucherRow | undefined> {
    const q = db
      .selectFrom('vouchers')
      .selectAll()
      .where((eb) => eb.or([eb('code', '=', codeOrId), eb('id', '=', codeOrId)]))
      .where('deleted_at', 'is', null);
    return (this.ctx.database.forUpdate ? q.forUpdate() : q).executeTakeFirst();
  }

  /** A voucher with this code (or a generated one when `code` is absent), standalone or in a campaign. */
  async create(db: Executor, input: VoucherInput): Promise<VoucherRow> {
    const campaignRef = input.campaign_id ?? input.campaign;
    const campaign = campaignRef ? await this.getCampaign(db, campaignRef) : null;
    if (campaign) await this.markPooled(db, campaign);
    if (input.code !== undefined) {
      checkCode(input.code);
      const row = this.voucherRow(campaign, input.code, input);
      const res = await db
        .insertInto('vouchers')
        .values(row)
        .onConflict((oc) => oc.column('code').doNothing())
        .executeTakeFirst();
      if (Number(res.numInsertedOrUpdatedRows ?? 0n) === 0) {
        throw conflict(
          'duplicate_found',
          'Duplicate resource found',
          `A voucher with code ${input.code} already exists`,
        );
      }
      await this.scheduleExpiry(db, row.code, row);
      return row;
    }
    const config = input.code_config
      ? codeConfig(input.code_config)
      : campaign
        ? campaignVoucher(campaign).code_config
        : DEFAULT_CODE_CONFIG;
    const row = await this.insertGenerated(db, campaign, config, input);
    if (!row) throw refused('code_space_exhausted', 'No code left', 'every code of this code_config is taken');
    return row;
  }

  private async generateInCampaign(db: Executor, campaign: CampaignRow): Promise<VoucherRow | null> {
    return this.insertGenerated(db, campaign, campaignVoucher(campaign).code_config, {});
  }

  /** Inserts a voucher with a fresh code: random tries, then the free codes of a small code space. */
  private async insertGenerated(
    db: Executor,
    campaign: CampaignRow | null,
    config: CodeConfig,
    input: VoucherInput,
  ): Promise<VoucherRow | null> {
    const tryCode = async (code: string) => {
      const row = this.voucherRow(campaign, code, input);
      const res = await db
        .insertInto('vouchers')
        .values(row)
        .onConflict((oc) => oc.column('code').doNothing())
        .executeTakeFirst();
      if (Number(res.numInsertedOrUpdatedRows ?? 0n) === 0) return null;
      await this.scheduleExpiry(db, row.code, row);
      return row;
    };
    for (let i = 0; i < 8; i++) {
      const row = await tryCode(generateCode(config));
      if (row) return row;
    }
    const all = allCodes(config);
    if (!all) return null;
    const taken = new Set(
      (await db.selectFrom('vouchers').select('code').where('code', 'in', all).execute()).map((r) => r.code),
    );
    for (const code of all) {
      if (taken.has(code)) continue;
      const row = await tryCode(code);
      if (row) return row;
    }
    return null;
  }

  async update(db: Executor, row: VoucherRow, input: VoucherInput): Promise<VoucherRow> {
    const patch: Partial<VoucherRow> = { updated_at: this.now() };
    if (input.active !== undefined) patch.active = input.active ? 1 : 0;
    if (input.start_date !== undefined) patch.start_date = isoDate(input.start_date);
    if (input.expiration_date !== undefined) patch.expiration_date = isoDate(input.expiration_date);
    if (input.metadata !== undefined) patch.metadata = toJson(input.metadata ?? {});
    if (input.redemption !== undefined) patch.quantity = checkQuantity(input.redemption?.quantity);
    if (input.discount !== undefined && row.type === 'DISCOUNT_VOUCHER') {
      patch.discount = toJson(checkDiscount(input.discount, 'discount'));
    }
    const next = { ...row, ...patch };
    if (next.start_date && next.expiration_date && Date.parse(next.start_date) >= Date.parse(next.expiration_date)) {
      throw invalid('invalid_dates', 'Invalid dates', 'start_date must be before expiration_date');
    }
    if (patch.expiration_date !== undefined && patch.expiration_date !== row.expiration_date) patch.expired_at = null;
    await db.updateTable('vouchers').set(patch).where('id', '=', row.id).execute();
    const updated = { ...row, ...patch };
    if (patch.expiration_date !== undefined) await this.scheduleExpiry(db, updated.code, updated);
    if (input.active === false && row.active === 1) await this.emitRevoked(db, updated, row.id);
    return updated;
  }

  async setActive(db: Executor, row: VoucherRow, active: boolean): Promise<VoucherRow> {
    return this.update(db, row, { active });
  }

  /** Deletes a voucher (soft: its code stays taken) and emits `voucher_revoked` when it was active. */
  async remove(db: Executor, row: VoucherRow, opts: { sourceEventId?: string; quiet?: boolean } = {}): Promise<void> {
    const now = this.now();
    await db.updateTable('vouchers').set({ deleted_at: now, updated_at: now }).where('id', '=', row.id).execute();
    if (row.active === 1 && !opts.quiet) await this.emitRevoked(db, row, opts.sourceEventId ?? row.id);
  }

  /** Disables the voucher and emits `voucher_revoked` (a reward redemption rolled back). */
  async revoke(trx: Executor, voucherId: string, opts: { sourceEventId: string }): Promise<void> {
    const row = await this.lock(trx, voucherId);
    if (!row) throw notFound('voucher', voucherId);
    if (row.active === 0) return;
    await trx.updateTable('vouchers').set({ active: 0, updated_at: this.now() }).where('id', '=', row.id).execute();
    await this.emitRevoked(trx, row, opts.sourceEventId);
  }

  async list(q: {
    limit: number;
    page: number;
    starting_after_id?: string;
    campaign?: string;
    campaign_id?: string;
    customer?: string;
  }) {
    const db = this.ctx.database.db;
    let base = db.selectFrom('vouchers').where('deleted_at', 'is', null);
    const campaignRef = q.campaign_id ?? q.campaign;
    const campaignId = campaignRef ? ((await this.findCampaign(db, campaignRef))?.id ?? campaignRef) : undefined;
    // Walked: the customer's vouchers (vouchers_holder, a few) or else the campaign's (vouchers_campaign_created).
    let walk: KeyWalk | undefined;
    if (q.customer) {
      walk = { db, column: 'holder_id', value: q.customer };
      if (campaignId) base = base.where('campaign_id', '=', campaignId);
    } else if (campaignId) walk = { db, column: 'campaign_id', value: campaignId };
    return pageByCreated(base, { ...q, limit: Math.min(q.limit, PAGE_CAP) }, 'a voucher', 'desc', { walk });
  }

  /** A customer's vouchers (published to them), newest first. */
  async ofCustomer(
    db: Executor,
    customerId: string,
    limit = 100,
  ): Promise<{ voucher: VoucherRow; publication_id: string | null }[]> {
    const rows = await db
      .selectFrom('vouchers as v')
      .leftJoin('publications as p', (j) =>
        j.onRef('p.voucher_id', '=', 'v.id').onRef('p.customer_id', '=', 'v.holder_id'),
      )
      .selectAll('v')
      .select('p.id as publication_id')
      .where('v.holder_id', '=', customerId)
      .where('v.deleted_at', 'is', null)
      .orderBy('v.created_at', 'desc')
      .limit(limit)
      .execute();
    return rows.map(({ publication_id, ...voucher }) => ({ voucher: voucher as VoucherRow, publication_id }));
  }

  /**
   * The `vouchers` template variable of messages and flows (registered by the container): the
   * customer's vouchers, newest first, `[{code, campaign, type, discount, gift, expiration_date,
   * active, usable}]` (`usable`: active, not expired, not used up). Nil without a customer; an empty
   * list when they have none (test `vouchers.size > 0`).
   */
  async templateVariable(db: Executor, customerId: string | null | undefined) {
    if (!customerId) return null;
    const now = this.now();
    return (await this.ofCustomer(db, customerId, 20)).map(({ voucher: v }) => {
      const p = presentVoucher(v);
      const expired = v.expired_at !== null || (v.expiration_date !== null && v.expiration_date <= now);
      const usedUp = v.quantity !== null && v.redeemed_quantity >= v.quantity;
      return {
        code: p.code,
        campaign: p.campaign,
        type: p.type,
        discount: p.discount,
        gift: p.gift,
        expiration_date: p.expiration_date,
        active: p.active,
        usable: p.active && !expired && !usedUp,
      };
    });
  }

  // ---- publications ----

  /**
   * Publishes a voucher of `campaign` to a customer: a free code of its pool, else (AUTO_UPDATE) a
   * generated one. With `joinOnce`, a customer who already has one gets that publication again.
   * Emits `voucher_created`. A campaign without a free code throws AttributionFailed.
   */
  async publish(
    db: Executor,
    campaign: CampaignRow,
    input: PublishInput,
  ): Promise<{ publication: PublicationRow; voucher: VoucherRow; created: boolean }> {
    const joinOnce = input.joinOnce ?? campaign.join_once === 1;
    const publication: PublicationRow = {
      id: newId('pub'),
      voucher_id: '',
      campaign_id: campaign.id,
      customer_id: input.customerId,
      source_id: input.sourceId ?? null,
      channel: input.channel ?? 'API',
      metadata: toJson(input.metadata ?? {}),
      join_key: joinOnce ? `${campaign.id}:${input.customerId}` : null,
      created_at: this.now(),
    };
    if (joinOnce) {
      const existing = await this.joinedPublication(db, campaign.id, input.customerId);
      if (existing) return { ...existing, created: false };
    }
    if (input.sourceId) {
      // Voucherify: a publication's source_id names it; the same source_id answers the same publication.
      const same = await db
        .selectFrom('publications')
        .selectAll()
        .where('source_id', '=', input.sourceId)
        .where('campaign_id', '=', campaign.id)
        .executeTakeFirst();
      if (same) {
        if (same.customer_id !== input.customerId) {
          throw conflict(
            'duplicate_source_id',
            'Duplicate source_id',
            `source_id ${input.sourceId} was published to another customer`,
          );
        }
        return { publication: same, voucher: await this.get(db, same.voucher_id), created: false };
      }
    }
    const refuse = async (details: string) => {
      throw new AttributionFailed(details, await this.attributionFailedEvent(db, campaign, input, details));
    };
    if (campaign.active === 0 || campaign.deleted_at) await refuse(`campaign ${campaign.name} is not active`);
    // The join_once row first: a concurrent publication for the same customer waits on it and then
    // answers this one (ON CONFLICT DO NOTHING inserts nothing).
    const res = await db
      .insertInto('publications')
      .values(publication)
      .onConflict((oc) => oc.column('join_key').doNothing())
      .executeTakeFirst();
    if (Number(res.numInsertedOrUpdatedRows ?? 0n) === 0) {
      const existing = await this.joinedPublication(db, campaign.id, input.customerId);
      if (existing) return { ...existing, created: false };
      throw conflict('publication_in_progress', 'Publication in progress', 'try again');
    }
    let voucher = await this.takeFreeCode(db, campaign.id);
    if (!voucher && campaign.type === 'AUTO_UPDATE')
      voucher = (await this.generateInCampaign(db, campaign)) ?? undefined;
    if (!voucher) {
      return refuse(`campaign ${campaign.name} has no code left to publish`);
    }
    const now = this.now();
    const patch: Partial<VoucherRow> = {
      holder_id: input.customerId,
      published_at: now,
      updated_at: now,
      program_id: input.programId ?? voucher.program_id,
      offer: input.offer ? toJson(input.offer) : voucher.offer,
      // A referral campaign's code names its referrer: the customer it is published to.
      ...(isReferral(campaign) ? { referrer_id: input.customerId } : {}),
    };
    await db.updateTable('vouchers').set(patch).where('id', '=', voucher.id).execute();
    await db.updateTable('publications').set({ voucher_id: voucher.id }).where('id', '=', publication.id).execute();
    const published = { ...voucher, ...patch };
    await this.ctx.outbox.emit(db, await this.createdEvent(db, published, input.sourceEventId ?? publication.id));
    await this.deps.onPublished?.(db, published);
    return { publication: { ...publication, voucher_id: voucher.id }, voucher: published, created: true };
  }

  /** Publishes one given code to a customer (Voucherify's `voucher` form of a publication). */
  async publishCode(
    db: Executor,
    code: string,
    input: PublishInput,
  ): Promise<{ publication: PublicationRow; voucher: VoucherRow; created: boolean }> {
    const voucher = await this.lock(db, code);
    if (!voucher) throw notFound('voucher', code);
    if (voucher.holder_id) {
      const p = await db
        .selectFrom('publications')
        .selectAll()
        .where('voucher_id', '=', voucher.id)
        .where('customer_id', '=', voucher.holder_id)
        .executeTakeFirst();
      if (voucher.holder_id !== input.customerId || !p) {
        throw conflict(
          'voucher_already_published',
          'Voucher already published',
          `Voucher ${code} is published to another customer`,
        );
      }
      return { publication: p, voucher, created: false };
    }
    const now = this.now();
    const publication: PublicationRow = {
      id: newId('pub'),
      voucher_id: voucher.id,
      campaign_id: voucher.campaign_id,
      customer_id: input.customerId,
      source_id: input.sourceId ?? null,
      channel: input.channel ?? 'API',
      metadata: toJson(input.metadata ?? {}),
      join_key: null,
      created_at: now,
    };
    await db.insertInto('publications').values(publication).execute();
    const patch = { holder_id: input.customerId, published_at: now, updated_at: now };
    await db.updateTable('vouchers').set(patch).where('id', '=', voucher.id).execute();
    const published = { ...voucher, ...patch };
    await this.ctx.outbox.emit(db, await this.createdEvent(db, published, input.sourceEventId ?? publication.id));
    await this.deps.onPublished?.(db, published);
    return { publication, voucher: published, created: true };
  }

  private async joinedPublication(db: Executor, campaignId: string, customerId: string) {
    const p = await db
      .selectFrom('publications')
      .selectAll()
      .where('join_key', '=', `${campaignId}:${customerId}`)
      .executeTakeFirst();
    if (!p) return null;
    return { publication: p, voucher: await this.get(db, p.voucher_id) };
  }

  /** A free code of the campaign, locked (SKIP LOCKED: concurrent publications take different codes). */
  private async takeFreeCode(db: Executor, campaignId: string): Promise<VoucherRow | undefined> {
    const q = db
      .selectFrom('vouchers')
      .selectAll()
      .where('campaign_id', '=', campaignId)
      .where('holder_id', 'is', null)
      .where('active', '=', 1)
      .where('deleted_at', 'is', null)
      .orderBy('created_at')
      .orderBy('id')
      .limit(1);
    return (this.ctx.database.forUpdate ? q.forUpdate().skipLocked() : q).executeTakeFirst();
  }

  /** Rewards: a fresh voucher of a DISCOUNT_COUPONS campaign for the customer, with the reward as offer. */
  async issue(
    trx: Executor,
    input: {
      campaignId: string;
      customerId: string;
      sourceEventId: string;
      offer: Offer;
      programId?: string | null;
      /** The program's `{id, name}` when the caller has it (saves reading it for `voucher_created`). */
      programRef?: { id: string; name: string } | null;
    },
  ): Promise<VoucherRow> {
    const campaign = await this.cachedCampaign(trx, input.campaignId);
    if (campaign.campaign_type !== 'DISCOUNT_COUPONS') {
      throw invalid(
        'invalid_campaign_type',
        'Invalid campaign',
        `campaign ${campaign.name} is not a DISCOUNT_COUPONS campaign`,
      );
    }
    if (campaign.type === 'AUTO_UPDATE' && campaign.pooled !== 1 && campaign.active === 1) {
      const issued = await this.issueGenerated(trx, campaign, input);
      if (issued) return issued;
    }
    const { voucher } = await this.publish(trx, campaign, {
      customerId: input.customerId,
      joinOnce: false,
      offer: input.offer,
      programId: input.programId ?? null,
      sourceEventId: input.sourceEventId,
      channel: 'Reward',
    });
    return voucher;
  }

  /**
   * `issue` for a campaign without a code pool: a generated code inserted already published
   * (issue.ts). Null when 8 random codes were taken: `publish` then walks a small code space.
   */
  private async issueGenerated(
    trx: Executor,
    campaign: CampaignRow,
    input: Parameters<VoucherService['issue']>[1],
  ): Promise<VoucherRow | null> {
    const config = campaignVoucher(campaign).code_config;
    const now = this.now();
    for (let i = 0; i < 8; i++) {
      const row: VoucherRow = {
        ...this.voucherRow(campaign, generateCode(config), {}),
        program_id: input.programId ?? null,
        holder_id: input.customerId,
        published_at: now,
        offer: toJson(input.offer),
        updated_at: now,
      };
      if (!(await insertIssuedVoucher(trx, row))) continue;
      await this.scheduleExpiry(trx, row.code, row);
      // Published here without `publish`: the time engine still plans its expiration reminders.
      await this.deps.onPublished?.(trx, row);
      const publication: PublicationRow = {
        id: newId('pub'),
        voucher_id: row.id,
        campaign_id: campaign.id,
        customer_id: input.customerId,
        source_id: null,
        channel: 'Reward',
        metadata: toJson({}),
        join_key: null,
        created_at: now,
      };
      const event = await this.createdEvent(trx, row, input.sourceEventId, input.programRef);
      await keepIssued(trx, this.ctx.outbox, publication, [event]);
      return row;
    }
    return null;
  }

  /** Rewards: adds `amount` cents to the customer's gift card of the campaign (created when they have none). */
  async addGiftBalance(
    trx: Executor,
    input: { campaignId: string; customerId: string; amount: number; sourceEventId: string },
  ): Promise<VoucherRow> {
    const campaign = await this.cachedCampaign(trx, input.campaignId);
    if (campaign.campaign_type !== 'GIFT_VOUCHERS') {
      throw invalid(
        'invalid_campaign_type',
        'Invalid campaign',
        `campaign ${campaign.name} is not a GIFT_VOUCHERS campaign`,
      );
    }
    if (!Number.isInteger(input.amount) || input.amount <= 0) {
      throw invalid('invalid_amount', 'Invalid amount', 'a gift balance is added in whole cents (> 0)');
    }
    const q = trx
      .selectFrom('vouchers')
      .selectAll()
      .where('campaign_id', '=', campaign.id)
      .where('holder_id', '=', input.customerId)
      .where('deleted_at', 'is', null)
      .orderBy('created_at')
      .limit(1);
    let card = await (this.ctx.database.forUpdate ? q.forUpdate() : q).executeTakeFirst();
    if (!card) {
      card = (
        await this.publish(trx, campaign, {
          customerId: input.customerId,
          joinOnce: false,
          sourceEventId: input.sourceEventId,
          channel: 'Reward',
        })
      ).voucher;
    }
    const patch = {
      gift_amount: Number(card.gift_amount ?? 0) + input.amount,
      gift_balance: Number(card.gift_balance ?? 0) + input.amount,
      updated_at: this.now(),
    };
    await trx.updateTable('vouchers').set(patch).where('id', '=', card.id).execute();
    return { ...card, ...patch };
  }

  /**
   * Rewards: takes back `amount` cents a rolled-back reward redemption added to a gift card. Refused
   * (the caller's transaction rolls back) when the card no longer holds them: they were spent since.
   */
  async takeGiftBalance(
    trx: Executor,
    voucherId: string,
    amount: number,
    opts: { redemptionId: string },
  ): Promise<VoucherRow> {
    const card = await this.lock(trx, voucherId);
    if (!card) throw notFound('voucher', voucherId);
    const balance = Number(card.gift_balance ?? 0);
    if (balance < amount)
      throw refused(
        'gift_balance_spent',
        'Gift card value spent',
        `Redemption ${opts.redemptionId} added ${amount} to gift card ${card.code}, which holds ${balance} now`,
        { gift_balance: balance, amount },
      );
    const patch = {
      gift_amount: Math.max(0, Number(card.gift_amount ?? 0) - amount),
      gift_balance: balance - amount,
      updated_at: this.now(),
    };
    await trx.updateTable('vouchers').set(patch).where('id', '=', card.id).execute();
    return { ...card, ...patch };
  }

  async listPublications(q: { limit: number; page: number; customer?: string; campaign?: string; voucher?: string }) {
    const db = this.ctx.database.db;
    let base = db.selectFrom('publications as p').innerJoin('vouchers as v', 'v.id', 'p.voucher_id');
    if (q.customer) base = base.where('p.customer_id', '=', q.customer);
    if (q.campaign) {
      const c = await this.findCampaign(db, q.campaign);
      base = base.where('p.campaign_id', '=', c?.id ?? q.campaign);
    }
    if (q.voucher) base = base.where((eb) => eb.or([eb('v.code', '=', q.voucher!), eb('v.id', '=', q.voucher!)]));
    const total = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const rows = await base
      .selectAll('p')
      .select(['v.id as v_id'])
      .orderBy('p.created_at', 'desc')
      .orderBy('p.id', 'desc')
      .limit(q.limit)
      .offset((q.page - 1) * q.limit)
      .execute();
    const vouchers = rows.length
      ? await db
          .selectFrom('vouchers')
          .selectAll()
          .where(
            'id',
            'in',
            rows.map((r) => r.v_id),
          )
          .execute()
      : [];
    const byId = new Map(vouchers.map((v) => [v.id, v]));
    return {
      items: rows.map(({ v_id, ...p }) => presentPublication(p as PublicationRow, byId.get(v_id)!)),
      total: Number(total.n),
    };
  }

  // ---- validation and redemption ----

  /**
   * Why `voucher` cannot be redeemed now by `customerId` (a VoucherRefusal with Voucherify's key and
   * the `voucher_redeem_unauthorized` event), or what the order gets.
   */
  async check(
    db: Executor,
    code: string,
    voucher: VoucherRow | undefined,
    input: RedeemInput,
  ): Promise<ValidationResult> {
    const refuse = async (kind: 'refused' | 'not_found', key: string, message: string, details: string) => {
      throw new VoucherRefusal(
        kind,
        key,
        message,
        details,
        await this.unauthorizedEvent(db, code, voucher, key, input),
      );
    };
    if (!voucher)
      return refuse('not_found', 'resource_not_found', 'Resource not found', `Cannot find voucher with id ${code}`);
    const now = this.ctx.clock.nowMs();
    if (voucher.active === 0)
      return refuse('refused', 'voucher_disabled', 'Voucher is disabled', `Voucher ${code} is disabled`);
    if (voucher.start_date && Date.parse(voucher.start_date) > now) {
      return refuse(
        'refused',
        'voucher_not_active',
        'Voucher not active',
        `Voucher ${code} is valid from ${voucher.start_date}`,
      );
    }
    if (voucher.expiration_date && Date.parse(voucher.expiration_date) <= now) {
      return refuse(
        'refused',
        'voucher_expired',
        'Voucher expired',
        `Voucher ${code} expired at ${voucher.expiration_date}`,
      );
    }
    if (voucher.quantity !== null && voucher.redeemed_quantity >= voucher.quantity) {
      return refuse(
        'refused',
        'quantity_exceeded',
        'Quantity exceeded',
        `Voucher ${code} was redeemed ${voucher.redeemed_quantity} time(s), its limit`,
      );
    }
    if (voucher.referrer_id) {
      // A referral code is redeemed by the referee (anyone but its referrer), who must be named.
      if (input.customerId === voucher.referrer_id) {
        return refuse(
          'refused',
          'referrer_not_permitted_to_redeem',
          'Referrer not permitted to redeem',
          `Voucher ${code} is the referral code of this customer: the referrer cannot redeem it`,
        );
      }
      if (!input.customerId) {
        return refuse(
          'refused',
          'missing_customer',
          'Missing customer',
          `Voucher ${code} is a referral code: the redemption names the referee (customer)`,
        );
      }
      const why = await this.referralHooks().refusal(db, { voucher, customerId: input.customerId });
      if (why) return refuse('refused', why.key, why.message, why.details ?? why.message);
    } else if (voucher.holder_id && input.customerId && voucher.holder_id !== input.customerId) {
      return refuse(
        'refused',
        'customer_rules_violated',
        'Customer rules violated',
        `Voucher ${code} belongs to another customer`,
      );
    }
    let amount: number;
    if (voucher.type === 'GIFT_VOUCHER') {
      amount = giftCredits(Number(voucher.gift_balance ?? 0), input.giftCredits, input.order);
      if (amount <= 0) {
        return refuse(
          'refused',
          'gift_amount_exceeded',
          'Gift amount exceeded',
          `Gift card ${code} has no balance left for this order`,
        );
      }
    } else {
      amount = discountAmount(fromJson<Discount>(voucher.discount, { type: 'AMOUNT', amount_off: 0 }), input.order);
    }
    return { voucher, amount, order: orderAfter(input.order, amount) };
  }

  async validate(db: Executor, code: string, input: RedeemInput): Promise<ValidationResult> {
    return this.check(db, code, await this.find(db, code), input);
  }

  /** Redeems the voucher in the caller's transaction: one redemption, the counters, `voucher_redeemed`. */
  async redeem(
    trx: Executor,
    code: string,
    input: RedeemInput,
  ): Promise<{ redemption: RedemptionRow; voucher: VoucherRow }> {
    const locked = await this.lock(trx, code);
    let checked: ValidationResult;
    try {
      checked = await this.check(trx, code, locked, input);
    } catch (err) {
      if (err instanceof VoucherRefusal) err.failure = this.failureRecord(code, locked, input, err);
      throw err;
    }
    const { voucher, amount, order } = checked;
    const patch: Partial<VoucherRow> = { redeemed_quantity: voucher.redeemed_quantity + 1, updated_at: this.now() };
    if (voucher.type === 'GIFT_VOUCHER') patch.gift_balance = Number(voucher.gift_balance ?? 0) - amount;
    await trx.updateTable('vouchers').set(patch).where('id', '=', voucher.id).execute();
    const redemption: RedemptionRow = {
      id: newId('r'),
      kind: 'voucher',
      voucher_id: voucher.id,
      voucher_code: voucher.code,
      campaign_id: voucher.campaign_id,
      program_id: voucher.program_id,
      customer_id: input.customerId ?? voucher.holder_id,
      reward_id: null,
      assignment_id: null,
      membership_id: null,
      points: null,
      amount,
      order: toJson(order),
      metadata: toJson(input.metadata ?? {}),
      tracking_id: input.trackingId ?? input.customerId ?? null,
      details: voucher.type === 'GIFT_VOUCHER' ? toJson({ gift: { amount } }) : null,
      result: 'SUCCESS',
      status: 'SUCCEEDED',
      rollback_id: null,
      rollback_reason: null,
      rolled_back_at: null,
      parent_redemption_id: input.parentRedemptionId ?? null,
      created_at: this.now(),
    };
    await this.recordRedemption(trx, redemption);
    const updated = { ...voucher, ...patch };
    if (updated.referrer_id && redemption.customer_id) {
      // The referee's conversion, in this transaction (referrals module, through the hook).
      await this.referralHooks().redeemed(trx, { voucher: updated, redemption, customerId: redemption.customer_id });
    }
    const ref = await this.eventRef(trx, updated);
    await this.ctx.outbox.emit(trx, {
      type: 'voucher_redeemed',
      data: { code: updated.code, id: updated.id, ...ref, customer_id: redemption.customer_id },
      resource_type: 'voucher',
      resource_id: updated.id,
      program_id: updated.program_id ?? undefined,
    });
    return { redemption, voucher: updated };
  }

  /** Voucherify's record of a refused voucher redemption: the voucher, the customer, the order asked. */
  private failureRecord(code: string, v: VoucherRow | undefined, input: RedeemInput, err: DomainError): RedemptionRow {
    return failedRedemption(err, this.now(), {
      kind: 'voucher',
      voucher_id: v?.id ?? null,
      voucher_code: code,
      campaign_id: v?.campaign_id ?? null,
      program_id: v?.program_id ?? null,
      customer_id: input.customerId ?? null,
      order: toJson(input.order ?? null),
      metadata: toJson(input.metadata ?? {}),
      tracking_id: input.trackingId ?? input.customerId ?? null,
      parent_redemption_id: input.parentRedemptionId ?? null,
    });
  }

  /** Undoes a voucher redemption: the use and the gift credits come back. */
  async rollbackVoucherRedemption(
    trx: Executor,
    redemption: RedemptionRow,
    opts: { reason?: string | null },
  ): Promise<{ redemption: RedemptionRow; voucher: VoucherRow | null }> {
    const rollbackId = newId('rr');
    await this.markRolledBack(trx, redemption.id, rollbackId, opts.reason);
    const voucher = redemption.voucher_id ? await this.lock(trx, redemption.voucher_id) : undefined;
    let updated: VoucherRow | null = null;
    if (voucher) {
      const patch: Partial<VoucherRow> = {
        redeemed_quantity: Math.max(0, voucher.redeemed_quantity - 1),
        updated_at: this.now(),
      };
      if (voucher.type === 'GIFT_VOUCHER')
        patch.gift_balance = Number(voucher.gift_balance ?? 0) + Number(redemption.amount ?? 0);
      await trx.updateTable('vouchers').set(patch).where('id', '=', voucher.id).execute();
      updated = { ...voucher, ...patch };
    }
    return { redemption: await this.getRedemption(trx, redemption.id), voucher: updated };
  }

  // ---- the redemptions table (shared with the rewards workflow) ----

  async recordRedemption(trx: Executor, row: RedemptionRow): Promise<void> {
    await keepRedemption(trx, row);
    if (row.result === 'SUCCESS' && row.kind !== 'stack' && row.customer_id)
      await this.deps.redemptions?.recorded(trx, {
        id: row.id,
        customer_id: row.customer_id,
        points: Number(row.points ?? 0),
        created_at: row.created_at,
      });
  }

  /**
   * The successful redemptions (vouchers and rewards) of these customers created in [from, to), not
   * rolled back: what the messaging module's flow report counts.
   */
  async redemptionsOf(
    db: Executor,
    customerIds: string[],
    range: { from: string; to: string },
  ): Promise<{ customer_id: string; points: number; created_at: string }[]> {
    if (customerIds.length === 0) return [];
    const rows = await db
      .selectFrom('redemptions')
      .select(['customer_id', 'points', 'created_at'])
      .where('customer_id', 'in', customerIds)
      .where('kind', '!=', 'stack')
      .where('result', '=', 'SUCCESS')
      .where('rollback_id', 'is', null)
      .where('created_at', '>=', range.from)
      .where('created_at', '<', range.to)
      .execute();
    return rows
      .filter((r): r is typeof r & { customer_id: string } => r.customer_id !== null)
      .map((r) => ({ customer_id: r.customer_id, points: Number(r.points ?? 0), created_at: r.created_at }));
  }

  /** The children of a stacked redemption (oldest first: the order they were redeemed in). */
  async stackChildren(db: Executor, parentId: string): Promise<RedemptionRow[]> {
    return db
      .selectFrom('redemptions')
      .selectAll()
      .where('parent_redemption_id', '=', parentId)
      .orderBy('created_at', 'asc')
      .orderBy('id', 'asc')
      .execute();
  }

  async findRedemption(db: Executor, id: string): Promise<RedemptionRow | undefined> {
    return db.selectFrom('redemptions').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async getRedemption(db: Executor, id: string): Promise<RedemptionRow> {
    const row = await this.findRedemption(db, id);
    if (!row) throw notFound('redemption', id);
    return row;
  }

  /** Marks a redemption rolled back; a second rollback (even a concurrent one) is refused. */
  async markRolledBack(trx: Executor, id: string, rollbackId: string, reason?: string | null): Promise<void> {
    const res = await trx
      .updateTable('redemptions')
      .set({
        status: 'ROLLED_BACK',
        rollback_id: rollbackId,
        rollback_reason: reason ?? null,
        rolled_back_at: this.now(),
      })
      .where('id', '=', id)
      .where('status', '=', 'SUCCEEDED')
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) {
      await this.getRedemption(trx, id);
      throw refused('already_rolled_back', 'Already rolled back', `Redemption ${id} was already rolled back`);
    }
    await this.deps.redemptions?.rolledBack(trx, id);
  }

  async listRedemptions(q: {
    limit: number;
    page: number;
    starting_after_id?: string;
    customer?: string;
    voucher?: string;
    campaign?: string;
    result?: 'SUCCESS' | 'FAILURE';
    parent_redemption_id?: string;
  }) {
    const db = this.ctx.database.db;
    let base = db.selectFrom('redemptions');
    // A voucher's redemptions: by its id when it exists (its own and its refused ones), else by the code
    // tried (refused redemptions of an unknown code). Every filter here has an index that goes on with
    // created_at; the most selective one given is walked, the others filter its rows.
    const voucher = q.voucher ? await this.findAny(db, q.voucher) : undefined;
    const keys: [string, string | undefined][] = [
      ['parent_redemption_id', q.parent_redemption_id],
      ['voucher_id', voucher?.id],
      ['voucher_code', q.voucher && !voucher ? q.voucher : undefined],
      ['customer_id', q.customer],
      ['campaign_id', q.campaign],
      ['result', q.result],
    ];
    const given = keys.filter((k): k is [string, string] => k[1] !== undefined);
    for (const [column, value] of given.slice(1)) base = base.where(sql.ref(column), '=', value);
    const walk = given[0] && { db, column: given[0][0], value: given[0][1] };
    return pageByCreated(base, q, 'a redemption', 'desc', { walk });
  }

  async vouchersById(db: Executor, ids: (string | null)[]): Promise<Map<string, VoucherRow>> {
    const list = [...new Set(ids.filter((x): x is string => !!x))];
    if (list.length === 0) return new Map();
    const rows = await db.selectFrom('vouchers').selectAll().where('id', 'in', list).execute();
    return new Map(rows.map((r) => [r.id, r]));
  }

  // ---- expiry ----

  registerJobs(): void {
    this.ctx.scheduler.register(EXPIRE_JOB, async (job, trx) => {
      const { voucher_id, expiration_date } = job.payload as { voucher_id: string; expiration_date: string };
      const v = await this.lock(trx, voucher_id);
      // Moved or removed since this job was scheduled (a newer job has the new date), or fired already.
      if (!v || v.expired_at || v.expiration_date !== expiration_date) return;
      if (Date.parse(expiration_date) > this.ctx.clock.nowMs()) return;
      // A voucher used up before its date never "expires" for its holder.
      if (v.quantity !== null && v.redeemed_quantity >= v.quantity) return;
      const now = this.now();
      await trx.updateTable('vouchers').set({ expired_at: now }).where('id', '=', v.id).execute();
      const ref = await this.eventRef(trx, v);
      await this.ctx.outbox.emit(trx, {
        type: 'voucher_expired',
        data: { code: v.code, id: v.id, ...ref, customer_id: v.holder_id },
        resource_type: 'voucher',
        resource_id: v.id,
        program_id: v.program_id ?? undefined,
      });
    });
  }

  // ---- events ----

  /**
   * The refusal events of a refused write (`onRefused` of runIdempotentWrite): written by `trx`,
   * after the refused transaction rolled back. Other errors leave nothing.
   */
  recordRefusal = async (trx: Executor, err: unknown): Promise<void> => {
    if (err instanceof VoucherRefusal && err.failure) await this.recordRedemption(trx, err.failure);
    if (err instanceof VoucherRefusal && err.parentFailure) await this.recordRedemption(trx, err.parentFailure);
    if (err instanceof VoucherRefusal || err instanceof AttributionFailed) await this.ctx.outbox.emit(trx, err.event);
  };

  private async eventRef(db: Executor, v: VoucherRow, programRef?: { id: string; name: string } | null) {
    const known = programRef && programRef.id === v.program_id ? programRef : undefined;
    return {
      loyalty_program: known ?? (v.program_id ? await this.deps.programRef(db, v.program_id) : null),
      offer: fromJson<Offer | null>(v.offer, null) ?? {
        id: v.campaign_id ?? v.id,
        name: v.campaign_name ?? v.code,
        public_name: v.campaign_name ?? v.code,
        public_description: null,
        public_image: null,
      },
    };
  }

  private async createdEvent(
    db: Executor,
    v: VoucherRow,
    sourceEventId: string,
    programRef?: { id: string; name: string } | null,
  ): Promise<OutgoingEvent> {
    return {
      type: 'voucher_created',
      data: {
        code: v.code,
        expires_at: v.expiration_date,
        id: v.id,
        ...(await this.eventRef(db, v, programRef)),
        source_event_id: sourceEventId,
        valid_from: v.start_date,
        customer_id: v.holder_id,
      },
      resource_type: 'voucher',
      resource_id: v.id,
      program_id: v.program_id ?? undefined,
    };
  }

  private async emitRevoked(db: Executor, v: VoucherRow, sourceEventId: string): Promise<void> {
    await this.ctx.outbox.emit(db, {
      type: 'voucher_revoked',
      data: {
        code: v.code,
        id: v.id,
        ...(await this.eventRef(db, v)),
        source_event_id: sourceEventId,
        customer_id: v.holder_id,
      },
      resource_type: 'voucher',
      resource_id: v.id,
      program_id: v.program_id ?? undefined,
    });
  }

  private async unauthorizedEvent(
    db: Executor,
    code: string,
    v: VoucherRow | undefined,
    reason: string,
    input: RedeemInput,
  ): Promise<OutgoingEvent> {
    const ref = v ? await this.eventRef(db, v) : { loyalty_program: null, offer: null };
    return {
      type: 'voucher_redeem_unauthorized',
      data: { code, ...ref, reason, customer_id: input.customerId ?? v?.holder_id ?? null },
      resource_type: 'voucher',
      resource_id: v?.id,
      program_id: v?.program_id ?? undefined,
    };
  }

  private async attributionFailedEvent(
    db: Executor,
    campaign: CampaignRow,
    input: PublishInput,
    details: string,
  ): Promise<OutgoingEvent> {
    return {
      type: 'voucher_attribution_failed',
      data: {
        loyalty_program: input.programId ? await this.deps.programRef(db, input.programId) : null,
        rejection_error: `no_voucher_suitable_for_publication: ${details}`,
        voucher_offer_id: input.offer?.id ?? campaign.id,
        customer_id: input.customerId,
      },
      resource_type: 'campaign',
      resource_id: campaign.id,
      program_id: input.programId ?? undefined,
    };
  }
}
