import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.ts';
import { runIdempotentWrite } from '../http/idempotency.ts';
import { listOf, listSchema } from '../http/lists.ts';
import { typed } from '../http/schema.ts';
import type { Services } from '../services.ts';
import type { Executor } from '../storage/database.ts';
import { retryOnLostRace } from '../storage/race.ts';
import { presentHolder } from '../modules/members/households.ts';
import {
  AddHoldersBody,
  CampaignHolderParams,
  CampaignMemberParams,
  Holder,
  HolderParams,
  MemberParams,
} from '../modules/members/schemas.ts';
import type { Workflows } from './index.ts';

// Households: the member contacts of a card (subscription), at Voucherify's holders paths, with and
// without the campaign. Adding upserts the customers it is given (customers) and adds each to the
// card (members): it spans modules, so the routes live here. One transaction per request: either
// every contact is added, or none (a refusal for one refuses all, as Voucherify does).

/** The card a path names (within the campaign when it names one), with its program. */
async function cardOf(trx: Executor, services: Services, memberId: string, campaignId?: string) {
  const program = campaignId ? await services.programs.get(trx, campaignId) : undefined;
  const m = await services.members.get(trx, memberId, program?.id);
  // The card outlives its program: a deleted program still answers for its cards.
  return { m, program: program ?? (await services.programs.findAny(trx, m.program_id))! };
}

export function householdRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services, workflows: Workflows) {
  const app = typed(fastify);
  const db = () => ctx.database.db;

  for (const prefix of ['/v1/loyalties/:campaignId/members', '/v1/loyalties/members'] as const) {
    const inCampaign = prefix.includes(':campaignId');
    const campaignOf = (params: object) => (params as { campaignId?: string }).campaignId;

    app.get(
      `${prefix}/:memberId/holders`,
      {
        schema: {
          tags: ['members'],
          summary: 'List the member contacts of a card (its household), by member number',
          params: inCampaign ? CampaignMemberParams : MemberParams,
          response: { 200: { ...listSchema('data', Holder), required: ['object', 'data_ref', 'data', 'total'] } },
        },
      },
      async (req) => {
        const { m } = await cardOf(db(), services, req.params.memberId, campaignOf(req.params));
        const contacts = await services.households.contacts(db(), m.id);
        return listOf(
          'data',
          contacts.map((c) => presentHolder(c, m)),
          contacts.length,
          { has_more: false },
        );
      },
    );

    app.post(
      `${prefix}/:memberId/holders`,
      {
        schema: {
          tags: ['members'],
          summary:
            'Add member contacts to a card (customers upserted): they share its balances, tier and vouchers; ' +
            'emits subscription_member_added per contact added',
          params: inCampaign ? CampaignMemberParams : MemberParams,
          body: AddHoldersBody,
          response: { 200: { type: 'object', properties: { holders: { type: 'array', items: Holder } } } },
        },
      },
      async (req, reply) =>
        // A concurrent add taking the same member number or contact loses its race (LostRace);
        // running again numbers after it, or refuses the contact now in another subscription.
        retryOnLostRace(() =>
          runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
            const { m, program } = await cardOf(trx, services, req.params.memberId, campaignOf(req.params));
            const holders = [];
            for (const ref of req.body.holders) {
              const customer = await workflows.resolveCustomer(trx, ref);
              const { contact } = await services.households.add(trx, program, m, customer.id, req.body.metadata);
              holders.push(presentHolder(contact, m));
            }
            return { holders };
          }),
        ),
    );

    app.delete(
      `${prefix}/:memberId/holders/:holderId`,
      {
        schema: {
          tags: ['members'],
          summary: 'Remove a member contact from a card; emits subscription_member_removed',
          params: inCampaign ? CampaignHolderParams : HolderParams,
        },
      },
      async (req, reply) =>
        runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
          const { m, program } = await cardOf(trx, services, req.params.memberId, campaignOf(req.params));
          await services.households.remove(trx, program, m, req.params.holderId);
        }),
    );
  }
}
