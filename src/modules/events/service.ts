import { type Selectable, sql } from 'kysely';
import { newestOfKey, pageBySeq } from '../../storage/paging.ts';
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
    const types = (filter.type ?? '')
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    // The filters with an index of their own ending in seq (outbox_type_seq, outbox_resource, outbox_program_seq).
    const keyed: [string, string][] = [];
    if (types.length === 1) keyed.push(['type', types[0]]);
    else if (types.length > 1) q = q.where('type', 'in', types);
    if (filter.resource_id) keyed.push(['resource_id', filter.resource_id]);
    if (filter.program_id) keyed.push(['program_id', filter.program_id]);
    if (filter.created_after) q = q.where('created_at', '>=', new Date(filter.created_after).toISOString());
    if (filter.created_before) q = q.where('created_at', '<', new Date(filter.created_before).toISOString());
    // One keyed filter: its index walked (newestOfKey: never the table's key walked back). Two: the planner
    // chooses between their indexes (there is none of two; walking one always would read every row of the
    // other filter's rare value).
    const walked = keyed.length === 1 ? keyed[0] : undefined;
    if (!walked) for (const [column, value] of keyed) q = q.where(sql.ref(column), '=', value);
    return pageBySeq(
      page,
      'an event',
      async (id) => (await db.selectFrom('outbox_events').select('seq').where('id', '=', id).executeTakeFirst())?.seq,
      (before, n) =>
        (walked
          ? newestOfKey(q, { db, column: walked[0], value: walked[1] }, before)
          : (before === undefined ? q : q.where('seq', '<', before)).orderBy('seq', 'desc')
        )
          .limit(n)
          .execute(),
    );
  }
}
