import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { typed } from '../../http/schema.ts';
import { invalid } from '../../lib/errors.ts';
import type { Services } from '../../services.ts';
import type { Executor } from '../../storage/database.ts';
import { rewardParameters } from '../rewards/service.ts';
import { Tier, TierBody, TierIdParams, TierParams, TierUpdateBody } from './schemas.ts';
import { presentTier, type TierReward } from './service.ts';

// Referral tiers: the referrer rewards Voucherify keeps in its dashboard, through the API. The
// holders of a code and a customer's referral status span modules: src/workflows/referral-routes.ts.

const TAGS = ['referrals'];

export function referralRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const svc = services.referrals;
  const db = () => ctx.database.db;

  /** The campaign is a referral campaign; answers its id. */
  const campaignOf = async (trx: Executor, ref: string) => {
    const campaign = await services.vouchers.getCampaign(trx, ref);
    return (await svc.getProgram(trx, campaign.id)).campaign_id;
  };
  /** The tier's reward names what exists: a loyalty program, or a catalogue reward that gives something. */
  const checkReward = async (trx: Executor, reward: TierReward | undefined) => {
    if (!reward) return;
    if (reward.type === 'POINTS') {
      await services.programs.get(trx, reward.campaign_id);
      return;
    }
    const r = await services.rewards.get(trx, reward.id);
    if ('coin' in rewardParameters(r)) {
      throw invalid(
        'invalid_referral_tier',
        'Invalid referral tier',
        'a COIN reward is priced in points: not a tier reward',
      );
    }
  };

  app.post(
    '/v1/referrals/:campaignId/tiers',
    {
      schema: {
        tags: TAGS,
        summary: 'Add a referrer reward: for each referee, or once after N referees (points or a catalogue reward)',
        params: TierParams,
        body: TierBody,
        response: { 200: Tier },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const campaignId = await campaignOf(trx, req.params.campaignId);
        await checkReward(trx, req.body.reward);
        return presentTier(await svc.createTier(trx, campaignId, req.body));
      }),
  );

  app.get(
    '/v1/referrals/:campaignId/tiers',
    {
      schema: {
        tags: TAGS,
        summary: "The campaign's referral tiers",
        params: TierParams,
        response: { 200: listSchema('data', Tier) },
      },
    },
    async (req) => {
      const tiers = await svc.tiers(db(), await campaignOf(db(), req.params.campaignId));
      return listOf('data', tiers.map(presentTier), tiers.length);
    },
  );

  app.get(
    '/v1/referrals/:campaignId/tiers/:tierId',
    { schema: { tags: TAGS, summary: 'A referral tier', params: TierIdParams, response: { 200: Tier } } },
    async (req) => {
      const campaignId = await campaignOf(db(), req.params.campaignId);
      return presentTier(await svc.getTier(db(), campaignId, req.params.tierId));
    },
  );

  app.put(
    '/v1/referrals/:campaignId/tiers/:tierId',
    {
      schema: {
        tags: TAGS,
        summary: 'Update a referral tier (absent fields keep their value)',
        params: TierIdParams,
        body: TierUpdateBody,
        response: { 200: Tier },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const campaignId = await campaignOf(trx, req.params.campaignId);
        const row = await svc.getTier(trx, campaignId, req.params.tierId);
        await checkReward(trx, req.body.reward);
        return presentTier(await svc.updateTier(trx, row, req.body));
      }),
  );

  app.delete(
    '/v1/referrals/:campaignId/tiers/:tierId',
    { schema: { tags: TAGS, summary: 'Delete a referral tier (rewards given stay)', params: TierIdParams } },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        const campaignId = await campaignOf(trx, req.params.campaignId);
        await svc.deleteTier(trx, await svc.getTier(trx, campaignId, req.params.tierId));
      }),
  );
}
