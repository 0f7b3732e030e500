import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { S } from '../../http/validation.ts';
import type { Services } from '../../services.ts';
import { cursorListSchema, eventSchema } from '../events/routes.ts';
import { presentEvent } from '../events/service.ts';
import { presentAttempt, presentEndpoint, type EndpointInput } from './service.ts';

const endpointSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string', description: 'whep_...' },
    object: { type: 'string', enum: ['webhook'] },
    target_url: { type: 'string' },
    events: { type: 'array', items: { type: 'string' } },
    active: { type: 'boolean' },
    description: { type: ['string', 'null'] },
    disabled_reason: {
      type: ['string', 'null'],
      description: '"gone" (the receiver answered 410) or "failing" (5 days of failures)',
    },
    failing_since: { type: ['string', 'null'] },
    secret_rotated_until: {
      type: ['string', 'null'],
      description: 'Until then the previous secret signs beside the current one',
    },
    secret: { type: 'string', description: 'whsec_...: only in the answers of create and rotate-secret' },
    created_at: { type: 'string' },
    updated_at: { type: 'string' },
  },
};

const attemptSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['webhook_attempt'] },
    webhook_id: { type: 'string' },
    event_id: { type: 'string' },
    event_type: { type: 'string' },
    attempt: { type: 'integer' },
    trigger: { type: 'string', enum: ['scheduled', 'manual', 'test'] },
    status: { type: 'string', enum: ['succeeded', 'failed'] },
    status_code: { type: ['integer', 'null'] },
    duration_ms: { type: 'integer' },
    response: { type: ['string', 'null'], description: 'First 1 KB of the response body' },
    error: { type: ['string', 'null'] },
    next_attempt_at: { type: ['string', 'null'] },
    created_at: { type: 'string' },
  },
};

const eventsField = {
  type: 'array',
  minItems: 1,
  maxItems: 100,
  items: { type: 'string', minLength: 1, maxLength: 100 },
  description: 'Event types (GET /v1/event-types), or ["*"] for all',
};
const bodyProps = {
  target_url: {
    type: 'string',
    minLength: 1,
    maxLength: 2000,
    description: 'http(s) URL; private addresses only when the operator allows them',
  },
  events: eventsField,
  active: { type: 'boolean', default: true },
  description: { type: ['string', 'null'], maxLength: 1000 },
};

const attemptsQuery = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['succeeded', 'failed'] },
    limit: { type: 'integer', minimum: 1, maximum: 100, default: 10 },
    starting_after_id: { type: 'string', description: 'Cursor: the last attempt id of the previous page' },
  },
};

type AttemptsQuery = { status?: string; limit: number; starting_after_id?: string };

