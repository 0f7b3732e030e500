import type { FastifyInstance } from 'fastify';
import { jsonDepthExceeds } from '../lib/json.ts';
import { ApiError } from './errors.ts';

/**
 * How deep a request body may nest arrays and objects (`{"a":{"b":[1]}}` is 3 levels). Bodies are
 * checked before they are parsed, so validation, idempotency hashing and logging never recurse
 * deeper than this. No Tally resource comes near it; metadata is the only free-form part.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * JSON bodies: Fastify's parser (prototype-poisoning checks included) behind two rules.
 * - An empty body is no body, as if no content-type had been sent: clients that send
 *   `content-type: application/json` on every call (the README's curl lines) can call the
 *   operations that take no body. What an operation with a body schema then sees is decided in
 *   preValidation below.
 * - A body nested deeper than MAX_JSON_DEPTH is refused (400 json_too_deep) before JSON.parse.
 */
export function registerBodyParsing(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
      return done(
        new ApiError(
          400,
          'json_too_deep',
          'JSON nested too deeply',
          `The body nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep; ` +
            `at most ${MAX_JSON_DEPTH} are accepted`,
        ),
      );
    }
    parseJson(req, text, done);
  });

  // An operation whose body is an object gets `{}` for a missing body: the body's own rules then
  // say what is missing ("points is required"), and one whose fields are all optional just works.
  app.addHook('preValidation', async (req) => {
    if (req.body !== undefined) return;
    const schema = req.routeOptions.schema?.body as { type?: string | string[] } | undefined;
    if (schema?.type === 'object') req.body = {};
  });
}
