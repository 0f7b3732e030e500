import { html } from '../html.ts';
import { csrfField, fmtDate, page } from '../layout.ts';
import { type ConsoleRouter, type PageContext, sendPage } from '../routes.ts';

// API keys: create (the token is shown once: only its hash is stored) and revoke. The API has no
// key routes (keys are made with `tally keys`), so these pages use the same service as the CLI.
// A revoked key signs its console sessions out at their next request.

export function apiKeyPages(r: ConsoleRouter): void {
  r.get('/console/api-keys', async (pc) => keysPage(pc));

  r.post('/console/api-keys', async (pc) => {
    const { name } = pc.req.body as { name?: string };
    const trimmed = (name ?? '').trim();
    if (!trimmed || trimmed.length > 100)
      return keysPage(pc, { error: 'A name of 1 to 100 characters is needed.' }, 422);
    const created = await pc.services.apiKeys.create(trimmed);
    return keysPage(pc, { created: { name: created.name, appId: created.app_id, token: created.token } });
  });

  r.post('/console/api-keys/:id/revoke', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const revoked = await pc.services.apiKeys.revoke(id);
    if (id === pc.session.apiKeyId) return pc.reply.redirect('/console/sign-in', 303);
    return keysPage(pc, revoked ? { notice: 'Key revoked.' } : { error: 'No active key with that id.' });
  });
}

async function keysPage(
  pc: PageContext,
  opts: { created?: { name: string; appId: string; token: string }; notice?: string; error?: string } = {},
  status = 200,
) {
  const keys = await pc.services.apiKeys.list();
  const body = html`
${
  opts.created
    ? html`<section class="card" role="status"><h2>Key “${opts.created.name}” created</h2>
  <p>Copy the token now: it is shown only this once.</p>
  <dl><dt>App ID</dt><dd class="token">${opts.created.appId}</dd>
  <dt>App token</dt><dd class="token" data-testid="new-token">${opts.created.token}</dd></dl></section>`
    : ''
}
<div class="scroll"><table data-testid="keys"><thead><tr><th scope="col">Name</th><th scope="col">App ID</th>
<th scope="col">Created</th><th scope="col">Last used</th><th scope="col">State</th>
<th scope="col">Action</th></tr></thead>
<tbody>${keys.map(
    (k) => html`<tr><td>${k.name}</td><td><code>${k.app_id}</code></td><td>${fmtDate(k.created_at)}</td>
    <td>${fmtDate(k.last_used_at)}</td><td>${k.revoked_at ? `revoked ${fmtDate(k.revoked_at)}` : 'active'}</td>
    <td>${
      k.revoked_at
        ? ''
        : html`<form method="post" action="/console/api-keys/${k.id}/revoke" class="inline">${csrfField(pc.session)}
          <button type="submit" class="secondary" aria-label="Revoke ${k.name}">Revoke</button></form>${
            k.id === pc.session.apiKeyId ? html` <small>(this session's key)</small>` : ''
          }`
    }</td></tr>`,
  )}</tbody></table></div>
<form method="post" action="/console/api-keys" class="card narrow">
  <h2>New key</h2>${csrfField(pc.session)}
  <label for="key-name">Name</label>
  <input id="key-name" name="name" required maxlength="100">
  <button type="submit">Create key</button>
</form>`;
  const p = page(
    { title: 'API keys', session: pc.session, path: '/console/api-keys', notice: opts.notice, error: opts.error },
    body,
  );
  return sendPage(pc.reply, p, status);
}
