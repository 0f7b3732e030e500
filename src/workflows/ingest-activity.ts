import type { AppContext } from '../context.ts';
import { invalid, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { fromJson, toJson } from '../lib/json.ts';
import type { Executor } from '../storage/database.ts';
import { hot, writeAtCommit } from '../storage/hot.ts';
import { lostRaceOn } from '../storage/race.ts';
import type { WorkflowServices } from './services.ts';
import type { CustomerRow } from '../modules/customers/service.ts';
import type { OrderInput } from '../modules/earning/schemas.ts';
import type { EarnedSummary, OrderRow } from '../modules/earning/service.ts';
import type { ActivityFacts, OrderItem } from '../modules/earning/evaluate.ts';
import type { ProgramRow } from '../modules/loyalties/service.ts';
import type { MembershipRow } from '../modules/members/service.ts';
import type { CustomerRef } from '../modules/customers/schemas.ts';
import { joinProgram, resolveCustomer } from './join-program.ts';

// Workflow "ingest an activity" (a custom event, or an order that became PAID): in one transaction,
//   1. look up the activity's key (source_event_id, or the order id): a duplicate returns the first answer;
//   2. find or create the customer;
//   3. find the programs with enabled rules for the event, and the customer's card in each: its own,
//      else the household card it shares as a member contact (joining the program on first sight
//      where it auto-joins);
//   4. evaluate the rules and accrue (or hold pending) the points per card;
//   5. record the key with the answer (a concurrent duplicate that committed first makes this
//      transaction roll back; its retry answers the first result).

export interface IngestResult {
  activityId: string;
  duplicate: boolean;
  customer: CustomerRow;
  earned: EarnedSummary;
}

export interface ActivityInput {
  kind: 'custom_event' | 'order';
  event: string;
  customer: CustomerRef | CustomerRow;
  metadata: Record<string, unknown>;
  loyaltyCode?: string | null;
  sourceEventId?: string | null;
  order?: OrderRow;
}

function isRow(c: ActivityInput['customer']): c is CustomerRow {
  return typeof c === 'object' && c !== null && 'created_at' in c && typeof (c as CustomerRow).id === 'string';
}

/**
 * Finds the customer, creating it on first sight; details beyond source_id update it. Two requests
 * creating the same customer at once: the loser's transaction is run again (LostRace).
 */
export async function findOrCreateCustomer(
  trx: Executor,
  services: WorkflowServices,
  ref: CustomerRef,
): Promise<CustomerRow> {
  try {
    return await findOrCreate(trx, services, ref);
  } catch (err) {
    lostRaceOn(err);
  }
}

async function findOrCreate(trx: Executor, services: WorkflowServices, ref: CustomerRef): Promise<CustomerRow> {
  if (typeof ref === 'string') {
    const found = await services.customers.find(trx, ref);
    if (found) return found;
    if (ref.startsWith('cust_')) return services.customers.get(trx, ref);
    return (await services.customers.upsert(trx, { source_id: ref })).row;
  }
  const sourceId = sourceIdOnly(ref);
  if (sourceId) {
    // The hot path: a customer named by source_id only is read, not rewritten.
    const found = await services.customers.find(trx, sourceId);
    if (found) return found;
  }
  return resolveCustomer(trx, services, ref);
}

/** The source_id of a reference that gives nothing else (the customer is read, not rewritten). */
function sourceIdOnly(ref: Exclude<CustomerRef, string>): string | null {
  if (!ref.source_id) return null;
  for (const [k, v] of Object.entries(ref)) if (k !== 'source_id' && v !== undefined) return null;
  return ref.source_id;
}

/** The activity's customer, with its cards when the lookup brought them along (the common case). */
async function activityCustomer(
  trx: Executor,
  services: WorkflowServices,
  ref: ActivityInput['customer'],
): Promise<{ customer: CustomerRow; cards?: MembershipRow[] }> {
  if (isRow(ref)) return { customer: ref };
  const sourceId = typeof ref === 'string' ? null : sourceIdOnly(ref);
  const found = sourceId ? await services.members.customerWithCards(trx, sourceId) : undefined;
  return found ?? { customer: await findOrCreateCustomer(trx, services, ref) };
}

/** The cards the customer holds, then those it shares as a member contact (a household's). */
async function cardsOf(trx: Executor, services: WorkflowServices, customer: CustomerRow): Promise<MembershipRow[]> {
  const own = await services.members.ofCustomer(trx, customer.id);
  return [...own, ...(await services.households.sharedCards(trx, customer.id))];
}

export async function ingestActivity(
  ctx: AppContext,
  trx: Executor,
  services: WorkflowServices,
  input: ActivityInput,
): Promise<IngestResult> {
  const activityId = input.kind === 'order' ? input.order!.id : newId('cev');
  const key =
    input.kind === 'order'
      ? `order.paid:${input.order!.id}`
      : input.sourceEventId
        ? `event:${input.sourceEventId}`
        : null;
  if (key) {
    const [prior] = await hot(trx, 'activities.find', [key], () =>
      trx.selectFrom('processed_activities').selectAll().where('key', '=', key),
    );
    if (prior) {
      const customer = prior.customer_id
        ? await services.customers.get(trx, prior.customer_id)
        : isRow(input.customer)
          ? input.customer
          : await findOrCreateCustomer(trx, services, input.customer);
      return {
        activityId: prior.id,
        duplicate: true,
        customer,
        earned: fromJson<EarnedSummary>(prior.result, { points: 0, pending_points: 0, accruals: [], skipped: [] }),
      };
    }
  }

  const { customer, cards: customerCards } = await activityCustomer(trx, services, input.customer);
  const earned: EarnedSummary = { points: 0, pending_points: 0, accruals: [], skipped: [] };
  const rulesByProgram = await services.earning.rulesFor(trx, input.event);

  if (rulesByProgram.size > 0 || input.loyaltyCode) {
    // The cards to credit: the one named, or the customer's card in every program listening.
    let cards: MembershipRow[];
    if (input.loyaltyCode) {
      const card = await services.members.get(trx, input.loyaltyCode);
      if (card.customer_id !== customer.id && !(await services.households.isContact(trx, card.id, customer.id))) {
        throw invalid(
          'loyalty_card_holder_mismatch',
          'Loyalty card belongs to another customer',
          `Loyalty card ${input.loyaltyCode} is not held by customer ${customer.id}`,
          [{ field: 'loyalty.code', message: 'not held by this customer' }],
        );
      }
      cards = rulesByProgram.has(card.program_id) ? [card] : [];
    } else if (rulesByProgram.size > 0) {
      cards = (customerCards ?? (await cardsOf(trx, services, customer))).filter(
        (c) => c.status === 'ACTIVE' && rulesByProgram.has(c.program_id),
      );
    } else cards = [];

    const programIds = input.loyaltyCode ? cards.map((c) => c.program_id) : [...rulesByProgram.keys()];
    if (programIds.length > 0) {
      const nowMs = ctx.clock.nowMs();
      const live = (p: ProgramRow) =>
        p.active === 1 &&
        (!p.start_date || Date.parse(p.start_date) <= nowMs) &&
        (!p.expiration_date || Date.parse(p.expiration_date) > nowMs);
      const cardOf = new Map<string, MembershipRow>();
      for (const c of cards) if (!cardOf.has(c.program_id)) cardOf.set(c.program_id, c);

      const facts: ActivityFacts = {
        event: input.event,
        metadata: input.metadata,
        customer: {
          id: customer.id,
          source_id: customer.source_id,
          metadata: fromJson<Record<string, unknown>>(customer.metadata, {}),
        },
        tierIds: [],
        ...(input.order ? { order: orderFacts(input.order) } : {}),
      };
      const activityRef = {
        id: activityId,
        source_event_id: input.sourceEventId ?? null,
        event: {
          id: activityId,
          type: input.kind === 'order' ? 'customer.order.paid' : input.event,
          ...(input.kind === 'custom_event' ? { metadata: input.metadata } : {}),
          source_event_id: input.sourceEventId ?? null,
        },
        ...(input.order
          ? {
              order: {
                id: input.order.id,
                source_id: input.order.source_id,
                amount: input.order.amount,
                total_amount: input.order.total_amount,
                status: input.order.status,
              },
              order_id: input.order.id,
            }
          : {}),
      };

      for (const programId of programIds) {
        // Cached per process (see ProgramService.withDefault): no query per event.
        const found = await services.programs.withDefault(trx, programId);
        if (!found || !live(found.program)) continue;
        const { program, definition } = found;
        let card = cardOf.get(program.id);
        if (!card) {
          if (program.auto_join !== 1) continue;
          card = await joinProgram(trx, services, program, customer, {
            source: 'auto-join',
            sourceEventId: input.sourceEventId ?? activityId,
          });
        }
        const tierIds = await services.tiers.memberTierIds(trx, program.id, card.id);
        // The tier mappings (earning never calls tiers): only when the member holds a tier.
        const tiers = tierIds.length > 0 ? await services.tiers.programTiers(trx, program.id) : null;
        // A member contact earns into the shared card; the card's events name its holder.
        const holder =
          card.customer_id === customer.id ? customer : await services.customers.get(trx, card.customer_id);
        const { accruals, skipped } = await services.earning.accrue(
          trx,
          { program, membership: card, definition, holder, tiers },
          rulesByProgram.get(program.id) ?? [],
          { ...facts, tierIds },
          activityRef,
        );
        for (const a of accruals) {
          if (a.status === 'PENDING') earned.pending_points += a.points;
          else earned.points += a.points;
        }
        earned.accruals.push(...accruals);
        earned.skipped.push(...skipped);
      }
    }
  }

  if (key) {
    // The key is recorded with the answer, in the same transaction as the points (with its last
    // writes, just before the commit on PostgreSQL: writeAtCommit). The same activity ingested at once by
    // another transaction that committed first: the key is taken, this transaction rolls back with
    // a unique violation and its retry (retryOnLostRace) answers the first one's result.
    const processed = {
      key,
      id: activityId,
      kind: input.kind,
      customer_id: customer.id,
      result: JSON.stringify(earned),
      created_at: ctx.clock.nowIso(),
    };
    try {
      await writeAtCommit(trx, [
        {
          key: 'activities.record',
          params: Object.values(processed),
          build: () => trx.insertInto('processed_activities').values(processed),
        },
      ]);
    } catch (err) {
      lostRaceOn(err);
    }
  }
  return { activityId, duplicate: false, customer, earned };
}

function orderFacts(o: OrderRow): NonNullable<ActivityFacts['order']> {
  return {
    id: o.id,
    source_id: o.source_id,
    amount: o.amount === null ? null : Number(o.amount),
    total_amount: o.total_amount === null ? null : Number(o.total_amount),
    discount_amount: o.discount_amount === null ? null : Number(o.discount_amount),
    items: fromJson<OrderItem[]>(o.items, []),
    metadata: fromJson<Record<string, unknown>>(o.metadata, {}),
    status: o.status,
  };
}

// ---- orders ----

/** Creates or updates an order; when it becomes PAID, its `order.paid` activity is ingested (once per order). */
export async function recordOrder(
  ctx: AppContext,
  trx: Executor,
  services: WorkflowServices,
  input: OrderInput,
  existing?: OrderRow,
): Promise<{ order: OrderRow; ingest: IngestResult | null }> {
  const now = ctx.clock.nowIso();
  let prior = existing;
  if (!prior && (input.id || input.source_id))
    prior = await services.earning.findOrder(trx, (input.id ?? input.source_id)!);
  if (!prior && input.id && !input.source_id && input.id.startsWith('ord_')) throw notFound('order', input.id);
  let customer: CustomerRow | null = null;
  if (input.customer) customer = await findOrCreateCustomer(trx, services, input.customer);
  else if (prior?.customer_id) customer = (await services.customers.find(trx, prior.customer_id)) ?? null;
  const items = input.items ?? (prior ? fromJson<OrderItem[]>(prior.items, []) : []);
  const itemsAmount = items.reduce(
    (s, i) => s + (typeof i.amount === 'number' ? i.amount : (i.price ?? 0) * (i.quantity ?? 1)),
    0,
  );
  const amount = input.amount ?? (input.items ? itemsAmount : (prior?.amount ?? itemsAmount));
  const discount = input.discount_amount ?? prior?.discount_amount ?? null;
  const total =
    input.total_amount ??
    (input.amount !== undefined || input.discount_amount !== undefined || input.items
      ? Number(amount) - Number(discount ?? 0)
      : (prior?.total_amount ?? Number(amount) - Number(discount ?? 0)));
  const status = input.status ?? prior?.status ?? 'CREATED';
  const becamePaid = status === 'PAID' && prior?.status !== 'PAID' && !prior?.paid_at;
  const row: OrderRow = {
    id: prior?.id ?? newId('ord'),
    source_id: input.source_id ?? prior?.source_id ?? (input.id && !input.id.startsWith('ord_') ? input.id : null),
    customer_id: customer?.id ?? null,
    status,
    amount: Number(amount),
    discount_amount: discount === null ? null : Number(discount),
    total_amount: Number(total),
    items: toJson(items),
    metadata: toJson(input.metadata ?? fromJson(prior?.metadata, {})),
    created_at: prior?.created_at ?? now,
    updated_at: prior ? now : null,
    paid_at: prior?.paid_at ?? (becamePaid ? now : null),
  };
  await services.earning.saveOrder(trx, row, prior);
  let ingest: IngestResult | null = null;
  if (becamePaid && customer) {
    ingest = await ingestActivity(ctx, trx, services, {
      kind: 'order',
      event: 'order.paid',
      customer,
      metadata: fromJson(row.metadata, {}),
      order: row,
      sourceEventId: row.source_id ?? row.id,
    });
  }
  return { order: row, ingest };
}
