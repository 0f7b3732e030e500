import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../context.ts';
import { canonicalJson } from '../lib/json.ts';
import { isSealed } from '../lib/secret-box.ts';
import { isUniqueViolation, type Executor, type TransactionOptions } from '../storage/database.ts';
import { hot, writeAtCommit } from '../storage/hot.ts';
import { LostRace, lostRaceOn } from '../storage/race.ts';
import { ApiError, errorBody, toApiError } from './errors.ts';

// Idempotency-Key on every state-changing request (POST, PUT, PATCH, DELETE).
//
// The same key with the same request answers the first response (same status, same body) and
// changes nothing; the same key with another request is refused (422). Keys are scoped per API key
// and kept for 24 hours.
//
// Invariant: the key's row is written in the very transaction that commits the change it answers
// (`runIdempotentWrite`), so a crash never leaves a change without its answer, nor an answer
// without its change. The row's primary key (scope, key) decides between two concurrent requests
// with one key: the loser's transaction rolls back and it replays the winner's answer (or gets 422
// when its body differs). A refusal (4xx) the write throws is recorded too, in a transaction of
// its own that the same primary key arbitrates: a concurrent request with the key either commits
// first (the refused one then replays it, or gets 422) or finds the refusal and rolls back.
// Refusals before the handler (schema validation, authentication, a malformed key) are not
// recorded: they do not depend on the state, so a retry gets them again anyway.
//
// Modes (route `config.idempotency`):
// - 'replay-first' (default): a stored answer is looked up before the handler, which must write
//   through `runIdempotentWrite` (a keyed request that ends without its answer stored is logged as
//   a programming error).
// - 'replay-on-conflict': the hot write paths (balance changes, activities) skip that lookup, a
//   query (on PostgreSQL a round trip) per request; the key is looked up only when their own
//   insert of it conflicts, or when the write fails (possibly only because its first run already
//   changed the state: a retried debit now short of points).
// - 'claim': routes whose answer comes from outbound I/O and that change no lasting state beyond a
//   log line (a webhook test send, a resend, the simulator): no transaction may be held across the
//   network call, so the key is claimed (a row without an answer) before the handler and the answer
//   stored once sent. A second request meanwhile gets 409 `idempotency_key_in_progress`; a claim
//   older than CLAIM_STALE_MS (its process died) is taken over by the next request with the key,
//   which runs the I/O again.
// - 'none': provider callbacks, deduplicated by the provider's own message ids.
//
// Routes with I/O around their write, and what their key's outcome is:
// - webhook create/update: the target's name is resolved (private-address check) before the
//   transaction (`before`); its refusal is recorded like any other.
// - broadcast: the answer is stored with the broadcast's row (202, `preparing`); from that commit
//   the broadcast exists and is prepared to the end (by the request, else in the background). Once
//   the request has prepared its share, the stored answer becomes its final one (200 or 202).
// - webhook test / resend, simulator: 'claim' (a test send may run twice after a crash).

declare module 'fastify' {
  interface FastifyRequest {
    idempotency?: IdempotencyState;
  }
  interface FastifyContextConfig {
    idempotency?: IdempotencyMode;
  }
}

export type IdempotencyMode = 'replay-first' | 'replay-on-conflict' | 'claim' | 'none';

interface IdempotencyState {
  scope: string;
  key: string;
  hash: string;
  mode: Exclude<IdempotencyMode, 'none'>;
  /** Set once the answer is stored (committed), or the stored answer replayed. */
  settled: boolean;
}

export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
/** A claim this old belongs to a request whose process died: the next request with its key takes it over. */
export const CLAIM_STALE_MS = 2 * 60 * 1000;
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function requestHash(req: FastifyRequest): string {
  return createHash('sha256')
    .update(`${req.method} ${req.url}\n${canonicalJson(req.body ?? null)}`)
    .digest('hex');
}

function findRecord(ctx: AppContext, state: IdempotencyState) {
  const db = ctx.database.db;
  return hot(db, 'idempotency.find', [state.scope, state.key], () =>
    db.selectFrom('idempotency_keys').selectAll().where('scope', '=', state.scope).where('key', '=', state.key),
  ).then((rows) => rows[0]);
}

