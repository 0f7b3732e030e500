import { enc, listItems, qs } from '../api.ts';
import { html } from '../html.ts';
import { apiErrorText, page } from '../layout.ts';
import { type ConsoleRouter, sendPage } from '../routes.ts';
import { dayChart } from './overview.ts';

// Reports: a flow's interaction rate (members who replied / members messaged) and redemptions
// within 7 days of a flow message, per day, from the API's flow report.

interface ReportDay {
  date: string;
  messages_sent: number;
  members_messaged: number;
  members_replied: number;
  interaction_rate: number | null;
  redemptions_within_7_days: number;
  points_redeemed_within_7_days: number;
}

const RATE = { label: 'Rate, %', key: 'rate', color: '#0b57d0' };

export function reportPages(r: ConsoleRouter): void {
  r.get('/console/reports', async (pc) => {
    const res = await pc.api.get(`/v1/flows${qs({ limit: 100 })}`);
    const flows = listItems<{ id: string; name: string }>(res.body);
    const body = html`<p>Pick a flow:</p><ul>${flows.map(
      (f) => html`<li><a href="/console/reports/${enc(f.id)}">${f.name}</a></li>`,
    )}</ul>`;
    return sendPage(pc.reply, page({ title: 'Reports', session: pc.session, path: '/console/reports' }, body));
  });

  r.get('/console/reports/:id', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const [flow, report] = await Promise.all([
      pc.api.get(`/v1/flows/${enc(id)}`),
      pc.api.get(`/v1/flows/${enc(id)}/report`),
    ]);
    if (!flow.ok || !report.ok) {
      const error = apiErrorText(flow.ok ? report.body : flow.body);
      return sendPage(
        pc.reply,
        page({ title: 'Report', session: pc.session, path: '/console/reports', error }, html``),
        404,
      );
    }
    const days = (report.body.days as ReportDay[]).map((d) => ({
      day: d.date,
      rate: d.interaction_rate === null ? 0 : Math.round(d.interaction_rate * 1000) / 10,
      messaged: d.members_messaged,
      replied: d.members_replied,
      redemptions: d.redemptions_within_7_days,
      points: d.points_redeemed_within_7_days,
    }));
    const labels = days.map((d) => d.day);
    const t = report.body.totals;
    // Past 1,024 members the window's distinct members are an estimate (within about 1 %): say so.
    const about = t.members_estimated ? '≈ ' : '';
    const body = html`<p><a href="/console/flows/${enc(id)}">Edit the flow</a> · last 30 days (UTC)</p>
<section class="card"><h2>Totals</h2><dl>
  <dt>Members messaged</dt><dd>${about}${t.members_messaged}</dd>
  <dt>Members who replied</dt><dd>${about}${t.members_replied}</dd>
  <dt>Interaction rate</dt><dd data-testid="interaction-rate">${
    t.interaction_rate === null ? '—' : `${Math.round(t.interaction_rate * 1000) / 10}%`
  }</dd>
  <dt>Redemptions within 7 days</dt><dd>${t.redemptions_within_7_days}</dd></dl></section>
<div class="grid charts">
${dayChart('chart-rate', 'Interaction rate (%)', labels, days, [RATE], 'line')}
${dayChart('chart-redemptions', 'Redemptions within 7 days', labels, days, [
  { label: 'Redemptions', key: 'redemptions', color: '#146c2e' },
])}
</div>`;
    return sendPage(
      pc.reply,
      page({ title: `Report: ${flow.body.name}`, session: pc.session, path: '/console/reports' }, body),
    );
  });
}
