import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { notFound } from '../../lib/errors.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { Type, typed } from '../../http/schema.ts';
import type { Services } from '../../services.ts';
import {
  CampaignMemberParams,
  CampaignParams,
  MemberParams,
  Order,
  OrderParams,
  PendingAdjustBody,
  PendingList,
  PendingParams,
  type PendingQuery,
  PendingQuery as PendingQuerySchema,
  Rule,
  RuleListQuery,
  RuleParams,
  RulesBody,
  RuleUpdateBody,
} from './schemas.ts';
import { presentOrder, presentPending, presentRule } from './service.ts';

// Tracking a custom event (POST /v1/events) and writing an order (POST /v1/orders, PUT
// /v1/orders/{id}) ingest activities across modules: workflow routes (src/workflows/routes.ts).

export function earningRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const db = () => ctx.database.db;
  const earning = services.earning;

  // ---- earning rules ----

  app.post(
    '/v1/loyalties/:campaignId/earning-rules',
    {
      schema: {
        tags: ['earning rules'],
        summary: 'Create earning rules (an array, Voucherify shape plus conditions, multipliers and limits)',
        params: CampaignParams,
        body: RulesBody,
        response: { 200: Type.Array(Rule) },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const program = await services.programs.get(trx, req.params.campaignId);
        return (await earning.create(trx, program, req.body)).map(presentRule);
      }),
  );

  app.get(
    '/v1/loyalties/:campaignId/earning-rules',
    {
      schema: {
        tags: ['earning rules'],
        summary: 'List the earning rules of a program',
        params: CampaignParams,
        querystring: RuleListQuery,
        response: { 200: listSchema('data', Rule) },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const { rows, total } = await earning.list(db(), program, req.query);
      return listOf('data', rows.map(presentRule), total);
    },
  );

  app.get(
    '/v1/loyalties/:campaignId/earning-rules/:earningRuleId',
    {
      schema: {
        tags: ['earning rules'],
        summary: 'Get an earning rule',
        params: RuleParams,
        response: { 200: Rule },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      return presentRule(await earning.get(db(), program, req.params.earningRuleId));
    },
  );

  app.put(
    '/v1/loyalties/:campaignId/earning-rules/:earningRuleId',
    {
      schema: {
        tags: ['earning rules'],
        summary: 'Update an earning rule (fields given replace; null clears)',
        params: RuleParams,
        body: RuleUpdateBody,
        response: { 200: Rule },
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

  app.delete(
    '/v1/loyalties/:campaignId/earning-rules/:earningRuleId',
    {
      schema: {
        tags: ['earning rules'],
        summary: 'Delete an earning rule',
        params: RuleParams,
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
    app.post(
      `/v1/loyalties/:campaignId/earning-rules/:earningRuleId/${action}`,
      {
        schema: {
          tags: ['earning rules'],
          summary: `${action === 'enable' ? 'Enable' : 'Disable'} an earning rule`,
          params: RuleParams,
          response: { 200: Rule },
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

  // ---- orders ----

  app.get(
    '/v1/orders/:orderId',
    {
      schema: {
        tags: ['orders'],
        summary: 'Get an order',
        params: OrderParams,
        response: { 200: Order },
      },
    },
    async (req) => {
      const found = await earning.findOrder(db(), req.params.orderId);
      if (!found) throw notFound('order', req.params.orderId);
      return presentOrder(found);
    },
  );

  // ---- pending points ----

  const pendingPage = (page: Awaited<ReturnType<typeof earning.listPending>>) => ({
    object: 'list',
    data_ref: 'data',
    data: page.data.map(presentPending),
    has_more: page.has_more,
    more_starting_after: page.more_starting_after,
  });
  // The limit's default is filled in by validation.
  const pageOf = (q: PendingQuery) => ({ ...q, limit: q.limit ?? 10 });
  app.get(
    '/v1/loyalties/:campaignId/pending-points',
    {
      schema: {
        tags: ['pending points'],
        summary: 'List the pending points of a program',
        params: CampaignParams,
        querystring: PendingQuerySchema,
        response: { 200: PendingList },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      return pendingPage(await earning.listPending(db(), { programId: program.id }, pageOf(req.query)));
    },
  );
  const memberPending = async (campaignId: string | undefined, memberId: string, q: PendingQuery) => {
    const program = campaignId ? await services.programs.get(db(), campaignId) : undefined;
    const m = await services.members.get(db(), memberId, program?.id);
    return pendingPage(await earning.listPending(db(), { membershipId: m.id }, pageOf(q)));
  };
  app.get(
    '/v1/loyalties/members/:memberId/pending-points',
    {
      schema: {
        tags: ['pending points'],
        summary: 'List the pending points of a card',
        params: MemberParams,
        querystring: PendingQuerySchema,
        response: { 200: PendingList },
      },
    },
    async (req) => memberPending(undefined, req.params.memberId, req.query),
  );
  app.get(
    '/v1/loyalties/:campaignId/members/:memberId/pending-points',
    {
      schema: {
        tags: ['pending points'],
        summary: 'List the pending points of a card',
        params: CampaignMemberParams,
        querystring: PendingQuerySchema,
        response: { 200: PendingList },
      },
    },
    async (req) => memberPending(req.params.campaignId, req.params.memberId, req.query),
  );

  app.post(
    '/v1/loyalties/members/:memberId/pending-points/:pendingPointsId/activate',
    {
      schema: { tags: ['pending points'], summary: 'Activate pending points now', params: PendingParams },
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
  app.post(
    '/v1/loyalties/members/:memberId/pending-points/:pendingPointsId/cancel',
    {
      schema: {
        tags: ['pending points'],
        summary: 'Cancel pending points',
        params: PendingParams,
        response: { 204: { type: 'null' } },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        const m = await services.members.get(trx, req.params.memberId);
        await earning.cancelPending(trx, m, req.params.pendingPointsId);
      }),
  );
  app.post(
    '/v1/loyalties/members/:memberId/pending-points/:pendingPointsId/balance',
    {
      schema: {
        tags: ['pending points'],
        summary: 'Add to or subtract from pending points',
        params: PendingParams,
        body: PendingAdjustBody,
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
