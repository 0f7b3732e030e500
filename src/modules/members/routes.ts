import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { S } from '../../http/validation.ts';
import type { Services } from '../../services.ts';
import { joinProgram, resolveCustomer } from '../../workflows/join-program.ts';
import { CustomerRef } from '../customers/schemas.ts';
import { MembershipRace, presentMember } from './service.ts';

export const memberSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string' },
    code: { type: 'string' },
    type: { type: 'string', enum: ['LOYALTY_CARD'] },
    loyalty_card: {
      type: 'object',
      properties: {
        points: { type: 'integer' },
        balance: { type: 'integer' },
        next_expiration_date: { type: ['string', 'null'] },
        next_expiration_points: { type: ['integer', 'null'] },
        pending_points: { type: 'integer' },
        expired_points: { type: 'integer' },
        subtracted_points: { type: 'integer' },
      },
    },
    holder_id: { type: 'string' },
    object: { type: 'string', enum: ['voucher'] },
  },
};

interface AddMemberBody {
  customer: CustomerRef;
  voucher?: string;
  metadata?: Record<string, unknown> | null;
  source_id?: string;
  channel?: string;
}

export function memberRoutes(app: FastifyInstance, ctx: AppContext, services: Services): void {
  const db = () => ctx.database.db;
  const campaignParams = S.idParam('campaignId', 'Loyalty campaign id');
  const bothParams = S.pathParams({ campaignId: 'Loyalty campaign id', memberId: 'Card code or v_ id' });

  app.post<{ Params: { campaignId: string }; Body: AddMemberBody }>(
    '/v1/loyalties/:campaignId/members',
    {
      schema: {
        tags: ['members'],
        summary: 'Add a member: issue a loyalty card to a customer (created on the fly from its details)',
        params: campaignParams,
        body: {
          type: 'object',
          required: ['customer'],
          properties: {
            customer: CustomerRef,
            voucher: {
              type: 'string',
              minLength: 1,
              maxLength: 120,
              pattern: '^\\S+$',
              description: 'Card code to use instead of a generated one',
            },
            metadata: { type: ['object', 'null'], additionalProperties: true },
            source_id: { type: 'string' },
            channel: { type: 'string' },
          },
        },
        response: { 200: memberSchema },
      },
    },
    async (req, reply) => {
      // A collision on a generated code or a concurrent join of a join-once program rolls the
      // transaction back; trying again finds the new state (a fresh code, or "already joined").
      for (let attempt = 1; ; attempt++) {
        try {
          return await runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
            const program = await services.programs.get(trx, req.params.campaignId);
            const customer = await resolveCustomer(trx, services, req.body.customer);
            const m = await joinProgram(trx, services, program, customer, {
              code: req.body.voucher,
              metadata: req.body.metadata,
              source: req.body.channel,
            });
            return services.members.presentOne(trx, m, program);
          });
        } catch (err) {
          if (err instanceof MembershipRace && attempt < 5) continue;
          throw err;
        }
      }
    },
  );

  app.get<{
    Params: { campaignId: string };
    Querystring: { limit: number; page: number; customer?: string; status?: string };
  }>(
    '/v1/loyalties/:campaignId/members',
    {
      schema: {
        tags: ['members'],
        summary: 'List the members (loyalty cards) of a program',
        params: campaignParams,
        querystring: {
          type: 'object',
          properties: {
            ...S.listQuery,
            customer: { type: 'string', description: 'Customer id' },
            status: { type: 'string', enum: ['ACTIVE', 'REVOKED'] },
          },
        },
        response: { 200: listSchema('vouchers', memberSchema) },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      let customer = req.query.customer;
      if (customer) customer = (await services.customers.get(db(), customer)).id;
      const { rows, total } = await services.members.list(db(), program.id, { ...req.query, customer });
      const cards = await services.members.cards(db(), rows, new Map([[program.id, program]]));
      return listOf(
        'vouchers',
        rows.map((m) => presentMember(m, program, cards.get(m.id)!)),
        total,
      );
    },
  );

  app.get<{ Params: { campaignId: string; memberId: string } }>(
    '/v1/loyalties/:campaignId/members/:memberId',
    {
      schema: {
        tags: ['members'],
        summary: 'Get a member of a program',
        params: bothParams,
        response: { 200: memberSchema },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const m = await services.members.get(db(), req.params.memberId, program.id);
      return services.members.presentOne(db(), m, program);
    },
  );

  app.get<{ Params: { memberId: string } }>(
    '/v1/loyalties/members/:memberId',
    {
      schema: {
        tags: ['members'],
        summary: 'Get a member by card code or id',
        params: S.idParam('memberId', 'Card code or v_ id'),
        response: { 200: memberSchema },
      },
    },
    async (req) => {
      const m = await services.members.get(db(), req.params.memberId);
      const program = await db()
        .selectFrom('programs')
        .selectAll()
        .where('id', '=', m.program_id)
        .executeTakeFirstOrThrow();
      return services.members.presentOne(db(), m, program);
    },
  );

  app.delete<{ Params: { campaignId: string; memberId: string } }>(
    '/v1/loyalties/:campaignId/members/:memberId',
    {
      schema: {
        tags: ['members'],
        summary: 'Revoke a membership (its history is kept)',
        params: bothParams,
        response: { 200: memberSchema },
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
