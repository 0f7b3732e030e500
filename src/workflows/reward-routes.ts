import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../context.ts';
import { runIdempotentWrite } from '../http/idempotency.ts';
import { listOf, listSchema } from '../http/lists.ts';
import { typed } from '../http/schema.ts';
import {
  MemberParams,
  MemberRewardsQuery,
  ProgramMemberParams,
  RedeemBody,
  type RedeemInput,
  Redemption,
  TierParams,
} from '../modules/rewards/schemas.ts';
import type { Services } from '../services.ts';
import { memberRewards, recordRedeemRefusal, redeemReward, tierRewards } from './redeem-reward.ts';

// The reward routes whose action spans modules (the rewards catalogue, cards, balances, tiers,
// the ledger, vouchers): a member's rewards at their price, a tier's prices, redeeming. Their
// schemas belong to the rewards module. (The rollback is `rollback-redemption.ts`.)

const tags = ['rewards'];

export function rewardWorkflowRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const db = () => ctx.database.db;

  app.get(
    '/v1/loyalties/:campaignId/tiers/:tierId/rewards',
    {
      schema: {
        tags,
        summary: "The campaign's rewards at this tier's cost",
        params: TierParams,
        response: { 200: listSchema('data') },
      },
    },
    async (req) => {
      const data = await tierRewards(db(), services, req.params.campaignId, req.params.tierId);
      return listOf('data', data, data.length);
    },
  );

  app.get(
    '/v1/loyalties/members/:memberId/rewards',
    {
      schema: {
        tags,
        summary:
          "Rewards the member can get, at their tier's cost (out of stock hidden); affordable_only: within the balance",
        params: MemberParams,
        querystring: MemberRewardsQuery,
        response: { 200: listSchema('data') },
      },
    },
    async (req) => {
      const all = await memberRewards(db(), services, req.params.memberId, {
        affordableOnly: req.query.affordable_only,
      });
      const { limit, page } = req.query;
      return listOf('data', all.slice((page - 1) * limit, page * limit), all.length);
    },
  );

  // ---- redeem ----

  const redeem = (req: FastifyRequest, reply: FastifyReply) => {
    const params = req.params as { memberId: string; campaignId?: string };
    return runIdempotentWrite(
      ctx,
      req,
      reply,
      200,
      (trx) =>
        redeemReward(trx, services, {
          memberId: params.memberId,
          campaignId: params.campaignId,
          body: req.body as RedeemInput,
          now: ctx.clock.nowIso(),
        }),
      { lane: params.memberId, onRefused: recordRedeemRefusal(services) },
    );
  };
  const redeemSchema = (params: typeof MemberParams | typeof ProgramMemberParams) => ({
    tags,
    summary: "Redeem a reward with the card's points (Idempotency-Key supported)",
    params,
    body: RedeemBody,
    response: { 200: Redemption },
  });
  app.post(
    '/v1/loyalties/:campaignId/members/:memberId/redemption',
    { schema: redeemSchema(ProgramMemberParams), config: { idempotency: 'replay-on-conflict' } },
    (req, reply) => redeem(req, reply) as never,
  );
  app.post(
    '/v1/loyalties/members/:memberId/redemption',
    { schema: redeemSchema(MemberParams), config: { idempotency: 'replay-on-conflict' } },
    (req, reply) => redeem(req, reply) as never,
  );
}
