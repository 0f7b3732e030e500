import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { S } from '../../http/validation.ts';
import type { Services } from '../../services.ts';
import type { Executor } from '../../storage/database.ts';
import { presentBalanceDefinition } from '../loyalties/service.ts';
import { presentLot, presentTransaction, type ExpirationType } from './service.ts';

interface BalanceBody {
  points: number;
  reason?: string;
  source_id?: string;
  expiration_type?: ExpirationType;
  expiration_date?: string;
  balance_definition_id?: string;
}

const balanceBody = {
  type: 'object',
  required: ['points'],
  properties: {
    points: {
      type: 'integer',
      minimum: -Number.MAX_SAFE_INTEGER,
      maximum: Number.MAX_SAFE_INTEGER,
      not: { const: 0 },
      description: 'Points to add; a negative number removes points',
    },
    reason: { type: 'string', maxLength: 1000 },
    source_id: { type: 'string', maxLength: 200 },
    expiration_type: { type: 'string', enum: ['PROGRAM_RULES', 'PROGRAM_DEFAULT', 'CUSTOM_DATE', 'NON_EXPIRING'] },
    expiration_date: { type: 'string', format: 'date-time' },
    balance_definition_id: {
      type: 'string',
      description: 'Balance definition id or name; the default points balance when absent',
    },
  },
};

const balanceAnswer = {
  type: 'object',
  additionalProperties: true,
  properties: {
    points: { type: 'integer' },
    total: { type: 'integer' },
    balance: { type: 'integer' },
    type: { type: 'string', enum: ['loyalty_card'] },
    object: { type: 'string', enum: ['balance'] },
    related_object: { type: 'object', properties: { type: { type: 'string' }, id: { type: 'string' } } },
    operation_type: { type: 'string', enum: ['MANUAL', 'AUTOMATIC'] },
  },
};

const txQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 100, default: 10 },
    starting_after_id: { type: 'string', description: 'Cursor: the last transaction id of the previous page' },
  },
};

const txList = {
  type: 'object',
  properties: {
    object: { type: 'string', enum: ['list'] },
    data_ref: { type: 'string', enum: ['data'] },
    data: { type: 'array', items: { type: 'object', additionalProperties: true } },
    has_more: { type: 'boolean' },
    more_starting_after: { type: ['string', 'null'] },
  },
};

