import { DomainError, invalid, notFound, refused } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { fromJson } from '../lib/json.ts';
import type { Executor } from '../storage/database.ts';
import type { Services } from '../services.ts';
import { presentCustomerRef, type CustomerRow } from '../modules/customers/service.ts';
import type { SpentLot } from '../modules/ledger/service.ts';
import { programRef, type BalanceDefinitionRow, type ProgramRow } from '../modules/loyalties/service.ts';
import { presentMember, type BalanceRow, type CardSummary, type MembershipRow } from '../modules/members/service.ts';
import { coinQuote } from '../modules/rewards/coin.ts';
import type { RedeemInput } from '../modules/rewards/schemas.ts';
import {
  costOf,
  inStock,
  offerOf,
  presentAssignment,
  presentReward,
  rewardParameters,
  type AssignmentRow,
  type RewardMapping,
  type RewardRow,
} from '../modules/rewards/service.ts';
import { failedRedemption } from '../modules/vouchers/redemption-rows.ts';
import { presentRollback, presentVoucher, type RedemptionRow } from '../modules/vouchers/service.ts';
import { joinProgram } from './join-program.ts';

// Workflow "redeem a reward": one transaction that
//   1. locks the member's points balance (the card query, FOR UPDATE on PostgreSQL),
//   2. prices the reward (the assignment's points, the member's tier mapping, or a COIN quote),
//   3. takes one unit of stock (a conditional update: never more than the stock under concurrency),
//   4. writes the POINTS_REDEMPTION ledger entry (balance_value_updated comes from the ledger),
//   5. issues what the reward gives: a voucher (voucher_created comes from the vouchers module), a
//      gift card's value, or points on the customer's card of another program,
//   6. records the redemption (`r_…`, a `kind: 'reward'` row of the vouchers module's `redemptions`).
// Any refusal rolls all of it back; the refusal's own event (voucher_attribution_failed, or the
// ledger's balance_transaction_unauthorized) is written by `recordRedeemRefusal` afterwards.

/** `onRefused` of the redeem routes: the refusal events of a rolled-back redemption (the ledger's
 * balance_transaction_unauthorized, the vouchers module's voucher_attribution_failed). */
export const recordRedeemRefusal =
  (services: Services) =>
  async (trx: Executor, err: unknown): Promise<void> => {
    await services.ledger.recordRefusal(trx, err);
    await services.vouchers.recordRefusal(trx, err);
    const failure = typeof err === 'object' && err !== null ? failures.get(err) : undefined;
    if (failure) await services.vouchers.recordRedemption(trx, failure);
  };

/**
 * The `result: FAILURE` record of a refused reward redemption, by its error: made where the refusal
 * happened (the card is known), written by `recordRedeemRefusal` after the refused transaction
 * rolled back, as the voucher path keeps its refusals. The error itself stays what it was, so the
 * ledger and vouchers modules still recognise their own refusals.
 */
const failures = new WeakMap<object, RedemptionRow>();

function failureRecord(
  card: { membership: MembershipRow; program: ProgramRow },
  req: { body: RedeemInput; now: string },
  err: DomainError,
): RedemptionRow {
  return failedRedemption(err, req.now, {
    kind: 'reward',
    program_id: card.program.id,
    customer_id: card.membership.customer_id,
    reward_id: req.body.reward?.id ?? null,
    assignment_id: req.body.reward?.assignment_id ?? null,
    membership_id: card.membership.id,
    order: req.body.order ? JSON.stringify(req.body.order) : null,
    metadata: req.body.metadata ? JSON.stringify(req.body.metadata) : null,
  });
}

// ---- prices ----

/** The member's tier (the first tier group that has one) and each reward's tier mapping. */
async function tierPricing(db: Executor, services: Services, programId: string, membershipId: string) {
  const tierIds = new Set(await services.tiers.memberTierIds(db, programId, membershipId));
  if (tierIds.size === 0) return { tierId: null, mappingFor: () => null };
  const pt = await services.tiers.programTiers(db, programId);
  const tiers = pt.groups.flatMap((g) => g.tiers.filter((t) => tierIds.has(t.id)));
  const mappings = tiers.map((t) => fromJson<Record<string, RewardMapping>>(t.rewards, {}));
  return {
    tierId: tiers[0]?.id ?? null,
    mappingFor: (a: AssignmentRow): RewardMapping | null => {
      for (const m of mappings) {
        const found = m[a.reward_id] ?? m[a.id];
        if (found) return found;
      }
      return null;
    },
  };
}