type Existing = Awaited<ReturnType<typeof findRecord>>;

function inProgress(): ApiError {
  return new ApiError(
    409,
    'idempotency_key_in_progress',
    'A request with this Idempotency-Key is still in progress',
    'Retry after the first request completes',
  );
}

/**
 * Replays the stored answer of the request's key. Answers false when there is none; throws 422
 * when the key was used for another request, 409 while a claim has no answer yet.
 */
async function replayExisting(
  ctx: AppContext,
  reply: FastifyReply,
  state: IdempotencyState,
  row?: Existing,
): Promise<boolean> {
  row ??= await findRecord(ctx, state);
  if (!row) return false;
  // From here the key's outcome is another request's: this one answers it (or 409/422) and stores nothing.
  state.settled = true;
  if (row.request_hash !== state.hash) {
    throw new ApiError(
      422,
      'idempotency_key_reused',
      'Idempotency-Key reused with a different request',
      `The key "${state.key}" was first used for ${row.method} ${row.path} with another body; ` +
        'use a new key for a new request',
    );
  }
  // Only 'claim' routes write rows without an answer (and versions before answers were stored in
  // the write's transaction: such a row expires with the key).
  if (row.status_code === null) throw inProgress();
  reply.header('idempotent-replayed', 'true');
  if (row.status_code !== 204) reply.header('content-type', 'application/json; charset=utf-8');
  reply.status(row.status_code).send(openAnswer(ctx, state, row.response_body));
  return true;
}

/** The context an answer carrying a secret is sealed with: its key, so it opens for that key only. */
const answerContext = (state: IdempotencyState) => `idempotency_keys.response_body:${state.scope}:${state.key}`;

/** A stored answer as sent: answers that carry a secret are stored sealed (`sealAnswer`). */
function openAnswer(ctx: AppContext, state: IdempotencyState, stored: string | null): string | null {
  if (!isSealed(stored)) return stored;
  try {
    return ctx.secrets.open(stored, answerContext(state));
  } catch {
    // Sealed under a key that was removed since (a rotation finished within the key's 24 hours).
    throw new ApiError(
      409,
      'idempotency_answer_unavailable',
      'The stored answer of this Idempotency-Key can no longer be read',
      'It carried a secret sealed with a secret key that has been removed; use a new key (the change was applied)',
    );
  }
}

function recordOf(
  ctx: AppContext,
  req: FastifyRequest,
  state: IdempotencyState,
  status: number | null,
  body: string | null,
) {
  return {
    scope: state.scope,
    key: state.key,
    method: req.method,
    path: req.url,
    request_hash: state.hash,
    status_code: status,
    response_body: body,
    created_at: ctx.clock.nowIso(),
  };
}

/** 'claim' mode: the request owns the key's claim after this, or it was answered (replay, 409, 422). */
async function claim(
  ctx: AppContext,
  req: FastifyRequest,
  reply: FastifyReply,
  state: IdempotencyState,
): Promise<boolean> {
  const db = ctx.database.db;
  for (let attempt = 0; attempt < 3; attempt++) {
    const row = await findRecord(ctx, state);
    if (row && row.request_hash === state.hash && row.status_code === null) {
      if (Date.parse(row.created_at) > ctx.clock.nowMs() - CLAIM_STALE_MS) throw inProgress();
      // A stale claim: taken over by whoever moves its timestamp first.
      const taken = await db
        .updateTable('idempotency_keys')
        .set({ created_at: ctx.clock.nowIso() })
        .where('scope', '=', state.scope)
        .where('key', '=', state.key)
        .where('status_code', 'is', null)
        .where('created_at', '=', row.created_at)
        .executeTakeFirst();
      if (Number(taken.numUpdatedRows) === 1) return true;
      throw inProgress();
    }
    if (row) return !(await replayExisting(ctx, reply, state, row));
    try {
      await db
        .insertInto('idempotency_keys')
        .values(recordOf(ctx, req, state, null, null))
        .execute();
      return true;
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      // Claimed meanwhile (or answered): look again.
    }
  }
  throw inProgress();
}