export function ledgerRoutes(app: FastifyInstance, ctx: AppContext, services: Services): void {
  const db = () => ctx.database.db;

  const memberAndProgram = async (trx: Executor, memberId: string, campaignId?: string) => {
    const program = campaignId ? await services.programs.get(trx, campaignId) : undefined;
    const membership = await services.members.get(trx, memberId, program?.id);
    return {
      membership,
      program: program ?? (await services.programs.get(trx, membership.program_id)),
    };
  };

  const changeBalance = async (
    req: FastifyRequest<{ Params: { campaignId?: string; memberId: string }; Body: BalanceBody }>,
    reply: FastifyReply,
  ) => {
    return runIdempotentWrite(
      ctx,
      req,
      reply,
      200,
      async (trx) => {
        // One query for card, program, holder and default definition; the step-by-step lookups
        // only when something is missing (for the precise 404).
        const card = await services.ledger.resolveCard(trx, req.params.memberId, req.params.campaignId, {
          lockBalance: !req.body.balance_definition_id,
        });
        const { membership, program } =
          card ?? (await memberAndProgram(trx, req.params.memberId, req.params.campaignId));
        const definition =
          card && !req.body.balance_definition_id
            ? card.definition
            : await services.programs.definition(trx, program.id, req.body.balance_definition_id);
        const result = await services.ledger.applyChange(trx, {
          program,
          membership,
          definition,
          customer: card?.customer,
          locked_balance: card?.balance,
          points: req.body.points,
          type: req.body.points > 0 ? 'POINTS_ADDITION' : 'POINTS_REMOVAL',
          reason: req.body.reason,
          source_id: req.body.source_id,
          source: 'API',
          operation_type: 'MANUAL',
          expiration_type: req.body.expiration_type,
          expiration_date: req.body.expiration_date,
          source_event_id: req.body.source_id ?? (req.headers['idempotency-key'] as string | undefined),
        });
        return result.answer;
      },
      { lane: req.params.memberId, onRefused: services.ledger.recordRefusal },
    );
  };

  const balanceSchema = (params: object) => ({
    tags: ['ledger'],
    summary: 'Add or remove points (Idempotency-Key supported)',
    params,
    body: balanceBody,
    headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', maxLength: 255 } } },
    response: { 200: balanceAnswer },
  });
  const memberParams = S.idParam('memberId', 'Card code or v_ id');
  const bothParams = S.pathParams({ campaignId: 'Loyalty campaign id', memberId: 'Card code or v_ id' });

  app.post(
    '/v1/loyalties/:campaignId/members/:memberId/balance',
    { schema: balanceSchema(bothParams), config: { idempotency: 'replay-on-conflict' } },
    changeBalance as never,
  );
  app.post(
    '/v1/loyalties/members/:memberId/balance',
    { schema: balanceSchema(memberParams), config: { idempotency: 'replay-on-conflict' } },
    changeBalance as never,
  );

  const listTransactions = async (
    req: FastifyRequest<{
      Params: { campaignId?: string; memberId: string };
      Querystring: { limit: number; starting_after_id?: string };
    }>,
  ) => {
    const { membership } = await memberAndProgram(db(), req.params.memberId, req.params.campaignId);
    const page = await services.ledger.transactions(db(), { membershipId: membership.id }, req.query);
    return {
      object: 'list',
      data_ref: 'data',
      data: page.data.map((e) => presentTransaction(e)),
      has_more: page.has_more,
      more_starting_after: page.more_starting_after,
    };
  };
  app.get(
    '/v1/loyalties/members/:memberId/transactions',
    {
      schema: {
        tags: ['ledger'],
        summary: 'List the transactions of a card, newest first',
        params: memberParams,
        querystring: txQuery,
        response: { 200: txList },
      },
    },
    listTransactions as never,
  );
  app.get(
    '/v1/loyalties/:campaignId/members/:memberId/transactions',
    {
      schema: {
        tags: ['ledger'],
        summary: 'List the transactions of a card, newest first',
        params: bothParams,
        querystring: txQuery,
        response: { 200: txList },
      },
    },
    listTransactions as never,
  );

  app.get<{ Params: { campaignId: string }; Querystring: { limit: number; starting_after_id?: string } }>(
    '/v1/loyalties/:campaignId/transactions',
    {
      schema: {
        tags: ['ledger'],
        summary: 'List the transactions of a program, newest first',
        params: S.idParam('campaignId', 'Campaign id'),
        querystring: txQuery,
        response: { 200: txList },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const page = await services.ledger.transactions(db(), { programId: program.id }, req.query);
      return {
        object: 'list',
        data_ref: 'data',
        data: page.data.map((e) => presentTransaction(e)),
        has_more: page.has_more,
        more_starting_after: page.more_starting_after,
      };
    },
  );

  app.get<{
    Params: { campaignId: string; memberId: string };
    Querystring: { balance_definition_id?: string; limit: number; page: number };
  }>(
    '/v1/loyalties/:campaignId/members/:memberId/points-expiration',
    {
      schema: {
        tags: ['ledger'],
        summary: 'List the open point lots (buckets) of a card with their expiry, earliest first; non-expiring last',
        params: bothParams,
        querystring: { type: 'object', properties: { ...S.listQuery, balance_definition_id: { type: 'string' } } },
        response: { 200: listSchema('data') },
      },
    },
    async (req) => {
      const { membership, program } = await memberAndProgram(db(), req.params.memberId, req.params.campaignId);
      const definition = await services.programs.definition(db(), program.id, req.query.balance_definition_id);
      const lots = await services.ledger.openLots(db(), membership.id, definition.id);
      const { limit, page } = req.query;
      const slice = lots.slice((page - 1) * limit, page * limit);
      return listOf(
        'data',
        slice.map((l) => presentLot(l, program.id)),
        lots.length,
      );
    },
  );

  app.get<{ Params: { memberId: string } }>(
    '/v1/loyalties/members/:memberId/balances',
    {
      schema: {
        tags: ['ledger'],
        summary: 'The balance of a card under each balance definition of its program',
        params: memberParams,
      },
    },
    async (req) => {
      const { membership, program } = await memberAndProgram(db(), req.params.memberId);
      const definitions = await services.programs.definitions(db(), program.id);
      const balances = new Map(
        (await services.ledger.balancesOf(db(), membership.id)).map((b) => [b.balance_definition_id, b]),
      );
      const data = definitions.map((d) => {
        const b = balances.get(d.id);
        return {
          balance_definition: presentBalanceDefinition(d),
          balance: Number(b?.balance ?? 0),
          points: Number(b?.points ?? 0),
          pending_points: Number(b?.pending_points ?? 0),
          expired_points: Number(b?.expired_points ?? 0),
          subtracted_points: Number(b?.subtracted_points ?? 0),
          updated_at: b?.updated_at ?? null,
          object: 'member_balance',
        };
      });
      return listOf('data', data, data.length);
    },
  );
}
