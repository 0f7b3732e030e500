import { pageBySeq } from '../../storage/paging.ts';
import type { Selectable } from 'kysely';
import { notFound } from '../../lib/errors.ts';
import type { Executor } from '../../storage/database.ts';
import type { OutboxEventsTable } from '../../storage/schema.ts';

// Reading the outbox as the event log (GET /v1/events) and keeping it to its retention.

export type EventRow = Selectable<OutboxEventsTable>;

export function presentEvent(
  row: Pick<EventRow, 'id' | 'type' | 'created_at' | 'data' | 'resource_type' | 'resource_id' | 'program_id'>,
) {
  return {
    id: row.id,
    object: 'event' as const,
    type: row.type,
    created_at: row.created_at,
    data: JSON.parse(row.data) as Record<string, unknown>,
    resource_type: row.resource_type,
    resource_id: row.resource_id,
    program_id: row.program_id,
  };
}

export interface EventFilter {
  type?: string;
  resource_id?: string;
  program_id?: string;
  created_after?: string;
  created_before?: string;
}

export class EventService {
  async get(db: Executor, id: string): Promise<EventRow> {
    const row = await db.selectFrom('outbox_events').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound('event', id);
    return row;
  }

  /** Newest first; `starting_after_id` is the last id of the previous page. */
  async list(db: Executor, filter: EventFilter, page: { limit: number; starting_after_id?: string }) {
    let q = db.selectFrom('outbox_events').selectAll();
    if (filter.type)
      q = q.where(
        'type',
        'in',
        filter.type
          .split(',')
          .map((t) => t.trim())
          .filter(Boolean),
      );
    if (filter.resource_id) q = q.where('resource_id', '=', filter.resource_id);
    if (filter.program_id) q = q.where('program_id', '=', filter.program_id);
    if (filter.created_after) q = q.where('created_at', '>=', new Date(filter.created_after).toISOString());
    if (filter.created_before) q = q.where('created_at', '<', new Date(filter.created_before).toISOString());
    return pageBySeq(
      page,
      'an event',
      async (id) => (await db.selectFrom('outbox_events').select('seq').where('id', '=', id).executeTakeFirst())?.seq,
      (before, n) => (before === undefined ? q : q.where('seq', '<', before)).orderBy('seq', 'desc').limit(n).execute(),
    );
  }
}
