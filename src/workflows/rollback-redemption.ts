import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.ts';
import { runIdempotentWrite } from '../http/idempotency.ts';
import { Answer, typed } from '../http/schema.ts';
import { refused } from '../lib/errors.ts';
import { RedemptionParams, RollbackQuery } from '../modules/vouchers/schemas.ts';
import { presentRollback } from '../modules/vouchers/service.ts';
import type { Services } from '../services.ts';
import type { Executor } from '../storage/database.ts';
import { rollbackRewardRedemption } from './redeem-reward.ts';
import { rollbackReferral } from './referrals.ts';

// Workflow "roll a redemption back": the `redemptions` table (vouchers module) holds both kinds.
// A voucher redemption gives the use (and a gift card's credits) back; a reward redemption gives the
// points back and revokes what it issued (rewards branch). One transaction; a second rollback of
// the same redemption, even a concurrent one, is refused (`already_rolled_back`).

export async function rollbackRedemption(
  trx: Executor,
  services: Services,
  redemptionId: string,
  opts: { reason?: string | null },
): Promise<Record<string, unknown>> {
  const redemption = await services.vouchers.getRedemption(trx, redemptionId);
  if (redemption.result === 'FAILURE') {
    throw refused(
      'redemption_failed',
      'Redemption failed',
      `Redemption ${redemptionId} was refused; nothing to roll back`,
    );
  }
  if (redemption.status === 'ROLLED_BACK') {
    throw refused('already_rolled_back', 'Already rolled back', `Redemption ${redemptionId} was already rolled back`);
  }
  if (redemption.kind === 'voucher') {
    const done = await services.vouchers.rollbackVoucherRedemption(trx, redemption, opts);
    // A referral code's redemption that converted a referee: the conversion is undone too.
    if (done.voucher?.referrer_id) {
      await rollbackReferral(services, trx, redemption.id, done.redemption.rollback_id ?? redemption.id);
    }
    return presentRollback(done.redemption, done.voucher);
  }
  return rollbackRewardRedemption(trx, services, redemption, opts);
}

export function rollbackRedemptionRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  app.post(
    '/v1/redemptions/:redemptionId/rollback',
    {
      schema: {
        tags: ['vouchers'],
        summary: 'Roll a redemption back (a voucher redemption, or a reward redemption)',
        params: RedemptionParams,
        querystring: RollbackQuery,
        response: { 200: Answer('redemption_rollback') },
      },
    },
    async (req, reply) => {
      const body = (req.body ?? {}) as { reason?: unknown };
      const reason = req.query.reason ?? (typeof body.reason === 'string' ? body.reason : null);
      return runIdempotentWrite(ctx, req, reply, 200, (trx) =>
        rollbackRedemption(trx, services, req.params.redemptionId, { reason }),
      );
    },
  );
}