function pricedOffer(reward: RewardRow, assignment: AssignmentRow, cost: number | null) {
  return {
    reward: presentReward(reward),
    assignment: presentAssignment(assignment, cost),
  };
}

/** The card a member route names: `memberId` a card code or `v_` id, optionally within a program. */
async function cardOf(db: Executor, services: Services, memberId: string, campaignId?: string, lock = false) {
  const card = await services.ledger.resolveCard(db, memberId, campaignId, { lockBalance: lock });
  if (card && (!lock || card.balance))
    return {
      membership: card.membership,
      program: card.program,
      definition: card.definition,
      customer: card.customer,
      balance: card.balance,
    };
  // Something is missing: look each up for the precise 404 (or the balance row still to create).
  const named = campaignId ? await services.programs.get(db, campaignId) : undefined;
  const membership = await services.members.get(db, memberId, named?.id);
  const program = named ?? (await services.programs.get(db, membership.program_id));
  const definition = await services.programs.defaultDefinition(db, program.id);
  const balance = lock
    ? (await services.ledger.lockBalance(db, { membership, definition, program })).row
    : ((await services.ledger.balancesOf(db, membership.id)).find((b) => b.balance_definition_id === definition.id) ??
      undefined);
  const customer = (await services.customers.find(db, membership.customer_id)) ?? null;
  return { membership, program, definition, customer, balance };
}

/** `GET /v1/loyalties/members/{memberId}/rewards`: what the member can get at their tier's cost; no out of stock. */
export async function memberRewards(
  db: Executor,
  services: Services,
  memberId: string,
  opts: { affordableOnly?: boolean; campaignId?: string },
) {
  const card = await cardOf(db, services, memberId, opts.campaignId);
  const balance = card.balance
    ? Number(card.balance.balance)
    : Number(
        (await services.ledger.balancesOf(db, card.membership.id)).find(
          (b) => b.balance_definition_id === card.definition.id,
        )?.balance ?? 0,
      );
  const pricing = await tierPricing(db, services, card.program.id, card.membership.id);
  const out: { reward: unknown; assignment: unknown; object: 'loyalty_reward' }[] = [];
  for (const { reward, assignment } of await services.rewards.offered(db, card.program.id)) {
    if (!inStock(reward)) continue;
    const cost = costOf(assignment, pricing.mappingFor(assignment));
    if (opts.affordableOnly) {
      const price = cost ?? (reward.type === 'COIN' ? coinUnitCost(reward) : 0);
      if (price > balance) continue;
    }
    out.push({ ...pricedOffer(reward, assignment, cost), object: 'loyalty_reward' });
  }
  return out;
}

/**
 * The `rewards` template variable (messaging context provider): the program's rewards in stock at
 * the member's tier cost, `{cheapest_cost, affordable: [{id, name, cost, ...}], all: [...]}`, so a flow's
 * `balance_gte_cheapest_reward` condition and `{{ rewards.cheapest_cost }}` work. Without a member, the
 * assignments' own costs and nothing affordable. A COIN reward costs its `points_ratio` here (one unit).
 * Nil when the program offers nothing in stock (templates test `{% if rewards %}`, as `tally demo`'s).
 */
export const rewardsTemplateContext =
  (services: Services) => async (input: { db: Executor; program: ProgramRow; membership: MembershipRow | null }) => {
    const { db, program, membership } = input;
    const pricing = membership
      ? await tierPricing(db, services, program.id, membership.id)
      : { tierId: null, mappingFor: () => null };
    let balance: number | null = null;
    if (membership) {
      const definitionId = (await services.programs.withDefault(db, program.id))?.definition.id;
      const rows = await services.ledger.balancesOf(db, membership.id);
      balance = Number(rows.find((b) => b.balance_definition_id === definitionId)?.balance ?? 0);
    }
    const all = (await services.rewards.offered(db, program.id))
      .filter(({ reward }) => inStock(reward))
      .map(({ reward, assignment }) => ({
        id: reward.id,
        name: reward.name,
        type: reward.type,
        assignment_id: assignment.id,
        cost: costOf(assignment, pricing.mappingFor(assignment)) ?? coinUnitCost(reward),
        stock: reward.stock === null ? null : Number(reward.stock) - Number(reward.redeemed),
        description: (presentReward(reward).attributes.description as string | null) ?? null,
      }))
      .sort((a, b) => a.cost - b.cost);
    if (all.length === 0) return null;
    return {
      cheapest_cost: all.length ? all[0].cost : null,
      affordable: all.filter((r) => balance !== null && r.cost <= balance),
      all,
    };
  };

