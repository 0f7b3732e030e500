import { performance } from 'node:perf_hooks';
import type { Executor } from '../../../storage/database.ts';
import type { EndpointRow } from './types.ts';

/**
 * The endpoints as the dispatcher last read them. Endpoints change rarely: they are read again
 * every second (other processes' changes), at once after a change through this process
 * (`invalidate`), and on every `runOnce`. The rows are shared: the health updates patch them.
 */
export class Endpoints {
  private rows = new Map<string, EndpointRow>();
  private loadedAt = 0;
  private dirty = true;

  async load(db: Executor, force = false): Promise<void> {
    if (!force && !this.dirty && performance.now() - this.loadedAt < 1000) return;
    const rows = await db.selectFrom('webhook_endpoints').selectAll().execute();
    this.rows = new Map(rows.map((r) => [r.id, r]));
    this.loadedAt = performance.now();
    this.dirty = false;
  }

  /** Endpoints were created or changed: read them again before the next fan-out. */
  invalidate(): void {
    this.dirty = true;
  }

  get(id: string): EndpointRow | undefined {
    return this.rows.get(id);
  }

  /** Takes `row` as read now (a manual attempt reads its endpoint itself). */
  put(row: EndpointRow): void {
    this.rows.set(row.id, { ...(this.rows.get(row.id) ?? {}), ...row });
  }

  all(): IterableIterator<EndpointRow> {
    return this.rows.values();
  }

  *active(): Generator<EndpointRow> {
    for (const ep of this.rows.values()) if (ep.active === 1) yield ep;
  }

  anyActive(): boolean {
    for (const ep of this.rows.values()) if (ep.active === 1) return true;
    return false;
  }
}
