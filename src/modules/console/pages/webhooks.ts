import { enc, listItems, qs } from '../api.ts';
import { html, type SafeHtml } from '../html.ts';
import { apiErrorText, csrfField, fmtDate, page } from '../layout.ts';
import { type ConsoleRouter, type PageContext, sendPage } from '../routes.ts';

// Webhooks: endpoints, each endpoint's delivery log (every attempt with status, response and
// timing), resend one event, recover a time range, rotate the secret; the event log with filters.

interface Endpoint {
  id: string;
  target_url: string;
  events: string[];
  active: boolean;
  description: string | null;
  disabled_reason: string | null;
  failing_since: string | null;
  secret_rotated_until?: string | null;
  created_at: string;
}

interface Attempt {
  id: string;
  event_id: string;
  event_type: string;
  attempt: number;
  trigger: string;
  status: 'succeeded' | 'failed';
  status_code: number | null;
  duration_ms: number;
  response: string | null;
  error: string | null;
  next_attempt_at: string | null;
  created_at: string;
}

export function webhookPages(r: ConsoleRouter): void {
  r.get('/console/webhooks', async (pc) => endpointsPage(pc));

  r.post('/console/webhooks', async (pc) => {
    const f = pc.req.body as { target_url?: string; events?: string; description?: string };
    const events = (f.events ?? '*')
      .split(/[\s,]+/)
      .map((s) => s.trim())
      .filter(Boolean);
    const res = await pc.api.post('/v1/webhooks', {
      target_url: f.target_url ?? '',
      events,
      ...(f.description ? { description: f.description } : {}),
    });
    if (!res.ok) return endpointsPage(pc, apiErrorText(res.body), f);
    return endpointPage(pc, res.body.id, { secret: res.body.secret, notice: 'Endpoint created.' });
  });

  r.get('/console/webhooks/:id', async (pc) => endpointPage(pc, (pc.req.params as { id: string }).id));

  r.post('/console/webhooks/:id/resend', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const { event_id } = pc.req.body as { event_id?: string };
    const res = await pc.api.post(`/v1/webhooks/${enc(id)}/events/${enc(event_id ?? '')}/resend`);
    if (!res.ok) return endpointPage(pc, id, { error: apiErrorText(res.body) });
    const a = res.body as Attempt;
    return endpointPage(pc, id, { notice: `Resent ${a.event_id ?? event_id}: ${a.status ?? 'sent'}.` });
  });

  r.post('/console/webhooks/:id/recover', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const { since, until } = pc.req.body as { since?: string; until?: string };
    const iso = (v: string | undefined) => (v ? new Date(`${v}Z`).toISOString() : undefined);
    let body: { since?: string; until?: string };
    try {
      body = { since: iso(since), until: iso(until) };
    } catch {
      return endpointPage(pc, id, { error: 'Since and until must be dates and times.' });
    }
    const res = await pc.api.post(`/v1/webhooks/${enc(id)}/recover`, body);
    if (!res.ok) return endpointPage(pc, id, { error: apiErrorText(res.body) });
    return endpointPage(pc, id, { notice: `Recovery: ${JSON.stringify(res.body)}` });
  });

  r.post('/console/webhooks/:id/rotate-secret', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const res = await pc.api.post(`/v1/webhooks/${enc(id)}/rotate-secret`);
    if (!res.ok) return endpointPage(pc, id, { error: apiErrorText(res.body) });
    return endpointPage(pc, id, { secret: res.body.secret, notice: 'New secret made; the old one signs beside it.' });
  });

  r.post('/console/webhooks/:id/test', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const res = await pc.api.post(`/v1/webhooks/${enc(id)}/test`, {});
    if (!res.ok) return endpointPage(pc, id, { error: apiErrorText(res.body) });
    return endpointPage(pc, id, { notice: `Test event sent: ${res.body.attempt?.status ?? 'sent'}.` });
  });

  r.get('/console/events', async (pc) => {
    const q = pc.req.query as Record<string, string | undefined>;
    const filters = { type: q.type, resource_id: q.resource_id, program_id: q.program_id };
    const [res, typesRes] = await Promise.all([
      pc.api.get(`/v1/events${qs({ ...filters, limit: 50, starting_after_id: q.after })}`),
      pc.api.get('/v1/event-types'),
    ]);
    const events = listItems<{ id: string; type: string; created_at: string; data: unknown }>(res.body);
    const types = listItems<{ type: string; emitted?: boolean }>(typesRes.body).filter((t) => t.emitted);
    const field = (name: keyof typeof filters, label: string) =>
      html`<div><label for="f-${name}">${label}</label>
        <input id="f-${name}" name="${name}" value="${q[name] ?? ''}"></div>`;
    const body = html`<form method="get" class="grid filters" role="search" aria-label="Filter events">
  <div><label for="f-type">Event type</label><select id="f-type" name="type"><option value="">Any</option>${types.map(
    (t) => html`<option${t.type === q.type ? html` selected` : ''}>${t.type}</option>`,
  )}</select></div>${field('resource_id', 'Resource id')}
  ${field('program_id', 'Program id')}<div><button type="submit">Filter</button></div>
</form>
<div class="scroll"><table><thead><tr><th scope="col">When</th><th scope="col">Type</th><th scope="col">Id</th>
<th scope="col">Data</th></tr></thead><tbody>${events.map(
      (e) => html`<tr><td>${fmtDate(e.created_at)}</td><td>${e.type}</td><td><code>${e.id}</code></td>
      <td><details><summary>JSON</summary><pre>${JSON.stringify(e.data, null, 2)}</pre></details></td></tr>`,
    )}</tbody></table></div>
${events.length === 0 ? html`<p>No events match.</p>` : ''}
${
  res.ok && res.body.has_more
    ? html`<nav class="pager" aria-label="Pages"><a href="/console/events${qs({
        ...filters,
        after: res.body.more_starting_after ?? events.at(-1)?.id,
      })}">Older events →</a></nav>`
    : ''
}`;
    const error = res.ok ? undefined : apiErrorText(res.body);
    return sendPage(
      pc.reply,
      page({ title: 'Event log', session: pc.session, path: '/console/webhooks', error }, body),
    );
  });
}

async function endpointsPage(pc: PageContext, error?: string, form: { target_url?: string; events?: string } = {}) {
  const res = await pc.api.get(`/v1/webhooks${qs({ limit: 100 })}`);
  const endpoints = listItems<Endpoint>(res.body);
  const body = html`<p><a href="/console/events">Event log</a></p>
