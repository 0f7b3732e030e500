import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, type ErrorKind, type FieldError } from '../lib/errors.ts';
import { describeValidationErrors, type AjvErrorObject } from './validation.ts';

/** Status of each kind of domain error: the one place a domain error meets HTTP. */
const STATUS: Record<ErrorKind, number> = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  refused: 422,
};

/**
 * An error as Tally answers it: `{code, key, message, details, request_id}` (Voucherify's error
 * shape), plus `errors` with one entry per invalid field on validation failures. Only the HTTP
 * layer builds these; the domain throws `DomainError`.
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

export function fromDomainError(err: DomainError): ApiError {
  return new ApiError(STATUS[err.kind], err.key, err.message, err.details, err.fields, err.extra);
}

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
 * Maps domain errors and Fastify's own errors (bad JSON, schema failures, oversized bodies) onto ApiError.
 * `bodyMissing`: the request came without a body (a schema failure then says the body is required).
 */
export function toApiError(
  err: FastifyError & { validation?: AjvErrorObject[]; validationContext?: string },
  opts: { bodyMissing?: boolean } = {},
): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof DomainError) return fromDomainError(err);
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
  return new ApiError(
    500,
    'internal_error',
    'Internal server error',
    'An unexpected error occurred; see the server log for this request_id',
  );
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
      .send(
        errorBody(
          new ApiError(404, 'not_found', 'Resource not found', `No route for ${req.method} ${req.url.split('?')[0]}`),
          req.id,
        ),
      );
  });
}
