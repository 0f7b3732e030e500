import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { S } from '../../http/validation.ts';
import type { Services } from '../../services.ts';
import { presentBalanceDefinition, presentProgram, type BalanceDefinitionInput, type ProgramInput } from './service.ts';

/** Voucherify's `expiration_rules` (also used by earning rules). */
export const expirationRules = {
  type: ['object', 'null'],
  required: ['period_type'],
  properties: {
    period_type: { type: 'string', enum: ['MONTH', 'FIXED_DAY_OF_YEAR'] },
    period_value: { type: 'integer', minimum: 1, maximum: 1200 },
    rounding_type: {
      type: 'string',
      enum: ['END_OF_MONTH', 'END_OF_QUARTER', 'END_OF_HALF_YEAR', 'END_OF_YEAR', 'PARTICULAR_MONTH'],
    },
    rounding_value: { type: 'integer', minimum: 1, maximum: 12 },
    fixed_month: { type: 'integer', minimum: 1, maximum: 12 },
    fixed_day: { type: 'integer', minimum: 1, maximum: 31 },
  },
};

const programBody = (required: string[]) => ({
  type: 'object',
  required,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    description: S.nullableString,
    type: { type: 'string', enum: ['AUTO_UPDATE', 'STATIC'] },
    campaign_type: { type: 'string', enum: ['LOYALTY_PROGRAM'] },
    auto_join: { type: 'boolean' },
    join_once: { type: 'boolean' },
    active: { type: 'boolean' },
    start_date: S.dateTime,
    expiration_date: S.dateTime,
    timezone: {
      type: 'string',
      minLength: 1,
      maxLength: 64,
      description: 'IANA time zone of the program (earning windows, expiry rounding)',
    },
    metadata: { type: ['object', 'null'], additionalProperties: true },
    vouchers_count: { type: 'integer', minimum: 0 },
    voucher: {
      type: 'object',
      properties: {
        type: { type: 'string', enum: ['LOYALTY_CARD'] },
        loyalty_card: {
          type: 'object',
          properties: {
            points: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
            expiration_rules: expirationRules,
          },
        },
        redemption: { type: 'object', properties: { quantity: { type: ['integer', 'null'], minimum: 0 } } },
        code_config: {
          type: 'object',
          properties: {
            length: { type: 'integer', minimum: 1, maximum: 64 },
            charset: { type: 'string', minLength: 2, maxLength: 256 },
            prefix: { type: 'string', maxLength: 50 },
            postfix: { type: 'string', maxLength: 50 },
            pattern: { type: 'string', maxLength: 120 },
          },
        },
      },
    },
  },
});

const definitionBody = (required: string[]) => ({
  type: 'object',
  required,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 100 },
    unit: { type: 'string', minLength: 1, maxLength: 50 },
    min: { type: ['integer', 'null'], minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    max: { type: ['integer', 'null'], minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    expiration_rules: expirationRules,
    metadata: { type: ['object', 'null'], additionalProperties: true },
  },
});

const campaignSchema = {
  type: 'object',
  additionalProperties: true,
  properties: { id: { type: 'string' }, object: { type: 'string', enum: ['campaign'] } },
};
const definitionSchema = {
  type: 'object',
  additionalProperties: true,
  properties: { id: { type: 'string' }, object: { type: 'string', enum: ['balance_definition'] } },
};
const campaignParams = S.idParam('campaignId', 'Loyalty campaign id (camp_...)');