/** A COIN reward is affordable when the balance buys at least one unit. */
function coinUnitCost(reward: RewardRow): number {
  const p = rewardParameters(reward);
  return 'coin' in p ? p.coin.points_ratio : 0;
}

/** `GET /v1/loyalties/{campaignId}/tiers/{tierId}/rewards`: the program's rewards at this tier's cost. */
export async function tierRewards(db: Executor, services: Services, campaignId: string, tierId: string) {
  const program = await services.programs.get(db, campaignId);
  const tier = await services.tiers.getTier(db, program, tierId);
  const mapping = fromJson<Record<string, RewardMapping>>(tier.rewards, {});
  return (await services.rewards.offered(db, program.id)).map(({ reward, assignment }) => ({
    ...pricedOffer(reward, assignment, costOf(assignment, mapping[assignment.reward_id] ?? mapping[assignment.id])),
    object: 'loyalty_tier_reward' as const,
  }));
}

// ---- redeem ----

const pointsExceeded = (details: string) =>
  invalid('loyalty_card_points_exceeded', 'loyalty card points exceeded', details);

export async function redeemReward(
  trx: Executor,
  services: Services,
  req: { memberId: string; campaignId?: string; body: RedeemInput; now: string; id?: string },
): Promise<Record<string, unknown>> {
  const { body } = req;
  if (!body.reward?.id && !body.reward?.assignment_id)
    throw invalid('missing_reward', 'Missing reward', 'A reward is required when redeeming a LOYALTY_CARD', [
      { field: 'reward', message: 'is required' },
    ]);
  const card = await cardOf(trx, services, req.memberId, req.campaignId, true);
  try {
    return await redeemOnCard(trx, services, { ...req, body: { ...body, reward: body.reward } }, card);
  } catch (err) {
    // A refusal once the card is known is kept as a FAILURE record (recordRedeemRefusal); a request
    // malformed in a field (an error naming its fields) was no attempt and leaves none.
    if (err instanceof DomainError && !err.fields?.length) failures.set(err, failureRecord(card, req, err));
    throw err;
  }
}

