import type { AppContext } from '../../context.ts';
import { invalid, notFound, refused } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson, toJson } from '../../lib/json.ts';
import type { Executor } from '../../storage/database.ts';
import { sql } from 'kysely';
import { isUniqueViolation } from '../../storage/database.ts';
import { nextTier, type TierConditions, type TierRule } from './rules.ts';
import type { TierBody, TierUpdateBody } from './schemas.ts';
import type {
  ReferralHoldersTable,
  ReferralProgramsTable,
  ReferralRewardsTable,
  ReferralsTable,
  ReferralTiersTable,
} from './tables.ts';
import './tables.ts';

// Referral programs: the `referral_program` of REFERRAL_PROGRAM campaigns, their referrer tiers,
// the referees (one `referrals` row per campaign and referee), the rewards given and the referee
// holders of the codes. The codes themselves are vouchers (vouchers module, `referrer_id`); the
// conversion that ties them together is src/workflows/referrals.ts.
//
// Invariants:
// - a customer is referred at most once per campaign: the unique index (campaign_id, referee_id) of
//   `referrals`; a concurrent conversion of the same referee waits on the first one's row and then
//   fails on the index, which is answered `customer_already_referred` (`recordReferral`);
// - a referrer's count moves by one per referee, under the row lock of its `referral_counts` row
//   (`countReferee`), so each count, and each MIN_REFEREES tier, is reached by one conversion;
// - no campaign-wide lock: conversions of different referrers of one campaign run side by side
//   (on PostgreSQL, transactions are group-committed in batches that hold their locks until the
//   batch commits; a campaign-wide lock made batches wait on each other and deadlock);
// - every reward row is written by the conversion's transaction, beside the ledger entry or voucher
//   that carries it.

export type ProgramRow = ReferralProgramsTable;
export type TierRow = ReferralTiersTable;
export type ReferralRow = ReferralsTable;
export type ReferralRewardRow = ReferralRewardsTable;
export type HolderRow = ReferralHoldersTable;

export interface RefereeReward {
  type: 'LOYALTY_CARD' | 'GIFT_VOUCHER';
  amount: number;
  related_object_parent: { id: string; name?: string; object: 'CAMPAIGN' };
}

export interface ProgramInput {
  conversion_event_type: 'redemption' | 'custom_event';
  custom_event: { id?: string; name: string } | null;
  referee_reward: RefereeReward | null;
  new_customers_only: boolean;
}

export type TierReward = { type: 'POINTS'; points: number; campaign_id: string } | { type: 'REWARD'; id: string };

const bad = (field: string, message: string) =>
  invalid('invalid_referral_program', 'Invalid referral_program', `${field} ${message}`, [{ field, message }]);

/** Checks a campaign's `referral_program` (Voucherify's shape, plus Tally's `new_customers_only`). */
export function checkProgram(raw: unknown): ProgramInput {
  if (raw === undefined || raw === null) return checkProgram({});
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad('referral_program', 'must be an object');
  const p = raw as Record<string, unknown>;
  const conversion = p.conversion_event_type ?? 'redemption';
  if (conversion !== 'redemption' && conversion !== 'custom_event') {
    throw bad('referral_program.conversion_event_type', 'must be redemption or custom_event');
  }
  let customEvent: ProgramInput['custom_event'] = null;
  if (conversion === 'custom_event') {
    const e = p.custom_event as Record<string, unknown> | undefined;
    const name = typeof e?.name === 'string' && e.name ? e.name : typeof e?.id === 'string' ? e.id : '';
    if (!name)
      throw bad('referral_program.custom_event', 'names the converting event ({name}) of a custom_event program');
    customEvent = { ...(typeof e?.id === 'string' ? { id: e.id } : {}), name };
  }
  let reward: RefereeReward | null = null;
  if (p.referee_reward !== undefined && p.referee_reward !== null) {
    const r = p.referee_reward as Record<string, unknown>;
    if (r.type !== 'LOYALTY_CARD' && r.type !== 'GIFT_VOUCHER') {
      throw bad('referral_program.referee_reward.type', 'must be LOYALTY_CARD or GIFT_VOUCHER');
    }
    const amount = r.amount;
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 1) {
      throw bad('referral_program.referee_reward.amount', 'must be a whole number >= 1 (points or cents)');
    }
    const parent = r.related_object_parent as Record<string, unknown> | undefined;
    if (typeof parent?.id !== 'string' || !parent.id) {
      throw bad('referral_program.referee_reward.related_object_parent.id', 'names the campaign credited');
    }
    reward = {
      type: r.type,
      amount,
      related_object_parent: {
        id: parent.id,
        ...(typeof parent.name === 'string' ? { name: parent.name } : {}),
        object: 'CAMPAIGN',
      },
    };
  }
  if (p.new_customers_only !== undefined && typeof p.new_customers_only !== 'boolean') {
    throw bad('referral_program.new_customers_only', 'must be a boolean');
  }
  return {
    conversion_event_type: conversion,
    custom_event: customEvent,
    referee_reward: reward,
    new_customers_only: p.new_customers_only === true,
  };
}

