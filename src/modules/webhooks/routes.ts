import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { typed } from '../../http/schema.ts';
import type { Services } from '../../services.ts';
import { CursorList, EventParams } from '../events/schemas.ts';
import { presentEvent } from '../events/service.ts';
import {
  Attempt,
  AttemptsQuery,
  Endpoint,
  EndpointCreateBody,
  EndpointUpdateBody,
  RecoverAnswer,
  RecoverBody,
  TestAnswer,
  TestBody,
  WebhookEventParams,
  WebhookParams,
} from './schemas.ts';
import { presentAttempt, presentEndpoint } from './service.ts';

export function webhookRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const db = () => ctx.database.db;
  const hooks = services.webhooks;

  app.post(
    '/v1/webhooks',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Create a webhook endpoint; the answer carries its signing secret (shown only here)',
        body: EndpointCreateBody,
        response: { 200: Endpoint },
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
        response: { 200: listSchema('data', Endpoint) },
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

  app.get(
    '/v1/webhooks/:webhookId',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Get a webhook endpoint',
        params: WebhookParams,
        response: { 200: Endpoint },
      },
    },
    async (req) => presentEndpoint(await hooks.get(db(), req.params.webhookId)),
  );

  app.put(
    '/v1/webhooks/:webhookId',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Update a webhook endpoint (the fields given); active: true re-enables a disabled one',
        params: WebhookParams,
        body: EndpointUpdateBody,
        response: { 200: Endpoint },
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

  app.delete(
    '/v1/webhooks/:webhookId',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Delete a webhook endpoint, its pending deliveries and its attempt log',
        params: WebhookParams,
      },
    },
    async (req, reply) => runIdempotentWrite(ctx, req, reply, 204, (trx) => hooks.remove(trx, req.params.webhookId)),
  );

  app.post(
    '/v1/webhooks/:webhookId/rotate-secret',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'New signing secret; the previous one keeps signing beside it for 24 hours',
        params: WebhookParams,
        response: { 200: Endpoint },
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

  app.post(
    '/v1/webhooks/:webhookId/test',
    {
      schema: {
        tags: ['webhooks'],
        summary: "Send a sample event (the catalog's example) now; answers with the attempt",
        params: WebhookParams,
        body: TestBody,
        response: { 200: TestAnswer },
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

  app.get(
    '/v1/webhooks/:webhookId/attempts',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Delivery attempts of an endpoint, newest first',
        params: WebhookParams,
        querystring: AttemptsQuery,
        response: { 200: CursorList(Attempt) },
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
        object: 'list' as const,
        data_ref: 'data' as const,
        data: page.data.map(presentAttempt),
        has_more: page.has_more,
        more_starting_after: page.more_starting_after,
      };
    },
  );

  app.get(
    '/v1/events/:eventId/attempts',
    {
      schema: {
        tags: ['events'],
        summary: 'Delivery attempts of an event to every endpoint, newest first',
        params: EventParams,
        querystring: AttemptsQuery,
        response: { 200: CursorList(Attempt) },
      },
    },
    async (req) => {
      await services.events.get(db(), req.params.eventId);
      const { limit, starting_after_id, status } = req.query;
      const page = await hooks.attempts(db(), { eventId: req.params.eventId, status }, { limit, starting_after_id });
      return {
        object: 'list' as const,
        data_ref: 'data' as const,
        data: page.data.map(presentAttempt),
        has_more: page.has_more,
        more_starting_after: page.more_starting_after,
      };
    },
  );

  app.post(
    '/v1/webhooks/:webhookId/events/:eventId/resend',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Resend one event to this endpoint now: one attempt, outside the retry schedule; answers with it',
        params: WebhookEventParams,
        response: { 200: Attempt },
      },
      config: { idempotency: 'claim' },
    },
    async (req) => presentAttempt(await hooks.resend(req.params.webhookId, req.params.eventId)),
  );

  app.post(
    '/v1/webhooks/:webhookId/recover',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Resend (one attempt each) every failed delivery of events created in [since, until)',
        params: WebhookParams,
        body: RecoverBody,
        response: { 200: RecoverAnswer },
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
