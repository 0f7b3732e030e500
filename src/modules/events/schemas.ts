import { AnyObject, IdParam, Nullable, type Static, StringEnum, type TSchema, Type } from '../../http/schema.ts';

// Route schemas of the events module. Answers stay loose (every field optional, others allowed):
// they document the answer and let fast-json-stringify write it, they do not check it.

/**
 * A property that may be left out and then takes its schema's `default` (Ajv fills it in before
 * the handler runs): optional in the JSON Schema, always present in the request's type.
 */
export const Defaulted = <T extends TSchema>(schema: T) => Type.Optional(schema) as unknown as T;

export const Event = Type.Object(
  {
    id: Type.Optional(Type.String({ description: 'evt_...: also the webhook-id of its deliveries' })),
    object: Type.Optional(StringEnum(['event'])),
    type: Type.Optional(Type.String()),
    created_at: Type.Optional(Type.String({ format: 'date-time' })),
    data: Type.Optional(AnyObject({ description: 'Payload; its JSON Schema is in GET /v1/event-types' })),
    resource_type: Type.Optional(Nullable(Type.String())),
    resource_id: Type.Optional(Nullable(Type.String())),
    program_id: Type.Optional(Nullable(Type.String())),
  },
  { additionalProperties: true },
);

export const EventType = Type.Object(
  {
    type: Type.Optional(Type.String()),
    title: Type.Optional(Type.String()),
    group: Type.Optional(Type.String()),
    operational: Type.Optional(Type.Boolean()),
    emitted: Type.Optional(Type.Boolean({ description: 'False for types reserved for features not built yet' })),
    schema: Type.Optional(AnyObject({ description: 'JSON Schema of the event data' })),
    example: Type.Optional(AnyObject()),
  },
  { additionalProperties: true },
);

export const EventCatalog = AnyObject();

/** A page of a cursor-paged list (`starting_after_id`), newest first. */
export const CursorList = <T extends TSchema>(item: T) =>
  Type.Object({
    object: Type.Optional(StringEnum(['list'])),
    data_ref: Type.Optional(StringEnum(['data'])),
    data: Type.Optional(Type.Array(item)),
    has_more: Type.Optional(Type.Boolean()),
    more_starting_after: Type.Optional(Nullable(Type.String())),
  });

/** `limit` of a cursor-paged list. */
export const CursorLimit = Defaulted(Type.Integer({ minimum: 1, maximum: 100, default: 10 }));

export const EventListQuery = Type.Object({
  type: Type.Optional(Type.String({ description: 'Event type; several separated by commas' })),
  resource_id: Type.Optional(
    Type.String({ description: 'Id of the resource the event is about (a card v_..., an endpoint whep_...)' }),
  ),
  program_id: Type.Optional(Type.String()),
  created_after: Type.Optional(Type.String({ format: 'date-time', description: 'Inclusive' })),
  created_before: Type.Optional(Type.String({ format: 'date-time', description: 'Exclusive' })),
  limit: CursorLimit,
  starting_after_id: Type.Optional(Type.String({ description: 'Cursor: the last event id of the previous page' })),
});
export type EventListQuery = Static<typeof EventListQuery>;

export const EventParams = IdParam('eventId', 'evt_... id');
export const EventTypeParams = IdParam('type', 'Event type');
