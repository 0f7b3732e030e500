import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance } from 'fastify';
import type { FieldError } from '../lib/errors.ts';

// Bodies are validated strictly: no type coercion, so `"points": "10"` is a 400, not 10 points.
// Query strings and path params are strings on the wire, so those are coerced.
const addFormats = (addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule;

export function makeAjv(coerce: boolean) {
  const ajv = new Ajv({
    // Errors carry their schema and data: messages name allowed values and allowed fields.
    verbose: true,
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
    properties: Object.fromEntries(
      Object.entries(descriptions).map(([name, description]) => [name, { type: 'string', description }]),
    ),
  }),
} as const;

/** One error as Ajv reports it (with `verbose: true`: its schema, parent schema and data). */
export interface AjvErrorObject {
  keyword: string;
  instancePath: string;
  schemaPath: string;
  params: Record<string, unknown>;
  message?: string;
  schema?: unknown;
  parentSchema?: Record<string, unknown>;
  data?: unknown;
}

type JsonType = 'null' | 'boolean' | 'integer' | 'number' | 'string' | 'array' | 'object';
const TYPE_NAMES: Record<string, string> = {
  null: 'null',
  boolean: 'true or false',
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  array: 'an array',
  object: 'an object',
};
const FORMAT_NAMES: Record<string, string> = {
  'date-time': 'a date and time in ISO 8601 with a time zone (2026-05-01T09:30:00Z)',
  date: 'a date (YYYY-MM-DD)',
  time: 'a time (HH:MM:SS)',
  email: 'an email address',
  uri: 'a URL',
  url: 'a URL',
  uuid: 'a UUID',
  ipv4: 'an IPv4 address',
  ipv6: 'an IPv6 address',
  hostname: 'a host name',
};

/** A value as a message shows it: strings bare (`one of: in, out`), anything else as JSON. */
const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
const listOf = (values: unknown[]) => values.map(show).join(', ');
const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

function typeList(type: unknown): string {
  const types = Array.isArray(type) ? type : String(type).split(',');
  const names = types.map((t) => TYPE_NAMES[String(t)] ?? String(t));
  return names.length <= 1 ? (names[0] ?? 'valid') : `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
}

function jsonTypeOf(v: unknown): JsonType {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v as JsonType;
}

function typeAccepts(type: unknown, value: unknown): boolean {
  if (type === undefined) return true;
  const types = Array.isArray(type) ? type : [type];
  const actual = jsonTypeOf(value);
  return types.includes(actual) || (actual === 'integer' && types.includes('number'));
}

/**
 * Whether a value is of the shape a oneOf/anyOf branch describes: its type, and for objects the
 * properties the branch pins with `const`/`enum` (a discriminator such as `type: MULTIPLY`).
 */
function branchFits(branch: unknown, value: unknown): boolean {
  if (!branch || typeof branch !== 'object') return true;
  const b = branch as { type?: unknown; properties?: Record<string, { const?: unknown; enum?: unknown[] }> };
  if (!typeAccepts(b.type, value)) return false;
  if (jsonTypeOf(value) !== 'object' || !b.properties) return true;
  const obj = value as Record<string, unknown>;
  return Object.entries(b.properties).every(([k, p]) => {
    if (!(k in obj) || !p || typeof p !== 'object') return true;
    if ('const' in p) return obj[k] === p.const;
    if (Array.isArray(p.enum)) return p.enum.includes(obj[k]);
    return true;
  });
}

/** Ajv's JSON pointer as a field name: `/steps/0/template` is `steps[0].template`. */
function fieldPath(pointer: string, extra?: unknown): string {
  const segments = pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined && extra !== null && extra !== '') segments.push(String(extra));
  let path = '';
  for (const s of segments) path += /^\d+$/.test(s) ? `[${s}]` : path ? `.${s}` : s;
  return path;
}

function fieldOf(e: AjvErrorObject, context: string): string {
  const extra =
    e.keyword === 'required' || e.keyword === 'dependentRequired' || e.keyword === 'dependencies'
      ? e.params.missingProperty
      : e.keyword === 'additionalProperties'
        ? e.params.additionalProperty
        : undefined;
  return fieldName(e.instancePath, context, extra);
}

function fieldName(pointer: string, context: string, extra?: unknown): string {
  const path = fieldPath(pointer, extra);
  // An array body's items are named after it: `body[0].points`.
  return path.startsWith('[') ? `${context}${path}` : path || context;
}

function messageOf(e: AjvErrorObject, bodyMissing: boolean): string {
  const p = e.params;
  const limit = p.limit as number;
  switch (e.keyword) {
    case 'required':
      return 'is required';
    case 'additionalProperties': {
      const allowed = Object.keys((e.parentSchema?.properties as object | undefined) ?? {});
      return allowed.length ? `is not allowed (allowed: ${allowed.join(', ')})` : 'is not allowed';
    }
    case 'type':
      if (bodyMissing && e.instancePath === '') return `is required: send ${typeList(p.type)} as JSON`;
      return `must be ${typeList(p.type)}`;
    case 'enum':
      return `must be one of: ${listOf(p.allowedValues as unknown[])}`;
    case 'const':
      return `must be ${show(p.allowedValue)}`;
    case 'not': {
      const forbidden = (e.schema ?? {}) as { const?: unknown; enum?: unknown[]; type?: unknown };
      if ('const' in forbidden) return `must not be ${show(forbidden.const)}`;
      if (Array.isArray(forbidden.enum)) return `must not be one of: ${listOf(forbidden.enum)}`;
      if (forbidden.type !== undefined) return `must not be ${typeList(forbidden.type)}`;
      return 'is not allowed';
    }
    case 'minimum':
    case 'exclusiveMinimum':
    case 'maximum':
    case 'exclusiveMaximum': {
      const words: Record<string, string> = {
        '>=': 'at least',
        '>': 'greater than',
        '<=': 'at most',
        '<': 'less than',
      };
      return `must be ${words[String(p.comparison)] ?? String(p.comparison)} ${limit}`;
    }
    case 'multipleOf':
      return `must be a multiple of ${show(p.multipleOf)}`;
    case 'minLength':
      return limit === 1 ? 'must not be empty' : `must be at least ${count(limit, 'character')} long`;
    case 'maxLength':
      return `must be at most ${count(limit, 'character')} long`;
    case 'minItems':
      return limit === 1 ? 'must have at least one item' : `must have at least ${count(limit, 'item')}`;
    case 'maxItems':
      return `must have at most ${count(limit, 'item')}`;
    case 'minProperties':
      return limit === 1 ? 'must have at least one field' : `must have at least ${count(limit, 'field')}`;
    case 'maxProperties':
      return `must have at most ${count(limit, 'field')}`;
    case 'uniqueItems':
      return `must not repeat an item (items ${show(p.j)} and ${show(p.i)} are equal)`;
    case 'pattern':
      return `must match the pattern ${show(p.pattern)}`;
    case 'format':
      return `must be ${FORMAT_NAMES[String(p.format)] ?? `a valid ${show(p.format)}`}`;
    case 'dependentRequired':
    case 'dependencies':
      return `is required when ${show(p.property)} is given`;
    case 'false schema':
      return 'is not allowed';
    case 'oneOf':
    case 'anyOf': {
      const branches = Array.isArray(e.schema) ? (e.schema as { type?: unknown }[]) : [];
      if (Array.isArray(p.passingSchemas)) return 'matches more than one of the allowed forms';
      const types = [...new Set(branches.flatMap((b) => (b && b.type !== undefined ? [b.type].flat() : [])))];
      return types.length ? `must be ${typeList(types)}` : 'does not match any of the allowed forms';
    }
    default:
      return e.message ?? 'is invalid';
  }
}

/** The discriminator all object branches pin with `const` (`type` in `{type: MULTIPLY} | {type: CUSTOM}`). */
function discriminatorOf(branches: unknown[]): { name: string; values: unknown[] } | undefined {
  const pinned = branches.map((b) =>
    Object.entries((b as { properties?: Record<string, { const?: unknown }> })?.properties ?? {}).filter(
      ([, s]) => s && typeof s === 'object' && 'const' in s,
    ),
  );
  const first = pinned[0];
  if (!first) return undefined;
  for (const [name] of first) {
    const values = pinned.map((entries) => entries.find(([n]) => n === name)?.[1].const);
    if (values.every((v) => v !== undefined)) return { name, values };
  }
  return undefined;
}

/**
 * Ajv's errors as one clear message per field: allowed values named (`must be one of: in, out`),
 * `not: {const: 0}` read as `must not be 0`, unknown fields listed with the allowed ones. A
 * oneOf/anyOf answers with the errors of the branch the value was meant for (by type and
 * discriminator), or with the forms it may take when it fits none.
 */
export function describeValidationErrors(
  errors: AjvErrorObject[],
  context: string,
  opts: { bodyMissing?: boolean } = {},
): FieldError[] {
  const dropped = new Set<AjvErrorObject>();
  const replaced = new Map<AjvErrorObject, FieldError>();
  const alternatives = errors
    .filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf')
    .sort((a, b) => a.schemaPath.length - b.schemaPath.length);
  for (const alt of alternatives) {
    if (dropped.has(alt) || Array.isArray(alt.params.passingSchemas)) continue;
    const branches = Array.isArray(alt.schema) ? (alt.schema as unknown[]) : [];
    const inBranch = (e: AjvErrorObject, i?: number) =>
      e.schemaPath.startsWith(`${alt.schemaPath}/${i === undefined ? '' : `${i}/`}`) &&
      (e.instancePath === alt.instancePath || e.instancePath.startsWith(`${alt.instancePath}/`));
    const fitting = branches.map((b, i) => (branchFits(b, alt.data) ? i : -1)).filter((i) => i >= 0);
    if (fitting.length > 0) {
      // The branch meant: its own errors say what is wrong; the others and the summary go.
      for (const e of errors) if (e !== alt && inBranch(e) && !fitting.some((i) => inBranch(e, i))) dropped.add(e);
      dropped.add(alt);
      continue;
    }
    for (const e of errors) if (e !== alt && inBranch(e)) dropped.add(e);
    const discriminator = discriminatorOf(branches);
    if (discriminator && jsonTypeOf(alt.data) === 'object') {
      replaced.set(alt, {
        field: fieldName(alt.instancePath, context, discriminator.name),
        message: `must be one of: ${listOf(discriminator.values)}`,
      });
    }
  }
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    // `if` only says that `then`/`else` failed; their own errors are reported.
    if (dropped.has(e) || e.keyword === 'if' || e.keyword === 'propertyNames') continue;
    const fe = replaced.get(e) ?? { field: fieldOf(e, context), message: messageOf(e, opts.bodyMissing ?? false) };
    const id = `${fe.field}\n${fe.message}`;
    if (!seen.has(id)) {
      seen.add(id);
      out.push(fe);
    }
  }
  return out;
}
