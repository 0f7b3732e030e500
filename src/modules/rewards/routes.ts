import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { typed } from '../../http/schema.ts';
import type { Services } from '../../services.ts';
import {
  Assignment,
  AssignmentBody,
  type AssignmentInput,
  AssignmentUpdateBody,
  PageQuery,
  ProgramAssignmentParams,
  ProgramParams,
  Reward,
  RewardAssignmentParams,
  RewardBody,
  RewardListQuery,
  RewardParams,
  RewardUpdateBody,
} from './schemas.ts';
import { presentAssignment, presentReward } from './service.ts';

const tags = ['rewards'];

export function rewardRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const svc = services.rewards;
  const db = () => ctx.database.db;

  // ---- rewards ----

  app.post(
    '/v1/rewards',
    { schema: { tags, summary: 'Create a reward', body: RewardBody, response: { 200: Reward } } },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => presentReward(await svc.create(trx, req.body))),
  );

  app.get(
    '/v1/rewards',
    {
      schema: {
        tags,
        summary: 'List rewards, newest first',
        querystring: RewardListQuery,
        response: { 200: listSchema('data', Reward) },
      },
    },
    async (req) => {
      const { rows, total } = await svc.list(db(), req.query);
      return listOf('data', rows.map(presentReward), total);
    },
  );

  app.get(
    '/v1/rewards/:rewardId',
    { schema: { tags, summary: 'Get a reward', params: RewardParams, response: { 200: Reward } } },
    async (req) => presentReward(await svc.get(db(), req.params.rewardId)),
  );

  app.put(
    '/v1/rewards/:rewardId',
    {
      schema: {
        tags,
        summary: 'Update a reward (absent fields keep their value; its type cannot change)',
        params: RewardParams,
        body: RewardUpdateBody,
        response: { 200: Reward },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) =>
        presentReward(await svc.update(trx, await svc.get(trx, req.params.rewardId), req.body)),
      ),
  );

  app.delete(
    '/v1/rewards/:rewardId',
    { schema: { tags, summary: 'Delete a reward (refused while it is assigned)', params: RewardParams } },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        await svc.delete(trx, await svc.get(trx, req.params.rewardId));
      }),
  );

  // ---- assignments, reward side ----

  app.get(
    '/v1/rewards/:rewardId/assignments',
    {
      schema: {
        tags,
        summary: 'List the assignments of a reward',
        params: RewardParams,
        querystring: PageQuery,
        response: { 200: listSchema('data', Assignment) },
      },
    },
    async (req) => {
      const reward = await svc.get(db(), req.params.rewardId);
      const { rows, total } = await svc.listAssignments(db(), { rewardId: reward.id }, req.query);
      return listOf(
        'data',
        rows.map((a) => presentAssignment(a)),
        total,
      );
    },
  );

  app.post(
    '/v1/rewards/:rewardId/assignments',
    {
      schema: {
        tags,
        summary: 'Assign a reward to a loyalty campaign ({campaign, parameters.loyalty.points}; a list is accepted)',
        params: RewardParams,
        body: AssignmentBody,
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const items = (Array.isArray(req.body) ? req.body : [req.body]) as AssignmentInput[];
        const rows = await svc.createAssignments(
          trx,
          items.map((i) => ({ ...i, rewardId: req.params.rewardId })),
        );
        const out = rows.map((a) => presentAssignment(a));
        return Array.isArray(req.body) ? out : out[0];
      }),
  );

  app.get(
    '/v1/rewards/:rewardId/assignments/:assignmentId',
    {
      schema: {
        tags,
        summary: 'Get a reward assignment',
        params: RewardAssignmentParams,
        response: { 200: Assignment },
      },
    },
    async (req) =>
      presentAssignment(await svc.getAssignment(db(), req.params.assignmentId, { rewardId: req.params.rewardId })),
  );

  app.put(
    '/v1/rewards/:rewardId/assignments/:assignmentId',
    {
      schema: {
        tags,
        summary: 'Update a reward assignment (points, auto_redeem)',
        params: RewardAssignmentParams,
        body: AssignmentUpdateBody,
        response: { 200: Assignment },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const row = await svc.getAssignment(trx, req.params.assignmentId, { rewardId: req.params.rewardId });
        return presentAssignment(await svc.updateAssignment(trx, row, req.body));
      }),
  );

  app.delete(
    '/v1/rewards/:rewardId/assignments/:assignmentId',
    { schema: { tags, summary: 'Delete a reward assignment', params: RewardAssignmentParams } },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        await svc.deleteAssignment(
          trx,
          await svc.getAssignment(trx, req.params.assignmentId, { rewardId: req.params.rewardId }),
        );
      }),
  );

  // ---- assignments, loyalty side ----

  const listProgramAssignments = async (req: {
    params: { campaignId: string };
    query: { limit: number; page: number };
  }) => {
    const program = await svc.program(db(), req.params.campaignId);
    const { rows, total } = await svc.listAssignments(db(), { programId: program.id }, req.query);
    return listOf(
      'data',
      rows.map((a) => presentAssignment(a)),
      total,
    );
  };
  const listSchemaOf = (summary: string) => ({
    tags,
    summary,
    params: ProgramParams,
    querystring: PageQuery,
    response: { 200: listSchema('data', Assignment) },
  });
  app.get(
    '/v1/loyalties/:campaignId/rewards',
    { schema: listSchemaOf('List the reward assignments of a loyalty campaign') },
    listProgramAssignments,
  );
  app.get(
    '/v1/loyalties/:campaignId/reward-assignments',
    { schema: listSchemaOf('List the reward assignments of a loyalty campaign') },
    listProgramAssignments,
  );

  app.post(
    '/v1/loyalties/:campaignId/rewards',
    {
      schema: {
        tags,
        summary: 'Assign rewards to a loyalty campaign: a list of {reward, parameters.loyalty.points}; answers a list',
        params: ProgramParams,
        body: AssignmentBody,
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const items = (Array.isArray(req.body) ? req.body : [req.body]) as AssignmentInput[];
        const rows = await svc.createAssignments(
          trx,
          items.map((i) => ({ ...i, programId: req.params.campaignId })),
        );
        return rows.map((a) => presentAssignment(a));
      }),
  );

  const getProgramAssignment = async (req: { params: { campaignId: string; assignmentId: string } }) =>
    presentAssignment(await svc.getAssignment(db(), req.params.assignmentId, { programId: req.params.campaignId }));
  const getSchema = {
    tags,
    summary: 'Get a reward assignment',
    params: ProgramAssignmentParams,
    response: { 200: Assignment },
  };
  app.get('/v1/loyalties/:campaignId/rewards/:assignmentId', { schema: getSchema }, getProgramAssignment);
  app.get('/v1/loyalties/:campaignId/reward-assignments/:assignmentId', { schema: getSchema }, getProgramAssignment);

  app.get(
    '/v1/loyalties/:campaignId/reward-assignments/:assignmentId/reward',
    {
      schema: {
        tags,
        summary: 'The reward of an assignment',
        params: ProgramAssignmentParams,
        response: { 200: Reward },
      },
    },
    async (req) => {
      const a = await svc.getAssignment(db(), req.params.assignmentId, { programId: req.params.campaignId });
      return presentReward(await svc.get(db(), a.reward_id));
    },
  );

  app.put(
    '/v1/loyalties/:campaignId/rewards/:assignmentId',
    {
      schema: {
        tags,
        summary: 'Update a reward assignment (points, auto_redeem)',
        params: ProgramAssignmentParams,
        body: AssignmentUpdateBody,
        response: { 200: Assignment },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const row = await svc.getAssignment(trx, req.params.assignmentId, { programId: req.params.campaignId });
        return presentAssignment(await svc.updateAssignment(trx, row, req.body));
      }),
  );

  app.delete(
    '/v1/loyalties/:campaignId/rewards/:assignmentId',
    { schema: { tags, summary: 'Delete a reward assignment', params: ProgramAssignmentParams } },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        await svc.deleteAssignment(
          trx,
          await svc.getAssignment(trx, req.params.assignmentId, { programId: req.params.campaignId }),
        );
      }),
  );
}
