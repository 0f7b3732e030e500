import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { S } from '../../http/validation.ts';
import type { Services } from '../../services.ts';
import { presentRule } from '../earning/service.ts';
import { presentGroup, presentTier, type TierGroupInput, type TierInput } from './service.ts';

const mapping = {
  oneOf: [
    {
      type: 'object',
      required: ['type', 'multiplier'],
      properties: { type: { const: 'MULTIPLY' }, multiplier: { type: 'number', exclusiveMinimum: 0, maximum: 1000 } },
    },
    {
      type: 'object',
      required: ['type', 'points'],
      properties: {
        type: { const: 'CUSTOM' },
        points: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      },
    },
  ],
};
const tierBody = {
  type: 'object',
  required: ['name', 'points'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    points: {
      type: 'object',
      required: ['from'],
      properties: {
        from: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
        to: { type: ['integer', 'null'], minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      },
    },
    earning_rules: {
      type: 'object',
      additionalProperties: mapping,
      description: '{ern_id: {type: MULTIPLY, multiplier} | {type: CUSTOM, points}}',
    },
    rewards: { type: 'object', additionalProperties: true },
    metadata: { type: ['object', 'null'], additionalProperties: true },
    tier_group_id: { type: 'string', description: 'Tally: the tier group (default group when absent)' },
  },
};
const { tier_group_id: _group, ...tierUpdateProps } = tierBody.properties;
const policy = {
  type: ['object', 'null'],
  required: ['qualification_type'],
  properties: {
    qualification_type: { type: 'string', enum: ['BALANCE', 'POINTS_IN_PERIOD'] },
    qualification_period: { type: 'string', enum: ['MONTH', 'QUARTER', 'HALF_YEAR', 'YEAR'] },
    start_date: {
      type: 'object',
      required: ['type'],
      properties: { type: { type: 'string', enum: ['IMMEDIATE', 'NEXT_PERIOD'] } },
    },
    expiration_date: {
      type: 'object',
      required: ['type'],
      properties: {
        type: { type: 'string', enum: ['END_OF_PERIOD', 'END_OF_NEXT_PERIOD', 'BALANCE_DROP', 'CUSTOM'] },
        extend: { type: 'string' },
        rounding: { type: 'object' },
      },
    },
  },
};
const groupBody = (required: string[]) => ({
  type: 'object',
  required,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    balance_definition_id: {
      type: ['string', 'null'],
      description: 'Balance definition (id or name) the group qualifies on; the points balance when absent',
    },
    loyalty_tiers_expiration: policy,
    metadata: { type: ['object', 'null'], additionalProperties: true },
  },
});
const tierSchema = {
  type: 'object',
  additionalProperties: true,
  properties: { id: { type: 'string' }, object: { type: 'string', enum: ['loyalty_tier'] } },
};
const groupSchema = {
  type: 'object',
  additionalProperties: true,
  properties: { id: { type: 'string' }, object: { type: 'string', enum: ['tier_group'] } },
};
const campaignParams = S.idParam('campaignId', 'Loyalty campaign id');
const tierParams = S.pathParams({ campaignId: 'Loyalty campaign id', tierId: 'Tier id (ltr_...)' });
const groupParams = S.pathParams({ campaignId: 'Loyalty campaign id', groupId: 'Tier group id (tgrp_...)' });