async function redeemOnCard(
  trx: Executor,
  services: Services,
  req: { body: RedeemInput & { reward: NonNullable<RedeemInput['reward']> }; now: string; id?: string },
  card: Awaited<ReturnType<typeof cardOf>>,
): Promise<Record<string, unknown>> {
  const { body } = req;
  const { membership, program, definition } = card;
  const balanceRow = card.balance as BalanceRow;
  const customer = card.customer as CustomerRow;
  const balance = Number(balanceRow.balance);

  let reward: RewardRow;
  let assignment: AssignmentRow | undefined;
  if (body.reward.assignment_id) {
    assignment = await services.rewards.getAssignment(trx, body.reward.assignment_id, { programId: program.id });
    reward = await services.rewards.get(trx, assignment.reward_id);
    if (body.reward.id && body.reward.id !== reward.id)
      throw invalid(
        'invalid_reward',
        'Invalid reward',
        `Assignment ${assignment.id} is of reward ${reward.id}, not ${body.reward.id}`,
      );
  } else {
    const found = await services.rewards.rewardIn(trx, body.reward.id!, program.id);
    if (!found) throw notFound('reward', body.reward.id!);
    ({ reward, assignment } = found);
  }
  if (!assignment)
    throw invalid(
      'reward_not_assigned',
      'Reward not assigned',
      `Reward ${reward.id} is not assigned to loyalty campaign ${program.id}`,
      [{ field: 'reward.id', message: 'is not a reward of this loyalty campaign' }],
    );

  // ---- price ----
  const parameters = rewardParameters(reward);
  const pricing = await tierPricing(trx, services, program.id, membership.id);
  const asked = body.reward.points;
  let cost: number;
  let orderAnswer: Record<string, unknown> | null = null;
  if ('coin' in parameters) {
    const amount = body.order?.amount;
    if (!body.order || amount === undefined || amount === null || amount <= 0)
      throw invalid('missing_order', 'Missing order', 'An order with an amount is required when paying with points', [
        { field: 'order.amount', message: 'is required (cents, > 0)' },
      ]);
    if (asked !== undefined && asked > balance)
      throw pointsExceeded(`${asked} points asked; the card ${membership.code} has ${balance}`);
    const quote = coinQuote(parameters.coin, amount, { points: asked, balance });
    if (quote === 'points_below_ratio')
      throw invalid(
        'invalid_points',
        'Invalid points',
        `reward.points must be at least ${parameters.coin.points_ratio} (points_ratio) to pay anything`,
        [{ field: 'reward.points', message: `must be at least ${parameters.coin.points_ratio}` }],
      );
    if (quote === 'balance_below_ratio')
      throw pointsExceeded(
        `The card ${membership.code} has ${balance} points; ${parameters.coin.points_ratio} pay the smallest part`,
      );
    cost = quote.points;
    const { items, metadata, ...order } = body.order;
    orderAnswer = {
      ...order,
      id: order.id ?? null,
      source_id: order.source_id ?? null,
      status: order.status ?? 'PAID',
      amount,
      discount_amount: quote.discount,
      total_discount_amount: quote.discount,
      applied_discount_amount: quote.discount,
      total_applied_discount_amount: quote.discount,
      total_amount: amount - quote.discount,
      items: items ?? [],
      metadata: metadata ?? {},
      customer_id: customer?.id ?? membership.customer_id,
      object: 'order',
    };
  } else {
    cost = costOf(assignment, pricing.mappingFor(assignment)) ?? 0;
    if (asked !== undefined && asked !== cost)
      throw invalid(
        'invalid_points',
        'Invalid points',
        `Reward ${reward.id} costs ${cost} points for this member; reward.points is for COIN rewards`,
        [{ field: 'reward.points', message: `must be ${cost} or absent` }],
      );
    if (cost > balance)
      throw pointsExceeded(`Reward ${reward.id} costs ${cost} points; the card ${membership.code} has ${balance}`);
  }

  // ---- stock ----
  if (!(await services.rewards.takeStock(trx, reward)))
    throw refused('reward_out_of_stock', 'Reward out of stock', `Reward ${reward.id} has no stock left`);
  if (reward.stock !== null) reward = { ...reward, redeemed: Number(reward.redeemed) + 1 };

  // ---- points ----
  // A caller-chosen id (a redemption by message: one per inbound message) makes a second run fail
  // on the redemptions table's primary key, rolling all of it back.
  const id = req.id ?? newId('r');
  const now = req.now;
  // The card after the debit, as Voucherify answers it (`loyalty_card{points, balance}`).
  let after = balanceRow;
  // The lots the debit took: a rollback gives the points back to them, with their own expiry dates.
  let spentLots: SpentLot[] | undefined;
  if (cost > 0) {
    const change = await services.ledger.applyChange(trx, {
      program,
      membership,
      definition,
      customer,
      locked_balance: balanceRow,
      points: -cost,
      type: 'POINTS_REDEMPTION',
      reason: null,
      source: null,
      operation_type: 'MANUAL',
      spend_only: true,
      details: {
        redemption: { id },
        reward: { id: reward.id, name: reward.name },
        ...(orderAnswer ? { order: { id: orderAnswer.id, source_id: orderAnswer.source_id } } : {}),
      },
      source_event_id: id,
    });
    after = change.balance;
    spentLots = change.spent_lots;
  }

  // ---- what the reward issues ----
  const rewardAnswer: Record<string, unknown> = {
    ...presentReward(reward),
    assignment_id: assignment.id,
    loyalty_tier_id: pricing.tierId,
    customer: customer ? presentCustomerRef(customer) : null,
  };
  if ('campaign' in parameters) {
    const c = parameters.campaign;
    if (c.type === 'LOYALTY_PROGRAM') {
      const target = await issuePoints(trx, services, { customer, reward, points: c.balance ?? 0, id });
      rewardAnswer.voucher = await services.members.presentOne(trx, target.membership, target.program);
    } else if (c.type === 'DISCOUNT_COUPONS') {
      const voucher = await services.vouchers.issue(trx, {
        campaignId: c.id,
        customerId: membership.customer_id,
        sourceEventId: id,
        offer: offerOf(reward),
        programId: program.id,
        programRef: programRef(program),
      });
      rewardAnswer.voucher = presentVoucher(voucher);
    } else {
      const gift = await services.vouchers.addGiftBalance(trx, {
        campaignId: c.id,
        customerId: membership.customer_id,
        amount: c.balance ?? 0,
        sourceEventId: id,
      });
      rewardAnswer.voucher = presentVoucher(gift);
    }
  } else if ('product' in parameters) {
    rewardAnswer.product = { id: parameters.product.id, object: 'product' };
    rewardAnswer.sku = parameters.product.sku_id ? { id: parameters.product.sku_id, object: 'sku' } : null;
  }

  const answer = {
    id,
    object: 'redemption' as const,
    date: now,
    customer_id: membership.customer_id,
    tracking_id: null,
    metadata: body.metadata ?? null,
    amount: cost,
    result: 'SUCCESS' as const,
    status: 'SUCCEEDED' as const,
    order: orderAnswer,
    channel: { channel_id: null, channel_type: 'API' as const },
    customer: customer ? presentCustomerRef(customer) : null,
    related_object_type: 'voucher' as const,
    related_object_id: membership.id,
    voucher: {
      ...presentMember(membership, program, {} as CardSummary),
      loyalty_card: { points: Number(after.points), balance: Number(after.balance) },
    },
    reward: rewardAnswer,
    loyalty_card: { points: cost },
  };
  // The answer's own parts are the row's `details`: GET /v1/redemptions/{id} shows them again, and
  // the rollback reads what was issued from them (`reward.voucher`, `reward.parameters`).
  const { id: _id, object: _o, date: _d, customer_id: _c, tracking_id: _t, metadata: _m, ...parts } = answer;
  const { amount: _a, result: _r, status: _s, order: _or, channel: _ch, ...details } = parts;
  await services.vouchers.recordRedemption(trx, {
    id,
    kind: 'reward',
    voucher_id: null,
    voucher_code: null,
    campaign_id: null,
    program_id: program.id,
    customer_id: membership.customer_id,
    reward_id: reward.id,
    assignment_id: assignment.id,
    membership_id: membership.id,
    points: cost,
    amount: cost,
    order: orderAnswer ? JSON.stringify(orderAnswer) : null,
    metadata: body.metadata ? JSON.stringify(body.metadata) : null,
    tracking_id: null,
    details: JSON.stringify(details),
    result: 'SUCCESS',
    status: 'SUCCEEDED',
    rollback_id: null,
    rollback_reason: null,
    rolled_back_at: null,
    spent_lots: spentLots ? JSON.stringify(spentLots) : null,
    created_at: now,
  });
  return answer;
}

