import type { AppContext } from '../context.ts';
import { type DomainError, invalid, notFound, refused } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { fromJson } from '../lib/json.ts';
import type { Executor } from '../storage/database.ts';
import type { Services } from '../services.ts';
import { presentCustomerRef, type CustomerRow } from '../modules/customers/service.ts';
import type { MembershipRow } from '../modules/members/service.ts';
import { tiersEarned } from '../modules/referrals/rules.ts';
import {
  alreadyReferred,
  checkProgram,
  presentProgram,
  presentReferredBy,
  programInput,
  type ReferralRow,
  type TierRow,
  tierReward,
  tierRule,
} from '../modules/referrals/service.ts';
import { offerOf, rewardParameters } from '../modules/rewards/service.ts';
import type { CampaignRow, ReferralHooks, RedemptionRow, VoucherRow } from '../modules/vouchers/service.ts';
import type { OutgoingEvent } from '../modules/events/outbox.ts';
import { joinProgram } from './join-program.ts';

// Workflow "a referee converts": one transaction (the caller's: the code's redemption, or the
// custom event's ingestion) that
//   1. reads the campaign's referral program,
//   2. refuses abuse: the referrer's own code, a customer referred before in the campaign, an
//      existing member when the program takes new customers only,
//   3. records the referee (`referrals`, unique per campaign and referee: a concurrent conversion of
//      the same referee is refused there) and its holder row,
//   4. gives the referee reward (points on a card of the program, the card issued when missing;
//      or gift credits; a discount was already applied by the redemption),
//   5. counts the referee for the referrer (the count row's lock orders one referrer's conversions)
//      and gives the tiers the new count earns (points, or a catalogue reward),
//   6. writes `customer.referred` and one `customer.rewarded` per reward; the points, vouchers and
//      gift credits bring their own events (balance_value_updated, points_added, voucher_created).
// A retry of the same conversion (same redemption, same source_event_id) finds the referee's row
// with its source key and does nothing.

type Via = { kind: 'redemption'; redemption: RedemptionRow } | { kind: 'custom_event'; eventId: string; name: string };

interface Conversion {
  campaign: CampaignRow;
  voucher: VoucherRow;
  referee: CustomerRow;
  via: Via;
  /** Names this conversion for retries. */
  sourceKey: string;
}

const simpleCustomer = (c: CustomerRow) => ({ ...presentCustomerRef(c), email: c.email });
const simpleVoucher = (v: VoucherRow) => ({
  id: v.id,
  code: v.code,
  type: v.type,
  campaign: v.campaign_name,
  campaign_id: v.campaign_id,
  is_referral_code: true,
  holder_id: v.holder_id,
  referrer_id: v.referrer_id,
  created_at: v.created_at,
  object: 'voucher' as const,
});
const simpleCampaign = (c: CampaignRow) => ({
  id: c.id,
  name: c.name,
  campaign_type: c.campaign_type,
  type: c.type,
  is_referral_code: true,
  object: 'campaign' as const,
});

