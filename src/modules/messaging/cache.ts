import { toE164 } from '../../lib/phone.ts';

// Small in-process caches for the inbound hot path. Entries live `ttlMs`; writes made through this
// process clear them at once, so only other processes of a multi-process deployment can see a
// change (a channel's credentials, a flow's triggers) up to `ttlMs` late.

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

// Phone parsing (libphonenumber's full metadata) is comparatively slow; numbers repeat.
const e164 = new Map<string, string | null>();

export function cachedE164(raw: string): string | null {
  let v = e164.get(raw);
  if (v === undefined) {
    v = toE164(raw);
    if (e164.size > 20_000) e164.clear();
    e164.set(raw, v);
  }
  return v;
}