export function programInput(row: ProgramRow): ProgramInput {
  return {
    conversion_event_type: row.conversion_event_type,
    custom_event: fromJson(row.custom_event, null),
    referee_reward: fromJson(row.referee_reward, null),
    new_customers_only: row.new_customers_only === 1,
  };
}

/** Voucherify's `referral_program` of a campaign (with Tally's `new_customers_only`). */
export function presentProgram(row: ProgramRow) {
  const p = programInput(row);
  return {
    conversion_event_type: p.conversion_event_type,
    ...(p.custom_event ? { custom_event: p.custom_event } : {}),
    ...(p.referee_reward ? { referee_reward: p.referee_reward } : {}),
    new_customers_only: p.new_customers_only,
  };
}

export const tierReward = (t: TierRow) => fromJson<TierReward>(t.reward, { type: 'REWARD', id: '' });
export const tierRule = (t: TierRow): TierRule & { row: TierRow } => ({
  id: t.id,
  kind: t.kind,
  referees: t.referees,
  conditions: fromJson<TierConditions | null>(t.conditions, null),
  row: t,
});

export function presentTier(t: TierRow) {
  return {
    id: t.id,
    campaign_id: t.campaign_id,
    name: t.name,
    banner: t.banner,
    event: t.kind,
    referees: t.referees,
    reward: tierReward(t),
    conditions: fromJson(t.conditions, null),
    // Voucherify's SimpleReferralTier parameters (the event that earns it).
    parameters: { event_type: t.kind === 'EACH_REFEREE' ? 'each_referee' : 'min_referees' },
    metadata: fromJson(t.metadata, {}),
    created_at: t.created_at,
    updated_at: t.updated_at,
    object: 'referral_tier' as const,
  };
}

export function presentHolder(h: { id: string; customer_id: string; created_at: string }, role: string) {
  return {
    id: h.id,
    customer_id: h.customer_id,
    holder_role: role,
    created_at: h.created_at,
    object: 'redeemable_holder' as const,
  };
}

export interface CustomerReferralSummary {
  referred_customers: number;
  referred_by: ReferralRow[];
}

/** Voucherify's CustomerReferrals: the campaigns the customer was referred in, by whom. */
export function presentReferredBy(rows: ReferralRow[]) {
  return {
    total: rows.length,
    campaigns: rows.map((r) => ({
      campaign_id: r.campaign_id,
      referrer_id: r.referrer_id,
      related_object_id: r.related_object_id,
      related_object_type: r.conversion === 'redemption' ? 'redemption' : 'event',
      date: r.created_at,
    })),
  };
}

/** A customer object with its referral fields: `loyalty.referred_customers` and `referrals`. */
export function withReferrals<T extends { loyalty: { referred_customers: number } }>(
  customer: T,
  summary: CustomerReferralSummary | undefined,
) {
  return {
    ...customer,
    loyalty: { ...customer.loyalty, referred_customers: summary?.referred_customers ?? 0 },
    referrals: presentReferredBy(summary?.referred_by ?? []),
  };
}

export class ReferralService {
  constructor(private ctx: AppContext) {}

  private now() {
    return this.ctx.clock.nowIso();
  }

  // ---- programs ----

  async saveProgram(trx: Executor, campaignId: string, input: ProgramInput, created: boolean): Promise<void> {
    const values = {
      conversion_event_type: input.conversion_event_type,
      custom_event: toJson(input.custom_event),
      referee_reward: toJson(input.referee_reward),
      new_customers_only: input.new_customers_only ? 1 : 0,
    };
    if (created) {
      await trx
        .insertInto('referral_programs')
        .values({ campaign_id: campaignId, ...values, created_at: this.now(), updated_at: null })
        .execute();
    } else {
      await trx
        .updateTable('referral_programs')
        .set({ ...values, updated_at: this.now() })
        .where('campaign_id', '=', campaignId)
        .execute();
    }
  }

  async program(db: Executor, campaignId: string): Promise<ProgramRow | undefined> {
    return db.selectFrom('referral_programs').selectAll().where('campaign_id', '=', campaignId).executeTakeFirst();
  }

  async getProgram(db: Executor, campaignId: string): Promise<ProgramRow> {
    const row = await this.program(db, campaignId);
    if (!row) throw notFound('referral campaign', campaignId);
    return row;
  }

  // ---- tiers ----

