import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { Type, typed } from '../../http/schema.ts';
import type { Services } from '../../services.ts';
import { presentRule } from '../earning/service.ts';
import {
  CampaignParams,
  Group,
  GroupBody,
  GroupParams,
  GroupUpdateBody,
  MemberParams,
  Tier,
  TierListQuery,
  TierParams,
  TiersBody,
  TierUpdateBody,
} from './schemas.ts';
import { presentGroup, presentTier } from './service.ts';

export function tierRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const db = () => ctx.database.db;
  const tiers = services.tiers;

  app.post(
    '/v1/loyalties/:campaignId/tiers',
    {
      schema: {
        tags: ['tiers'],
        summary: 'Create tiers (an array); each goes to the default tier group unless tier_group_id says otherwise',
        params: CampaignParams,
        body: TiersBody,
        response: { 200: Type.Array(Tier) },
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

  app.get(
    '/v1/loyalties/:campaignId/tiers',
    {
      schema: {
        tags: ['tiers'],
        summary: 'List the tiers of a program (lowest first)',
        params: CampaignParams,
        querystring: TierListQuery,
        response: { 200: listSchema('data', Tier) },
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

  app.get(
    '/v1/loyalties/:campaignId/tiers/:tierId',
    { schema: { tags: ['tiers'], summary: 'Get a tier', params: TierParams, response: { 200: Tier } } },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const t = await tiers.getTier(db(), program, req.params.tierId);
      return presentTier(t, await tiers.getGroup(db(), program, t.tier_group_id));
    },
  );

  app.put(
    '/v1/loyalties/:campaignId/tiers/:tierId',
    {
      schema: {
        tags: ['tiers'],
        summary: 'Update a tier (Tally): name, points range, earning rule mappings, metadata',
        params: TierParams,
        body: TierUpdateBody,
        response: { 200: Tier },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const program = await services.programs.get(trx, req.params.campaignId);
        const t = await tiers.updateTier(trx, program, await tiers.getTier(trx, program, req.params.tierId), req.body);
        return presentTier(t, await tiers.getGroup(trx, program, t.tier_group_id));
      }),
  );

  app.get(
    '/v1/loyalties/:campaignId/tiers/:tierId/earning-rules',
    {
      schema: {
        tags: ['tiers'],
        summary: 'The earning rules a tier maps (multiplies or replaces)',
        params: TierParams,
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

  app.post(
    '/v1/loyalties/:campaignId/tier-groups',
    {
      schema: {
        tags: ['tiers'],
        summary: 'Create a tier group (beyond the default one)',
        params: CampaignParams,
        body: GroupBody,
        response: { 200: Group },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const program = await services.programs.get(trx, req.params.campaignId);
        return presentGroup(await tiers.createGroup(trx, program, req.body));
      }),
  );

  app.get(
    '/v1/loyalties/:campaignId/tier-groups',
    {
      schema: {
        tags: ['tiers'],
        summary: 'List the tier groups of a program (the default first)',
        params: CampaignParams,
        response: { 200: listSchema('data', Group) },
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

  app.get(
    '/v1/loyalties/:campaignId/tier-groups/:groupId',
    {
      schema: {
        tags: ['tiers'],
        summary: 'Get a tier group with its tiers',
        params: GroupParams,
        response: { 200: Group },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const g = await tiers.getGroup(db(), program, req.params.groupId);
      const pt = await tiers.programTiers(db(), program.id);
      return presentGroup(g, pt.groups.find((x) => x.group.id === g.id)?.tiers ?? []);
    },
  );

  app.put(
    '/v1/loyalties/:campaignId/tier-groups/:groupId',
    {
      schema: {
        tags: ['tiers'],
        summary: 'Update a tier group (name, qualification policy, balance)',
        params: GroupParams,
        body: GroupUpdateBody,
        response: { 200: Group },
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

  app.get(
    '/v1/loyalties/members/:memberId/tiers',
    {
      schema: {
        tags: ['tiers'],
        summary: "The member's current tier in each tier group",
        params: MemberParams,
        response: { 200: listSchema('data', Tier) },
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
