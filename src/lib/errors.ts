/**
 * Errors the domain throws. They say what went wrong in the domain's words and know nothing of
 * HTTP: `src/http/errors.ts` maps each kind to a status and Voucherify's error body, once.
 *
 * - `invalid`: the input breaks a rule of its own shape or values (a field, a combination).
 * - `not_found`: the thing named does not exist (or is not visible to the caller).
 * - `conflict`: the request clashes with the current state (a duplicate, a state that forbids it).
 * - `refused`: the input is well formed but a business rule refuses it (inactive card, balance too low).
 * - `unauthenticated` / `forbidden`: the caller did not prove who it is / is not allowed.
 * - `too_large`: the input exceeds a size limit.
 */
export type ErrorKind =
  | 'invalid'
  | 'not_found'
  | 'conflict'
  | 'refused'
  | 'unauthenticated'
  | 'forbidden'
  | 'too_large';

/** One field-level problem of an `invalid` error. */
export interface FieldError {
  field: string;
  message: string;
}

export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    /** Stable machine-readable reason (Voucherify's `key`, e.g. `voucher_expired`). */
    readonly key: string,
    message: string,
    /** What exactly is wrong and what is allowed instead. */
    readonly details?: string,
    readonly fields?: FieldError[],
    /** Extra fields the answer carries (e.g. the current balance on a refused debit). */
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export const invalid = (key: string, message: string, details?: string, fields?: FieldError[]) =>
  new DomainError('invalid', key, message, details, fields);

/** `resource` in words ("loyalty card"); the key becomes `loyalty_card_not_found`. */
export const notFound = (resource: string, id: string) =>
  new DomainError(
    'not_found',
    `${resource.replace(/\s+/g, '_')}_not_found`,
    'Resource not found',
    `Cannot find ${resource} with id ${id}`,
  );

export const conflict = (key: string, message: string, details?: string) =>
  new DomainError('conflict', key, message, details);

export const refused = (key: string, message: string, details?: string, extra?: Record<string, unknown>) =>
  new DomainError('refused', key, message, details, undefined, extra);

export const unauthenticated = (key: string, details: string) =>
  new DomainError('unauthenticated', key, 'Unauthorized', details);

export const forbidden = (key: string, details: string) => new DomainError('forbidden', key, 'Forbidden', details);
