import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../../context.ts';
import { toApiError } from '../../http/errors.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listPage, listSchema } from '../../http/lists.ts';
import { Type, typed } from '../../http/schema.ts';
import { invalid } from '../../lib/errors.ts';
import type { Services } from '../../services.ts';
import type { Executor } from '../../storage/database.ts';
import { resolveCustomer } from '../../workflows/join-program.ts';
import type { CustomerRef } from '../customers/schemas.ts';
import {
  Campaign,
  CampaignBody,
  CampaignListQuery,
  CampaignParams,
  CodeParams,
  CustomerParams,
  DeleteQuery,
  ImportBody,
  Publication,
  PublicationBody,
  PublicationListQuery,
  PublicationQuery,
  RedeemablesQuery,
  RedeemBody,
  RedemptionAnswer,
  RedemptionListQuery,
  RedemptionParams,
  StackAnswer,
  StackBody,
  Voucher,
  VoucherBody,
  VoucherListQuery,
} from './schemas.ts';
import { newId } from '../../lib/ids.ts';
import { failedRedemption } from './redemption-rows.ts';
import { stackKnown, stackParent } from './stacks.ts';
import {
  type ImportedCode,
  presentPublication,
  presentRedemption,
  presentVoucher,
  type RedeemInput,
  type ValidationResult,
  VoucherRefusal,
  type VoucherRow,
} from './service.ts';

// Voucherify's voucher API: campaigns (DISCOUNT_COUPONS, GIFT_VOUCHERS; loyalty programs are at
// /v1/loyalties), vouchers, publications, validations, redemptions and a customer's redeemables.
// The rollback route (vouchers and rewards) is a workflow: src/workflows/rollback-redemption.ts.

const TAGS = ['vouchers'];

