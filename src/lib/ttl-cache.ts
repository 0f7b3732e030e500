import type { Executor } from '../storage/database.ts';
import type { CacheBus } from './cache-bus.ts';

// A small in-process cache whose entries live `ttlMs` (bounded: it starts over when full). Writes
// made through this process clear entries at once; a `SharedTtlCache` also clears the other
// processes' (cache-bus.ts), else they see a change up to `ttlMs` late.

export class TtlCache<V> {
  private map = new Map<string, { value: V; until: number }>();
  /** Bumped by every delete and clear: a load that started before one is not cached (it may be stale). */
  private generation = 0;

  /** For a load done by hand: pass it to `setIfUnchanged` after the load. */
  get version(): number {
    return this.generation;
  }

  constructor(
    private ttlMs: number,
    private max = 5000,
  ) {}

  get(key: string): V | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    if (hit.until < performance.now()) {
      this.map.delete(key);
      return undefined;
    }
    return hit.value;
  }

  set(key: string, value: V): V {
    if (this.map.size >= this.max) this.map.clear();
    this.map.set(key, { value, until: performance.now() + this.ttlMs });
    return value;
  }

  /** Caches `value` unless an entry was deleted or the cache cleared since `version` was read. */
  setIfUnchanged(key: string, value: V, version: number): V {
    return version === this.generation ? this.set(key, value) : value;
  }

  async getOr(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const generation = this.generation;
    const value = await load();
    return generation === this.generation ? this.set(key, value) : value;
  }

  delete(key: string): void {
    this.generation++;
    this.map.delete(key);
  }

  clear(): void {
    this.generation++;
    this.map.clear();
  }
}

/** A TtlCache whose invalidations reach the same cache (`topic`) in the other processes. */
export class SharedTtlCache<V> extends TtlCache<V> {
  constructor(
    private bus: CacheBus,
    private topic: string,
    ttlMs: number,
    max?: number,
  ) {
    super(ttlMs, max);
    bus.on(topic, (key) => (key === undefined ? this.clear() : this.delete(key)));
  }

  /**
   * Drops `key` (undefined: everything) here now, and in the other processes when `executor`'s
   * transaction commits (at once without one).
   */
  async invalidate(key: string | undefined, executor?: Executor): Promise<void> {
    if (key === undefined) this.clear();
    else this.delete(key);
    await this.bus.changed(this.topic, key, executor);
  }
}