/** The hooks the vouchers module calls for referral campaigns and codes (built by the container). */
export function referralHooks(ctx: AppContext, services: () => Services): ReferralHooks {
  return {
    async campaignSaved(trx, campaign, raw, created) {
      const input = checkProgram(raw);
      const reward = input.referee_reward;
      if (reward) {
        // The campaign credited exists and is of the reward's kind; its name is kept for the answers.
        const parentId = reward.related_object_parent.id;
        if (reward.type === 'LOYALTY_CARD') {
          reward.related_object_parent.name = (await services().programs.get(trx, parentId)).name;
        } else {
          const gift = await services().vouchers.getCampaign(trx, parentId);
          if (gift.campaign_type !== 'GIFT_VOUCHERS') {
            throw invalid(
              'invalid_referral_program',
              'Invalid referral_program',
              `referee_reward GIFT_VOUCHER credits a GIFT_VOUCHERS campaign; ${gift.name} is ${gift.campaign_type}`,
            );
          }
          reward.related_object_parent = { id: gift.id, name: gift.name, object: 'CAMPAIGN' };
        }
      }
      await services().referrals.saveProgram(trx, campaign.id, input, created);
    },
    async programOf(db, campaignId) {
      const row = await services().referrals.program(db, campaignId);
      return row ? presentProgram(row) : null;
    },
    async redeemed(trx, r) {
      const s = services();
      const campaign = await s.vouchers.getCampaign(trx, r.voucher.campaign_id ?? '');
      const program = await s.referrals.getProgram(trx, campaign.id);
      // A custom_event program converts on its event; redeeming its code only applies the discount.
      if (program.conversion_event_type !== 'redemption') return;
      await convert(ctx, s, trx, {
        campaign,
        voucher: r.voucher,
        referee: await s.customers.get(trx, r.customerId),
        via: { kind: 'redemption', redemption: r.redemption },
        sourceKey: r.redemption.id,
      });
    },
    async refusal(db, r) {
      const s = services();
      const campaignId = r.voucher.campaign_id ?? '';
      const program = programInput(await s.referrals.getProgram(db, campaignId));
      if (program.conversion_event_type !== 'redemption') return null;
      const campaign = await s.vouchers.getCampaign(db, campaignId);
      const existing = await s.referrals.referralOf(db, campaignId, r.customerId);
      return refereeRefusal(s, db, campaign, Boolean(program.new_customers_only), r.customerId, existing);
    },
  };
}

/**
 * Why `refereeId` cannot be referred in the campaign, or null: already referred there (`existing`,
 * their referral in it), or not new in a new-customers-only campaign.
 */
async function refereeRefusal(
  services: Services,
  db: Executor,
  campaign: { name: string },
  newCustomersOnly: boolean,
  refereeId: string,
  existing: ReferralRow | undefined,
): Promise<DomainError | null> {
  if (existing) return alreadyReferred(refereeId, campaign.name);
  if (newCustomersOnly && (await services.members.ofCustomer(db, refereeId)).length > 0) {
    return refused(
      'customer_not_new',
      'Customer is not new',
      `Campaign ${campaign.name} refers new customers only; customer ${refereeId} already has a loyalty card`,
    );
  }
  return null;
}

/**
 * A custom event carrying `referral: {code, referrer_id?}` (POST /v1/events): the referee's
 * conversion when the code's program converts on this event. Answers what happened, for the event's
 * answer (`referral`); an event that is not the program's conversion event converts nothing.
 */
export async function convertByEvent(
  ctx: AppContext,
  services: Services,
  trx: Executor,
  e: { referral: Record<string, unknown>; referee: CustomerRow; event: string; eventId: string; sourceKey: string },
): Promise<{ code: string; referrer_id: string | null; converted: boolean }> {
  const code = typeof e.referral.code === 'string' ? e.referral.code : '';
  if (!code) {
    throw invalid('invalid_referral', 'Invalid referral', 'referral.code names the referral code', [
      { field: 'referral.code', message: 'is required' },
    ]);
  }
  const voucher = await services.vouchers.find(trx, code);
  if (!voucher?.referrer_id) throw notFound('referral code', code);
  const given = e.referral.referrer_id;
  if (typeof given === 'string' && given !== voucher.referrer_id) {
    const referrer = await services.customers.find(trx, given);
    if (referrer?.id !== voucher.referrer_id) {
      throw refused('referrer_mismatch', 'Referrer mismatch', `Referral code ${code} is not ${given}'s`);
    }
  }
  const campaign = await services.vouchers.getCampaign(trx, voucher.campaign_id ?? '');
  const program = programInput(await services.referrals.getProgram(trx, campaign.id));
  const answer = { code, referrer_id: voucher.referrer_id, converted: false };
  if (program.conversion_event_type !== 'custom_event' || program.custom_event?.name !== e.event) return answer;
  const existing = await services.referrals.referralOf(trx, campaign.id, e.referee.id);
  if (existing?.source_key === e.sourceKey) return { ...answer, converted: true };
  await convert(ctx, services, trx, {
    campaign,
    voucher,
    referee: e.referee,
    via: { kind: 'custom_event', eventId: e.eventId, name: e.event },
    sourceKey: e.sourceKey,
  });
  return { ...answer, converted: true };
}

