import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../../context.ts';
import { notFound } from '../../lib/errors.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { S } from '../../http/validation.ts';
import type { Services } from '../../services.ts';
import { isUniqueViolation } from '../../storage/database.ts';
import { presentCustomerRef } from '../customers/service.ts';
import { CustomerRef } from '../customers/schemas.ts';
import { MembershipRace } from '../members/service.ts';
import { ingestActivity, presentOrder, recordOrder, type OrderInput } from '../../workflows/ingest-activity.ts';
import type { RuleDefinition } from './evaluate.ts';
import { presentPending, presentRule } from './service.ts';
import { expirationRules } from '../loyalties/routes.ts';

const ratio = {
  type: 'object',
  required: ['every', 'points'],
  properties: {
    every: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    points: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    property: { type: 'string', minLength: 1, maxLength: 200 },
    points_formula: { type: 'string' },
    object: { type: 'string', enum: ['products_collection', 'product', 'sku'] },
    id: { type: 'string' },
    applicable_to: {
      type: 'array',
      items: {
        type: 'object',
        required: ['object', 'id'],
        properties: {
          object: { type: 'string', enum: ['products_collection', 'product', 'sku'] },
          id: { type: 'string' },
        },
      },
    },
  },
};
const loyalty = {
  type: 'object',
  required: ['type'],
  description: 'FIXED {points} or PROPORTIONAL {calculation_type, <ratio at its place>}',
  properties: {
    type: { type: 'string', enum: ['FIXED', 'PROPORTIONAL'] },
    points: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    calculation_type: {
      type: 'string',
      enum: [
        'ORDER_AMOUNT',
        'ORDER_TOTAL_AMOUNT',
        'ORDER_METADATA',
        'ORDER_ITEMS_QUANTITY',
        'ORDER_ITEMS_AMOUNT',
        'CUSTOMER_METADATA',
        'CUSTOM_EVENT_METADATA',
      ],
    },
    order: { type: 'object', properties: { amount: ratio, total_amount: ratio, metadata: ratio } },
    order_items: { type: 'object', properties: { quantity: ratio, amount: ratio } },
    customer: { type: 'object', properties: { metadata: ratio } },
    custom_event: { type: 'object', properties: { metadata: ratio } },
  },
};
const hhmm = { type: 'string', pattern: '^([01]\\d|2[0-3]):[0-5]\\d$' };
const days = { type: ['array', 'null'], items: { type: 'integer', minimum: 0, maximum: 6 }, maxItems: 7 };
const windowProps = {
  start_date: S.dateTime,
  expiration_date: S.dateTime,
  validity_day_of_week: days,
  validity_hours: {
    type: ['object', 'null'],
    required: ['daily'],
    properties: {
      daily: {
        type: 'array',
        maxItems: 20,
        items: {
          type: 'object',
          required: ['start_time', 'expiration_time'],
          properties: { start_time: hhmm, expiration_time: hhmm, days_of_week: days },
        },
      },
    },
  },
  validity_timeframe: {
    type: ['object', 'null'],
    required: ['interval', 'duration'],
    properties: { interval: { type: 'string' }, duration: { type: 'string' } },
  },
};
const ruleProps = {
  event: { type: 'string', minLength: 1, maxLength: 200, description: '`order.paid` or the name of a custom event' },
  loyalty,
  source: {
    type: 'object',
    properties: {
      banner: { type: 'string', maxLength: 500 },
      object_id: { type: 'string' },
      object_type: { type: 'string', enum: ['campaign'] },
    },
  },
  custom_event: { type: ['object', 'null'], properties: { schema_id: { type: 'string' } } },
  loyalty_tier: {
    type: ['object', 'null'],
    required: ['id'],
    properties: { id: { type: 'string', description: 'Tier id, or __ANY__' } },
  },
  pending_points: {
    type: ['object', 'null'],
    required: ['period_type', 'period_value'],
    properties: {
      period_type: { type: 'string', enum: ['DAY'] },
      period_value: { type: 'integer', minimum: 1, maximum: 90 },
    },
  },
  expiration_rules: expirationRules,
  metadata: { type: ['object', 'null'], additionalProperties: true },
  validation_rule_id: S.nullableString,
  active: { type: 'boolean' },
  ...windowProps,
  conditions: {
    type: ['object', 'null'],
    description:
      'Tally: {"customer.metadata.vip": {"$is": true}, "order.amount": {"$more_than_or_equal": 5000}, "loyalty_tier": {"$in": ["ltr_..."]}}',
    additionalProperties: { type: 'object' },
  },
  multipliers: {
    type: ['array', 'null'],
    maxItems: 20,
    description: 'Tally: points × multiplier while the window is open (program time zone)',
    items: {
      type: 'object',
      required: ['multiplier'],
      properties: {
        multiplier: { type: 'number', exclusiveMinimum: 0, maximum: 1000 },
        name: { type: 'string', maxLength: 200 },
        ...windowProps,
      },
    },
  },
  limits: {
    type: ['array', 'null'],
    maxItems: 4,
    description: 'Tally: at most max_points per customer card per period (program time zone)',
    items: {
      type: 'object',
      required: ['period', 'max_points'],
      properties: {
        period: { type: 'string', enum: ['DAY', 'WEEK', 'MONTH', 'FOREVER'] },
        max_points: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
      },
    },
  },
};
const ruleSchema = {
  type: 'object',
  additionalProperties: true,
  properties: { id: { type: 'string' }, object: { type: 'string', enum: ['earning_rule'] } },
};
const pendingSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string' },
    points: { type: 'integer' },
    object: { type: 'string', enum: ['pending_points'] },
  },
};
const campaignParams = S.idParam('campaignId', 'Loyalty campaign id');
const ruleParams = S.pathParams({ campaignId: 'Loyalty campaign id', earningRuleId: 'Earning rule id (ern_...)' });
const memberParams = S.idParam('memberId', 'Card code or v_ id');
const pendingParams = S.pathParams({ memberId: 'Card code or v_ id', pendingPointsId: 'Pending points id (pp_...)' });
const pendingQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 100, default: 10 },
    order: { type: 'string', enum: ['id', '-id', 'created_at', '-created_at'] },
    starting_after_id: { type: 'string' },
  },
};
const pendingList = {
  type: 'object',
  properties: {
    object: { type: 'string' },
    data_ref: { type: 'string' },
    data: { type: 'array', items: pendingSchema },
    has_more: { type: 'boolean' },
    more_starting_after: { type: ['string', 'null'] },
  },
};
const orderItem = {
  type: 'object',
  additionalProperties: true,
  properties: {
    product_id: S.nullableString,
    sku_id: S.nullableString,
    quantity: { type: 'integer', minimum: 0, maximum: 1_000_000_000 },
    amount: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    price: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    collection_ids: { type: 'array', items: { type: 'string' } },
  },
};
const amountInt = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER };
const orderProps = {
  id: { type: 'string', minLength: 1, maxLength: 200 },
  source_id: { type: ['string', 'null'], minLength: 1, maxLength: 200 },
  status: { type: 'string', enum: ['CREATED', 'PAID', 'CANCELED', 'FULFILLED'] },
  amount: amountInt,
  discount_amount: amountInt,
  total_amount: amountInt,
  items: { type: 'array', maxItems: 1000, items: orderItem },
  metadata: { type: ['object', 'null'], additionalProperties: true },
  customer: CustomerRef,
};
const orderSchema = {
  type: 'object',
  additionalProperties: true,
  properties: { id: { type: 'string' }, object: { type: 'string', enum: ['order'] } },
};