export function webhookRoutes(app: FastifyInstance, ctx: AppContext, services: Services): void {
  const db = () => ctx.database.db;
  const hooks = services.webhooks;
  const idParams = S.idParam('webhookId', 'whep_... id');

  app.post<{ Body: Required<Pick<EndpointInput, 'target_url' | 'events'>> & EndpointInput }>(
    '/v1/webhooks',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Create a webhook endpoint; the answer carries its signing secret (shown only here)',
        body: {
          type: 'object',
          required: ['target_url', 'events'],
          additionalProperties: false,
          properties: bodyProps,
        },
        response: { 200: endpointSchema },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(
        ctx,
        req,
        reply,
        200,
        async (trx) => presentEndpoint(await hooks.create(trx, req.body, { urlChecked: true }), { secret: true }),
        {
          before: () => hooks.checkUrl(req.body.target_url),
          sealAnswer: true,
        },
      ),
  );

  app.get(
    '/v1/webhooks',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'List webhook endpoints',
        response: { 200: listSchema('data', endpointSchema) },
      },
    },
    async () => {
      const rows = await hooks.list(db());
      return listOf(
        'data',
        rows.map((r) => presentEndpoint(r)),
        rows.length,
      );
    },
  );

  app.get<{ Params: { webhookId: string } }>(
    '/v1/webhooks/:webhookId',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Get a webhook endpoint',
        params: idParams,
        response: { 200: endpointSchema },
      },
    },
    async (req) => presentEndpoint(await hooks.get(db(), req.params.webhookId)),
  );

  app.put<{ Params: { webhookId: string }; Body: EndpointInput }>(
    '/v1/webhooks/:webhookId',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Update a webhook endpoint (the fields given); active: true re-enables a disabled one',
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { ...bodyProps, active: { type: 'boolean' } },
        },
        response: { 200: endpointSchema },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(
        ctx,
        req,
        reply,
        200,
        async (trx) => presentEndpoint(await hooks.update(trx, req.params.webhookId, req.body, { urlChecked: true })),
        {
          before: async () => {
            if (req.body.target_url !== undefined) await hooks.checkUrl(req.body.target_url);
          },
        },
      ),
  );

  app.delete<{ Params: { webhookId: string } }>(
    '/v1/webhooks/:webhookId',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Delete a webhook endpoint, its pending deliveries and its attempt log',
        params: idParams,
      },
    },
    async (req, reply) => runIdempotentWrite(ctx, req, reply, 204, (trx) => hooks.remove(trx, req.params.webhookId)),
  );

  app.post<{ Params: { webhookId: string } }>(
    '/v1/webhooks/:webhookId/rotate-secret',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'New signing secret; the previous one keeps signing beside it for 24 hours',
        params: idParams,
        response: { 200: endpointSchema },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(
        ctx,
        req,
        reply,
        200,
        async (trx) => presentEndpoint(await hooks.rotate(trx, req.params.webhookId), { secret: true }),
        { sealAnswer: true },
      ),
  );

  app.post<{ Params: { webhookId: string }; Body: { event_type?: string } | undefined }>(
    '/v1/webhooks/:webhookId/test',
    {
      schema: {
        tags: ['webhooks'],
        summary: "Send a sample event (the catalog's example) now; answers with the attempt",
        params: idParams,
        body: { type: ['object', 'null'], additionalProperties: false, properties: { event_type: { type: 'string' } } },
        response: { 200: { type: 'object', properties: { event: eventSchema, attempt: attemptSchema } } },
      },
      // Outbound I/O, no lasting state beyond the attempt log: see 'claim' in src/http/idempotency.ts.
      config: { idempotency: 'claim' },
    },
    async (req) => {
      const { event, attempt } = await hooks.test(req.params.webhookId, req.body?.event_type);
      return {
        event: presentEvent({
          ...event,
          resource_type: 'webhook_test',
          resource_id: req.params.webhookId,
          program_id: null,
        }),
        attempt: presentAttempt(attempt),
      };
    },
  );

  app.get<{ Params: { webhookId: string }; Querystring: AttemptsQuery }>(
    '/v1/webhooks/:webhookId/attempts',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Delivery attempts of an endpoint, newest first',
        params: idParams,
        querystring: attemptsQuery,
        response: { 200: cursorListSchema(attemptSchema) },
      },
    },
    async (req) => {
      await hooks.get(db(), req.params.webhookId);
      const { limit, starting_after_id, status } = req.query;
      const page = await hooks.attempts(
        db(),
        { endpointId: req.params.webhookId, status },
        { limit, starting_after_id },
      );
      return {
        object: 'list',
        data_ref: 'data',
        data: page.data.map(presentAttempt),
        has_more: page.has_more,
        more_starting_after: page.more_starting_after,
      };
    },
  );

  app.get<{ Params: { eventId: string }; Querystring: AttemptsQuery }>(
    '/v1/events/:eventId/attempts',
    {
      schema: {
        tags: ['events'],
        summary: 'Delivery attempts of an event to every endpoint, newest first',
        params: S.idParam('eventId', 'evt_... id'),
        querystring: attemptsQuery,
        response: { 200: cursorListSchema(attemptSchema) },
      },
    },
    async (req) => {
      await services.events.get(db(), req.params.eventId);
      const { limit, starting_after_id, status } = req.query;
      const page = await hooks.attempts(db(), { eventId: req.params.eventId, status }, { limit, starting_after_id });
      return {
        object: 'list',
        data_ref: 'data',
        data: page.data.map(presentAttempt),
        has_more: page.has_more,
        more_starting_after: page.more_starting_after,
      };
    },
  );

  app.post<{ Params: { webhookId: string; eventId: string } }>(
    '/v1/webhooks/:webhookId/events/:eventId/resend',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Resend one event to this endpoint now: one attempt, outside the retry schedule; answers with it',
        params: S.pathParams({ webhookId: 'Webhook endpoint id (whep_...)', eventId: 'Event id (evt_...)' }),
        response: { 200: attemptSchema },
      },
      config: { idempotency: 'claim' },
    },
    async (req) => presentAttempt(await hooks.resend(req.params.webhookId, req.params.eventId)),
  );

  app.post<{ Params: { webhookId: string }; Body: { since: string; until?: string } }>(
    '/v1/webhooks/:webhookId/recover',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Resend (one attempt each) every failed delivery of events created in [since, until)',
        params: idParams,
        body: {
          type: 'object',
          required: ['since'],
          additionalProperties: false,
          properties: {
            since: { type: 'string', format: 'date-time' },
            until: { type: 'string', format: 'date-time' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: { object: { type: 'string' }, webhook_id: { type: 'string' }, recovering: { type: 'integer' } },
          },
        },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => ({
        object: 'webhook_recovery',
        webhook_id: req.params.webhookId,
        recovering: await hooks.recover(trx, req.params.webhookId, req.body.since, req.body.until),
      })),
  );
}
