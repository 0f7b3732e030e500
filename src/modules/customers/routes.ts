import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { S } from '../../http/validation.ts';
import type { Services } from '../../services.ts';
import type { Executor } from '../../storage/database.ts';
import { presentCustomer, type CustomerInput, type CustomerListQuery } from './service.ts';

const address = {
  type: ['object', 'null'],
  properties: {
    city: S.nullableString,
    state: S.nullableString,
    line_1: S.nullableString,
    line_2: S.nullableString,
    country: S.nullableString,
    postal_code: S.nullableString,
  },
};

export const customerBody = {
  type: 'object',
  properties: {
    source_id: { type: ['string', 'null'], minLength: 1, maxLength: 200 },
    name: { type: ['string', 'null'], maxLength: 500 },
    email: { type: ['string', 'null'], maxLength: 320, format: 'email' },
    phone: { type: ['string', 'null'], maxLength: 40 },
    description: { type: ['string', 'null'], maxLength: 5000 },
    birthdate: { type: ['string', 'null'], format: 'date' },
    birthday: { type: ['string', 'null'], format: 'date' },
    address,
    metadata: { type: ['object', 'null'], additionalProperties: true },
  },
} as const;

const customerSchema = { type: 'object', additionalProperties: true, properties: { id: { type: 'string' }, object: { type: 'string', enum: ['customer'] } } };
const idParams = S.idParam('customerId', 'Customer id (cust_...) or source_id');

export function customerRoutes(app: FastifyInstance, ctx: AppContext, services: Services): void {
  const svc = services.customers;
  const present = async (rows: Parameters<typeof presentCustomer>[0][], db: Executor = ctx.database.db) => {
    const loyalty = await svc.loyaltyOf(db, rows.map((r) => r.id));
    return rows.map((r) => presentCustomer(r, loyalty.get(r.id)));
  };

  app.post<{ Body: CustomerInput }>(
    '/v1/customers',
    { schema: { tags: ['customers'], summary: 'Create a customer (or update the one with this source_id)', body: customerBody, response: { 200: customerSchema } } },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const { row } = await svc.upsert(trx, req.body);
        return (await present([row], trx))[0];
      }),
  );

  app.get<{ Querystring: CustomerListQuery }>(
    '/v1/customers',
    {
      schema: {
        tags: ['customers'],
        summary: 'List customers',
        querystring: {
          type: 'object',
          properties: {
            ...S.listQuery,
            email: { type: 'string' },
            phone: { type: 'string', description: 'Find customers by phone (any format; compared in E.164)' },
            name: { type: 'string' },
            source_id: { type: 'string' },
            order: { type: 'string', enum: ['created_at', '-created_at'] },
          },
        },
        response: { 200: listSchema('customers', customerSchema) },
      },
    },
    async (req) => {
      const { rows, total } = await svc.list(req.query);
      return listOf('customers', await present(rows), total, { has_more: req.query.page * req.query.limit < total });
    },
  );

  app.get<{ Params: { customerId: string } }>(
    '/v1/customers/:customerId',
    { schema: { tags: ['customers'], summary: 'Get a customer', params: idParams, response: { 200: customerSchema } } },
    async (req) => (await present([await svc.get(ctx.database.db, req.params.customerId)]))[0],
  );

  app.put<{ Params: { customerId: string }; Body: CustomerInput }>(
    '/v1/customers/:customerId',
    { schema: { tags: ['customers'], summary: 'Update a customer (absent fields keep their value; metadata keys merge)', params: idParams, body: customerBody, response: { 200: customerSchema } } },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const row = await svc.update(trx, await svc.get(trx, req.params.customerId), req.body);
        return (await present([row], trx))[0];
      }),
  );

  app.delete<{ Params: { customerId: string } }>(
    '/v1/customers/:customerId',
    { schema: { tags: ['customers'], summary: 'Delete a customer; their loyalty cards are revoked', params: idParams } },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        const row = await svc.get(trx, req.params.customerId);
        for (const m of await services.members.ofCustomer(trx, row.id)) {
          const program = await trx.selectFrom('programs').selectAll().where('id', '=', m.program_id).executeTakeFirstOrThrow();
          await services.members.revoke(trx, m, program);
        }
        await svc.delete(trx, row);
      }),
  );
}
