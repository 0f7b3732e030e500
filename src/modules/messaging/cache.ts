import { toE164 } from '../../lib/phone.ts';

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
