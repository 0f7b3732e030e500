// Writes a PostgreSQL transaction keeps to send just before its COMMIT (see `keep` in
// connection.ts), and how several writes become one statement.

/** A write kept for the COMMIT: its SQL text (placeholders $1..$n) and values. */
export interface KeptWrite {
  /** The table it writes ('*' when unknown): writes of one table are never sent in one statement. */
  table: string;
  text: string;
  values: readonly unknown[];
}

/** The table an INSERT, UPDATE or DELETE text writes, or '*'. */
export function writtenTable(text: string): string {
  const m = /^\s*(?:insert\s+into|update|delete\s+from)\s+("(?:[^"]|"")+"|[\w.]+)/i.exec(text);
  return m ? m[1].replace(/^"|"$/g, '') : '*';
}

/** Combined texts by their parts' texts: the same few combinations come back on every write. */
const combinedTexts = new Map<string, string>();

/**
 * Several writes as one statement of data-modifying CTEs (`WITH s0 AS (INSERT ...), ... SELECT 1`),
 * placeholders renumbered in order. The parts all see the database as it was before the statement:
 * they must not depend on each other's effects.
 */
export function combineWrites(parts: readonly { text: string; values: readonly unknown[] }[]): {
  text: string;
  values: unknown[];
} {
  if (parts.length === 1) return { text: parts[0].text, values: [...parts[0].values] };
  const key = parts.map((p) => p.text).join('\u0000');
  const known = combinedTexts.get(key);
  if (known !== undefined) return { text: known, values: parts.flatMap((p) => p.values) };
  let offset = 0;
  const ctes: string[] = [];
  for (const [i, part] of parts.entries()) {
    const shift = offset;
    ctes.push(`s${i} as (${part.text.replace(/\$(\d+)/g, (_m, n: string) => `$${Number(n) + shift}`)})`);
    offset += part.values.length;
  }
  const text = `with ${ctes.join(', ')} select 1`;
  if (combinedTexts.size >= 500) combinedTexts.clear();
  combinedTexts.set(key, text);
  return { text, values: parts.flatMap((p) => p.values) };
}
