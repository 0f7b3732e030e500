import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listPage, listSchema } from '../../http/lists.ts';
import { typed } from '../../http/schema.ts';
import type { Services } from '../../services.ts';
import { CampaignMemberParams, CampaignParams, Member, MemberListQuery, MemberParams } from './schemas.ts';
import { holdersRef, presentMember } from './service.ts';

// Adding a member (POST /v1/loyalties/{campaignId}/members) joins a program: a workflow
// (src/workflows/routes.ts).

export function memberRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const db = () => ctx.database.db;

  app.get(
    '/v1/loyalties/:campaignId/members',
    {
      schema: {
        tags: ['members'],
        summary: 'List the members (loyalty cards) of a program',
        params: CampaignParams,
        querystring: MemberListQuery,
        response: { 200: listSchema('vouchers', Member) },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      let customer = req.query.customer;
      if (customer) customer = (await services.customers.get(db(), customer)).id;
      const page = await services.members.list(db(), program.id, { ...req.query, customer });
      const cards = await services.members.cards(db(), page.rows, new Map([[program.id, program]]));
      const holders = await services.members.holderCounts(
        db(),
        page.rows.map((m) => m.id),
      );
      return listPage(
        'vouchers',
        page.rows.map((m) =>
          presentMember(m, program, cards.get(m.id)!, { holders: holdersRef(m, holders.get(m.id) ?? 0) }),
        ),
        page,
      );
    },
  );

  app.get(
    '/v1/loyalties/:campaignId/members/:memberId',
    {
      schema: {
        tags: ['members'],
        summary: 'Get a member of a program',
        params: CampaignMemberParams,
        response: { 200: Member },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const m = await services.members.get(db(), req.params.memberId, program.id);
      return services.members.presentOne(db(), m, program);
    },
  );

  app.get(
    '/v1/loyalties/members/:memberId',
    {
      schema: {
        tags: ['members'],
        summary: 'Get a member by card code or id',
        params: MemberParams,
        response: { 200: Member },
      },
    },
    async (req) => {
      const m = await services.members.get(db(), req.params.memberId);
      // The card outlives its program: a deleted program still presents its cards.
      const program = (await services.programs.findAny(db(), m.program_id))!;
      return services.members.presentOne(db(), m, program);
    },
  );

  app.delete(
    '/v1/loyalties/:campaignId/members/:memberId',
    {
      schema: {
        tags: ['members'],
        summary: 'Revoke a membership (its history is kept)',
        params: CampaignMemberParams,
        response: { 200: Member },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const program = await services.programs.get(trx, req.params.campaignId);
        const m = await services.members.revoke(
          trx,
          await services.members.get(trx, req.params.memberId, program.id),
          program,
        );
        return services.members.presentOne(trx, m, program);
      }),
  );
}