  private checkTier(kind: TierRow['kind'], referees: number | undefined): number {
    if (kind === 'EACH_REFEREE') return 1;
    if (!referees) {
      throw invalid('invalid_referral_tier', 'Invalid referral tier', 'a MIN_REFEREES tier names its referees count', [
        { field: 'referees', message: 'is required for MIN_REFEREES' },
      ]);
    }
    return referees;
  }

  async createTier(trx: Executor, campaignId: string, body: TierBody): Promise<TierRow> {
    const row: TierRow = {
      id: newId('rft'),
      campaign_id: campaignId,
      name: body.name,
      banner: body.banner ?? null,
      kind: body.event,
      referees: this.checkTier(body.event, body.referees),
      reward: toJson(body.reward)!,
      conditions: toJson(body.conditions ?? null),
      metadata: toJson(body.metadata ?? {}),
      created_at: this.now(),
      updated_at: null,
      deleted_at: null,
    };
    await trx.insertInto('referral_tiers').values(row).execute();
    return row;
  }

  async updateTier(trx: Executor, row: TierRow, body: TierUpdateBody): Promise<TierRow> {
    const kind = body.event ?? row.kind;
    const patch: Partial<TierRow> = {
      updated_at: this.now(),
      kind,
      referees: this.checkTier(kind, body.referees ?? (kind === row.kind ? row.referees : undefined)),
    };
    if (body.name !== undefined) patch.name = body.name;
    if (body.banner !== undefined) patch.banner = body.banner;
    if (body.reward !== undefined) patch.reward = toJson(body.reward)!;
    if (body.conditions !== undefined) patch.conditions = toJson(body.conditions);
    if (body.metadata !== undefined) patch.metadata = toJson(body.metadata ?? {});
    await trx.updateTable('referral_tiers').set(patch).where('id', '=', row.id).execute();
    return { ...row, ...patch };
  }

  async deleteTier(trx: Executor, row: TierRow): Promise<void> {
    await trx.updateTable('referral_tiers').set({ deleted_at: this.now() }).where('id', '=', row.id).execute();
  }

  async getTier(db: Executor, campaignId: string, tierId: string): Promise<TierRow> {
    const row = await db
      .selectFrom('referral_tiers')
      .selectAll()
      .where('id', '=', tierId)
      .where('campaign_id', '=', campaignId)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    if (!row) throw notFound('referral tier', tierId);
    return row;
  }

