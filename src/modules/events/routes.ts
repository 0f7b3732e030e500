import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { notFound } from '../../lib/errors.ts';
import { listOf } from '../../http/lists.ts';
import { S } from '../../http/validation.ts';
import type { Services } from '../../services.ts';
import { EVENT_CATALOG, EVENT_TYPES } from './catalog.ts';
import { presentEvent } from './service.ts';

export const eventSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string', description: 'evt_...: also the webhook-id of its deliveries' },
    object: { type: 'string', enum: ['event'] },
    type: { type: 'string' },
    created_at: { type: 'string', format: 'date-time' },
    data: {
      type: 'object',
      additionalProperties: true,
      description: 'Payload; its JSON Schema is in GET /v1/event-types',
    },
    resource_type: { type: ['string', 'null'] },
    resource_id: { type: ['string', 'null'] },
    program_id: { type: ['string', 'null'] },
  },
};

const eventTypeSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    group: { type: 'string' },
    operational: { type: 'boolean' },
    emitted: { type: 'boolean', description: 'False for types reserved for features not built yet' },
    schema: { type: 'object', additionalProperties: true, description: 'JSON Schema of the event data' },
    example: { type: 'object', additionalProperties: true },
  },
};

export const cursorListSchema = (item: object) => ({
  type: 'object',
  properties: {
    object: { type: 'string', enum: ['list'] },
    data_ref: { type: 'string', enum: ['data'] },
    data: { type: 'array', items: item },
    has_more: { type: 'boolean' },
    more_starting_after: { type: ['string', 'null'] },
  },
});

interface ListQuery {
  type?: string;
  resource_id?: string;
  program_id?: string;
  created_after?: string;
  created_before?: string;
  limit: number;
  starting_after_id?: string;
}

export function eventRoutes(app: FastifyInstance, ctx: AppContext, services: Services): void {
  const db = () => ctx.database.db;

  app.get<{ Querystring: ListQuery }>(
    '/v1/events',
    {
      schema: {
        tags: ['events'],
        summary: 'List events, newest first (cursor paging with starting_after_id)',
        querystring: {
          type: 'object',
          properties: {
            type: { type: 'string', description: 'Event type; several separated by commas' },
            resource_id: {
              type: 'string',
              description: 'Id of the resource the event is about (a card v_..., an endpoint whep_...)',
            },
            program_id: { type: 'string' },
            created_after: { type: 'string', format: 'date-time', description: 'Inclusive' },
            created_before: { type: 'string', format: 'date-time', description: 'Exclusive' },
            limit: { type: 'integer', minimum: 1, maximum: 100, default: 10 },
            starting_after_id: { type: 'string', description: 'Cursor: the last event id of the previous page' },
          },
        },
        response: { 200: cursorListSchema(eventSchema) },
      },
    },
    async (req) => {
      const { limit, starting_after_id, ...filter } = req.query;
      const page = await services.events.list(db(), filter, { limit, starting_after_id });
      return {
        object: 'list',
        data_ref: 'data',
        data: page.data.map(presentEvent),
        has_more: page.has_more,
        more_starting_after: page.more_starting_after,
      };
    },
  );

  app.get<{ Params: { eventId: string } }>(
    '/v1/events/:eventId',
    {
      schema: {
        tags: ['events'],
        summary: 'Get an event',
        params: S.idParam('eventId', 'evt_... id'),
        response: { 200: eventSchema },
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
        response: { 200: { type: 'object', additionalProperties: true } },
      },
    },
    async () => listOf('data', EVENT_CATALOG, EVENT_CATALOG.length),
  );

  app.get<{ Params: { type: string } }>(
    '/v1/event-types/:type',
    {
      schema: {
        tags: ['events'],
        summary: 'One event type of the catalog',
        params: S.idParam('type', 'Event type'),
        response: { 200: eventTypeSchema },
      },
    },
    async (req) => {
      const info = EVENT_TYPES.get(req.params.type);
      if (!info) throw notFound('event type', req.params.type);
      return info;
    },
  );
}
