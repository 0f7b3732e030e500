import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { typed } from '../../http/schema.ts';
import type { Services } from '../../services.ts';
import type { Executor } from '../../storage/database.ts';
import { presentBalanceDefinition } from '../loyalties/service.ts';
import {
  BalanceAnswer,
  BalanceBody,
  CampaignMemberParams,
  CampaignParams,
  IdempotencyHeaders,
  LotQuery,
  MemberParams,
  TransactionList,
  TransactionQuery,
} from './schemas.ts';
import { presentLot, presentTransaction } from './service.ts';

export function ledgerRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
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
    req: FastifyRequest,
    reply: FastifyReply,
    params: { campaignId?: string; memberId: string },
    body: BalanceBody,
  ) => {
    return runIdempotentWrite(
      ctx,
      req,
      reply,
      200,
      async (trx) => {
        // One query for card, program, holder and default definition; the step-by-step lookups
        // only when something is missing (for the precise 404).
        const card = await services.ledger.resolveCard(trx, params.memberId, params.campaignId, {
          lockBalance: !body.balance_definition_id,
        });
        const { membership, program } = card ?? (await memberAndProgram(trx, params.memberId, params.campaignId));
        const definition =
          card && !body.balance_definition_id
            ? card.definition
            : await services.programs.definition(trx, program.id, body.balance_definition_id);
        const result = await services.ledger.applyChange(trx, {
          program,
          membership,
          definition,
          customer: card?.customer,
          locked_balance: card?.balance,
          points: body.points,
          type: body.points > 0 ? 'POINTS_ADDITION' : 'POINTS_REMOVAL',
          reason: body.reason,
          source_id: body.source_id,
          source: 'API',
          operation_type: 'MANUAL',
          expiration_type: body.expiration_type,
          expiration_date: body.expiration_date,
          source_event_id: body.source_id ?? (req.headers['idempotency-key'] as string | undefined),
        });
        return result.answer;
      },
      { lane: params.memberId, onRefused: services.ledger.recordRefusal },
    );
  };

  const balanceSchema = <P extends typeof MemberParams | typeof CampaignMemberParams>(params: P) => ({
    tags: ['ledger'],
    summary: 'Add or remove points (Idempotency-Key supported)',
    params,
    body: BalanceBody,
    headers: IdempotencyHeaders,
    response: { 200: BalanceAnswer },
  });

  app.post(
    '/v1/loyalties/:campaignId/members/:memberId/balance',
    { schema: balanceSchema(CampaignMemberParams), config: { idempotency: 'replay-on-conflict' } },
    async (req, reply) => changeBalance(req, reply, req.params, req.body),
  );
  app.post(
    '/v1/loyalties/members/:memberId/balance',
    { schema: balanceSchema(MemberParams), config: { idempotency: 'replay-on-conflict' } },
    async (req, reply) => changeBalance(req, reply, req.params, req.body),
  );

  // The limit's default is filled in by validation.
  const pageOf = (q: TransactionQuery) => ({ ...q, limit: q.limit ?? 10 });
  const listTransactions = async (params: { campaignId?: string; memberId: string }, q: TransactionQuery) => {
    const { membership } = await memberAndProgram(db(), params.memberId, params.campaignId);
    const page = await services.ledger.transactions(db(), { membershipId: membership.id }, pageOf(q));
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
        params: MemberParams,
        querystring: TransactionQuery,
        response: { 200: TransactionList },
      },
    },
    async (req) => listTransactions(req.params, req.query),
  );
  app.get(
    '/v1/loyalties/:campaignId/members/:memberId/transactions',
    {
      schema: {
        tags: ['ledger'],
        summary: 'List the transactions of a card, newest first',
        params: CampaignMemberParams,
        querystring: TransactionQuery,
        response: { 200: TransactionList },
      },
    },
    async (req) => listTransactions(req.params, req.query),
  );

  app.get(
    '/v1/loyalties/:campaignId/transactions',
    {
      schema: {
        tags: ['ledger'],
        summary: 'List the transactions of a program, newest first',
        params: CampaignParams,
        querystring: TransactionQuery,
        response: { 200: TransactionList },
      },
    },
    async (req) => {
      const program = await services.programs.get(db(), req.params.campaignId);
      const page = await services.ledger.transactions(db(), { programId: program.id }, pageOf(req.query));
      return {
        object: 'list',
        data_ref: 'data',
        data: page.data.map((e) => presentTransaction(e)),
        has_more: page.has_more,
        more_starting_after: page.more_starting_after,
      };
    },
  );

  app.get(
    '/v1/loyalties/:campaignId/members/:memberId/points-expiration',
    {
      schema: {
        tags: ['ledger'],
        summary: 'List the open point lots (buckets) of a card with their expiry, earliest first; non-expiring last',
        params: CampaignMemberParams,
        querystring: LotQuery,
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

  app.get(
    '/v1/loyalties/members/:memberId/balances',
    {
      schema: {
        tags: ['ledger'],
        summary: 'The balance of a card under each balance definition of its program',
        params: MemberParams,
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