async function convert(ctx: AppContext, services: Services, trx: Executor, c: Conversion): Promise<ReferralRow> {
  const { referrals } = services;
  const programRow = await referrals.getProgram(trx, c.campaign.id);
  const program = programInput(programRow);
  const referrerId = c.voucher.referrer_id;
  if (!referrerId) throw refused('referral_code_not_published', 'Referral code not published', c.voucher.code);
  if (c.referee.id === referrerId) {
    throw refused(
      'referrer_not_permitted_to_redeem',
      'Referrer not permitted to redeem',
      `Referral code ${c.voucher.code} belongs to this customer: a referrer cannot refer themselves`,
    );
  }
  const existing = await referrals.referralOf(trx, c.campaign.id, c.referee.id);
  if (existing?.source_key === c.sourceKey) return existing;
  const why = await refereeRefusal(
    services,
    trx,
    c.campaign,
    Boolean(program.new_customers_only),
    c.referee.id,
    existing,
  );
  if (why) throw why;
  const referral: ReferralRow = {
    id: newId('rfl'),
    campaign_id: c.campaign.id,
    referrer_id: referrerId,
    referee_id: c.referee.id,
    voucher_id: c.voucher.id,
    code: c.voucher.code,
    conversion: c.via.kind,
    related_object_id: c.via.kind === 'redemption' ? c.via.redemption.id : c.via.eventId,
    source_key: c.sourceKey,
    created_at: ctx.clock.nowIso(),
  };
  await referrals.recordReferral(trx, referral);
  await referrals.addHolder(trx, c.campaign.id, c.voucher.id, c.referee.id);
  const referrer = await services.customers.get(trx, referrerId);

  const base = {
    voucher: simpleVoucher(c.voucher),
    campaign: simpleCampaign(c.campaign),
    redemption: c.via.kind === 'redemption' ? { id: c.via.redemption.id, object: 'redemption' } : null,
    custom_event: c.via.kind === 'custom_event' ? { id: c.via.eventId, type: c.via.name, object: 'event' } : null,
  };
  const events: OutgoingEvent[] = [
    {
      type: 'customer.referred',
      data: {
        customer: simpleCustomer(c.referee),
        referrer: simpleCustomer(referrer),
        ...base,
        referral_id: referral.id,
      },
      resource_type: 'customer',
      resource_id: c.referee.id,
    },
  ];
  const rewarded = (
    who: CustomerRow,
    role: 'REFERRER' | 'REFEREE',
    extra: { reward?: unknown; referral_tier?: unknown; balance?: unknown },
  ): OutgoingEvent => ({
    type: 'customer.rewarded',
    data: {
      customer: simpleCustomer(who),
      holder: null,
      ...base,
      reward: extra.reward ?? null,
      referral_tier: extra.referral_tier ?? null,
      balance: extra.balance ?? null,
      customer_event: null,
      role,
      referral_id: referral.id,
    },
    resource_type: 'customer',
    resource_id: who.id,
  });

  // ---- the referee's reward ----
  const reward = program.referee_reward;
  const common = { referral_id: referral.id, campaign_id: c.campaign.id };
  const details = (role: string, tier?: TierRow) => ({
    referral: {
      id: referral.id,
      campaign_id: c.campaign.id,
      campaign_name: c.campaign.name,
      referrer_id: referrerId,
      referee_id: c.referee.id,
      role,
      ...(tier ? { tier_id: tier.id } : {}),
    },
  });
  if (reward?.type === 'LOYALTY_CARD') {
    const card = await creditPoints(services, trx, {
      customer: c.referee,
      programId: reward.related_object_parent.id,
      points: reward.amount,
      reason: `Referral: referred by a friend (${c.campaign.name})`,
      details: details('REFEREE'),
      sourceEventId: referral.id,
    });
    await referrals.recordReward(trx, {
      ...common,
      tier_id: null,
      customer_id: c.referee.id,
      role: 'REFEREE',
      type: 'POINTS',
      amount: reward.amount,
      reward_id: null,
      details: JSON.stringify({ card: card.code, program_id: card.program_id }),
    });
    events.push(rewarded(c.referee, 'REFEREE', { balance: { points: reward.amount } }));
  } else if (reward?.type === 'GIFT_VOUCHER') {
    const gift = await services.vouchers.addGiftBalance(trx, {
      campaignId: reward.related_object_parent.id,
      customerId: c.referee.id,
      amount: reward.amount,
      sourceEventId: referral.id,
    });
    await referrals.recordReward(trx, {
      ...common,
      tier_id: null,
      customer_id: c.referee.id,
      role: 'REFEREE',
      type: 'GIFT_CREDITS',
      amount: reward.amount,
      reward_id: null,
      details: JSON.stringify({ voucher: gift.code }),
    });
    events.push(rewarded(c.referee, 'REFEREE', { balance: { amount: reward.amount } }));
  }
  if (c.via.kind === 'redemption' && Number(c.via.redemption.amount ?? 0) > 0) {
    // The code's discount, already taken off the referee's order by the redemption.
    await referrals.recordReward(trx, {
      ...common,
      tier_id: null,
      customer_id: c.referee.id,
      role: 'REFEREE',
      type: 'DISCOUNT',
      amount: Number(c.via.redemption.amount),
      reward_id: null,
      details: JSON.stringify({ redemption: c.via.redemption.id }),
    });
  }

  // ---- the referrer's tiers ----
  const count = await referrals.countReferee(trx, c.campaign.id, referrerId);
  const tiers = (await referrals.tiers(trx, c.campaign.id)).map(tierRule);
  const earned = tiersEarned(tiers, count, { metadata: fromJson<Record<string, unknown>>(c.referee.metadata, {}) });
  for (const { row: tier } of earned) {
    const given = tierReward(tier);
    const referralTier = {
      id: tier.id,
      campaign_id: c.campaign.id,
      banner: tier.banner ?? tier.name,
      parameters: { event_type: tier.kind === 'EACH_REFEREE' ? 'each_referee' : 'min_referees' },
    };
    const sourceEventId = `${referral.id}:${tier.id}`;
    if (given.type === 'POINTS') {
      const card = await creditPoints(services, trx, {
        customer: referrer,
        programId: given.campaign_id,
        points: given.points,
        reason: `Referral tier ${tier.name}: ${count} referred in ${c.campaign.name}`,
        details: details('REFERRER', tier),
        sourceEventId,
      });
      await referrals.recordReward(trx, {
        ...common,
        tier_id: tier.id,
        customer_id: referrer.id,
        role: 'REFERRER',
        type: 'POINTS',
        amount: given.points,
        reward_id: null,
        details: JSON.stringify({ card: card.code, program_id: card.program_id }),
      });
      events.push(rewarded(referrer, 'REFERRER', { referral_tier: referralTier, balance: { points: given.points } }));
    } else {
      const out = await giveCatalogueReward(
        services,
        trx,
        referrer,
        given.id,
        sourceEventId,
        details('REFERRER', tier),
      );
      await referrals.recordReward(trx, {
        ...common,
        tier_id: tier.id,
        customer_id: referrer.id,
        role: 'REFERRER',
        type: 'REWARD',
        amount: out.amount,
        reward_id: given.id,
        details: JSON.stringify(out.details),
      });
      events.push(
        rewarded(referrer, 'REFERRER', {
          referral_tier: referralTier,
          reward: { id: given.id, name: out.name, type: out.type, object: 'reward' },
          balance: out.balance,
        }),
      );
    }
  }
  await ctx.outbox.emit(trx, events);
  return referral;
}

