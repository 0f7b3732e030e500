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
 * `prefix_` + a time part (8 base62 characters of the millisecond clock) + a sequence within that
 * millisecond (3 characters) + random characters. Ids one process creates sort in the order it
 * created them, even inside one millisecond: lists ordered by (created_at, id) then show rows made
 * together (a campaign's tiers, a referee's two rewards) in creation order on every run, and the
 * B-tree indexes on ids (ledger entries, lots, events, jobs) grow at their right edge instead of
 * touching a random page per insert. Across processes only the millisecond orders. Short ids (below
 * 16 characters) are all random.
 */
export function newId(prefix: IdPrefix, length = 24): string {
  if (length < 16) return `${prefix}_${randomString(length)}`;
  const [ms, seq] = nextTick(Date.now());
  return `${prefix}_${base62(ms, 8)}${base62(seq, 3)}${randomString(length - 11)}`;
}

const SEQ_LIMIT = 62 ** 3;
let lastMs = 0;
let lastSeq = 0;

/**
 * The (millisecond, sequence) pair for the next id: never smaller than the previous one, even if
 * the clock steps back; a millisecond's sequence overflowing borrows the next millisecond.
 */
function nextTick(now: number): [number, number] {
  if (now > lastMs) {
    lastMs = now;
    lastSeq = 0;
  } else if (++lastSeq >= SEQ_LIMIT) {
    lastMs += 1;
    lastSeq = 0;
  }
  return [lastMs, lastSeq];
}

function base62(n: number, width: number): string {
  let out = '';
  for (let i = 0; i < width; i++) {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}