/** The lane of an activity's transaction (TransactionOptions): its customer, as the request names it. */
function customerLane(customer: unknown): { lane?: string } {
  if (typeof customer === 'string') return { lane: customer };
  const c = customer as { source_id?: unknown; id?: unknown } | null | undefined;
  const key = typeof c?.source_id === 'string' ? c.source_id : typeof c?.id === 'string' ? c.id : undefined;
  return key === undefined ? {} : { lane: key };
}

interface EventBody {
  event: string;
  customer: string | Record<string, unknown>;
  metadata?: Record<string, unknown> | null;
  loyalty?: { code: string } | null;
  referral?: unknown;
  source_event_id?: string;
}

export function earningRoutes(app: FastifyInstance, ctx: AppContext, services: Services): void {
  const db = () => ctx.database.db;
  const earning = services.earning;

  // ---- earning rules ----

  app.post<{ Params: { campaignId: string }; Body: RuleDefinition[] }>(
    '/v1/loyalties/:campaignId/earning-rules',
    {
      schema: {
        tags: ['earning rules'],
        summary: 'Create earning rules (an array, Voucherify shape plus conditions, multipliers and limits)',
        params: campaignParams,
        body: {
          type: 'array',
          minItems: 1,
          maxItems: 100,
          items: { type: 'object', required: ['event', 'loyalty'], properties: ruleProps },
        },
        response: { 200: { type: 'array', items: ruleSchema } },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const program = await services.programs.get(trx, req.params.campaignId);
        return (await earning.create(trx, program, req.body)).map(presentRule);
      }),
  );

  app.get<{ Params: { campaignId: string }; Querystring: { limit: number; page: number; order?: string } }>(
    '/v1/loyalties/:campaignId/earning-rules',
    {
      schema: {
        tags: ['earning rules'],
        summary: 'List the earning rules of a program',
        params: campaignParams,
        querystring: {
          type: 'object',
          properties: {
            ...S.listQuery,
            order: { type: 'string', enum: ['created_at', '-created_at', 'updated_at', '-updated_at'] },
          },
        },
        response: { 200: listSchema('data', ruleSchema) },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const { rows, total } = await earning.list(db(), program, req.query);
      return listOf('data', rows.map(presentRule), total);
    },
  );

  app.get<{ Params: { campaignId: string; earningRuleId: string } }>(
    '/v1/loyalties/:campaignId/earning-rules/:earningRuleId',
    {
      schema: {
        tags: ['earning rules'],
        summary: 'Get an earning rule',
        params: ruleParams,
        response: { 200: ruleSchema },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      return presentRule(await earning.get(db(), program, req.params.earningRuleId));
    },
  );

  app.put<{ Params: { campaignId: string; earningRuleId: string }; Body: Partial<RuleDefinition> }>(
    '/v1/loyalties/:campaignId/earning-rules/:earningRuleId',
    {
      schema: {
        tags: ['earning rules'],
        summary: 'Update an earning rule (fields given replace; null clears)',
        params: ruleParams,
        body: { type: 'object', properties: ruleProps },
        response: { 200: ruleSchema },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const program = await services.programs.get(trx, req.params.campaignId);
        return presentRule(
          await earning.update(trx, await earning.get(trx, program, req.params.earningRuleId), req.body),
        );
      }),
  );

  app.delete<{ Params: { campaignId: string; earningRuleId: string } }>(
    '/v1/loyalties/:campaignId/earning-rules/:earningRuleId',
    {
      schema: {
        tags: ['earning rules'],
        summary: 'Delete an earning rule',
        params: ruleParams,
        response: { 204: { type: 'null' } },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        const program = await services.programs.get(trx, req.params.campaignId);
        await earning.remove(trx, await earning.get(trx, program, req.params.earningRuleId));
      }),
  );

  for (const action of ['enable', 'disable'] as const) {
    app.post<{ Params: { campaignId: string; earningRuleId: string } }>(
      `/v1/loyalties/:campaignId/earning-rules/:earningRuleId/${action}`,
      {
        schema: {
          tags: ['earning rules'],
          summary: `${action === 'enable' ? 'Enable' : 'Disable'} an earning rule`,
          params: ruleParams,
          response: { 200: ruleSchema },
        },
      },
      async (req, reply) =>
        runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
          const program = await services.programs.get(trx, req.params.campaignId);
          return presentRule(
            await earning.setActive(
              trx,
              await earning.get(trx, program, req.params.earningRuleId),
              action === 'enable',
            ),
          );
        }),
    );
  }

  // ---- custom events ----

  app.post<{ Body: EventBody }>(
    '/v1/events',
    {
      schema: {
        tags: ['events'],
        summary:
          'Track a custom event: earning rules listening to it credit the customer (idempotent by source_event_id or Idempotency-Key)',
        body: {
          type: 'object',
          required: ['event', 'customer'],
          properties: {
            event: { type: 'string', minLength: 1, maxLength: 200 },
            customer: CustomerRef,
            metadata: { type: ['object', 'null'], additionalProperties: true },
            loyalty: {
              type: ['object', 'null'],
              required: ['code'],
              properties: { code: { type: 'string', minLength: 1, maxLength: 200 } },
            },
            referral: { type: ['object', 'null'] },
            source_event_id: {
              type: 'string',
              minLength: 1,
              maxLength: 255,
              description: 'Your id of the event: the same id twice earns once',
            },
          },
        },
        headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', maxLength: 255 } } },
        response: {
          200: {
            type: 'object',
            additionalProperties: true,
            properties: { object: { type: 'string', enum: ['event'] }, type: { type: 'string' } },
          },
        },
      },
      config: { idempotency: 'replay-on-conflict' },
    },
    async (req: FastifyRequest<{ Body: EventBody }>, reply: FastifyReply) => {
      const b = req.body;
      const run = () =>
        runIdempotentWrite(
          ctx,
          req,
          reply,
          200,
          async (trx) => {
            const r = await ingestActivity(ctx, trx, services, {
              kind: 'custom_event',
              event: b.event,
              customer: b.customer as never,
              metadata: b.metadata ?? {},
              loyaltyCode: b.loyalty?.code ?? null,
              sourceEventId: b.source_event_id ?? null,
            });
            return {
              object: 'event' as const,
              id: r.activityId,
              type: b.event,
              customer: presentCustomerRef(r.customer),
              referral: null,
              loyalty: b.loyalty ? { code: b.loyalty.code } : null,
              source_event_id: b.source_event_id ?? null,
              duplicate: r.duplicate,
              earned: r.earned,
            };
          },
          { ...customerLane(b.customer), onRefused: services.ledger.recordRefusal },
        );
      return withRetries(run);
    },
  );

  // ---- orders ----

  const orderWrite =
    (status: 200, mode: 'create' | 'update') =>
    async (req: FastifyRequest<{ Body: OrderInput; Params: { orderId?: string } }>, reply: FastifyReply) =>
      withRetries(() =>
        runIdempotentWrite(
          ctx,
          req,
          reply,
          status,
          async (trx) => {
            const existing = mode === 'update' ? await earning.findOrder(trx, req.params.orderId!) : undefined;
            if (mode === 'update' && !existing) throw notFound('order', req.params.orderId!);
            const { order, ingest } = await recordOrder(ctx, trx, services, req.body, existing);
            return presentOrder(order, ingest?.earned ?? null);
          },
          { ...customerLane((req.body as { customer?: unknown }).customer), onRefused: services.ledger.recordRefusal },
        ),
      );

  app.post(
    '/v1/orders',
    {
      schema: {
        tags: ['orders'],
        summary:
          'Create or update (by source_id) an order; status PAID is the order.paid activity that earning rules listen to',
        body: { type: 'object', properties: orderProps },
        response: { 200: orderSchema },
      },
      config: { idempotency: 'replay-on-conflict' },
    },
    orderWrite(200, 'create') as never,
  );
  app.put(
    '/v1/orders/:orderId',
    {
      schema: {
        tags: ['orders'],
        summary: 'Update an order (e.g. mark it PAID)',
        params: S.idParam('orderId', 'ord_ id or source_id'),
        body: { type: 'object', properties: orderProps },
        response: { 200: orderSchema },
      },
      config: { idempotency: 'replay-on-conflict' },
    },
    orderWrite(200, 'update') as never,
  );
  app.get<{ Params: { orderId: string } }>(
    '/v1/orders/:orderId',
    {
      schema: {
        tags: ['orders'],
        summary: 'Get an order',
        params: S.idParam('orderId', 'ord_ id or source_id'),
        response: { 200: orderSchema },
      },
    },
    async (req) => {
      const found = await earning.findOrder(db(), req.params.orderId);
      if (!found) throw notFound('order', req.params.orderId);
      return presentOrder(found);
    },
  );

  // ---- pending points ----

  type PQ = { limit: number; order?: string; starting_after_id?: string };
  const pendingPage = (page: Awaited<ReturnType<typeof earning.listPending>>) => ({
    object: 'list',
    data_ref: 'data',
    data: page.data.map(presentPending),
    has_more: page.has_more,
    more_starting_after: page.more_starting_after,
  });
  app.get<{ Params: { campaignId: string }; Querystring: PQ }>(
    '/v1/loyalties/:campaignId/pending-points',
    {
      schema: {
        tags: ['pending points'],
        summary: 'List the pending points of a program',
        params: campaignParams,
        querystring: pendingQuery,
        response: { 200: pendingList },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      return pendingPage(await earning.listPending(db(), { programId: program.id }, req.query));
    },
  );
  const memberPending = async (
    req: FastifyRequest<{ Params: { campaignId?: string; memberId: string }; Querystring: PQ }>,
  ) => {
    const program = req.params.campaignId ? await services.programs.get(db(), req.params.campaignId) : undefined;
    const m = await services.members.get(db(), req.params.memberId, program?.id);
    return pendingPage(await earning.listPending(db(), { membershipId: m.id }, req.query));
  };
  app.get(
    '/v1/loyalties/members/:memberId/pending-points',
    {
      schema: {
        tags: ['pending points'],
        summary: 'List the pending points of a card',
        params: memberParams,
        querystring: pendingQuery,
        response: { 200: pendingList },
      },
    },
    memberPending as never,
  );
  app.get(
    '/v1/loyalties/:campaignId/members/:memberId/pending-points',
    {
      schema: {
        tags: ['pending points'],
        summary: 'List the pending points of a card',
        params: S.pathParams({ campaignId: 'Loyalty campaign id', memberId: 'Card code or v_ id' }),
        querystring: pendingQuery,
        response: { 200: pendingList },
      },
    },
    memberPending as never,
  );

  app.post<{ Params: { memberId: string; pendingPointsId: string } }>(
    '/v1/loyalties/members/:memberId/pending-points/:pendingPointsId/activate',
    {
      schema: { tags: ['pending points'], summary: 'Activate pending points now', params: pendingParams },
      config: { idempotency: 'replay-on-conflict' },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const m = await services.members.get(trx, req.params.memberId);
        await earning.getPending(trx, m, req.params.pendingPointsId);
        const r = await earning.activatePending(trx, req.params.pendingPointsId, { manual: true });
        return { ...r!.answer, operation_type: 'MANUAL' as const };
      }),
  );
  app.post<{ Params: { memberId: string; pendingPointsId: string } }>(
    '/v1/loyalties/members/:memberId/pending-points/:pendingPointsId/cancel',
    {
      schema: {
        tags: ['pending points'],
        summary: 'Cancel pending points',
        params: pendingParams,
        response: { 204: { type: 'null' } },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        const m = await services.members.get(trx, req.params.memberId);
        await earning.cancelPending(trx, m, req.params.pendingPointsId);
      }),
  );
  app.post<{ Params: { memberId: string; pendingPointsId: string }; Body: { points: number } }>(
    '/v1/loyalties/members/:memberId/pending-points/:pendingPointsId/balance',
    {
      schema: {
        tags: ['pending points'],
        summary: 'Add to or subtract from pending points',
        params: pendingParams,
        body: {
          type: 'object',
          required: ['points'],
          properties: {
            points: {
              type: 'integer',
              minimum: -Number.MAX_SAFE_INTEGER,
              maximum: Number.MAX_SAFE_INTEGER,
              not: { const: 0 },
            },
          },
        },
      },
      config: { idempotency: 'replay-on-conflict' },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const m = await services.members.get(trx, req.params.memberId);
        return earning.adjustPending(trx, m, req.params.pendingPointsId, req.body.points);
      }),
  );
}

/**
 * A concurrent auto-join of the same customer, or a concurrent ingestion of the same activity
 * (its key's insert, sent just before the commit on PostgreSQL, meets a unique violation there) rolls back;
 * trying again sees the new card, or answers the first ingestion's result. (Limit refusals leave
 * their event through runIdempotentWrite's onRefused.)
 */
async function withRetries<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if ((err instanceof MembershipRace || isUniqueViolation(err)) && attempt < 5) continue;
      throw err;
    }
  }
}
