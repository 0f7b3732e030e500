// PostgreSQL `COPY … FROM STDIN` text format for the scale loader (bench/scale.ts): one line per
// row, columns separated by tabs, NULL as \N, and in every value the backslash, tab, newline and
// carriage return written as backslash escapes (the characters COPY would otherwise read as syntax).
// https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2

const SPECIAL = /[\\\t\n\r]/g;
/** The same characters, without the global flag (whose `test` would keep a position between calls). */
const HAS_SPECIAL = /[\\\t\n\r]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/**
 * One value as a COPY text field: null and undefined as \N, a Date as its ISO time, a boolean as
 * t/f, an object or array as its JSON (for json/jsonb columns), anything else as its string; then escaped.
 */
export function copyField(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  else if (typeof value === 'boolean') return value ? 't' : 'f';
  else if (value instanceof Date) return value.toISOString();
  else text = JSON.stringify(value);
  return HAS_SPECIAL.test(text) ? text.replace(SPECIAL, (c) => ESCAPES[c]) : text;
}

/** One row as a COPY text line (with its newline). */
export function copyLine(values: readonly unknown[]): string {
  let line = '';
  for (let i = 0; i < values.length; i++) line += (i === 0 ? '' : '\t') + copyField(values[i]);
  return `${line}\n`;
}