  /** The campaign's live tiers, oldest first (the order `nextTier` breaks ties by). */
  async tiers(db: Executor, campaignId: string): Promise<TierRow[]> {
    return db
      .selectFrom('referral_tiers')
      .selectAll()
      .where('campaign_id', '=', campaignId)
      .where('deleted_at', 'is', null)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  // ---- referees ----

  async referralOf(db: Executor, campaignId: string, refereeId: string): Promise<ReferralRow | undefined> {
    return db
      .selectFrom('referrals')
      .selectAll()
      .where('campaign_id', '=', campaignId)
      .where('referee_id', '=', refereeId)
      .executeTakeFirst();
  }

  /** Records the referee; a concurrent conversion of the same referee that committed first refuses it. */
  async recordReferral(trx: Executor, row: ReferralRow): Promise<void> {
    try {
      await trx.insertInto('referrals').values(row).execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw alreadyReferred(row.referee_id, row.campaign_id);
      throw err;
    }
  }

  /** The referral a conversion's redemption (or event) made, if any. */
  async referralByRelated(db: Executor, relatedId: string): Promise<ReferralRow | undefined> {
    return db.selectFrom('referrals').selectAll().where('related_object_id', '=', relatedId).executeTakeFirst();
  }

  async rewardsOfReferral(db: Executor, referralId: string): Promise<ReferralRewardRow[]> {
    return db
      .selectFrom('referral_rewards')
      .selectAll()
      .where('referral_id', '=', referralId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  /**
   * Undoes a referral whose conversion was rolled back: the referee is no longer referred in the
   * campaign (they may be referred again), the referrer's count goes down by one, the rewards' rows
   * go (the caller took back what they gave; the ledger keeps both entries).
   */
  async undoReferral(trx: Executor, referral: ReferralRow): Promise<void> {
    await trx
      .updateTable('referral_counts')
      .set({ referred: sql`referral_counts.referred - 1` })
      .where('campaign_id', '=', referral.campaign_id)
      .where('referrer_id', '=', referral.referrer_id)
      .execute();
    await trx.deleteFrom('referral_rewards').where('referral_id', '=', referral.id).execute();
    await trx
      .deleteFrom('referral_holders')
      .where('voucher_id', '=', referral.voucher_id)
      .where('customer_id', '=', referral.referee_id)
      .execute();
    await trx.deleteFrom('referrals').where('id', '=', referral.id).execute();
  }

  /** Adds the referee to the referrer's count in the campaign; answers the new count (row-locked). */
  async countReferee(trx: Executor, campaignId: string, referrerId: string): Promise<number> {
    const r = await trx
      .insertInto('referral_counts')
      .values({ campaign_id: campaignId, referrer_id: referrerId, referred: 1 })
      .onConflict((oc) =>
        oc.columns(['campaign_id', 'referrer_id']).doUpdateSet({ referred: sql`referral_counts.referred + 1` }),
      )
      .returning('referred')
      .executeTakeFirstOrThrow();
    return Number(r.referred);
  }

  /** The referrer's referred count per campaign. */
  async referredByCampaign(db: Executor, referrerId: string): Promise<Map<string, number>> {
    const rows = await db
      .selectFrom('referrals')
      .select(['campaign_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('referrer_id', '=', referrerId)
      .groupBy('campaign_id')
      .execute();
    return new Map(rows.map((r) => [r.campaign_id, Number(r.n)]));
  }

  /** The campaigns the customer was referred in (as referee), oldest first. */
  async referredIn(db: Executor, refereeId: string): Promise<ReferralRow[]> {
    return db
      .selectFrom('referrals')
      .selectAll()
      .where('referee_id', '=', refereeId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  // ---- rewards given ----

  async recordReward(trx: Executor, row: Omit<ReferralRewardRow, 'id' | 'created_at'>): Promise<ReferralRewardRow> {
    const full = { id: newId('rfg'), created_at: this.now(), ...row };
    await trx.insertInto('referral_rewards').values(full).execute();
    return full;
  }

  async rewardsOf(db: Executor, customerId: string): Promise<ReferralRewardRow[]> {
    return db
      .selectFrom('referral_rewards')
      .selectAll()
      .where('customer_id', '=', customerId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  // ---- holders ----

  /** Adds a referee holder of the code (once: the same customer again answers the existing row). */
  async addHolder(trx: Executor, campaignId: string, voucherId: string, customerId: string): Promise<HolderRow> {
    const row: HolderRow = {
      id: newId('rfh'),
      campaign_id: campaignId,
      voucher_id: voucherId,
      customer_id: customerId,
      created_at: this.now(),
    };
    await trx
      .insertInto('referral_holders')
      .values(row)
      .onConflict((oc) => oc.columns(['voucher_id', 'customer_id']).doNothing())
      .execute();
    return (await trx
      .selectFrom('referral_holders')
      .selectAll()
      .where('voucher_id', '=', voucherId)
      .where('customer_id', '=', customerId)
      .executeTakeFirst())!;
  }

  async holders(db: Executor, voucherId: string): Promise<HolderRow[]> {
    return db
      .selectFrom('referral_holders')
      .selectAll()
      .where('voucher_id', '=', voucherId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  /** Removes a referee holder (by holder id or customer id). A referee already converted stays referred. */
  async removeHolder(trx: Executor, voucherId: string, holderId: string): Promise<void> {
    const res = await trx
      .deleteFrom('referral_holders')
      .where('voucher_id', '=', voucherId)
      .where((eb) => eb.or([eb('id', '=', holderId), eb('customer_id', '=', holderId)]))
      .executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notFound('holder', holderId);
  }

  /**
   * The referral parts of many customers' objects, two queries in all: how many each referred
   * (`loyalty.referred_customers`) and where each was referred (`referrals{total, campaigns}`).
   */
  async summaries(db: Executor, customerIds: string[]): Promise<Map<string, CustomerReferralSummary>> {
    const out = new Map<string, CustomerReferralSummary>();
    for (const id of customerIds) out.set(id, { referred_customers: 0, referred_by: [] });
    if (customerIds.length === 0) return out;
    const counts = await db
      .selectFrom('referrals')
      .select(['referrer_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('referrer_id', 'in', customerIds)
      .groupBy('referrer_id')
      .execute();
    for (const c of counts) out.get(c.referrer_id)!.referred_customers = Number(c.n);
    const referred = await db
      .selectFrom('referrals')
      .selectAll()
      .where('referee_id', 'in', customerIds)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    for (const r of referred) out.get(r.referee_id)!.referred_by.push(r);
    return out;
  }

  /** What the next referee brings, from the campaign's tiers and the referrer's count. */
  async next(db: Executor, campaignId: string, count: number) {
    const n = nextTier((await this.tiers(db, campaignId)).map(tierRule), count);
    return n ? { referees_needed: n.referees_needed, tier: n.tier.row, tiers: n.tiers.map((t) => t.row) } : null;
  }
}

export const alreadyReferred = (customerId: string, campaignName: string) =>
  refused(
    'customer_already_referred',
    'Customer already referred',
    `Customer ${customerId} was referred in campaign ${campaignName} already ` +
      '(a customer is referred once per campaign)',
  );
