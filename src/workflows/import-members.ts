import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.ts';
import { runIdempotentWrite } from '../http/idempotency.ts';
import { listOf, listSchema } from '../http/lists.ts';
import { typed } from '../http/schema.ts';
import { DomainError } from '../lib/errors.ts';
import type { Services } from '../services.ts';
import { retryOnLostRace } from '../storage/race.ts';
import { CampaignParams, ImportMembersBody, Member } from '../modules/members/schemas.ts';
import type { Workflows } from './index.ts';

// Importing members from another system: each item is a join (POST /v1/loyalties/{campaignId}/members)
// with its external `loyalty_subscription_id` and the `created_at` its subscription began with.
// All in one transaction: every member is imported, or none (a refused item names its index).

export function importMembersRoute(
  fastify: FastifyInstance,
  ctx: AppContext,
  services: Services,
  workflows: Workflows,
) {
  const app = typed(fastify);
  app.post(
    '/v1/loyalties/:campaignId/members/import',
    {
      schema: {
        tags: ['members'],
        summary:
          'Import members (1-1000): each a join with its loyalty_subscription_id and past created_at; ' + 'all or none',
        params: CampaignParams,
        body: ImportMembersBody,
        response: { 200: listSchema('vouchers', Member) },
      },
    },
    async (req, reply) =>
      retryOnLostRace(() =>
        runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
          const program = await services.programs.get(trx, req.params.campaignId);
          const members = [];
          for (const [i, item] of req.body.members.entries()) {
            try {
              const customer = await workflows.resolveCustomer(trx, item.customer);
              const m = await workflows.joinProgram(trx, program, customer, {
                code: item.voucher,
                metadata: item.metadata,
                source: item.channel ?? 'import',
                loyaltySubscriptionId: item.loyalty_subscription_id,
                createdAt: item.created_at,
              });
              members.push(await services.members.presentOne(trx, m, program));
            } catch (err) {
              if (!(err instanceof DomainError)) throw err;
              const fields = err.fields?.map((f) => ({ ...f, field: `members[${i}].${f.field}` }));
              throw new DomainError(err.kind, err.key, err.message, `members[${i}]: ${err.details ?? ''}`, fields);
            }
          }
          return listOf('vouchers', members, members.length);
        }),
      ),
  );
}
