import { enc, listItems, qs } from '../api.ts';
import { html } from '../html.ts';
import { apiErrorText, fmtDate, page, pager } from '../layout.ts';
import { type ConsoleRouter, sendPage } from '../routes.ts';

// Messages and consents: search by number, the conversation (every message in and out, with its
// status), the number's consent and its opt-out / opt-in history.

const PAGE_SIZE = 50;

interface Message {
  id: string;
  direction: 'in' | 'out';
  text: string;
  status: string;
  error: string | null;
  from_number: string;
  to_number: string;
  keyword: string | null;
  flow_id: string | null;
  created_at: string;
}

export function messagePages(r: ConsoleRouter): void {
  r.get('/console/messages', async (pc) => {
    const q = pc.req.query as { phone?: string; page?: string };
    const phone = (q.phone ?? '').trim();
    const pageNo = Math.max(1, Number(q.page) || 1);
    const [messages, consent] = await Promise.all([
      pc.api.get(`/v1/messages${qs({ phone: phone || undefined, page: pageNo, limit: PAGE_SIZE })}`),
      phone ? pc.api.get(`/v1/consents/${enc(phone)}`) : Promise.resolve(undefined),
    ]);
    const rows = listItems<Message>(messages.body);
    const hasMore = Boolean(messages.ok && messages.body.total > pageNo * PAGE_SIZE);
    const c = consent?.ok
      ? (consent.body as {
          status: string;
          updated_at: string | null;
          history: { action: string; keyword: string | null; channel_id: string | null; created_at: string }[];
        })
      : undefined;
    const body = html`<form method="get" action="/console/messages" role="search" class="search">
  <label for="phone">Phone number</label>
  <input id="phone" name="phone" type="tel" value="${phone}" placeholder="+385916242493">
  <button type="submit">Search</button>
</form>
${
  c
    ? html`<section class="card"><h2>Consent</h2>
  <p data-testid="consent">${c.status.replace('_', ' ')}${c.updated_at ? ` since ${fmtDate(c.updated_at)}` : ''}</p>
  <h3>History</h3>${
    c.history.length
      ? html`<ul>${c.history.map(
          (h) =>
            html`<li>${fmtDate(h.created_at)}: ${h.action.replace('_', ' ')}${
              h.keyword ? ` (“${h.keyword}”)` : ''
            }</li>`,
        )}</ul>`
      : html`<p class="muted">No opt-out or opt-in yet.</p>`
  }</section>`
    : ''
}
<section><h2>${phone ? `Conversation with ${phone}` : 'Latest messages'}</h2>
<div class="scroll"><table data-testid="messages"><thead><tr><th scope="col">When</th><th scope="col">From</th>
<th scope="col">To</th><th scope="col">Text</th><th scope="col">Status</th></tr></thead><tbody>${rows.map(
      (m) => html`<tr><td>${fmtDate(m.created_at)}</td><td>${m.from_number}</td><td>${m.to_number}</td>
      <td>${m.text}</td><td>${m.status}${m.error ? html`<br><small>${m.error}</small>` : ''}</td></tr>`,
    )}</tbody></table></div>
${pager('/console/messages', pageNo, hasMore, phone ? { phone } : {})}
</section>`;
    const error = messages.ok ? undefined : apiErrorText(messages.body);
    return sendPage(
      pc.reply,
      page({ title: 'Messages and consents', session: pc.session, path: '/console/messages', error }, body),
    );
  });
}