/** Credits points on the customer's card of the program, issuing the card first when they have none. */
async function creditPoints(
  services: Services,
  trx: Executor,
  a: {
    customer: CustomerRow;
    programId: string;
    points: number;
    reason: string;
    details: Record<string, unknown>;
    sourceEventId: string;
  },
): Promise<MembershipRow> {
  const program = await services.programs.get(trx, a.programId);
  const membership =
    (await services.members.ofCustomer(trx, a.customer.id, program.id)).find((m) => m.status === 'ACTIVE') ??
    (await joinProgram(trx, services, program, a.customer, { source: 'referral', sourceEventId: a.sourceEventId }));
  await services.ledger.applyChange(trx, {
    program,
    membership,
    definition: await services.programs.defaultDefinition(trx, program.id),
    customer: a.customer,
    points: a.points,
    type: 'POINTS_ADDITION',
    reason: a.reason,
    source: 'referral',
    operation_type: 'AUTOMATIC',
    details: a.details,
    source_event_id: a.sourceEventId,
  });
  return membership;
}

/** Gives a catalogue reward without a points cost: its points, a coupon, gift credits or a product. */
async function giveCatalogueReward(
  services: Services,
  trx: Executor,
  customer: CustomerRow,
  rewardId: string,
  sourceEventId: string,
  details: Record<string, unknown>,
): Promise<{ name: string; type: string; amount: number | null; balance: unknown; details: Record<string, unknown> }> {
  const reward = await services.rewards.get(trx, rewardId);
  if (!(await services.rewards.takeStock(trx, reward))) {
    return { name: reward.name, type: reward.type, amount: null, balance: null, details: { out_of_stock: true } };
  }
  const parameters = rewardParameters(reward);
  const out = { name: reward.name, type: reward.type, amount: null as number | null, balance: null as unknown };
  if ('campaign' in parameters) {
    const c = parameters.campaign;
    if (c.type === 'LOYALTY_PROGRAM') {
      const card = await creditPoints(services, trx, {
        customer,
        programId: c.id,
        points: c.balance ?? 0,
        reason: `Referral reward ${reward.name}`,
        details: { ...details, reward: { id: reward.id, name: reward.name } },
        sourceEventId,
      });
      return { ...out, amount: c.balance ?? 0, balance: { points: c.balance ?? 0 }, details: { card: card.code } };
    }
    if (c.type === 'DISCOUNT_COUPONS') {
      const voucher = await services.vouchers.issue(trx, {
        campaignId: c.id,
        customerId: customer.id,
        sourceEventId,
        offer: offerOf(reward),
      });
      return { ...out, details: { voucher: voucher.code } };
    }
    const gift = await services.vouchers.addGiftBalance(trx, {
      campaignId: c.id,
      customerId: customer.id,
      amount: c.balance ?? 0,
      sourceEventId,
    });
    return {
      ...out,
      amount: c.balance ?? 0,
      balance: { amount: c.balance ?? 0 },
      details: { voucher: gift.code, gift: true },
    };
  }
  if ('product' in parameters) return { ...out, details: { product: parameters.product } };
  return { ...out, details: {} };
}

