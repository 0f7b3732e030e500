/**
 * Route schemas are written once, with TypeBox: the JSON Schema Fastify validates with (and the
 * OpenAPI document is generated from) and the TypeScript type of the request (`Static<typeof X>`,
 * or inferred in handlers through the type provider) come from the same object.
 *
 * Each module keeps its schemas in `schemas.ts`; its routes take the typed view of the app:
 * `const r = app.withTypeProvider<TypeBoxTypeProvider>()`.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { type Static, type TSchema, Type } from 'typebox';

export type { Static, TSchema, TypeBoxTypeProvider };
export { Type };

/** The app as routes see it: request types inferred from the route's TypeBox schemas. */
export const typed = (app: FastifyInstance) => app.withTypeProvider<TypeBoxTypeProvider>();

/**
 * `schema`, or null. Written as `type: [t, 'null']` rather than `anyOf`, so Ajv's messages name
 * the field's own rule ("must be a string or null") and the OpenAPI document stays as it was.
 */
export const Nullable = <T extends TSchema>(schema: T) =>
  Type.Unsafe<Static<T> | null>({ ...schema, type: [(schema as unknown as { type: string }).type, 'null'] });

/** Any JSON object (metadata, provider settings): its keys are the caller's. */
export const AnyObject = (options: { description?: string } = {}) =>
  Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true, ...options });

/** An answer object documented by its id and kind; its other fields are listed in the API docs. */
export const Answer = (object: string) =>
  Type.Unsafe<Record<string, unknown>>({
    type: 'object',
    additionalProperties: true,
    properties: { id: { type: 'string' }, object: { type: 'string', enum: [object] } },
  });

/** `limit` and `page` of a Voucherify list: a list's querystring is `PagedQuery(props)`, which adds them. */
export const ListQuery = {
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
  page: Type.Integer({ minimum: 1, maximum: 1000000, default: 1 }),
};

/** The cursor of a list paged by `(created_at, id)` (`pageByCreated` in storage/paging.ts), beside `ListQuery`. */
export const StartingAfterId = {
  starting_after_id: Type.Optional(
    Type.String({
      maxLength: 200,
      description:
        'Cursor: the last id of the previous page (its more_starting_after); empty: the first page, uncounted',
    }),
  ),
};

/** One path parameter naming a resource by id. */
export const IdParam = <K extends string>(name: K, description: string) =>
  Type.Object({ [name]: Type.String({ minLength: 1, maxLength: 200, description }) } as Record<
    K,
    ReturnType<typeof Type.String>
  >);

/** Path parameters of a nested resource, each a string: `{campaignId: 'Loyalty campaign id', ...}`. */
export const PathParams = <K extends string>(descriptions: Record<K, string>) =>
  Type.Object(
    Object.fromEntries(
      Object.entries<string>(descriptions).map(([name, description]) => [name, Type.String({ description })]),
    ) as Record<K, ReturnType<typeof Type.String>>,
  );

/** One of a fixed set of strings, written as `{type: 'string', enum}` (Ajv then names the allowed values). */
export const StringEnum = <const T extends readonly string[]>(
  values: T,
  options: { description?: string; default?: T[number] } = {},
) => Type.Unsafe<T[number]>({ type: 'string', enum: values, ...options });

/**
 * A list's querystring: `limit` and `page` (ListQuery) and `props`. Limit and page are left out of
 * `required`, as in the JSON Schemas written before TypeBox (the OpenAPI document lists them as
 * optional); validation fills in their defaults, so handlers see them typed as always present.
 */
export function PagedQuery<T extends Record<string, TSchema>>(props: T) {
  const schema = Type.Object({ ...ListQuery, ...props });
  const required = (schema.required as string[] | undefined)?.filter((k) => k !== 'limit' && k !== 'page') ?? [];
  if (required.length > 0) (schema as { required?: string[] }).required = required;
  else delete (schema as { required?: string[] }).required;
  return schema;
}

/**
 * `reminders: [{unit, value}]` of a program (membership anniversary), a balance definition
 * (expiring points), a tier group (tier anniversary) and a voucher campaign (expiring vouchers):
 * each reminder fires `value` `unit`s before the moment it announces (docs/time.md).
 */
export const Reminders = Type.Array(
  Type.Object(
    {
      unit: StringEnum(['day', 'week', 'month']),
      value: Type.Integer({ minimum: 1, maximum: 1000 }),
    },
    { additionalProperties: false },
  ),
  { maxItems: 10, description: 'Reminders before the moment: [{unit: day|week|month, value}]' },
);