<div class="scroll"><table><caption>Endpoints</caption><thead><tr><th scope="col">URL</th><th scope="col">Events</th>
<th scope="col">State</th><th scope="col">Created</th></tr></thead><tbody>${endpoints.map(
    (e) => html`<tr><td><a href="/console/webhooks/${enc(e.id)}">${e.target_url}</a></td><td>${e.events.join(', ')}</td>
    <td>${stateOf(e)}</td><td>${fmtDate(e.created_at)}</td></tr>`,
  )}</tbody></table></div>
<form method="post" action="/console/webhooks" class="card narrow">
  <h2>New endpoint</h2>${csrfField(pc.session)}
  <label for="target_url">URL</label>
  <input id="target_url" name="target_url" type="url" required value="${form.target_url ?? ''}"
    ${error ? html`aria-invalid="true" aria-describedby="endpoint-error"` : ''}>
  ${error ? html`<p id="endpoint-error" class="field-error">${error}</p>` : ''}
  <label for="events">Event types (commas; * for all)</label>
  <input id="events" name="events" value="${form.events ?? '*'}">
  <button type="submit">Create endpoint</button>
</form>`;
  return sendPage(pc.reply, page({ title: 'Webhooks', session: pc.session, path: '/console/webhooks' }, body));
}

const stateOf = (e: Endpoint) =>
  e.active
    ? e.failing_since
      ? `failing since ${fmtDate(e.failing_since)}`
      : 'active'
    : `disabled ${e.disabled_reason ?? ''}`;

async function endpointPage(
  pc: PageContext,
  id: string,
  opts: { notice?: string; error?: string; secret?: string } = {},
) {
  const q = pc.req.query as { status?: string; after?: string };
  const [ep, attempts] = await Promise.all([
    pc.api.get(`/v1/webhooks/${enc(id)}`),
    pc.api.get(
      `/v1/webhooks/${enc(id)}/attempts${qs({
        limit: 25,
        status: q.status === 'failed' || q.status === 'succeeded' ? q.status : undefined,
        starting_after_id: q.after,
      })}`,
    ),
  ]);
  if (!ep.ok) {
    const p = page(
      { title: 'Webhook', session: pc.session, path: '/console/webhooks', error: apiErrorText(ep.body) },
      html``,
    );
    return sendPage(pc.reply, p, ep.status);
  }
  const e = ep.body as Endpoint;
  const rows = listItems<Attempt>(attempts.body);
  const action = (path: string, label: string, extra: SafeHtml = html``) =>
    html`<form method="post" action="/console/webhooks/${enc(id)}/${path}" class="inline">
      ${csrfField(pc.session)}${extra}
      <button type="submit" class="secondary">${label}</button></form>`;
  const body = html`<p><a href="/console/webhooks">All endpoints</a> · <a href="/console/events">Event log</a></p>
