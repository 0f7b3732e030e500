import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../context.ts';
import { canonicalJson } from '../lib/json.ts';
import { isUniqueViolation, type Executor, type TransactionOptions } from '../storage/db.ts';
import { hot, writeAtCommit } from '../storage/hot.ts';
import { ApiError } from './errors.ts';

// Idempotency-Key on every state-changing request (POST, PUT, PATCH, DELETE).
//
// The same key with the same request answers the first response (same status, same body) and
// changes nothing; the same key with another request is refused (422); a key whose first request
// is still running is refused with 409. Keys are scoped per API key and kept for 24 hours.
//
// Two modes:
// - "transactional" routes (everything that moves points) record the key in the very transaction
//   that makes the change, via `runIdempotentWrite`. A crash can never leave a change without its
//   key or a key without its change, and two concurrent requests with one key cannot both commit:
//   the second hits the primary key, rolls back, and replays the first answer.
// - other routes claim the key before the handler runs and store the answer when it is sent.

declare module 'fastify' {
  interface FastifyRequest {
    idempotency?: IdempotencyState;
  }
  interface FastifyContextConfig {
    idempotency?: 'transactional' | 'claim' | 'none';
  }
}

interface IdempotencyState {
  scope: string;
  key: string;
  hash: string;
  mode: 'transactional' | 'claim';
  /** Set once the answer is stored (inside the write's transaction). */
  recorded: boolean;
}

export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

class IdempotencyRace extends Error {}

function requestHash(req: FastifyRequest): string {
  return createHash('sha256')
    .update(`${req.method} ${req.url}\n${canonicalJson(req.body ?? null)}`)
    .digest('hex');
}

async function replayExisting(ctx: AppContext, req: FastifyRequest, reply: FastifyReply, state: IdempotencyState) {
  const db = ctx.database.db;
  const [row] = await hot(db, ctx.database.dialect, 'idempotency.find', [state.scope, state.key], () =>
    db.selectFrom('idempotency_keys').selectAll().where('scope', '=', state.scope).where('key', '=', state.key),
  );
  if (!row) return false;
  if (row.request_hash !== state.hash) {
    throw new ApiError(
      422,
      'idempotency_key_reused',
      'Idempotency-Key reused with a different request',
      `The key "${state.key}" was first used for ${row.method} ${row.path} with another body; use a new key for a new request`,
    );
  }
  if (row.status_code === null) {
    throw new ApiError(409, 'idempotency_key_in_progress', 'A request with this Idempotency-Key is still in progress', 'Retry after the first request completes');
  }
  reply.header('idempotent-replayed', 'true');
  reply.header('content-type', 'application/json; charset=utf-8');
  reply.status(row.status_code).send(row.response_body);
  return true;
}

export function registerIdempotency(app: FastifyInstance, ctx: AppContext): void {
  app.addHook('preHandler', async (req, reply) => {
    if (!MUTATING.has(req.method)) return;
    const raw = req.headers['idempotency-key'];
    const key = Array.isArray(raw) ? raw[0] : raw;
    if (key === undefined) return;
    const mode = req.routeOptions.config?.idempotency ?? 'claim';
    if (mode === 'none') return;
    if (key.length < 1 || key.length > 255) {
      throw new ApiError(400, 'invalid_idempotency_key', 'Invalid Idempotency-Key', 'Idempotency-Key must be 1 to 255 characters');
    }
    const state: IdempotencyState = { scope: req.apiKey?.id ?? 'public', key, hash: requestHash(req), mode, recorded: false };
    // Transactional writes look the key up only when their own insert of it conflicts, or when they
    // fail (runIdempotentWrite): a first request, the common case, saves a query (on PostgreSQL a
    // round trip).
    if (mode === 'claim') {
      if (await replayExisting(ctx, req, reply, state)) return reply;
      try {
        await ctx.database.db
          .insertInto('idempotency_keys')
          .values({
            scope: state.scope,
            key,
            method: req.method,
            path: req.url,
            request_hash: state.hash,
            status_code: null,
            response_body: null,
            created_at: ctx.clock.nowIso(),
          })
          .execute();
      } catch (err) {
        if (isUniqueViolation(err) && (await replayExisting(ctx, req, reply, state))) return reply;
        throw err;
      }
    }
    req.idempotency = state;
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const state = req.idempotency;
    if (!state || state.recorded || reply.getHeader('idempotent-replayed')) return payload;
    const status = reply.statusCode;
    const body = typeof payload === 'string' ? payload : payload == null ? '' : String(payload);
    if (status >= 500) {
      // Nothing was committed (writes roll back on error): free the key so the client can retry.
      if (state.mode === 'claim') {
        await ctx.database.db.deleteFrom('idempotency_keys').where('scope', '=', state.scope).where('key', '=', state.key).execute();
      }
      return payload;
    }
    if (state.mode === 'claim') {
      await ctx.database.db
        .updateTable('idempotency_keys')
        .set({ status_code: status, response_body: body })
        .where('scope', '=', state.scope)
        .where('key', '=', state.key)
        .execute();
    } else {
      // A transactional route refused the request (4xx) before recording: remember the refusal too.
      await ctx.database.db
        .insertInto('idempotency_keys')
        .values({
          scope: state.scope,
          key: state.key,
          method: req.method,
          path: req.url,
          request_hash: state.hash,
          status_code: status,
          response_body: body,
          created_at: ctx.clock.nowIso(),
        })
        .onConflict((oc) => oc.doNothing())
        .execute();
    }
    state.recorded = true;
    return payload;
  });
}

/**
 * Runs a write in one transaction and, when the request carries an Idempotency-Key, stores the
 * answer in that same transaction. Use it for every route with `config.idempotency: 'transactional'`.
 * `opts.lane`: the card or customer the write is about, on the hot paths (TransactionOptions).
 */
export async function runIdempotentWrite<T>(
  ctx: AppContext,
  req: FastifyRequest,
  reply: FastifyReply,
  status: number,
  fn: (trx: Executor) => Promise<T>,
  opts?: TransactionOptions,
): Promise<T | FastifyReply> {
  const state = req.idempotency;
  try {
    const body = await ctx.transaction(async (trx) => {
      const result = await fn(trx);
      if (state && state.mode === 'transactional') {
        try {
          const record = {
            scope: state.scope,
            key: state.key,
            method: req.method,
            path: req.url,
            request_hash: state.hash,
            status_code: status,
            response_body: JSON.stringify(result),
            created_at: ctx.clock.nowIso(),
          };
          // Sent just before the COMMIT on PostgreSQL (writeAtCommit); a conflict then fails the commit
          // and the catch below replays the first answer all the same.
          await writeAtCommit(trx, ctx.database.dialect, [{ key: 'idempotency.record', params: Object.values(record), build: () => trx.insertInto('idempotency_keys').values(record) }]);
        } catch (err) {
          if (isUniqueViolation(err)) throw new IdempotencyRace();
          throw err;
        }
        state.recorded = true;
      }
      return result;
    }, opts);
    reply.status(status);
    return body;
  } catch (err) {
    // The key is looked up here rather than before the write (see the preHandler): its insert
    // conflicted, or the write failed, possibly only because its first run already changed the
    // state (a retried debit now short of points). Either way a stored answer is the answer; the
    // write's effects were rolled back with its transaction.
    if (state?.mode === 'transactional') {
      state.recorded = false;
      if (await replayExisting(ctx, req, reply, state)) return reply;
    }
    throw err;
  }
}
