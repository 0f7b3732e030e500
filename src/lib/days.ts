/**
 * The UTC days from the day of `sinceIso` to the day of `untilMs`, each with its [from, to) bounds
 * as ISO strings. Per-day counts are read one day's index range at a time: grouping by a
 * computed day (substr of the timestamp) costs a function call and a sort per row, ~1 µs a row on
 * SQLite (100,000 rows: 106 ms against 25 ms for the range counts).
 */
export function utcDays(sinceIso: string, untilMs: number): { day: string; from: string; to: string }[] {
  const DAY = 86_400_000;
  const out: { day: string; from: string; to: string }[] = [];
  for (let t = Math.floor(Date.parse(sinceIso) / DAY) * DAY; t <= untilMs; t += DAY) {
    const from = new Date(t).toISOString();
    out.push({ day: from.slice(0, 10), from, to: new Date(t + DAY).toISOString() });
  }
  return out;
}

/**
 * One count per UTC day from the day of `sinceIso` to the day of `untilMs`: `count` reads one day's
 * [from, to) range (see `utcDays` for why a range per day and not a GROUP BY), days in order.
 */
export async function perUtcDay<T extends object>(
  sinceIso: string,
  untilMs: number,
  count: (from: string, to: string) => Promise<T>,
): Promise<({ day: string } & T)[]> {
  const out: ({ day: string } & T)[] = [];
  for (const d of utcDays(sinceIso, untilMs)) out.push({ day: d.day, ...(await count(d.from, d.to)) });
  return out;
}