${opts.secret ? html`<p role="status">Signing secret (shown once): <span class="token">${opts.secret}</span></p>` : ''}
<section class="card"><dl>
  <dt>URL</dt><dd>${e.target_url}</dd><dt>Events</dt><dd>${e.events.join(', ')}</dd>
  <dt>State</dt><dd>${stateOf(e)}</dd>
  ${e.secret_rotated_until ? html`<dt>Previous secret signs until</dt><dd>${fmtDate(e.secret_rotated_until)}</dd>` : ''}
</dl>
<p>${action('rotate-secret', 'Rotate secret')} ${action('test', 'Send a test event')}</p>
<form method="post" action="/console/webhooks/${enc(id)}/recover" class="grid">${csrfField(pc.session)}
  <div><label for="since">Recover failed deliveries since (UTC)</label>
  <input id="since" name="since" type="datetime-local" required></div>
  <div><label for="until">Until (UTC, optional)</label><input id="until" name="until" type="datetime-local"></div>
  <div><button type="submit" class="secondary">Recover</button></div>
</form></section>
<section><h2>Delivery log</h2>
<p>Show: <a href="/console/webhooks/${enc(id)}">all</a>
 · <a href="/console/webhooks/${enc(id)}?status=failed">failed</a>
 · <a href="/console/webhooks/${enc(id)}?status=succeeded">succeeded</a></p>
<div class="scroll"><table data-testid="attempts"><thead><tr><th scope="col">When</th><th scope="col">Event</th>
<th scope="col">Attempt</th><th scope="col">Status</th><th scope="col" class="num">HTTP</th>
<th scope="col" class="num">ms</th>
<th scope="col">Response</th><th scope="col">Action</th></tr></thead><tbody>${rows.map(
    (a) => html`<tr><td>${fmtDate(a.created_at)}</td><td>${a.event_type}<br><code>${a.event_id}</code></td>
    <td>${a.attempt} (${a.trigger})</td><td>${a.status}</td><td class="num">${a.status_code ?? '—'}</td>
    <td class="num">${a.duration_ms}</td><td><small>${(a.response ?? a.error ?? '').slice(0, 200)}</small></td>
    <td>${action('resend', 'Resend', html`<input type="hidden" name="event_id" value="${a.event_id}">`)}</td></tr>`,
  )}</tbody></table></div>
${
  attempts.ok && attempts.body.has_more
    ? html`<nav class="pager" aria-label="Pages"><a href="/console/webhooks/${enc(id)}${qs({
        status: q.status,
        after: attempts.body.more_starting_after ?? rows.at(-1)?.id,
      })}">Older attempts →</a></nav>`
    : ''
}</section>`;
  return sendPage(
    pc.reply,
    page(
      {
        title: `Webhook ${e.id}`,
        session: pc.session,
        path: '/console/webhooks',
        notice: opts.notice,
        error: opts.error,
      },
      body,
    ),
  );
}