export function voucherRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const svc = services.vouchers;
  const db = () => ctx.database.db;
  const write = <T>(req: FastifyRequest, reply: FastifyReply, status: number, fn: (trx: Executor) => Promise<T>) =>
    runIdempotentWrite(ctx, req, reply, status, fn, { onRefused: svc.recordRefusal });

  const customerId = async (trx: Executor, ref: CustomerRef | null | undefined) =>
    ref ? (await resolveCustomer(trx, services, ref)).id : null;
  const redeemInput = async (
    trx: Executor,
    b: {
      customer?: CustomerRef | null;
      order?: RedeemInput['order'];
      metadata?: Record<string, unknown> | null;
      tracking_id?: string | null;
    },
    gift?: { credits?: number } | null,
  ): Promise<RedeemInput> => ({
    customerId: await customerId(trx, b.customer),
    order: b.order ?? null,
    metadata: b.metadata ?? null,
    trackingId: b.tracking_id ?? null,
    giftCredits: gift?.credits ?? null,
  });

  // ---- campaigns ----

  app.post(
    '/v1/campaigns',
    {
      schema: {
        tags: TAGS,
        summary: 'Create a voucher campaign (DISCOUNT_COUPONS or GIFT_VOUCHERS)',
        body: CampaignBody,
        response: { 200: Campaign },
      },
    },
    async (req, reply) =>
      write(req, reply, 200, async (trx) => svc.presentCampaignRow(trx, await svc.createCampaign(trx, req.body))),
  );

  app.get(
    '/v1/campaigns',
    {
      schema: {
        tags: TAGS,
        summary: 'List voucher campaigns (loyalty programs are listed at /v1/loyalties)',
        querystring: CampaignListQuery,
        response: { 200: listSchema('campaigns', Campaign) },
      },
    },
    async (req) => {
      const { rows, total } = await svc.listCampaigns(req.query);
      const items = [];
      for (const r of rows) items.push(await svc.presentCampaignRow(db(), r));
      return listOf('campaigns', items, total);
    },
  );

  app.get(
    '/v1/campaigns/:campaignId',
    { schema: { tags: TAGS, summary: 'Get a voucher campaign', params: CampaignParams, response: { 200: Campaign } } },
    async (req) => svc.presentCampaignRow(db(), await svc.getCampaign(db(), req.params.campaignId)),
  );

  app.put(
    '/v1/campaigns/:campaignId',
    {
      schema: {
        tags: TAGS,
        summary: 'Update a voucher campaign (absent fields keep their value)',
        params: CampaignParams,
        body: CampaignBody,
        response: { 200: Campaign },
      },
    },
    async (req, reply) =>
      write(req, reply, 200, async (trx) => {
        const row = await svc.getCampaign(trx, req.params.campaignId);
        return svc.presentCampaignRow(trx, await svc.updateCampaign(trx, row, req.body));
      }),
  );

  app.delete(
    '/v1/campaigns/:campaignId',
    {
      schema: {
        tags: TAGS,
        summary: 'Delete a voucher campaign and its vouchers (published ones are revoked)',
        params: CampaignParams,
        querystring: DeleteQuery,
      },
    },
    async (req, reply) =>
      write(req, reply, 204, async (trx) => {
        await svc.deleteCampaign(trx, await svc.getCampaign(trx, req.params.campaignId));
      }),
  );

  app.post(
    '/v1/campaigns/:campaignId/import',
    {
      schema: {
        tags: TAGS,
        summary: "Import codes into the campaign's pool (answers the count imported and the codes left)",
        params: CampaignParams,
        body: ImportBody,
      },
    },
    async (req, reply) =>
      write(req, reply, 200, async (trx) => {
        const campaign = await svc.getCampaign(trx, req.params.campaignId);
        const list = Array.isArray(req.body) ? req.body : req.body.codes;
        const codes: ImportedCode[] = list.map((c) => (typeof c === 'string' ? { code: c } : (c as ImportedCode)));
        const imported = await svc.importCodes(trx, campaign, codes);
        const counts = await svc.campaignCounts(trx, campaign.id);
        return {
          object: 'import',
          campaign_id: campaign.id,
          imported,
          vouchers_count: counts.vouchers,
          codes_left: counts.free,
        };
      }),
  );

  app.post(
    '/v1/campaigns/:campaignId/vouchers',
    {
      schema: {
        tags: TAGS,
        summary: 'Add a voucher with a generated code to the campaign',
        params: CampaignParams,
        body: VoucherBody,
        response: { 200: Voucher },
      },
    },
    async (req, reply) =>
      write(req, reply, 200, async (trx) => {
        const { code: _code, ...rest } = req.body ?? {};
        return presentVoucher(await svc.create(trx, { ...rest, campaign: req.params.campaignId }));
      }),
  );

  app.post(
    '/v1/campaigns/:campaignId/vouchers/:code',
    {
      schema: {
        tags: TAGS,
        summary: 'Add a voucher with this code to the campaign',
        params: Type.Object({ ...CampaignParams.properties, ...CodeParams.properties }),
        body: VoucherBody,
        response: { 200: Voucher },
      },
    },
    async (req, reply) =>
      write(req, reply, 200, async (trx) =>
        presentVoucher(
          await svc.create(trx, { ...(req.body ?? {}), code: req.params.code, campaign: req.params.campaignId }),
        ),
      ),
  );

  // ---- vouchers ----

  const createVoucher = (code: string | undefined) => async (req: FastifyRequest, reply: FastifyReply) =>
    write(req, reply, 200, async (trx) => {
      const body = (req.body ?? {}) as VoucherBody;
      return presentVoucher(await svc.create(trx, { ...body, code: code ?? body.code }));
    });

  for (const path of ['/v1/vouchers', '/v1/vouchers/']) {
    app.post(
      path,
      {
        schema: {
          tags: TAGS,
          summary: 'Create a voucher with a generated code (code_config, or its campaign’s)',
          body: VoucherBody,
          response: { 200: Voucher },
        },
      },
      async (req, reply) => createVoucher(undefined)(req, reply),
    );
  }

  app.post(
    '/v1/vouchers/:code',
    {
      schema: {
        tags: TAGS,
        summary: 'Create a voucher with this code',
        params: CodeParams,
        body: VoucherBody,
        response: { 200: Voucher },
      },
    },
    async (req, reply) => createVoucher(req.params.code)(req, reply),
  );

  app.get(
    '/v1/vouchers',
    {
      schema: {
        tags: TAGS,
        summary: 'List vouchers',
        querystring: VoucherListQuery,
        response: { 200: listSchema('vouchers', Voucher) },
      },
    },
    async (req) => {
      const q = { ...req.query };
      if (q.customer) q.customer = (await services.customers.find(db(), q.customer))?.id ?? q.customer;
      const page = await svc.list(q);
      return listPage('vouchers', page.rows.map(presentVoucher), page);
    },
  );

  app.get(
    '/v1/vouchers/:code',
    { schema: { tags: TAGS, summary: 'Get a voucher', params: CodeParams, response: { 200: Voucher } } },
    async (req) => presentVoucher(await svc.get(db(), req.params.code)),
  );

  app.put(
    '/v1/vouchers/:code',
    {
      schema: {
        tags: TAGS,
        summary: 'Update a voucher (dates, active, metadata, redemption.quantity, discount)',
        params: CodeParams,
        body: VoucherBody,
        response: { 200: Voucher },
      },
    },
    async (req, reply) =>
      write(req, reply, 200, async (trx) =>
        presentVoucher(await svc.update(trx, await svc.get(trx, req.params.code), req.body)),
      ),
  );

  app.delete(
    '/v1/vouchers/:code',
    {
      schema: {
        tags: TAGS,
        summary: 'Delete a voucher (its code stays taken); emits voucher_revoked',
        params: CodeParams,
        querystring: DeleteQuery,
      },
    },
    async (req, reply) =>
      write(req, reply, 204, async (trx) => {
        await svc.remove(trx, await svc.get(trx, req.params.code));
      }),
  );

  for (const action of ['enable', 'disable'] as const) {
    app.post(
      `/v1/vouchers/:code/${action}`,
      {
        schema: {
          tags: TAGS,
          summary: action === 'enable' ? 'Enable a voucher' : 'Disable a voucher (emits voucher_revoked)',
          params: CodeParams,
          response: { 200: Voucher },
        },
      },
      async (req, reply) =>
        write(req, reply, 200, async (trx) =>
          presentVoucher(await svc.setActive(trx, await svc.get(trx, req.params.code), action === 'enable')),
        ),
    );
  }

  // ---- publications ----

  app.post(
    '/v1/publications',
    {
      schema: {
        tags: TAGS,
        summary: 'Publish a voucher of a campaign (or a given code) to a customer',
        querystring: PublicationQuery,
        body: PublicationBody,
        response: { 200: Publication },
      },
    },
    async (req, reply) =>
      write(req, reply, 200, async (trx) => {
        const b = req.body;
        const customer = await resolveCustomer(trx, services, b.customer);
        const joinOnce = req.query.join_once ?? b.join_once;
        const input = {
          customerId: customer.id,
          joinOnce,
          sourceId: b.source_id,
          channel: b.channel,
          metadata: b.metadata,
        };
        if (b.voucher) {
          const { publication, voucher } = await svc.publishCode(trx, b.voucher, input);
          return presentPublication(publication, voucher);
        }
        const ref = typeof b.campaign === 'string' ? b.campaign : (b.campaign?.id ?? b.campaign?.name);
        if (!ref) {
          throw invalid(
            'missing_campaign',
            'Missing campaign',
            'name a campaign (campaign or campaign.name) or a voucher',
            [{ field: 'campaign', message: 'is required without voucher' }],
          );
        }
        const { publication, voucher } = await svc.publish(trx, await svc.getCampaign(trx, ref), input);
        return presentPublication(publication, voucher);
      }),
  );

  app.get(
    '/v1/publications',
    {
      schema: {
        tags: TAGS,
        summary: 'List publications',
        querystring: PublicationListQuery,
        response: { 200: listSchema('publications', Publication) },
      },
    },
    async (req) => {
      const q = { ...req.query };
      if (q.customer) q.customer = (await services.customers.find(db(), q.customer))?.id ?? q.customer;
      const { items, total } = await svc.listPublications(q);
      return listOf('publications', items, total);
    },
  );

  // ---- validation ----

  const validAnswer = (r: ValidationResult, trackingId: string | null) => {
    const v = presentVoucher(r.voucher);
    return {
      valid: true,
      code: v.code,
      campaign: v.campaign,
      campaign_id: v.campaign_id,
      ...(v.type === 'GIFT_VOUCHER' ? { gift: { ...v.gift, credits: r.amount } } : { discount: v.discount }),
      order: r.order,
      start_date: v.start_date,
      expiration_date: v.expiration_date,
      metadata: v.metadata,
      tracking_id: trackingId,
    };
  };
  const invalidAnswer = (code: string, err: VoucherRefusal, trackingId: string | null) => {
    const e = toApiError(err as never);
    return {
      valid: false,
      code,
      reason: err.message,
      error: { code: e.status, key: err.key, message: err.message, details: err.details },
      tracking_id: trackingId,
    };
  };

  app.post(
    '/v1/vouchers/:code/validate',
    {
      schema: {
        tags: TAGS,
        summary: 'Validate a voucher against an order (valid: false with the reason, and voucher_redeem_unauthorized)',
        params: CodeParams,
        body: RedeemBody,
      },
    },
    async (req, reply) =>
      write(req, reply, 200, async (trx) => {
        const input = await redeemInput(trx, req.body ?? {}, req.body?.gift);
        try {
          return validAnswer(
            await svc.validate(trx, req.params.code, input),
            input.trackingId ?? input.customerId ?? null,
          );
        } catch (err) {
          // A refusal for the voucher's state is an answer (valid: false), with its event; an unknown code is a 404.
          if (!(err instanceof VoucherRefusal) || err.kind === 'not_found') throw err;
          await ctx.outbox.emit(trx, err.event);
          return invalidAnswer(req.params.code, err, input.trackingId ?? input.customerId ?? null);
        }
      }),
  );

  app.post(
    '/v1/validations',
    {
      schema: {
        tags: TAGS,
        summary: 'Validate one or more vouchers against an order',
        body: StackBody,
      },
    },
    async (req, reply) =>
      write(req, reply, 200, async (trx) => {
        const input = await redeemInput(trx, req.body);
        const redeemables = [];
        const inapplicable = [];
        let order = null;
        for (const r of req.body.redeemables) {
          try {
            const res = await svc.validate(trx, r.id, { ...input, giftCredits: r.gift?.credits ?? null });
            order = res.order;
            const v = presentVoucher(res.voucher);
            redeemables.push({
              status: 'APPLICABLE',
              id: r.id,
              object: 'voucher',
              order: res.order,
              result:
                v.type === 'GIFT_VOUCHER' ? { gift: { ...v.gift, credits: res.amount } } : { discount: v.discount },
            });
          } catch (err) {
            if (!(err instanceof VoucherRefusal)) throw err;
            await ctx.outbox.emit(trx, err.event);
            const e = toApiError(err as never);
            inapplicable.push({
              status: 'INAPPLICABLE',
              id: r.id,
              object: 'voucher',
              result: { error: { code: e.status, key: err.key, message: err.message, details: err.details } },
            });
          }
        }
        return {
          valid: inapplicable.length === 0,
          redeemables,
          inapplicable_redeemables: inapplicable,
          order,
          tracking_id: input.trackingId ?? input.customerId,
        };
      }),
  );

  // ---- redemptions ----

  const presentWithVoucher = (r: Parameters<typeof presentRedemption>[0], v: VoucherRow) => presentRedemption(r, v);

  app.post(
    '/v1/vouchers/:code/redemption',
    {
      schema: {
        tags: TAGS,
        summary: 'Redeem a voucher (discount computed from the order; gift vouchers spend their balance)',
        params: CodeParams,
        body: RedeemBody,
        response: { 200: RedemptionAnswer },
      },
    },
    async (req, reply) =>
      write(req, reply, 200, async (trx) => {
        const input = await redeemInput(trx, req.body ?? {}, req.body?.gift);
        const { redemption, voucher } = await svc.redeem(trx, req.params.code, input);
        return presentWithVoucher(redemption, voucher);
      }),
  );

  app.get(
    '/v1/vouchers/:code/redemption',
    { schema: { tags: TAGS, summary: "A voucher's redemptions", params: CodeParams } },
    async (req) => {
      const v = await svc.get(db(), req.params.code);
      const { rows, total } = await svc.listRedemptions({ limit: 100, page: 1, voucher: v.id });
      return {
        quantity: v.quantity,
        redeemed_quantity: v.redeemed_quantity,
        object: 'list',
        url: `/v1/vouchers/${encodeURIComponent(v.code)}/redemption`,
        data_ref: 'redemption_entries',
        total,
        redemption_entries: rows.map((r) => presentRedemption(r, v)),
      };
    },
  );

  app.post(
    '/v1/redemptions',
    {
      schema: {
        tags: TAGS,
        summary:
          'Redeem one or more vouchers with an order (all or none); several keep a parent redemption ' +
          '(parent_redemption, each child names it in parent_redemption_id)',
        body: StackBody,
        response: { 200: StackAnswer },
      },
    },
    async (req, reply) =>
      write(req, reply, 200, async (trx) => {
        const input = await redeemInput(trx, req.body);
        // Several redeemables: a parent redemption, written in this transaction with its children.
        const parentId = req.body.redeemables.length > 1 ? newId('r') : null;
        const rows = [];
        const redemptions = [];
        let order = null;
        for (const r of req.body.redeemables) {
          let done: Awaited<ReturnType<typeof svc.redeem>>;
          try {
            done = await svc.redeem(trx, r.id, {
              ...input,
              giftCredits: r.gift?.credits ?? null,
              parentRedemptionId: parentId,
            });
          } catch (err) {
            // A refused stack keeps a FAILURE parent too (written with the child's, by recordRefusal).
            if (parentId && err instanceof VoucherRefusal && err.failure)
              err.parentFailure = failedRedemption(err, err.failure.created_at, { ...stackKnown(input), id: parentId });
            throw err;
          }
          rows.push(done.redemption);
          order = presentRedemption(done.redemption).order;
          redemptions.push(presentWithVoucher(done.redemption, done.voucher));
        }
        if (!parentId) return { redemptions, order };
        const parent = stackParent(parentId, rows[rows.length - 1].created_at, input, rows);
        await svc.recordRedemption(trx, parent);
        const presented = presentRedemption(parent);
        return { redemptions, parent_redemption: presented, order: presented.order };
      }),
  );

  app.get(
    '/v1/redemptions',
    {
      schema: {
        tags: TAGS,
        summary: 'List redemptions (vouchers and rewards)',
        querystring: RedemptionListQuery,
        response: { 200: listSchema('redemptions', RedemptionAnswer) },
      },
    },
    async (req) => {
      const q = { ...req.query };
      if (q.customer) q.customer = (await services.customers.find(db(), q.customer))?.id ?? q.customer;
      const page = await svc.listRedemptions(q);
      const vouchers = await svc.vouchersById(
        db(),
        page.rows.map((r) => r.voucher_id),
      );
      return listPage(
        'redemptions',
        page.rows.map((r) => presentRedemption(r, r.voucher_id ? vouchers.get(r.voucher_id) : null)),
        page,
      );
    },
  );

  app.get(
    '/v1/redemptions/:redemptionId',
    {
      schema: {
        tags: TAGS,
        summary: 'Get a redemption',
        params: RedemptionParams,
        response: { 200: RedemptionAnswer },
      },
    },
    async (req) => {
      const r = await svc.getRedemption(db(), req.params.redemptionId);
      const vouchers = await svc.vouchersById(db(), [r.voucher_id]);
      return presentRedemption(r, r.voucher_id ? vouchers.get(r.voucher_id) : null);
    },
  );

  // ---- a customer's redeemables ----

  app.get(
    '/v1/customers/:customerId/redeemables',
    {
      schema: {
        tags: TAGS,
        summary: "A customer's vouchers and loyalty cards",
        params: CustomerParams,
        querystring: RedeemablesQuery,
        response: { 200: listSchema('data') },
      },
    },
    async (req) => {
      const customer = await services.customers.get(db(), req.params.customerId);
      const vouchers = await svc.ofCustomer(db(), customer.id, req.query.limit);
      const data: Record<string, unknown>[] = vouchers.map(({ voucher, publication_id }) => ({
        id: publication_id ?? voucher.id,
        created_at: voucher.published_at ?? voucher.created_at,
        redeemable_id: voucher.id,
        redeemable_object: 'voucher',
        customer_id: customer.id,
        // A referral code is held by its referrer (Voucherify's holder role REFERRER).
        holder_role: voucher.referrer_id === customer.id ? 'REFERRER' : 'OWNER',
        campaign_id: voucher.campaign_id,
        campaign_type: voucher.referrer_id
          ? 'REFERRAL_PROGRAM'
          : voucher.type === 'GIFT_VOUCHER'
            ? 'GIFT_VOUCHERS'
            : 'DISCOUNT_COUPONS',
        voucher_type: voucher.type,
        redeemable: { voucher: presentVoucher(voucher), status: voucher.active === 1 ? 'ACTIVE' : 'INACTIVE' },
        object: 'customer_redeemable',
      }));
      // The cards the customer holds, then those shared with it as a household's member contact.
      const cards = [
        ...(await services.members.ofCustomer(db(), customer.id)).map((m) => ({ m, role: 'OWNER' })),
        ...(await services.households.sharedCards(db(), customer.id)).map((m) => ({ m, role: 'MEMBER' })),
      ];
      for (const { m, role } of cards) {
        if (data.length >= req.query.limit) break;
        data.push({
          id: m.id,
          created_at: m.created_at,
          redeemable_id: m.id,
          redeemable_object: 'voucher',
          customer_id: customer.id,
          holder_role: role,
          campaign_id: m.program_id,
          campaign_type: 'LOYALTY_PROGRAM',
          voucher_type: 'LOYALTY_CARD',
          redeemable: {
            voucher: { id: m.id, code: m.code, campaign_id: m.program_id, type: 'LOYALTY_CARD' },
            status: m.status,
          },
          object: 'customer_redeemable',
        });
      }
      return { object: 'list', data_ref: 'data', data, total: data.length, has_more: false };
    },
  );
}
