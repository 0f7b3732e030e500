import type { Clock } from '../../lib/clock.ts';
import { newId } from '../../lib/ids.ts';
import type { Metrics } from '../../http/metrics.ts';
import type { Executor } from '../../storage/database.ts';
import { hot } from '../../storage/hot.ts';

// The transactional outbox: an event is a row written by the same transaction as the change that
// causes it, so an event exists if and only if its change committed. The webhooks module reads
// this table in `seq` order and delivers; nothing here talks to the network.

export interface OutgoingEvent {
  type: string;
  data: Record<string, unknown>;
  resource_type?: string;
  resource_id?: string;
  program_id?: string;
}

export interface StoredEvent {
  id: string;
  seq: number;
  type: string;
  created_at: string;
  data: Record<string, unknown>;
  resource_type: string | null;
  resource_id: string | null;
  program_id: string | null;
}

export class Outbox {
  /** Transactions that wrote events, until `takeWritten` asks after their commit. */
  private writers = new WeakSet<object>();

  constructor(
    private clock: Clock,
    private metrics: Metrics,
  ) {}

  /** Writes events in the caller's transaction; returns their ids in order. */
  async emit(trx: Executor, events: OutgoingEvent | OutgoingEvent[]): Promise<string[]> {
    const list = Array.isArray(events) ? events : [events];
    if (list.length === 0) return [];
    const rows = this.rowsFor(list);
    await hot(
      trx,
      `outbox.insert:${rows.length}`,
      rows.flatMap((r) => Object.values(r)),
      () => trx.insertInto('outbox_events').values(rows),
    );
    this.written(trx, list);
    return rows.map((r) => r.id);
  }

  /** The outbox rows of `events`, for a caller that writes them itself in its transaction (then calls `written`). */
  rowsFor(events: OutgoingEvent[]) {
    const now = this.clock.nowIso();
    return events.map((e) => ({
      id: newId('evt'),
      type: e.type,
      data: JSON.stringify(e.data),
      resource_type: e.resource_type ?? null,
      resource_id: e.resource_id ?? null,
      program_id: e.program_id ?? null,
      created_at: now,
    }));
  }

  /** Notes that `trx` wrote `events` (counted in the metrics; see `takeWritten`). */
  written(trx: Executor, events: OutgoingEvent[]): void {
    if (events.length === 0) return;
    this.writers.add(trx);
    for (const e of events) this.metrics.eventsEmitted.inc({ type: e.type });
  }

  /**
   * Whether the transaction that ran on `trx` wrote events (asked once, after its commit): only
   * those wake the webhook dispatcher. On SQLite a group commit's transactions share one `trx`;
   * the first to ask answers for the batch, which committed as a whole.
   */
  takeWritten(trx: Executor): boolean {
    return this.writers.delete(trx);
  }
}