// ---- rollback ----

/**
 * The conversion of a rolled-back redemption is undone in the rollback's transaction: the points
 * it gave (referee and referrer) are taken back (refused, like any debit, when they were spent),
 * the coupons it issued revoked, the referee no longer referred and the referrer's count one less.
 * Gift credit cannot be taken back (the vouchers module lowers a gift balance only by redemption),
 * so such a rollback is refused, as for rewards.
 */
export async function rollbackReferral(
  services: Services,
  trx: Executor,
  redemptionId: string,
  rollbackId: string,
): Promise<void> {
  const referral = await services.referrals.referralByRelated(trx, redemptionId);
  if (!referral) return;
  for (const r of await services.referrals.rewardsOfReferral(trx, referral.id)) {
    const d = fromJson<{ card?: string; voucher?: string; gift?: boolean }>(r.details, {});
    if (r.type === 'GIFT_CREDITS' || d.gift) {
      throw refused(
        'rollback_not_supported',
        'Rollback not supported',
        `Redemption ${redemptionId} converted a referral that added gift card value, which cannot be taken back`,
      );
    }
    if (d.card && r.amount) {
      const card = await services.ledger.resolveCard(trx, d.card, undefined, { lockBalance: true });
      if (!card) throw notFound('loyalty card', d.card);
      await services.ledger.applyChange(trx, {
        program: card.program,
        membership: card.membership,
        definition: card.definition,
        customer: card.customer,
        locked_balance: card.balance,
        points: -Number(r.amount),
        type: 'POINTS_REMOVAL',
        reason: `Rollback of redemption ${redemptionId}: referral undone`,
        source: 'referral',
        operation_type: 'AUTOMATIC',
        details: { rollback: { id: rollbackId }, redemption: { id: redemptionId }, referral: { id: referral.id } },
        source_event_id: rollbackId,
      });
    } else if (d.voucher) {
      const voucher = await services.vouchers.find(trx, d.voucher);
      if (voucher) await services.vouchers.revoke(trx, voucher.id, { sourceEventId: rollbackId });
    }
  }
  await services.referrals.undoReferral(trx, referral);
}

