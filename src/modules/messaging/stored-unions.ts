import type { Executor } from '../../storage/database.ts';
import type { LiveDays } from './live-days.ts';
import { MemberSketch } from './member-sketch.ts';

// The union of a report window's stored days' members (their sketches), cached per process so
// that a report does not read and merge a month of 8 KB sketches each time: at 1M members that
// was most of a report's cost (docs/performance.md).
//
// Invariant: a cached union is that of the days and revisions in its key, so it is reused only
// while they hold. A rolled-up day (msg_flow_days) never changes; a day's running figures
// (msg_flow_live_days) raise `sketch_revision` whenever the fold changes their sketches, so a
// changed day makes a new key. The day traffic changes (a report's last day) is not in the union:
// the report reads its sketches with its figures and merges them into a copy.

export type MemberSketches = { messaged: MemberSketch; writing: MemberSketch };

/** A stored day of a window: its revision, or null when rolled up. */
export interface StoredDay {
  date: string;
  revision: number | null;
}

const MAX_UNIONS = 256;

export class StoredUnions {
  /** At most MAX_UNIONS (16 KB each), the oldest out. */
  private unions = new Map<string, MemberSketches>();

  constructor(private live: LiveDays) {}

  async of(db: Executor, flowId: string, days: StoredDay[]): Promise<MemberSketches | null> {
    if (days.length === 0) return null;
    const key = `${flowId}|${days.map((d) => (d.revision === null ? d.date : `${d.date}@${d.revision}`)).join(',')}`;
    const known = this.unions.get(key);
    if (known) return known;
    const union = { messaged: new MemberSketch(), writing: new MemberSketch() };
    const merge = (r: { messaged_sketch: string | null; writing_sketch: string | null }) => {
      // Merged from their stored text: no sketch (nor set of hashes) is built per day.
      union.messaged.mergeStored(r.messaged_sketch!);
      union.writing.mergeStored(r.writing_sketch!);
    };
    // One statement: a report's window spans at most 400 days (reports.ts).
    const rolledUp = days.filter((d) => d.revision === null).map((d) => d.date);
    const finals =
      rolledUp.length === 0
        ? []
        : await db
            .selectFrom('msg_flow_days')
            .select(['messaged_sketch', 'writing_sketch'])
            .where('flow_id', '=', flowId)
            .where('day', 'in', rolledUp)
            .execute();
    finals.forEach(merge);
    // A day whose sketches a fold changed since the report read its revision is merged as it is
    // now, and the union is not kept under the report's key.
    const revisions = new Map(days.filter((d) => d.revision !== null).map((d) => [d.date, d.revision]));
    let current = true;
    const rows = await this.live.readSketches(db, flowId, [...revisions.keys()]);
    for (const r of rows) {
      merge(r);
      if (Number(r.sketch_revision) !== revisions.get(r.day)) current = false;
    }
    if (rows.length !== revisions.size) current = false;
    if (current) {
      if (this.unions.size >= MAX_UNIONS) this.unions.delete(this.unions.keys().next().value!);
      this.unions.set(key, union);
    }
    return union;
  }
}
