import { pageBySeq } from '../../storage/paging.ts';
import type { AppContext } from '../../context.ts';
import { conflict, invalid, notFound } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson } from '../../lib/json.ts';
import { UnsafeUrlError } from '../../lib/url-guard.ts';
import { sql } from 'kysely';
import { perUtcDay } from '../../lib/days.ts';
import type { Executor } from '../../storage/database.ts';
import { EVENT_TYPES, isKnownEventType } from '../events/catalog.ts';
import { Dispatcher, type DispatcherOptions } from './dispatcher/dispatcher.ts';
import type { AttemptRecord, AttemptTrigger, EndpointRow } from './dispatcher/types.ts';
import type { EndpointCreateInput, EndpointUpdateInput } from './schemas.ts';
import { endpointSecretContext } from './secrets.ts';
import { newSecret } from './signing.ts';

export const ROTATION_OVERLAP_MS = 24 * 3600_000;

export function presentEndpoint(row: EndpointRow, opts: { secret?: boolean } = {}) {
  return {
    id: row.id,
    object: 'webhook' as const,
    target_url: row.target_url,
    events: fromJson<string[]>(row.events, []),
    active: row.active === 1,
    description: row.description,
    disabled_reason: row.disabled_reason,
    failing_since: row.failing_since,
    secret_rotated_until: row.previous_secret_expires_at && row.previous_secret ? row.previous_secret_expires_at : null,
    ...(opts.secret ? { secret: row.secret } : {}),
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

export function presentAttempt(a: Omit<AttemptRecord, 'status'> & { status: string }) {
  return {
    id: a.id,
    object: 'webhook_attempt' as const,
    webhook_id: a.endpoint_id,
    event_id: a.event_id,
    event_type: a.event_type,
    attempt: a.attempt,
    // Stored by record.ts, from these sets only.
    trigger: a.trigger as AttemptTrigger,
    status: a.status as AttemptRecord['status'],
    status_code: a.status_code,
    duration_ms: a.duration_ms,
    response: a.response,
    error: a.error,
    next_attempt_at: a.next_attempt_at,
    created_at: a.created_at,
  };
}

export class WebhookService {
  readonly dispatcher: Dispatcher;

  constructor(
    private ctx: AppContext,
    opts: DispatcherOptions = {},
  ) {
    this.dispatcher = new Dispatcher(ctx, opts);
    this.registerBacklogGauges();
  }

  /** Backlogs read when /metrics is scraped: what an operator alerts on when deliveries fall behind. */
  private registerBacklogGauges(): void {
    const { metrics, database } = this.ctx;
    metrics.gauge('tally_outbox_unread_events', 'Events the webhook fan-out has not read yet', [], async (set) => {
      set({}, await database.outboxProgress.countUnread(database.db));
    });
    // Both per-endpoint gauges come from one read per scrape: prom-client starts every gauge's
    // collect in the same turn of the event loop, and the read is forgotten at the next one.
    let read: Promise<{ id: string; waiting: number; oldest: string | null }[]> | undefined;
    const backlog = () => {
      if (!read) {
        setImmediate(() => (read = undefined));
        read = (async () => {
          const endpoints = await database.db.selectFrom('webhook_endpoints').select('id').execute();
          const rows = [];
          for (const { id } of endpoints) {
            const row = await database.db
              .selectFrom('webhook_deliveries')
              .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.min('created_at').as('oldest')])
              .where('endpoint_id', '=', id)
              .where('status', 'in', ['pending', 'sending'])
              .executeTakeFirstOrThrow();
            rows.push({ id, waiting: Number(row.n), oldest: row.oldest as string | null });
          }
          return rows;
        })();
      }
      return read;
    };
    metrics.gauge(
      'tally_webhook_deliveries_waiting',
      'Deliveries not yet succeeded or given up (pending or being sent), per endpoint',
      ['endpoint_id'],
      async (set) => {
        for (const r of await backlog()) set({ endpoint_id: r.id }, r.waiting);
      },
    );
    metrics.gauge(
      'tally_webhook_oldest_waiting_seconds',
      'Age of the oldest delivery not yet succeeded or given up, per endpoint (0: none)',
      ['endpoint_id'],
      async (set) => {
        const now = this.ctx.clock.nowMs();
        for (const r of await backlog())
          set({ endpoint_id: r.id }, r.oldest ? Math.max(0, (now - Date.parse(r.oldest)) / 1000) : 0);
      },
    );
  }

  /**
   * Refuses a target URL on a private address (unless allowed). It resolves the name: routes run it
   * before their transaction (`before` of runIdempotentWrite) and tell create/update it was done,
   * so no transaction waits on DNS.
   */
  async checkUrl(url: string): Promise<void> {
    try {
      await this.ctx.egress.check(url);
    } catch (err) {
      if (err instanceof UnsafeUrlError) {
        throw invalid('invalid_target_url', 'Invalid target_url', err.message, [
          { field: 'target_url', message: err.message },
        ]);
      }
      throw err;
    }
  }

  private checkEvents(events: string[]): string[] {
    const unknown = events.filter((e) => e !== '*' && !isKnownEventType(e));
    if (unknown.length > 0) {
      throw invalid(
        'unknown_event_type',
        'Unknown event type',
        `Unknown event type(s): ${unknown.join(', ')}. GET /v1/event-types lists them; "*" subscribes to all.`,
        unknown.map((u) => ({ field: 'events', message: `unknown event type "${u}"` })),
      );
    }
    return events.includes('*') ? ['*'] : [...new Set(events)];
  }

  async create(db: Executor, input: EndpointCreateInput, opts: { urlChecked?: boolean } = {}): Promise<EndpointRow> {
    if (!opts.urlChecked) await this.checkUrl(input.target_url);
    const now = this.ctx.clock.nowIso();
    const row: EndpointRow = {
      id: newId('whep'),
      target_url: input.target_url,
      description: input.description ?? null,
      events: JSON.stringify(this.checkEvents(input.events)),
      active: input.active === false ? 0 : 1,
      secret: newSecret(),
      previous_secret: null,
      previous_secret_expires_at: null,
      disabled_reason: null,
      failing_since: null,
      created_at: now,
      updated_at: now,
    };
    // Stored sealed; the answer (the one place the secret is shown) gets it in clear.
    await db
      .insertInto('webhook_endpoints')
      .values({ ...row, secret: this.ctx.secrets.seal(row.secret, endpointSecretContext(row.id)) })
      .execute();
    this.dispatcher.invalidate();
    return row;
  }

  async get(db: Executor, id: string): Promise<EndpointRow> {
    const row = await db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound('webhook', id);
    return row;
  }

  async list(db: Executor): Promise<EndpointRow[]> {
    return db.selectFrom('webhook_endpoints').selectAll().orderBy('created_at').orderBy('id').execute();
  }

  async update(
    db: Executor,
    id: string,
    input: EndpointUpdateInput,
    opts: { urlChecked?: boolean } = {},
  ): Promise<EndpointRow> {
    const row = await this.get(db, id);
    const patch: Partial<EndpointRow> = { updated_at: this.ctx.clock.nowIso() };
    if (input.target_url !== undefined) {
      if (!opts.urlChecked) await this.checkUrl(input.target_url);
      patch.target_url = input.target_url;
    }
    if (input.events !== undefined) patch.events = JSON.stringify(this.checkEvents(input.events));
    if (input.description !== undefined) patch.description = input.description;
    if (input.active !== undefined) {
      patch.active = input.active ? 1 : 0;
      // Re-enabling starts afresh: the failing streak and the reason it was disabled are cleared.
      if (input.active && row.active === 0) Object.assign(patch, { disabled_reason: null, failing_since: null });
    }
    await db.updateTable('webhook_endpoints').set(patch).where('id', '=', id).execute();
    this.dispatcher.invalidate();
    return { ...row, ...patch };
  }

  async remove(db: Executor, id: string): Promise<void> {
    await this.get(db, id);
    await db.deleteFrom('webhook_deliveries').where('endpoint_id', '=', id).execute();
    await db.deleteFrom('webhook_attempts').where('endpoint_id', '=', id).execute();
    await db.deleteFrom('webhook_endpoints').where('id', '=', id).execute();
    this.dispatcher.invalidate();
  }

  /**
   * New secret; the old one keeps signing beside it for 24 hours. Answers the row with the new
   * secret in clear (for the answer, the one place it is shown); both are stored sealed.
   */
  async rotate(db: Executor, id: string): Promise<EndpointRow> {
    const row = await this.get(db, id);
    const now = this.ctx.clock.nowMs();
    const secret = newSecret();
    const patch = {
      secret: this.ctx.secrets.seal(secret, endpointSecretContext(id)),
      // Same context for both columns: the sealed value moves as it is.
      previous_secret: row.secret,
      previous_secret_expires_at: new Date(now + ROTATION_OVERLAP_MS).toISOString(),
      updated_at: new Date(now).toISOString(),
    };
    await db.updateTable('webhook_endpoints').set(patch).where('id', '=', id).execute();
    this.dispatcher.invalidate();
    return { ...row, ...patch, secret };
  }

  /** Sends a sample event (the catalog's example of `type`) to the endpoint: one attempt, awaited. */
  async test(id: string, type?: string) {
    const endpoint = await this.get(this.ctx.database.db, id);
    const subscribedTypes = fromJson<string[]>(endpoint.events, []);
    const eventType =
      type ?? (subscribedTypes[0] && subscribedTypes[0] !== '*' ? subscribedTypes[0] : 'balance_value_updated');
    const info = EVENT_TYPES.get(eventType);
    if (!info)
      throw invalid('unknown_event_type', 'Unknown event type', `Unknown event type "${eventType}"`, [
        { field: 'event_type', message: 'unknown event type' },
      ]);
    const event = {
      id: newId('evt'),
      type: info.type,
      data: JSON.stringify(info.example),
      created_at: this.ctx.clock.nowIso(),
    };
    // Kept in the event log (resource_type "webhook_test") so its attempts can be listed; never fanned out.
    await this.ctx.database.db
      .insertInto('outbox_events')
      .values({ ...event, resource_type: 'webhook_test', resource_id: id, program_id: null, dispatched: 1 })
      .execute();
    const attempt = await this.dispatcher.attemptNow(id, event, 'test');
    return { event, attempt };
  }

  /** One attempt of an existing event to this endpoint now (whatever its retry state), awaited. */
  async resend(endpointId: string, eventId: string): Promise<AttemptRecord> {
    const db = this.ctx.database.db;
    await this.get(db, endpointId);
    const event = await db
      .selectFrom('outbox_events')
      .select(['id', 'type', 'data', 'created_at'])
      .where('id', '=', eventId)
      .executeTakeFirst();
    if (!event) throw notFound('event', eventId);
    return this.dispatcher.attemptNow(endpointId, event, 'manual');
  }

  /** Resends (one attempt each) the failed deliveries of events created in [since, until). */
  async recover(db: Executor, endpointId: string, since: string, until?: string): Promise<number> {
    const endpoint = await this.get(db, endpointId);
    if (endpoint.active !== 1) {
      throw conflict(
        'webhook_disabled',
        'Webhook is disabled',
        `Enable webhook ${endpointId} (PUT active: true) before recovering its messages`,
      );
    }
    const now = this.ctx.clock.nowIso();
    let q = db
      .updateTable('webhook_deliveries')
      .set({ status: 'pending', manual: 1, next_attempt_at: now, lease_until: null, leased_by: null, updated_at: now })
      .where('endpoint_id', '=', endpointId)
      .where('status', '=', 'failed')
      .where('event_created_at', '>=', new Date(since).toISOString());
    if (until) q = q.where('event_created_at', '<', new Date(until).toISOString());
    const res = await q.executeTakeFirst();
    this.dispatcher.wake();
    return Number(res.numUpdatedRows ?? 0);
  }

  async attempts(
    db: Executor,
    filter: { endpointId?: string; eventId?: string; status?: string },
    page: { limit: number; starting_after_id?: string },
  ) {
    let q = db.selectFrom('webhook_attempts').selectAll();
    if (filter.endpointId) q = q.where('endpoint_id', '=', filter.endpointId);
    if (filter.eventId) q = q.where('event_id', '=', filter.eventId);
    if (filter.status) q = q.where('status', '=', filter.status);
    return pageBySeq(
      page,
      'an attempt',
      async (id) =>
        (await db.selectFrom('webhook_attempts').select('seq').where('id', '=', id).executeTakeFirst())?.seq,
      (before, n) => (before === undefined ? q : q.where('seq', '<', before)).orderBy('seq', 'desc').limit(n).execute(),
    );
  }

  /** Delivery attempts that succeeded and failed per UTC day since `sinceIso` (index webhook_attempts_created). */
  async attemptsPerDay(db: Executor, sinceIso: string): Promise<{ day: string; succeeded: number; failed: number }[]> {
    return perUtcDay(sinceIso, this.ctx.clock.nowMs(), async (from, to) => {
      const r = await db
        .selectFrom('webhook_attempts')
        .select([
          sql<number>`coalesce(sum(case when status = 'succeeded' then 1 else 0 end), 0)`.as('succeeded'),
          sql<number>`coalesce(sum(case when status = 'failed' then 1 else 0 end), 0)`.as('failed'),
        ])
        .where('created_at', '>=', from)
        .where('created_at', '<', to)
        .executeTakeFirstOrThrow();
      return { succeeded: Number(r.succeeded), failed: Number(r.failed) };
    });
  }
}