export function tierRoutes(app: FastifyInstance, ctx: AppContext, services: Services): void {
  const db = () => ctx.database.db;
  const tiers = services.tiers;

  app.post<{ Params: { campaignId: string }; Body: TierInput[] }>(
    '/v1/loyalties/:campaignId/tiers',
    {
      schema: {
        tags: ['tiers'],
        summary: 'Create tiers (an array); each goes to the default tier group unless tier_group_id says otherwise',
        params: campaignParams,
        body: { type: 'array', minItems: 1, maxItems: 100, items: tierBody },
        response: { 200: { type: 'array', items: tierSchema } },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const program = await services.programs.get(trx, req.params.campaignId);
        const rows = await tiers.createTiers(trx, program, req.body);
        const groups = new Map((await tiers.groupsOf(trx, program.id)).map((g) => [g.id, g]));
        return rows.map((t) => presentTier(t, groups.get(t.tier_group_id)));
      }),
  );

  app.get<{
    Params: { campaignId: string };
    Querystring: { limit: number; page: number; order?: string; tier_group_id?: string };
  }>(
    '/v1/loyalties/:campaignId/tiers',
    {
      schema: {
        tags: ['tiers'],
        summary: 'List the tiers of a program (lowest first)',
        params: campaignParams,
        querystring: {
          type: 'object',
          properties: { ...S.listQuery, order: { type: 'string' }, tier_group_id: { type: 'string' } },
        },
        response: { 200: listSchema('data', tierSchema) },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const pt = await tiers.programTiers(db(), program.id);
      let all = pt.groups.flatMap((g) => g.tiers.map((t) => ({ t, g: g.group })));
      if (req.query.tier_group_id) all = all.filter((x) => x.g.id === req.query.tier_group_id);
      if (req.query.order?.startsWith('-')) all.reverse();
      const page = all.slice((req.query.page - 1) * req.query.limit, req.query.page * req.query.limit);
      return listOf(
        'data',
        page.map((x) => presentTier(x.t, x.g)),
        all.length,
      );
    },
  );

  app.get<{ Params: { campaignId: string; tierId: string } }>(
    '/v1/loyalties/:campaignId/tiers/:tierId',
    { schema: { tags: ['tiers'], summary: 'Get a tier', params: tierParams, response: { 200: tierSchema } } },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const t = await tiers.getTier(db(), program, req.params.tierId);
      return presentTier(t, await tiers.getGroup(db(), program, t.tier_group_id));
    },
  );

  app.put<{ Params: { campaignId: string; tierId: string }; Body: Partial<TierInput> }>(
    '/v1/loyalties/:campaignId/tiers/:tierId',
    {
      schema: {
        tags: ['tiers'],
        summary: 'Update a tier (Tally): name, points range, earning rule mappings, metadata',
        params: tierParams,
        body: { type: 'object', properties: tierUpdateProps },
        response: { 200: tierSchema },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const program = await services.programs.get(trx, req.params.campaignId);
        const t = await tiers.updateTier(trx, program, await tiers.getTier(trx, program, req.params.tierId), req.body);
        return presentTier(t, await tiers.getGroup(trx, program, t.tier_group_id));
      }),
  );

  app.get<{ Params: { campaignId: string; tierId: string } }>(
    '/v1/loyalties/:campaignId/tiers/:tierId/earning-rules',
    {
      schema: {
        tags: ['tiers'],
        summary: 'The earning rules a tier maps (multiplies or replaces)',
        params: tierParams,
        response: { 200: listSchema('data') },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const t = await tiers.getTier(db(), program, req.params.tierId);
      const ids = Object.keys(JSON.parse(t.earning_rules ?? '{}'));
      const rows = await services.earning.byIds(db(), ids);
      return listOf('data', rows.map(presentRule), rows.length);
    },
  );

  // ---- tier groups ----

  app.post<{ Params: { campaignId: string }; Body: TierGroupInput }>(
    '/v1/loyalties/:campaignId/tier-groups',
    {
      schema: {
        tags: ['tiers'],
        summary: 'Create a tier group (beyond the default one)',
        params: campaignParams,
        body: groupBody(['name']),
        response: { 200: groupSchema },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const program = await services.programs.get(trx, req.params.campaignId);
        return presentGroup(await tiers.createGroup(trx, program, req.body));
      }),
  );

  app.get<{ Params: { campaignId: string } }>(
    '/v1/loyalties/:campaignId/tier-groups',
    {
      schema: {
        tags: ['tiers'],
        summary: 'List the tier groups of a program (the default first)',
        params: campaignParams,
        response: { 200: listSchema('data', groupSchema) },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const pt = await tiers.programTiers(db(), program.id);
      return listOf(
        'data',
        pt.groups.map((g) => presentGroup(g.group, g.tiers)),
        pt.groups.length,
      );
    },
  );

  app.get<{ Params: { campaignId: string; groupId: string } }>(
    '/v1/loyalties/:campaignId/tier-groups/:groupId',
    {
      schema: {
        tags: ['tiers'],
        summary: 'Get a tier group with its tiers',
        params: groupParams,
        response: { 200: groupSchema },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const g = await tiers.getGroup(db(), program, req.params.groupId);
      const pt = await tiers.programTiers(db(), program.id);
      return presentGroup(g, pt.groups.find((x) => x.group.id === g.id)?.tiers ?? []);
    },
  );

  app.put<{ Params: { campaignId: string; groupId: string }; Body: TierGroupInput }>(
    '/v1/loyalties/:campaignId/tier-groups/:groupId',
    {
      schema: {
        tags: ['tiers'],
        summary: 'Update a tier group (name, qualification policy, balance)',
        params: groupParams,
        body: groupBody([]),
        response: { 200: groupSchema },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const program = await services.programs.get(trx, req.params.campaignId);
        return presentGroup(
          await tiers.updateGroup(trx, program, await tiers.getGroup(trx, program, req.params.groupId), req.body),
        );
      }),
  );

  // ---- member tiers ----

  app.get<{ Params: { memberId: string } }>(
    '/v1/loyalties/members/:memberId/tiers',
    {
      schema: {
        tags: ['tiers'],
        summary: "The member's current tier in each tier group",
        params: S.idParam('memberId', 'Card code or v_ id'),
        response: { 200: listSchema('data', tierSchema) },
      },
    },
    async (req) => {
      const m = await services.members.get(db(), req.params.memberId);
      const current = await tiers.memberTiers(db(), m);
      const data = current.map(({ tier, group, row }) =>
        presentTier(tier, group, {
          customer_id: m.customer_id,
          campaign_id: m.program_id,
          tier_id: tier.id,
          start_date: row.attributed_at,
          expiration_date: row.expires_at,
          created_at: row.attributed_at,
          updated_at: row.updated_at,
        }),
      );
      return listOf('data', data, data.length);
    },
  );
}
