import { html, jsonIsland, type SafeHtml } from '../html.ts';
import { page } from '../layout.ts';
import { type ConsoleRouter, sendPage } from '../routes.ts';

// Overview: the last 30 days as charts (Chart.js, drawn from JSON islands by console.js), each
// with its numbers in a table under it for screen readers and for copying. The per-day counts are
// read methods of the owning services (customers, ledger, messaging reports, webhooks).

const DAYS = 30;
const DAY_MS = 86_400_000;

/** The last `n` UTC days up to `nowMs`, oldest first, as YYYY-MM-DD. */
export function lastDays(nowMs: number, n = DAYS): string[] {
  const today = Math.floor(nowMs / DAY_MS) * DAY_MS;
  return Array.from({ length: n }, (_, i) => new Date(today - (n - 1 - i) * DAY_MS).toISOString().slice(0, 10));
}

interface Series {
  label: string;
  key: string;
  color: string;
}

/** A chart of per-day rows: a canvas, its data island, and the same numbers as a table. */
export function dayChart(
  id: string,
  title: string,
  days: string[],
  rows: ({ day: string } & Record<string, number | string>)[],
  series: Series[],
  type: 'line' | 'bar' = 'bar',
): SafeHtml {
  const byDay = new Map(rows.map((r) => [r.day, r]));
  const value = (d: string, k: string) => Number(byDay.get(d)?.[k] ?? 0);
  const datasets = series.map((s) => ({
    label: s.label,
    data: days.map((d) => value(d, s.key)),
    backgroundColor: s.color,
    borderColor: s.color,
  }));
  const totals = series.map((s) => `${s.label}: ${days.reduce((n, d) => n + value(d, s.key), 0)}`).join(', ');
  return html`<section class="card" aria-labelledby="${id}-title">
  <h2 id="${id}-title">${title}</h2>
  <div class="chart"><canvas id="${id}" role="img"
    aria-label="${title}, last ${days.length} days. ${totals}."></canvas></div>
  ${jsonIsland(`${id}-data`, { type, labels: days.map((d) => d.slice(5)), datasets }, { 'data-chart': id })}
  <details><summary>Numbers</summary><div class="scroll"><table><thead><tr><th scope="col">Day</th>${series.map(
    (s) => html`<th scope="col" class="num">${s.label}</th>`,
  )}</tr></thead><tbody>${days
    .filter((d) => byDay.has(d))
    .map(
      (d) => html`<tr><td>${d}</td>${series.map((s) => html`<td class="num">${value(d, s.key)}</td>`)}</tr>`,
    )}</tbody></table></div></details>
</section>`;
}

export function overviewPages(r: ConsoleRouter): void {
  r.get('/console', async (pc) => {
    const db = pc.ctx.database.db;
    const days = lastDays(pc.ctx.clock.nowMs());
    const since = `${days[0]}T00:00:00.000Z`;
    const [members, points, messages, attempts] = await Promise.all([
      pc.services.customers.createdPerDay(db, since),
      pc.services.ledger.pointsPerDay(db, since),
      pc.services.messaging.reports.messagesPerDay(db, since),
      pc.services.webhooks.attemptsPerDay(db, since),
    ]);
    const body = html`<p>The last ${DAYS} days (UTC).</p>
<div class="grid charts">
${dayChart('chart-members', 'Members created', days, members, [{ label: 'Members', key: 'created', color: '#0b57d0' }])}
${dayChart('chart-points', 'Points issued and redeemed', days, points, [
  { label: 'Issued', key: 'issued', color: '#146c2e' },
  { label: 'Redeemed', key: 'redeemed', color: '#b3261e' },
])}
${dayChart('chart-messages', 'Messages sent and received', days, messages, [
  { label: 'Sent', key: 'sent', color: '#0b57d0' },
  { label: 'Received', key: 'replied', color: '#8250df' },
])}
${dayChart('chart-webhooks', 'Webhook deliveries', days, attempts, [
  { label: 'Succeeded', key: 'succeeded', color: '#146c2e' },
  { label: 'Failed', key: 'failed', color: '#b3261e' },
])}
</div>`;
    return sendPage(pc.reply, page({ title: 'Overview', session: pc.session, path: '/console' }, body));
  });
}
