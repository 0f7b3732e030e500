// A small in-process cache whose entries live `ttlMs` (bounded: it starts over when full). Writes
// made through this process clear entries at once; other processes of a multi-process deployment
// see a change up to `ttlMs` late.

export class TtlCache<V> {
  private map = new Map<string, { value: V; until: number }>();

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

  async getOr(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    return this.set(key, await load());
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }
}