// ---- read model ----

/** What a tier gives, in words for messages ("50 points", a reward's name). */
async function rewardWords(services: Services, db: Executor, tier: TierRow): Promise<string> {
  const r = tierReward(tier);
  if (r.type === 'POINTS') return `${r.points} points`;
  return (await services.rewards.find(db, r.id))?.name ?? tier.name;
}

/**
 * A customer's referral status: their codes with the referred count and the next tier of each
 * campaign, the total referred, the rewards earned, and who referred them (Voucherify's
 * `referrals{total, campaigns[]}`).
 */
export async function referralStatus(services: Services, db: Executor, customer: CustomerRow) {
  const codes = (await services.vouchers.ofCustomer(db, customer.id))
    .map((v) => v.voucher)
    .filter((v) => v.referrer_id === customer.id)
    .reverse();
  const counts = await services.referrals.referredByCampaign(db, customer.id);
  const campaigns = [];
  for (const v of codes) {
    const campaignId = v.campaign_id ?? '';
    const referred = counts.get(campaignId) ?? 0;
    const next = await services.referrals.next(db, campaignId, referred);
    campaigns.push({
      campaign_id: campaignId,
      campaign: v.campaign_name,
      code: v.code,
      referred_customers: referred,
      next_tier: next
        ? {
            id: next.tier.id,
            name: next.tier.name,
            referees_needed: next.referees_needed,
            reward: tierReward(next.tier),
            // Everything earned at that count, in words ("200 points and A free coffee").
            reward_text: (await Promise.all(next.tiers.map((t) => rewardWords(services, db, t)))).join(' and '),
          }
        : null,
    });
  }
  const referredBy = await services.referrals.referredIn(db, customer.id);
  const rewards = await services.referrals.rewardsOf(db, customer.id);
  return {
    customer_id: customer.id,
    referred_customers: [...counts.values()].reduce((a, b) => a + b, 0),
    campaigns,
    rewards: rewards.map((r) => ({
      id: r.id,
      campaign_id: r.campaign_id,
      referral_id: r.referral_id,
      tier_id: r.tier_id,
      role: r.role,
      type: r.type,
      amount: r.amount === null ? null : Number(r.amount),
      reward_id: r.reward_id,
      details: fromJson(r.details, {}),
      created_at: r.created_at,
    })),
    referrals: presentReferredBy(referredBy),
    object: 'customer_referrals' as const,
  };
}

/**
 * The `referral` template variable: `{code, referred_customers, campaign, next_tier: {referees_needed,
 * reward}}` for the member's first referral code; nil when they have none.
 */
export const referralTemplateContext =
  (services: Services) =>
  async ({ db, customer }: { db: Executor; customer: CustomerRow | null }) => {
    if (!customer) return undefined;
    const status = await referralStatus(services, db, customer);
    const first = status.campaigns[0];
    if (!first) return undefined;
    return {
      code: first.code,
      campaign: first.campaign,
      referred_customers: first.referred_customers,
      total_referred_customers: status.referred_customers,
      next_tier: first.next_tier
        ? { referees_needed: first.next_tier.referees_needed, reward: first.next_tier.reward_text }
        : null,
    };
  };