export function loyaltyRoutes(app: FastifyInstance, ctx: AppContext, services: Services): void {
  const svc = services.programs;
  const db = () => ctx.database.db;

  app.post<{ Body: ProgramInput }>(
    '/v1/loyalties',
    {
      schema: {
        tags: ['loyalties'],
        summary: 'Create a loyalty program',
        body: programBody(['name']),
        response: { 200: campaignSchema },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) =>
        presentProgram(await svc.create(trx, req.body), { members: 0 }),
      ),
  );

  app.get<{ Querystring: { limit: number; page: number; order?: string } }>(
    '/v1/loyalties',
    {
      schema: {
        tags: ['loyalties'],
        summary: 'List loyalty programs',
        querystring: {
          type: 'object',
          properties: { ...S.listQuery, order: { type: 'string', enum: ['created_at', '-created_at'] } },
        },
        response: { 200: listSchema('campaigns', campaignSchema) },
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

  app.get<{ Params: { campaignId: string } }>(
    '/v1/loyalties/:campaignId',
    {
      schema: {
        tags: ['loyalties'],
        summary: 'Get a loyalty program',
        params: campaignParams,
        response: { 200: campaignSchema },
      },
    },
    async (req) => {
      const row = await svc.get(db(), req.params.campaignId);
      return presentProgram(row, { members: await svc.memberCount(db(), row.id) });
    },
  );

  app.put<{ Params: { campaignId: string }; Body: ProgramInput }>(
    '/v1/loyalties/:campaignId',
    {
      schema: {
        tags: ['loyalties'],
        summary: 'Update a loyalty program',
        params: campaignParams,
        body: programBody([]),
        response: { 200: campaignSchema },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const row = await svc.update(trx, await svc.get(trx, req.params.campaignId), req.body);
        return presentProgram(row, { members: await svc.memberCount(trx, row.id) });
      }),
  );

  app.delete<{ Params: { campaignId: string } }>(
    '/v1/loyalties/:campaignId',
    {
      schema: { tags: ['loyalties'], summary: 'Delete a loyalty program (its ledger is kept)', params: campaignParams },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        await svc.softDelete(trx, await svc.get(trx, req.params.campaignId));
      }),
  );

  // ---- balance definitions ----

  app.post<{ Params: { campaignId: string }; Body: BalanceDefinitionInput }>(
    '/v1/loyalties/:campaignId/balance-definitions',
    {
      schema: {
        tags: ['balance definitions'],
        summary: 'Add a balance definition to a program',
        params: campaignParams,
        body: definitionBody(['name']),
        response: { 200: definitionSchema },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) =>
        presentBalanceDefinition(await svc.createDefinition(trx, await svc.get(trx, req.params.campaignId), req.body)),
      ),
  );

  app.get<{ Params: { campaignId: string } }>(
    '/v1/loyalties/:campaignId/balance-definitions',
    {
      schema: {
        tags: ['balance definitions'],
        summary: 'List the balance definitions of a program',
        params: campaignParams,
        response: { 200: listSchema('data', definitionSchema) },
      },
    },
    async (req) => {
      const program = await svc.get(db(), req.params.campaignId);
      const rows = await svc.definitions(db(), program.id);
      return listOf('data', rows.map(presentBalanceDefinition), rows.length);
    },
  );

  const defParams = S.pathParams({ campaignId: 'Loyalty campaign id', definitionId: 'Balance definition id or name' });

  app.get<{ Params: { campaignId: string; definitionId: string } }>(
    '/v1/loyalties/:campaignId/balance-definitions/:definitionId',
    {
      schema: {
        tags: ['balance definitions'],
        summary: 'Get a balance definition',
        params: defParams,
        response: { 200: definitionSchema },
      },
    },
    async (req) => {
      const program = await svc.get(db(), req.params.campaignId);
      return presentBalanceDefinition(await svc.definition(db(), program.id, req.params.definitionId));
    },
  );

  app.put<{ Params: { campaignId: string; definitionId: string }; Body: BalanceDefinitionInput }>(
    '/v1/loyalties/:campaignId/balance-definitions/:definitionId',
    {
      schema: {
        tags: ['balance definitions'],
        summary: 'Update a balance definition (limits apply to later changes)',
        params: defParams,
        body: definitionBody([]),
        response: { 200: definitionSchema },
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