export function registerIdempotency(app: FastifyInstance, ctx: AppContext): void {
  app.addHook('preHandler', async (req, reply) => {
    if (!MUTATING.has(req.method)) return;
    const raw = req.headers['idempotency-key'];
    const key = Array.isArray(raw) ? raw[0] : raw;
    if (key === undefined) return;
    const mode = req.routeOptions.config?.idempotency ?? 'replay-first';
    if (mode === 'none') return;
    if (key.length < 1 || key.length > 255) {
      throw new ApiError(
        400,
        'invalid_idempotency_key',
        'Invalid Idempotency-Key',
        'Idempotency-Key must be 1 to 255 characters',
      );
    }
    const state: IdempotencyState = {
      scope: req.apiKey?.id ?? 'public',
      key,
      hash: requestHash(req),
      mode,
      settled: false,
    };
    if (mode === 'replay-first' && (await replayExisting(ctx, reply, state))) return reply;
    if (mode === 'claim' && !(await claim(ctx, req, reply, state))) return reply;
    req.idempotency = state;
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const state = req.idempotency;
    if (!state || state.settled || reply.getHeader('idempotent-replayed')) return payload;
    const status = reply.statusCode;
    if (state.mode !== 'claim') {
      // A 5xx committed nothing (the write's transaction rolled back) and is not recorded: a retry
      // runs the request again. Anything else should have been stored by runIdempotentWrite.
      if (status < 500)
        req.log.error(
          { url: req.url, status },
          'write route answered without storing its Idempotency-Key answer (runIdempotentWrite)',
        );
      return payload;
    }
    const db = ctx.database.db;
    if (status >= 500) {
      // The send failed on our side: free the key so the client can retry.
      await db
        .deleteFrom('idempotency_keys')
        .where('scope', '=', state.scope)
        .where('key', '=', state.key)
        .where('status_code', 'is', null)
        .execute();
      return payload;
    }
    const body = typeof payload === 'string' ? payload : payload == null ? '' : String(payload);
    await db
      .updateTable('idempotency_keys')
      .set({ status_code: status, response_body: body })
      .where('scope', '=', state.scope)
      .where('key', '=', state.key)
      .where('status_code', 'is', null)
      .execute();
    state.settled = true;
    return payload;
  });
}

export interface IdempotentWriteOptions extends TransactionOptions {
  /**
   * Checks that need I/O (resolving a webhook's host name), run before the transaction so none
   * waits on the network; a refusal they throw is recorded like the write's own.
   */
  before?: () => Promise<void>;
  /**
   * Writes a refusal commits (e.g. the refusal event of a debit short of points), with the
   * refusal's Idempotency-Key record when the request has a key: a retry that replays the refusal
   * writes them no second time.
   */
  onRefused?: (trx: Executor, err: unknown) => Promise<void>;
  /**
   * The answer carries a secret (a webhook's signing secret): its stored copy is sealed with the
   * server's secret key, like the secret itself, and opened when replayed.
   */
  sealAnswer?: boolean;
}

/**
 * Runs a route's write in one transaction and, when the request carries an Idempotency-Key, stores
 * the answer (`status`, the JSON of what `fn` returns, nothing for undefined) in that same
 * transaction. Every write route goes through here. A 4xx that `fn` throws is recorded as the key's
 * answer. Answers the reply itself when it replayed a stored answer.
 * `opts.lane`: the card or customer the write is about, on the hot paths (TransactionOptions).
 */
