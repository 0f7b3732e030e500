import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { notFound } from '../../lib/errors.ts';
import { listOf } from '../../http/lists.ts';
import { typed } from '../../http/schema.ts';
import type { Services } from '../../services.ts';
import { EVENT_CATALOG, EVENT_TYPES } from './catalog.ts';
import { CursorList, Event, EventCatalog, EventListQuery, EventParams, EventType, EventTypeParams } from './schemas.ts';
import { presentEvent } from './service.ts';

export function eventRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const db = () => ctx.database.db;

  app.get(
    '/v1/events',
    {
      schema: {
        tags: ['events'],
        summary: 'List events, newest first (cursor paging with starting_after_id)',
        querystring: EventListQuery,
        response: { 200: CursorList(Event) },
      },
    },
    async (req) => {
      const { limit, starting_after_id, ...filter } = req.query;
      const page = await services.events.list(db(), filter, { limit, starting_after_id });
      return {
        object: 'list' as const,
        data_ref: 'data' as const,
        data: page.data.map(presentEvent),
        has_more: page.has_more,
        more_starting_after: page.more_starting_after,
      };
    },
  );

  app.get(
    '/v1/events/:eventId',
    {
      schema: {
        tags: ['events'],
        summary: 'Get an event',
        params: EventParams,
        response: { 200: Event },
      },
    },
    async (req) => presentEvent(await services.events.get(db(), req.params.eventId)),
  );

  app.get(
    '/v1/event-types',
    {
      schema: {
        tags: ['events'],
        summary: 'The event catalog: every type with the JSON Schema of its data and an example',
        response: { 200: EventCatalog },
      },
    },
    async () => listOf('data', EVENT_CATALOG, EVENT_CATALOG.length),
  );

  app.get(
    '/v1/event-types/:type',
    {
      schema: {
        tags: ['events'],
        summary: 'One event type of the catalog',
        params: EventTypeParams,
        response: { 200: EventType },
      },
    },
    async (req) => {
      const info = EVENT_TYPES.get(req.params.type);
      if (!info) throw notFound('event type', req.params.type);
      return info;
    },
  );
}
