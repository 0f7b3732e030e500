import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listPage, listSchema } from '../../http/lists.ts';
import { typed } from '../../http/schema.ts';
import type { Services } from '../../services.ts';
import type { Executor } from '../../storage/database.ts';
import { Customer, CustomerBody, CustomerListQuery, CustomerParams } from './schemas.ts';
import { withReferrals } from '../referrals/service.ts';
import { presentCustomer } from './service.ts';

export function customerRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const svc = services.customers;
  const present = async (rows: Parameters<typeof presentCustomer>[0][], db: Executor = ctx.database.db) => {
    const loyalty = await svc.loyaltyOf(
      db,
      rows.map((r) => r.id),
    );
    // Referrals: `loyalty.referred_customers` and `referrals` (the referrals module's summary).
    const referrals = await services.referrals.summaries(
      db,
      rows.map((r) => r.id),
    );
    return rows.map((r) => withReferrals(presentCustomer(r, loyalty.get(r.id)), referrals.get(r.id)));
  };

  app.post(
    '/v1/customers',
    {
      schema: {
        tags: ['customers'],
        summary: 'Create a customer (or update the one with this source_id)',
        body: CustomerBody,
        response: { 200: Customer },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const { row } = await svc.upsert(trx, req.body);
        return (await present([row], trx))[0];
      }),
  );

  app.get(
    '/v1/customers',
    {
      schema: {
        tags: ['customers'],
        summary: 'List customers',
        querystring: CustomerListQuery,
        response: { 200: listSchema('customers', Customer) },
      },
    },
    async (req) => {
      const page = await svc.list(req.query);
      return listPage('customers', await present(page.rows), page);
    },
  );

  app.get(
    '/v1/customers/:customerId',
    { schema: { tags: ['customers'], summary: 'Get a customer', params: CustomerParams, response: { 200: Customer } } },
    async (req) => (await present([await svc.get(ctx.database.db, req.params.customerId)]))[0],
  );

  app.put(
    '/v1/customers/:customerId',
    {
      schema: {
        tags: ['customers'],
        summary: 'Update a customer (absent fields keep their value; metadata keys merge)',
        params: CustomerParams,
        body: CustomerBody,
        response: { 200: Customer },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const row = await svc.update(trx, await svc.get(trx, req.params.customerId), req.body);
        return (await present([row], trx))[0];
      }),
  );

  app.delete(
    '/v1/customers/:customerId',
    {
      schema: {
        tags: ['customers'],
        summary: 'Delete a customer; their loyalty cards are revoked',
        params: CustomerParams,
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        const row = await svc.get(trx, req.params.customerId);
        for (const m of await services.members.ofCustomer(trx, row.id)) {
          const program = (await services.programs.findAny(trx, m.program_id))!;
          await services.members.revoke(trx, m, program);
        }
        await svc.delete(trx, row);
      }),
  );
}
