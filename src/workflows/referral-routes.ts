import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.ts';
import { runIdempotentWrite } from '../http/idempotency.ts';
import { listOf, listSchema } from '../http/lists.ts';
import { typed } from '../http/schema.ts';
import { notFound, refused } from '../lib/errors.ts';
import type { Services } from '../services.ts';
import type { Executor } from '../storage/database.ts';
import { presentCustomerRef } from '../modules/customers/service.ts';
import {
  CampaignHolderParams,
  CustomerReferralParams,
  HolderBody,
  HolderIdParams,
  HolderIdUnscopedParams,
  HolderParams,
  ReferralStatus,
} from '../modules/referrals/schemas.ts';
import { presentHolder } from '../modules/referrals/service.ts';
import type { VoucherRow } from '../modules/vouchers/service.ts';
import { resolveCustomer } from './join-program.ts';
import { referralStatus } from './referrals.ts';

// The referral routes that span modules: the holders of a referral code (vouchers + referrals +
// customers) and a customer's referral status (the read model of src/workflows/referrals.ts).

const TAGS = ['referrals'];

export function referralWorkflowRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const db = () => ctx.database.db;

  /** The referral code a path names (in the campaign, when given); a code must be published to its referrer. */
  const codeOf = async (trx: Executor, memberId: string, campaignId?: string): Promise<VoucherRow> => {
    const voucher = await services.vouchers.get(trx, memberId);
    if (campaignId) {
      const campaign = await services.vouchers.getCampaign(trx, campaignId);
      if (voucher.campaign_id !== campaign.id) throw notFound('referral code', `${memberId} in ${campaign.name}`);
    }
    if (!voucher.referrer_id) {
      throw refused(
        'referral_code_not_published',
        'Referral code not published',
        `Voucher ${voucher.code} is not a referral code published to a referrer`,
      );
    }
    return voucher;
  };

  const present = async (trx: Executor, v: VoucherRow, h: { id: string; customer_id: string; created_at: string }) => {
    const role = h.customer_id === v.referrer_id ? 'REFERRER' : 'REFEREE';
    const customer = await services.customers.find(trx, h.customer_id);
    return {
      ...presentHolder(h, role),
      redeemable_id: v.id,
      redeemable_object: 'voucher',
      campaign_id: v.campaign_id,
      campaign_type: 'REFERRAL_PROGRAM',
      voucher_type: v.type,
      customer: customer ? presentCustomerRef(customer) : null,
    };
  };

  const list = async (v: VoucherRow) => {
    const referrer = { id: `rfh_${v.id}`, customer_id: v.referrer_id!, created_at: v.published_at ?? v.created_at };
    const rows = [referrer, ...(await services.referrals.holders(db(), v.id))];
    const data = [];
    for (const h of rows) data.push(await present(db(), v, h));
    return listOf('data', data, data.length);
  };
  const add = async (trx: Executor, v: VoucherRow, body: HolderBody) => {
    const holders = [];
    for (const ref of body.holders) {
      const customer = await resolveCustomer(trx, services, ref);
      if (customer.id === v.referrer_id) {
        throw refused(
          'referrer_not_permitted_to_redeem',
          'Referrer not permitted to redeem',
          `Customer ${customer.id} is the referrer of ${v.code}; only referees are added as holders`,
        );
      }
      const h = await services.referrals.addHolder(trx, v.campaign_id ?? '', v.id, customer.id);
      holders.push(await present(trx, v, h));
    }
    return { holders };
  };

  for (const scoped of [false, true]) {
    const base = scoped
      ? '/v1/referrals/:campaignId/members/:memberId/holders'
      : '/v1/referrals/members/:memberId/holders';
    const campaignOf = (p: Record<string, string>) => (scoped ? p.campaignId : undefined);
    app.get(
      base,
      {
        schema: {
          tags: TAGS,
          summary: 'The holders of a referral code: its referrer and its referees',
          params: scoped ? CampaignHolderParams : HolderParams,
          response: { 200: listSchema('data') },
        },
      },
      async (req) => list(await codeOf(db(), req.params.memberId, campaignOf(req.params))),
    );
    app.post(
      base,
      {
        schema: {
          tags: TAGS,
          summary: 'Add referees as holders of a referral code (customers upserted)',
          params: scoped ? CampaignHolderParams : HolderParams,
          body: HolderBody,
        },
      },
      async (req, reply) =>
        runIdempotentWrite(ctx, req, reply, 200, async (trx) =>
          add(trx, await codeOf(trx, req.params.memberId, campaignOf(req.params)), req.body),
        ),
    );
    app.delete(
      `${base}/:holderId`,
      {
        schema: {
          tags: TAGS,
          summary: 'Remove a referee holder (the referrer cannot be removed)',
          params: scoped ? HolderIdParams : HolderIdUnscopedParams,
        },
      },
      async (req, reply) =>
        runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
          const v = await codeOf(trx, req.params.memberId, campaignOf(req.params));
          if (req.params.holderId === v.referrer_id || req.params.holderId === `rfh_${v.id}`) {
            throw refused('referrer_not_removable', 'Referrer not removable', 'only referees are removed from a code');
          }
          await services.referrals.removeHolder(trx, v.id, req.params.holderId);
        }),
    );
  }

  app.get(
    '/v1/customers/:customerId/referrals',
    {
      schema: {
        tags: TAGS,
        summary:
          "A customer's referral status: codes, referred count per campaign and in all, rewards earned, " +
          'the next tier, who referred them',
        params: CustomerReferralParams,
        response: { 200: ReferralStatus },
      },
    },
    async (req) => referralStatus(services, db(), await services.customers.get(db(), req.params.customerId)),
  );
}
