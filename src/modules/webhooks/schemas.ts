import { IdParam, Nullable, PathParams, type Static, StringEnum, Type } from '../../http/schema.ts';
import { CursorLimit, Event } from '../events/schemas.ts';

// Route schemas of the webhooks module. Answers stay loose (every field optional, others allowed).

export const Endpoint = Type.Object(
  {
    id: Type.Optional(Type.String({ description: 'whep_...' })),
    object: Type.Optional(StringEnum(['webhook'])),
    target_url: Type.Optional(Type.String()),
    events: Type.Optional(Type.Array(Type.String())),
    active: Type.Optional(Type.Boolean()),
    description: Type.Optional(Nullable(Type.String())),
    disabled_reason: Type.Optional(
      Nullable(Type.String({ description: '"gone" (the receiver answered 410) or "failing" (5 days of failures)' })),
    ),
    failing_since: Type.Optional(Nullable(Type.String())),
    secret_rotated_until: Type.Optional(
      Nullable(Type.String({ description: 'Until then the previous secret signs beside the current one' })),
    ),
    secret: Type.Optional(Type.String({ description: 'whsec_...: only in the answers of create and rotate-secret' })),
    created_at: Type.Optional(Type.String()),
    updated_at: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

export const Attempt = Type.Object(
  {
    id: Type.Optional(Type.String()),
    object: Type.Optional(StringEnum(['webhook_attempt'])),
    webhook_id: Type.Optional(Type.String()),
    event_id: Type.Optional(Type.String()),
    event_type: Type.Optional(Type.String()),
    attempt: Type.Optional(Type.Integer()),
    trigger: Type.Optional(StringEnum(['scheduled', 'manual', 'test'])),
    status: Type.Optional(StringEnum(['succeeded', 'failed'])),
    status_code: Type.Optional(Nullable(Type.Integer())),
    duration_ms: Type.Optional(Type.Integer()),
    response: Type.Optional(Nullable(Type.String({ description: 'First 1 KB of the response body' }))),
    error: Type.Optional(Nullable(Type.String())),
    next_attempt_at: Type.Optional(Nullable(Type.String())),
    created_at: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

const EndpointFields = {
  target_url: Type.String({
    minLength: 1,
    maxLength: 2000,
    description: 'http(s) URL; private addresses only when the operator allows them',
  }),
  events: Type.Array(Type.String({ minLength: 1, maxLength: 100 }), {
    minItems: 1,
    maxItems: 100,
    description: 'Event types (GET /v1/event-types), or ["*"] for all',
  }),
  active: Type.Boolean({ default: true }),
  description: Nullable(Type.String({ maxLength: 1000 })),
};

export const EndpointCreateBody = Type.Object(
  {
    target_url: EndpointFields.target_url,
    events: EndpointFields.events,
    active: Type.Optional(EndpointFields.active),
    description: Type.Optional(EndpointFields.description),
  },
  { additionalProperties: false },
);
export type EndpointCreateInput = Static<typeof EndpointCreateBody>;

export const EndpointUpdateBody = Type.Object(
  {
    target_url: Type.Optional(EndpointFields.target_url),
    events: Type.Optional(EndpointFields.events),
    active: Type.Optional(Type.Boolean()),
    description: Type.Optional(EndpointFields.description),
  },
  { additionalProperties: false },
);
export type EndpointUpdateInput = Static<typeof EndpointUpdateBody>;

export const TestBody = Nullable(
  Type.Object({ event_type: Type.Optional(Type.String()) }, { additionalProperties: false }),
);

export const TestAnswer = Type.Object({ event: Type.Optional(Event), attempt: Type.Optional(Attempt) });

export const AttemptsQuery = Type.Object({
  status: Type.Optional(StringEnum(['succeeded', 'failed'])),
  limit: CursorLimit,
  starting_after_id: Type.Optional(Type.String({ description: 'Cursor: the last attempt id of the previous page' })),
});
export type AttemptsQuery = Static<typeof AttemptsQuery>;

export const RecoverBody = Type.Object(
  {
    since: Type.String({ format: 'date-time' }),
    until: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);

export const RecoverAnswer = Type.Object({
  object: Type.Optional(Type.String()),
  webhook_id: Type.Optional(Type.String()),
  recovering: Type.Optional(Type.Integer()),
});

export const WebhookParams = IdParam('webhookId', 'whep_... id');
export const WebhookEventParams = PathParams({
  webhookId: 'Webhook endpoint id (whep_...)',
  eventId: 'Event id (evt_...)',
});
