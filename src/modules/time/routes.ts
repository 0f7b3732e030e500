import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.ts';
import { invalid } from '../../lib/errors.ts';
import { listOf, listSchema } from '../../http/lists.ts';
import { typed } from '../../http/schema.ts';
import type { Services } from '../../services.ts';
import { ScheduleQuery, SkippedQuery } from './schemas.ts';
import { KIND_EVENTS, type DueItemRow } from './service.ts';
import type { DueSkipsTable } from './tables.ts';

const WEEK_MS = 7 * 86_400_000;

function presentDueItem(r: DueItemRow) {
  return {
    id: r.id,
    kind: r.kind,
    event_types: KIND_EVENTS[r.kind],
    due_at: r.next_at,
    anchor_at: r.anchor_at || null,
    membership_id: r.kind === 'voucher_reminder' ? null : r.subject_id,
    subject_id: r.subject_id,
    scope_id: r.scope_id || null,
    campaign_id: r.program_id,
    object: 'due_item' as const,
  };
}

function presentSkip(r: DueSkipsTable) {
  return {
    id: r.id,
    kind: r.kind,
    event_types: JSON.parse(r.event_types) as string[],
    due_at: r.due_at,
    skipped_at: r.skipped_at,
    subject_id: r.subject_id,
    scope_id: r.scope_id || null,
    campaign_id: r.program_id,
    object: 'due_skip' as const,
  };
}

export function timeRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const db = () => ctx.database.db;

  app.get(
    '/v1/schedule',
    {
      schema: {
        tags: ['time'],
        summary: 'What the time engine will fire: anniversaries and reminders due between from and to',
        querystring: ScheduleQuery,
        response: { 200: listSchema('data') },
      },
    },
    async (req) => {
      const from = req.query.from ? new Date(req.query.from) : ctx.clock.now();
      const to = req.query.to ? new Date(req.query.to) : new Date(from.getTime() + WEEK_MS);
      if (to < from)
        throw invalid('invalid_range', 'Invalid range', 'to must not be before from', [
          { field: 'to', message: 'must be at or after from' },
        ]);
      const page = await services.time.schedule(db(), {
        from: from.toISOString(),
        to: to.toISOString(),
        type: req.query.type,
        limit: req.query.limit,
        page: req.query.page,
      });
      return listOf('data', page.rows.map(presentDueItem), page.total);
    },
  );

  app.get(
    '/v1/schedule/skipped',
    {
      schema: {
        tags: ['time'],
        summary: 'Anniversaries and reminders that came due beyond the look-back while no server ran: not sent',
        querystring: SkippedQuery,
        response: { 200: listSchema('data') },
      },
    },
    async (req) => {
      const page = await services.time.skipped(db(), req.query);
      return listOf('data', page.rows.map(presentSkip), page.total);
    },
  );
}
