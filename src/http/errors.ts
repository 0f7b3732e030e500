import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { describeValidationErrors, type AjvErrorObject } from './validation.ts';

/** One field-level problem of a 400 answer. */
export interface FieldError {
  field: string;
  message: string;
}

/**
 * Every error Tally answers with: `{code, key, message, details, request_id}` (Voucherify's error
 * shape), plus `errors` with one entry per invalid field on validation failures.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly key: string,
    message: string,
    readonly details?: string,
    readonly errors?: FieldError[],
    /** Extra fields merged into the answer (e.g. the current balance on a refused debit). */
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export const badRequest = (key: string, message: string, details?: string, errors?: FieldError[]) =>
  new ApiError(400, key, message, details, errors);
export const notFound = (resource: string, id: string) =>
  new ApiError(404, `${resource.replace(/\s+/g, '_')}_not_found`, `Resource not found`, `Cannot find ${resource} with id ${id}`);
export const conflict = (key: string, message: string, details?: string) => new ApiError(409, key, message, details);
export const unprocessable = (key: string, message: string, details?: string, extra?: Record<string, unknown>) =>
  new ApiError(422, key, message, details, undefined, extra);

export interface ErrorBody {
  code: number;
  key: string;
  message: string;
  details: string;
  request_id: string;
  errors?: FieldError[];
  [extra: string]: unknown;
}

export function errorBody(err: ApiError, requestId: string): ErrorBody {
  return {
    code: err.status,
    key: err.key,
    message: err.message,
    details: err.details ?? err.message,
    request_id: requestId,
    ...(err.errors ? { errors: err.errors } : {}),
    ...(err.extra ?? {}),
  };
}

const PART_NAMES: Record<string, string> = {
  querystring: 'query parameter ',
  params: 'path parameter ',
  headers: 'header ',
};

/**
 * Maps Fastify's own errors (bad JSON, schema failures, oversized bodies) onto ApiError.
 * `bodyMissing`: the request came without a body (a schema failure then says the body is required).
 */
export function toApiError(
  err: FastifyError & { validation?: AjvErrorObject[]; validationContext?: string },
  opts: { bodyMissing?: boolean } = {},
): ApiError {
  if (err instanceof ApiError) return err;
  if (err.validation) {
    const ctx = err.validationContext ?? 'body';
    const errors = describeValidationErrors(err.validation, ctx, { bodyMissing: opts.bodyMissing && ctx === 'body' });
    const part = PART_NAMES[ctx] ?? '';
    const details = errors.map((e) => `${e.field === ctx ? '' : part}${e.field} ${e.message}`).join('; ');
    return new ApiError(400, 'invalid_payload', 'Invalid payload', details, errors);
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(400, 'invalid_json', 'Malformed JSON', err.message);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, 'payload_too_large', 'Request body is too large', err.message);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'unsupported_media_type', 'Unsupported content type', err.message);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError(400, 'invalid_content_length', 'Invalid Content-Length', err.message);
  }
  if (err instanceof SyntaxError) return new ApiError(400, 'invalid_json', 'Malformed JSON', err.message);
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) return new ApiError(status, 'bad_request', err.message, err.message);
  return new ApiError(500, 'internal_error', 'Internal server error', 'An unexpected error occurred; see the server log for this request_id');
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const apiErr = toApiError(err, { bodyMissing: req.body === undefined });
    if (apiErr.status >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ key: apiErr.key, status: apiErr.status }, 'request refused');
    reply.status(apiErr.status).send(errorBody(apiErr, req.id));
  });
  app.setNotFoundHandler((req, reply) => {
    reply
      .status(404)
      .send(errorBody(new ApiError(404, 'not_found', 'Resource not found', `No route for ${req.method} ${req.url.split('?')[0]}`), req.id));
  });
}
