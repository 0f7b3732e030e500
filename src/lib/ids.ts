import { randomBytes } from 'node:crypto';

// Ids carry Voucherify's prefixes (cust_, camp_, v_, vtx_) so clients that switch on them keep working.
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

// Random bytes come from a pooled buffer refilled 8 KiB at a time: one randomBytes call per id
// was a measurable share of a ledger write.
let pool = Buffer.alloc(0);
let offset = 0;
function nextByte(): number {
  if (offset >= pool.length) {
    pool = randomBytes(8192);
    offset = 0;
  }
  return pool[offset++];
}

export function randomString(length: number, charset: string = ALPHABET): string {
  // Rejection sampling keeps every character equally likely for any charset size.
  const max = 256 - (256 % charset.length);
  let out = '';
  while (out.length < length) {
    const b = nextByte();
    if (b < max) out += charset[b % charset.length];
  }
  return out;
}

export type IdPrefix =
  | 'cust'
  | 'camp'
  | 'v'
  | 'r'
  | 'rr'
  | 'pub'
  | 'vtx'
  | 'bdef'
  | 'lot'
  | 'evt'
  | 'key'
  | 'app'
  | 'whep'
  | 'whatt'
  | 'job'
  | 'ern'
  | 'ltr'
  | 'tgrp'
  | 'pp'
  | 'ord'
  | 'cev'
  | 'chn'
  | 'flw'
  | 'flv'
  | 'msg'
  | 'cnv'
  | 'bc'
  | 'sm'
  | 'rew'
  | 'rewa'
  | 'due'
  | 'skip'
  // Households (member contacts of a card).
  | 'mc'
  | 'ses'
  // referrals: tiers, referrals (referees), rewards given, holders
  | 'rft'
  | 'rfl'
  | 'rfg'
  | 'rfh';

/**
 * `prefix_` + a time part (8 base62 characters of the millisecond clock) + random characters:
 * ids created together sort together, so the B-tree indexes on them (ledger entries, lots, events,
 * jobs) grow at their right edge instead of touching a random page per insert. Short ids (below
 * 16 characters) are all random.
 */
export function newId(prefix: IdPrefix, length = 24): string {
  if (length < 16) return `${prefix}_${randomString(length)}`;
  let ms = Date.now();
  let time = '';
  for (let i = 0; i < 8; i++) {
    time = ALPHABET[ms % 62] + time;
    ms = Math.floor(ms / 62);
  }
  return `${prefix}_${time}${randomString(length - 8)}`;
}
