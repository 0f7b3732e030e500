import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance } from 'fastify';

// Bodies are validated strictly: no type coercion, so `"points": "10"` is a 400, not 10 points.
// Query strings and path params are strings on the wire, so those are coerced.
const addFormats = (addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule;

function makeAjv(coerce: boolean) {
  const ajv = new Ajv({
    coerceTypes: coerce ? 'array' : false,
    useDefaults: true,
    removeAdditional: false,
    allErrors: true,
    strict: false,
  });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  return ajv;
}

export function registerValidation(app: FastifyInstance): void {
  const bodyAjv = makeAjv(false);
  const paramAjv = makeAjv(true);
  app.setValidatorCompiler(({ schema, httpPart }) =>
    httpPart === 'body' ? bodyAjv.compile(schema) : paramAjv.compile(schema),
  );
  // Responses are serialised with JSON.stringify: response schemas document the API (OpenAPI)
  // without silently dropping fields, and an idempotent replay is byte-identical to the original.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
}

/** Reusable schema fragments. */
export const S = {
  metadata: { type: 'object', additionalProperties: true, description: 'Custom attributes: any JSON object' },
  nullableString: { type: ['string', 'null'] },
  dateTime: { type: ['string', 'null'], format: 'date-time' },
  safeInt: { type: 'integer', minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER },
  listQuery: {
    limit: { type: 'integer', minimum: 1, maximum: 100, default: 10 },
    page: { type: 'integer', minimum: 1, maximum: 1000000, default: 1 },
  },
  idParam: (name: string, description: string) => ({
    type: 'object',
    required: [name],
    properties: { [name]: { type: 'string', minLength: 1, maxLength: 200, description } },
  }),
  /** Path parameters of a nested resource, each a string: `{campaignId: 'Loyalty campaign id', ...}`. */
  pathParams: (descriptions: Record<string, string>) => ({
    type: 'object',
    required: Object.keys(descriptions),
    properties: Object.fromEntries(Object.entries(descriptions).map(([name, description]) => [name, { type: 'string', description }])),
  }),
} as const;
