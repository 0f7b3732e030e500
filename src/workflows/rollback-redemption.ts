import type { Static } from '../http/schema.ts';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.ts';
import { runIdempotentWrite } from '../http/idempotency.ts';
import { Answer, typed } from '../http/schema.ts';
import { invalid, refused } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import {
  ParentRedemptionParams,
  RedemptionParams,
  RollbackQuery,
  StackRollbackAnswer,
  StackRollbackBody,
} from '../modules/vouchers/schemas.ts';
import { presentRollback } from '../modules/vouchers/service.ts';
import type { Services } from '../services.ts';
import type { Executor } from '../storage/database.ts';
import { rollbackRewardRedemption } from './redeem-reward.ts';
import { rollbackReferral } from './referrals.ts';

// Workflow "roll a redemption back": the `redemptions` table (vouchers module) holds both kinds.
// A voucher redemption gives the use (and a gift card's credits) back; a reward redemption gives the
// points back and revokes what it issued (rewards branch). One transaction; a second rollback of
// the same redemption, even a concurrent one, is refused (`already_rolled_back`).
//
// A stacked redemption (a parent, `kind: 'stack'`, and its children) is rolled back whole through
// `POST /v1/redemptions/{parentRedemptionId}/rollbacks`: the parent is marked first (its conditional
// update is the lock two concurrent rollbacks meet: the second finds it rolled back and is refused),
// then each child as above, all in one transaction: any refusal leaves every row as it was. A child
// rolled back on its own before (`POST /v1/redemptions/{childId}/rollback`, which Tally keeps) makes
// the parent's rollback refused (422 `child_already_rolled_back`): the reference never has a stack
// partly rolled back, so Tally changes nothing rather than guess.

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
  if (redemption.kind === 'stack') {
    throw invalid(
      'invalid_redemption',
      'Invalid redemption',
      `Redemption ${redemptionId} is a stacked redemption: ` +
        `roll it back with POST /v1/redemptions/${redemptionId}/rollbacks`,
    );
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

/** Rolls back a stacked redemption: its parent and every child, in the caller's transaction. */
export async function rollbackStack(
  trx: Executor,
  services: Services,
  parentId: string,
  opts: { reason?: string | null },
): Promise<Static<typeof StackRollbackAnswer>> {
  const vouchers = services.vouchers;
  const parent = await vouchers.getRedemption(trx, parentId);
  if (parent.parent_redemption_id) {
    throw invalid(
      'invalid_redemption_parent',
      'Invalid redemption parent',
      `Redemption ${parentId} belongs to the stacked redemption ${parent.parent_redemption_id}: roll that one back`,
    );
  }
  if (parent.kind !== 'stack') {
    // A redemption without a parent: rolled back alone, as Voucherify allows here.
    const rollback = await rollbackRedemption(trx, services, parentId, opts);
    return { rollbacks: [rollback], order: (rollback.order ?? null) as Record<string, unknown> | null };
  }
  if (parent.result === 'FAILURE') {
    throw refused('redemption_failed', 'Redemption failed', `Redemption ${parentId} was refused; nothing to roll back`);
  }
  // Marked first: a concurrent rollback of this parent waits here and is then refused.
  await vouchers.markRolledBack(trx, parentId, newId('rr'), opts.reason ?? null);
  const children = await vouchers.stackChildren(trx, parentId);
  const undone = children.find((c) => c.status !== 'SUCCEEDED');
  if (undone) {
    throw refused(
      'child_already_rolled_back',
      'Child redemption already rolled back',
      `Redemption ${undone.id} of the stacked redemption ${parentId} was already rolled back on its own; ` +
        'nothing was rolled back',
    );
  }
  const rollbacks = [];
  for (const child of children) rollbacks.push(await rollbackRedemption(trx, services, child.id, opts));
  const parentRollback = presentRollback(await vouchers.getRedemption(trx, parentId));
  return { rollbacks, parent_rollback: parentRollback, order: parentRollback.order };
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
  app.post(
    '/v1/redemptions/:parentRedemptionId/rollbacks',
    {
      schema: {
        tags: ['vouchers'],
        summary:
          'Roll a stacked redemption back: every child and the parent, in one transaction (all or none); ' +
          'a redemption without a parent is rolled back alone',
        params: ParentRedemptionParams,
        querystring: RollbackQuery,
        body: StackRollbackBody,
        response: { 200: StackRollbackAnswer },
      },
    },
    async (req, reply) => {
      const reason = req.query.reason ?? req.body?.reason ?? null;
      return runIdempotentWrite(ctx, req, reply, 200, (trx) =>
        rollbackStack(trx, services, req.params.parentRedemptionId, { reason }),
      );
    },
  );
}