/** Adds a LOYALTY_PROGRAM reward's points to the customer's card of that program (joining it if needed). */
async function issuePoints(
  trx: Executor,
  services: Services,
  a: { customer: CustomerRow; reward: RewardRow; points: number; id: string },
): Promise<{ membership: MembershipRow; program: ProgramRow }> {
  const parameters = rewardParameters(a.reward);
  const targetId = 'campaign' in parameters ? parameters.campaign.id : '';
  const program = await services.programs.get(trx, targetId);
  const membership =
    (await services.members.ofCustomer(trx, a.customer.id, program.id)).find((m) => m.status === 'ACTIVE') ??
    (await joinProgram(trx, services, program, a.customer, { source: 'reward', sourceEventId: a.id }));
  const definition: BalanceDefinitionRow = await services.programs.defaultDefinition(trx, program.id);
  await services.ledger.applyChange(trx, {
    program,
    membership,
    definition,
    customer: a.customer,
    points: a.points,
    type: 'POINTS_ADDITION',
    reason: `Reward ${a.reward.name}`,
    source: 'reward',
    operation_type: 'AUTOMATIC',
    details: { redemption: { id: a.id }, reward: { id: a.reward.id, name: a.reward.name } },
    source_event_id: a.id,
  });
  return { membership, program };
}