export async function runIdempotentWrite<T>(
  ctx: AppContext,
  req: FastifyRequest,
  reply: FastifyReply,
  status: number,
  fn: (trx: Executor) => Promise<T>,
  opts?: IdempotentWriteOptions,
): Promise<T | FastifyReply> {
  const state = req.idempotency?.mode === 'claim' ? undefined : req.idempotency;
  let result: T;
  // Set when this request's key record lost the race (LostRace) to a concurrent one with the same key.
  let keyTaken = false;
  try {
    await opts?.before?.();
    result = await ctx.transaction(async (trx) => {
      const value = await fn(trx);
      if (state) {
        const answer = value === undefined ? '' : JSON.stringify(value);
        const stored = opts?.sealAnswer ? ctx.secrets.seal(answer, answerContext(state)) : answer;
        const record = recordOf(ctx, req, state, status, stored);
        try {
          // Sent just before the COMMIT on PostgreSQL (writeAtCommit); a conflict then fails the commit
          // and the catch below replays the first answer all the same.
          await writeAtCommit(trx, [
            {
              key: 'idempotency.record',
              params: Object.values(record),
              build: () => trx.insertInto('idempotency_keys').values(record),
            },
          ]);
        } catch (err) {
          keyTaken = isUniqueViolation(err);
          lostRaceOn(err, 'a concurrent request with the same Idempotency-Key committed first');
        }
      }
      return value;
    }, opts);
  } catch (err) {
    // The key's insert conflicted, or the write failed, possibly only because its first run already
    // changed the state (a join now "already a member"). Either way a stored answer is the answer;
    // this write's effects were rolled back with its transaction.
    if (state && (await replayExisting(ctx, reply, state))) return reply;
    if (keyTaken && err instanceof LostRace) {
      // The winner's row went away (expired) between the conflict and the lookup: rare; retryable.
      if (state) state.settled = true;
      throw inProgress();
    }
    if ((await recordRefusal(ctx, req, reply, state, err, opts?.onRefused)) === 'replayed') return reply;
    throw err;
  }
  if (state) state.settled = true;
  reply.status(status);
  if (result === undefined) return reply.send();
  return result;
}

/**
 * A 4xx thrown by a write becomes the key's answer, in a transaction of its own (the write's rolled
 * back), with the refusal's own writes (`onRefused`). When a concurrent request with the key
 * committed first, its answer is replayed instead. Otherwise the caller rethrows the refusal, which
 * the error handler answers with the body stored here (`errorBody` of the same error).
 */
async function recordRefusal(
  ctx: AppContext,
  req: FastifyRequest,
  reply: FastifyReply,
  state: IdempotencyState | undefined,
  err: unknown,
  onRefused?: (trx: Executor, err: unknown) => Promise<void>,
): Promise<'recorded' | 'replayed' | 'not a refusal'> {
  const refusal = toApiError(err as never);
  if (refusal.status < 400 || refusal.status >= 500) return 'not a refusal';
  if (!state) {
    if (onRefused) await ctx.transaction((trx) => onRefused(trx, err));
    return 'recorded';
  }
  try {
    await ctx.transaction(async (trx) => {
      await trx
        .insertInto('idempotency_keys')
        .values(recordOf(ctx, req, state, refusal.status, JSON.stringify(errorBody(refusal, req.id))))
        .execute();
      await onRefused?.(trx, err);
    });
  } catch (insertErr) {
    if (isUniqueViolation(insertErr) && (await replayExisting(ctx, reply, state))) return 'replayed';
    throw insertErr;
  }
  state.settled = true;
  return 'recorded';
}

/** True when runIdempotentWrite answered a stored answer (the reply is sent) instead of writing. */
export function isReplay<T>(result: T | FastifyReply, reply: FastifyReply): result is FastifyReply {
  return result === reply;
}

/**
 * Replaces the stored answer of the request's key (after `runIdempotentWrite` committed it), for a
 * route whose final answer is known only after work that follows the commit (a broadcast prepared
 * in chunks). Until then a retry replays the answer stored with the change.
 */
export async function reviseIdempotentAnswer(
  ctx: AppContext,
  req: FastifyRequest,
  status: number,
  body: unknown,
): Promise<void> {
  const state = req.idempotency;
  if (!state || state.mode === 'claim') return;
  await ctx.database.db
    .updateTable('idempotency_keys')
    .set({ status_code: status, response_body: JSON.stringify(body) })
    .where('scope', '=', state.scope)
    .where('key', '=', state.key)
    .where('request_hash', '=', state.hash)
    .execute();
}
