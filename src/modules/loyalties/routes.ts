import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { typed } from '../../http/schema.ts';
import type { Services } from '../../services.ts';
import {
  Campaign,
  CampaignParams,
  Definition,
  DefinitionBody,
  DefinitionParams,
  DefinitionUpdateBody,
  ProgramBody,
  ProgramListQuery,
  ProgramUpdateBody,
} from './schemas.ts';
import { presentBalanceDefinition, presentProgram } from './service.ts';

export function loyaltyRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const svc = services.programs;
  const db = () => ctx.database.db;

  app.post(
    '/v1/loyalties',
    {
      schema: {
        tags: ['loyalties'],
        summary: 'Create a loyalty program',
        body: ProgramBody,
        response: { 200: Campaign },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) =>
        presentProgram(await svc.create(trx, req.body), { members: 0 }),
      ),
  );

  app.get(
    '/v1/loyalties',
    {
      schema: {
        tags: ['loyalties'],
        summary: 'List loyalty programs',
        querystring: ProgramListQuery,
        response: { 200: listSchema('campaigns', Campaign) },
      },
    },
    async (req) => {
      const { rows, total } = await svc.list(req.query);
      return listOf(
        'campaigns',
        rows.map((r) => presentProgram(r)),
        total,
      );
    },
  );

  app.get(
    '/v1/loyalties/:campaignId',
    {
      schema: {
        tags: ['loyalties'],
        summary: 'Get a loyalty program',
        params: CampaignParams,
        response: { 200: Campaign },
      },
    },
    async (req) => {
      const row = await svc.get(db(), req.params.campaignId);
      return presentProgram(row, { members: await services.members.activeCount(db(), row.id) });
    },
  );

  app.put(
    '/v1/loyalties/:campaignId',
    {
      schema: {
        tags: ['loyalties'],
        summary: 'Update a loyalty program',
        params: CampaignParams,
        body: ProgramUpdateBody,
        response: { 200: Campaign },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const row = await svc.update(trx, await svc.get(trx, req.params.campaignId), req.body);
        return presentProgram(row, { members: await services.members.activeCount(trx, row.id) });
      }),
  );

  app.delete(
    '/v1/loyalties/:campaignId',
    {
      schema: { tags: ['loyalties'], summary: 'Delete a loyalty program (its ledger is kept)', params: CampaignParams },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        await svc.softDelete(trx, await svc.get(trx, req.params.campaignId));
      }),
  );

  // ---- balance definitions ----

  app.post(
    '/v1/loyalties/:campaignId/balance-definitions',
    {
      schema: {
        tags: ['balance definitions'],
        summary: 'Add a balance definition to a program',
        params: CampaignParams,
        body: DefinitionBody,
        response: { 200: Definition },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) =>
        presentBalanceDefinition(await svc.createDefinition(trx, await svc.get(trx, req.params.campaignId), req.body)),
      ),
  );

  app.get(
    '/v1/loyalties/:campaignId/balance-definitions',
    {
      schema: {
        tags: ['balance definitions'],
        summary: 'List the balance definitions of a program',
        params: CampaignParams,
        response: { 200: listSchema('data', Definition) },
      },
    },
    async (req) => {
      const program = await svc.get(db(), req.params.campaignId);
      const rows = await svc.definitions(db(), program.id);
      return listOf('data', rows.map(presentBalanceDefinition), rows.length);
    },
  );

  app.get(
    '/v1/loyalties/:campaignId/balance-definitions/:definitionId',
    {
      schema: {
        tags: ['balance definitions'],
        summary: 'Get a balance definition',
        params: DefinitionParams,
        response: { 200: Definition },
      },
    },
    async (req) => {
      const program = await svc.get(db(), req.params.campaignId);
      return presentBalanceDefinition(await svc.definition(db(), program.id, req.params.definitionId));
    },
  );

  app.put(
    '/v1/loyalties/:campaignId/balance-definitions/:definitionId',
    {
      schema: {
        tags: ['balance definitions'],
        summary: 'Update a balance definition (limits apply to later changes)',
        params: DefinitionParams,
        body: DefinitionUpdateBody,
        response: { 200: Definition },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const program = await svc.get(trx, req.params.campaignId);
        return presentBalanceDefinition(
          await svc.updateDefinition(trx, await svc.definition(trx, program.id, req.params.definitionId), req.body),
        );
      }),
  );
}
