// A mergeable count of distinct members: what the flow report keeps per day so that the distinct
// members of a whole window are a union of its days' sketches, not a count over its messages.
//
// Two forms (as HyperLogLog++ does):
// - exact: the set of the members' 53-bit hashes, while it holds at most EXACT_MAX of them. The
//   count and the union are exact (two members' hashes collide with a probability of about
//   n² / 2^54: about 1 in 10^10 at the sizes kept).
// - estimate: a HyperLogLog of 2^PRECISION registers (each the longest run of leading zeros seen,
//   plus one, in the other 40 bits of the hashes whose first PRECISION bits chose it); standard
//   error 1.04 / sqrt(2^PRECISION) = 1.15 %. A union that outgrows the exact form becomes one.
// Hashes are Numbers (53 bits are exact in a double): a report merges tens of thousands of them,
// and bigints cost about 5x more here.
// Invariant: merging is commutative, associative and idempotent in both forms, so a window's
// figure does not depend on how its days were grouped, and a day counted twice changes nothing.

export const PRECISION = 13;
const REGISTERS = 1 << PRECISION;
/** The exact form's largest size: as many bytes (8 per hash) as the estimate's registers. */
export const EXACT_MAX = REGISTERS / 8;
/** The bits of a hash after its register's index. */
const REST_BITS = 53 - PRECISION;
const REST = 2 ** REST_BITS;
const LOW = 2 ** (REST_BITS - 32);

/**
 * The 53-bit hash of a member id: two MurmurHash3 (x86, 32-bit) of its UTF-16 code units with two
 * seeds, the first whole and the second's top 21 bits. Spread, not secret; several times cheaper
 * than an MD5 here. Invariant: never changes, since stored sketches hold these hashes.
 */
export function memberHash(id: string): number {
  return murmur3(id, 0x9747b28c) * 2 ** 21 + (murmur3(id, 0x5f3759df) >>> 11);
}

function murmur3(s: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    let k = Math.imul(s.charCodeAt(i), 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    h ^= k;
    h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0;
  }
  h ^= s.length;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class MemberSketch {
  /** The exact form's hashes; null once the sketch is an estimate. */
  private hashes: Set<number> | null = new Set();
  private registers: Uint8Array | null = null;

  add(id: string): this {
    return this.addHash(memberHash(id));
  }

  addHash(h: number): this {
    if (this.hashes) {
      this.hashes.add(h);
      if (this.hashes.size > EXACT_MAX) this.toEstimate();
    } else raise(this.registers!, h);
    return this;
  }

  /**
   * Takes a member out (a day's running figures when the member's only message of the day is
   * cancelled). Only the exact form can: an estimate keeps the member and this returns false.
   */
  remove(id: string): boolean {
    if (!this.hashes) return false;
    this.hashes.delete(memberHash(id));
    return true;
  }

  /** Adds every member of `other` to this sketch. */
  merge(other: MemberSketch): this {
    if (other.hashes) {
      for (const h of other.hashes) this.addHash(h);
      return this;
    }
    if (this.hashes) this.toEstimate();
    const mine = this.registers!;
    const theirs = other.registers!;
    for (let i = 0; i < REGISTERS; i++) if (theirs[i] > mine[i]) mine[i] = theirs[i];
    return this;
  }

  /** Whether `count()` is exact (the exact form) or an estimate. */
  get exact(): boolean {
    return this.hashes !== null;
  }

  count(): number {
    if (this.hashes) return this.hashes.size;
    return hllEstimate(this.registers!);
  }

  /** Text to store (base64 of a byte that says the form, then the sorted hashes or the registers). */
  serialize(): string {
    if (this.hashes) {
      const sorted = [...this.hashes].sort((a, b) => a - b);
      const buf = Buffer.alloc(1 + sorted.length * 8);
      buf[0] = 0;
      for (let i = 0; i < sorted.length; i++) buf.writeDoubleBE(sorted[i], 1 + i * 8);
      return buf.toString('base64');
    }
    return Buffer.concat([Buffer.from([1]), this.registers!]).toString('base64');
  }

  static parse(text: string): MemberSketch {
    return new MemberSketch().mergeStored(text);
  }

  /**
   * Adds every member of a stored sketch (`serialize`'s text) straight from its bytes. A report's
   * union merges a month of days this way: parsing each into a sketch of its own first (a set of
   * up to 1,024 hashes apiece) was most of its CPU time.
   */
  mergeStored(text: string): this {
    const buf = Buffer.from(text, 'base64');
    if (buf[0] === 1 && buf.length === 1 + REGISTERS) {
      if (this.hashes) this.toEstimate();
      const mine = this.registers!;
      for (let i = 0; i < REGISTERS; i++) if (buf[i + 1] > mine[i]) mine[i] = buf[i + 1];
      return this;
    }
    if (buf[0] !== 0 || (buf.length - 1) % 8 !== 0) throw new Error('not a member sketch');
    for (let i = 1; i < buf.length; i += 8) this.addHash(buf.readDoubleBE(i));
    return this;
  }

  private toEstimate(): void {
    const registers = new Uint8Array(REGISTERS);
    for (const h of this.hashes!) raise(registers, h);
    this.hashes = null;
    this.registers = registers;
  }
}

/** Counts the members in both `a` and `b`: |a| + |b| - |a ∪ b| (exact when all three are). */
export function intersectionCount(a: MemberSketch, b: MemberSketch): { count: number; exact: boolean } {
  const union = new MemberSketch().merge(a).merge(b);
  // Each count once: an estimate's count reads every register.
  const [ca, cb] = [a.count(), b.count()];
  const count = Math.max(0, Math.min(ca, cb, ca + cb - union.count()));
  return { count, exact: a.exact && b.exact && union.exact };
}

/**
 * Raises the register the hash's first PRECISION bits choose to the position of the first 1 bit
 * in its other REST_BITS bits, counted from 1 (all zero: REST_BITS + 1).
 */
function raise(registers: Uint8Array, h: number): void {
  const index = Math.floor(h / REST);
  const rest = h % REST;
  const top = Math.floor(rest / LOW); // the rest's first 32 bits
  const low = rest % LOW; // and its last REST_BITS - 32, whose leading zeros clz32 counts 64 - REST_BITS too many
  const rank = top !== 0 ? Math.clz32(top) + 1 : 32 + Math.clz32(low) - (64 - REST_BITS) + 1;
  if (rank > registers[index]) registers[index] = rank;
}

/** 2^-r for every register value r (at most REST_BITS + 1). */
const INVERSE_POWERS = Float64Array.from({ length: REST_BITS + 2 }, (_, r) => 2 ** -r);

/**
 * HyperLogLog's estimate (Flajolet et al. 2007) with its small-range correction: linear counting
 * while some registers are empty and the raw estimate is under 2.5 m. With 53-bit hashes there is
 * no large-range correction to make.
 */
export function hllEstimate(registers: Uint8Array): number {
  const m = registers.length;
  const alpha = 0.7213 / (1 + 1.079 / m);
  let sum = 0;
  let empty = 0;
  for (let i = 0; i < m; i++) {
    const r = registers[i];
    sum += INVERSE_POWERS[r];
    if (r === 0) empty++;
  }
  const raw = (alpha * m * m) / sum;
  if (raw <= 2.5 * m && empty > 0) return Math.round(m * Math.log(m / empty));
  return Math.round(raw);
}
