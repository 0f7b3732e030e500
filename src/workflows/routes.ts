import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../context.ts';
import { notFound } from '../lib/errors.ts';
import { runIdempotentWrite } from '../http/idempotency.ts';
import { typed } from '../http/schema.ts';
import type { Services } from '../services.ts';
import { isUniqueViolation } from '../storage/database.ts';
import { retryOnLostRace } from '../storage/race.ts';
import { presentCustomerRef } from '../modules/customers/service.ts';
import {
  EventAnswer,
  EventBody,
  EventHeaders,
  Order,
  OrderBody,
  type OrderInput,
  OrderParams,
} from '../modules/earning/schemas.ts';
import { presentOrder } from '../modules/earning/service.ts';
import { AddMemberBody, CampaignParams, Member } from '../modules/members/schemas.ts';
import type { Workflows } from './index.ts';
import { householdRoutes } from './household-routes.ts';
import { referralWorkflowRoutes } from './referral-routes.ts';
import { convertByEvent } from './referrals.ts';
import { importMembersRoute } from './import-members.ts';
import { rewardWorkflowRoutes } from './reward-routes.ts';
import { rollbackRedemptionRoutes } from './rollback-redemption.ts';

// The routes whose action spans modules: each runs one workflow in one transaction. Their request
// and answer schemas belong to the module whose resource they create (members, earning); the
// modules' own routes never call workflows.

/** The lane of an activity's transaction (TransactionOptions): its customer, as the request names it. */
function customerLane(customer: unknown): { lane?: string } {
  if (typeof customer === 'string') return { lane: customer };
  const c = customer as { source_id?: unknown; id?: unknown } | null | undefined;
  const key = typeof c?.source_id === 'string' ? c.source_id : typeof c?.id === 'string' ? c.id : undefined;
  return key === undefined ? {} : { lane: key };
}

/**
 * A concurrent auto-join of the same customer, or a concurrent ingestion of the same activity
 * (its key's insert, sent just before the commit on PostgreSQL, meets a unique violation there:
 * a LostRace that only shows at COMMIT) rolls back; trying again sees the new card, or answers the
 * first ingestion's result. (Limit refusals leave their event through runIdempotentWrite's onRefused.)
 */
const ingestRetries = <T>(fn: () => Promise<T>): Promise<T> => retryOnLostRace(fn, 5, isUniqueViolation);

export function workflowRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services, workflows: Workflows) {
  const app = typed(fastify);
  rollbackRedemptionRoutes(fastify, ctx, services);
  rewardWorkflowRoutes(fastify, ctx, services);
  householdRoutes(fastify, ctx, services, workflows);
  referralWorkflowRoutes(fastify, ctx, services);
  importMembersRoute(fastify, ctx, services, workflows);

  // ---- members: joining a program ----

  app.post(
    '/v1/loyalties/:campaignId/members',
    {
      schema: {
        tags: ['members'],
        summary: 'Add a member: issue a loyalty card to a customer (created on the fly from its details)',
        params: CampaignParams,
        body: AddMemberBody,
        response: { 200: Member },
      },
    },
    async (req, reply) =>
      // A collision on a generated code or a concurrent join of a join-once program loses its race
      // (LostRace); running again finds the new state (a fresh code, or "already joined").
      retryOnLostRace(() =>
        runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
          const program = await services.programs.get(trx, req.params.campaignId);
          const customer = await workflows.resolveCustomer(trx, req.body.customer);
          const m = await workflows.joinProgram(trx, program, customer, {
            code: req.body.voucher,
            metadata: req.body.metadata,
            source: req.body.channel,
            loyaltySubscriptionId: req.body.loyalty_subscription_id,
            createdAt: req.body.created_at,
          });
          return services.members.presentOne(trx, m, program);
        }),
      ),
  );

  // ---- custom events ----

  app.post(
    '/v1/events',
    {
      schema: {
        tags: ['events'],
        summary:
          'Track a custom event: earning rules listening to it credit the customer ' +
          '(idempotent by source_event_id or Idempotency-Key)',
        body: EventBody,
        headers: EventHeaders,
        response: { 200: EventAnswer },
      },
      config: { idempotency: 'replay-on-conflict' },
    },
    async (req, reply) => {
      const b = req.body;
      const run = () =>
        runIdempotentWrite(
          ctx,
          req,
          reply,
          200,
          async (trx) => {
            const r = await workflows.ingestActivity(trx, {
              kind: 'custom_event',
              event: b.event,
              customer: b.customer,
              metadata: b.metadata ?? {},
              loyaltyCode: b.loyalty?.code ?? null,
              sourceEventId: b.source_event_id ?? null,
            });
            // `referral: {code}`: the referee's conversion when the code's program converts on this
            // event, in this transaction; a retried event (same source_event_id) converts once.
            const referral = b.referral
              ? await convertByEvent(ctx, services, trx, {
                  referral: b.referral,
                  referee: r.customer,
                  event: b.event,
                  eventId: r.activityId,
                  sourceKey: `event:${b.source_event_id ?? r.activityId}`,
                })
              : null;
            return {
              object: 'event' as const,
              id: r.activityId,
              type: b.event,
              customer: presentCustomerRef(r.customer),
              referral,
              loyalty: b.loyalty ? { code: b.loyalty.code } : null,
              source_event_id: b.source_event_id ?? null,
              duplicate: r.duplicate,
              earned: r.earned,
            };
          },
          { ...customerLane(b.customer), onRefused: services.ledger.recordRefusal },
        );
      return ingestRetries(run);
    },
  );

  // ---- orders (a paid order is an activity) ----

  const writeOrder = (req: FastifyRequest, reply: FastifyReply, body: OrderInput, orderId?: string) =>
    ingestRetries(() =>
      runIdempotentWrite(
        ctx,
        req,
        reply,
        200,
        async (trx) => {
          const existing = orderId === undefined ? undefined : await services.earning.findOrder(trx, orderId);
          if (orderId !== undefined && !existing) throw notFound('order', orderId);
          const { order, ingest } = await workflows.recordOrder(trx, body, existing);
          return presentOrder(order, ingest?.earned ?? null);
        },
        { ...customerLane(body.customer), onRefused: services.ledger.recordRefusal },
      ),
    );
  app.post(
    '/v1/orders',
    {
      schema: {
        tags: ['orders'],
        summary:
          'Create or update (by source_id) an order; ' +
          'status PAID is the order.paid activity that earning rules listen to',
        body: OrderBody,
        response: { 200: Order },
      },
      config: { idempotency: 'replay-on-conflict' },
    },
    async (req, reply) => writeOrder(req, reply, req.body),
  );
  app.put(
    '/v1/orders/:orderId',
    {
      schema: {
        tags: ['orders'],
        summary: 'Update an order (e.g. mark it PAID)',
        params: OrderParams,
        body: OrderBody,
        response: { 200: Order },
      },
      config: { idempotency: 'replay-on-conflict' },
    },
    async (req, reply) => writeOrder(req, reply, req.body, req.params.orderId),
  );
}