// ---- rollback ----

/**
 * Rolls a reward redemption back (called by src/workflows/rollback-redemption.ts, which refuses a
 * second rollback): the points back (POINTS_REFUND with details.rollback.id) into the lots the debit
 * took, with their own expiry dates; the unit of stock back; the issued voucher revoked
 * (voucher_revoked); the gift card value taken back off the card and the points put on another
 * program's card taken back (each refused, and nothing changed, when that value was spent since).
 */
export async function rollbackRewardRedemption(
  trx: Executor,
  services: Services,
  row: RedemptionRow,
  opts: { reason?: string | null },
): Promise<Record<string, unknown>> {
  // What the redemption recorded of the reward (its answer's `reward`: parameters, the issued voucher).
  interface Recorded {
    name?: string;
    customer?: unknown;
    parameters?: { campaign?: { type?: string; balance?: number } };
    voucher?: { id?: string };
  }
  const details = fromJson<{ reward?: Recorded }>(row.details, {});
  const issuedType = details.reward?.parameters?.campaign?.type;
  const rollbackId = newId('rr');
  await services.vouchers.markRolledBack(trx, row.id, rollbackId, opts.reason ?? null);
  const card = await cardOf(trx, services, row.membership_id!, row.program_id ?? undefined, true);
  const reward = row.reward_id ? await services.rewards.find(trx, row.reward_id) : undefined;
  const ref = { id: row.reward_id, name: reward?.name ?? details.reward?.name ?? null };
  const points = Number(row.points ?? 0);
  const spent = fromJson<SpentLot[] | null>(row.spent_lots ?? null, null);
  if (points > 0) {
    await services.ledger.applyChange(trx, {
      program: card.program,
      membership: card.membership,
      definition: card.definition,
      customer: card.customer,
      locked_balance: card.balance,
      points,
      type: 'POINTS_REFUND',
      reason: opts.reason ?? null,
      source: null,
      operation_type: 'MANUAL',
      // The redemption only spent (lifetime points unchanged), so its refund earns nothing either.
      spend_only: true,
      ...(spent?.length ? { restore_lots: spent } : {}),
      details: { rollback: { id: rollbackId }, redemption: { id: row.id }, reward: ref },
      source_event_id: rollbackId,
    });
  }
  // The unit of stock back (a reward without stock counts nothing; `returnStock` keeps redeemed >= 0).
  if (reward && reward.stock !== null) await services.rewards.returnStock(trx, reward.id);
  const issued = details.reward?.voucher;
  if (issuedType === 'DISCOUNT_COUPONS' && issued?.id)
    await services.vouchers.revoke(trx, issued.id, { sourceEventId: rollbackId });
  if (issuedType === 'GIFT_VOUCHERS' && issued?.id) {
    const added = Number(details.reward?.parameters?.campaign?.balance ?? 0);
    if (added > 0) await services.vouchers.takeGiftBalance(trx, issued.id, added, { redemptionId: row.id });
  }
  if (issuedType === 'LOYALTY_PROGRAM' && issued?.id) {
    const given = Number(details.reward?.parameters?.campaign?.balance ?? 0);
    const other = await cardOf(trx, services, issued.id, undefined, true);
    if (given > 0)
      await services.ledger.applyChange(trx, {
        program: other.program,
        membership: other.membership,
        definition: other.definition,
        customer: other.customer,
        locked_balance: other.balance,
        points: -given,
        type: 'POINTS_REMOVAL',
        reason: `Rollback of reward redemption ${row.id}`,
        source: 'reward',
        operation_type: 'AUTOMATIC',
        details: { rollback: { id: rollbackId }, redemption: { id: row.id }, reward: ref },
        source_event_id: rollbackId,
      });
  }
  return {
    ...presentRollback(await services.vouchers.getRedemption(trx, row.id)),
    amount: points,
    related_object_type: 'voucher',
    related_object_id: row.membership_id,
    customer: details.reward?.customer ?? null,
    reward: details.reward ?? null,
    voucher: await services.members.presentOne(trx, card.membership, card.program),
  };
}
