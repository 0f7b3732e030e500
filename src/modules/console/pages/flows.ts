import { enc, listItems, qs } from '../api.ts';
import { type DiffLine, diffLines } from '../diff.ts';
import { flowGraph, type GraphStep } from '../graph.ts';
import { html } from '../html.ts';
import { apiErrorText, csrfField, fmtDate, page } from '../layout.ts';
import { type ConsoleRouter, type PageContext, sendPage } from '../routes.ts';
import { phone, phoneState } from './simulator.ts';

// Flows: list; the editor (the steps drawn as a graph, one JSON box per step with the API's
// errors beside it, the rest of the flow as JSON); versions with a diff; clone; activate; the
// phone simulator beside the editor.

/** Fields of a flow answer that are not part of its definition (a save must not send them). */
const READ_ONLY = ['id', 'object', 'version', 'created_at', 'updated_at', 'version_created_at', 'steps'];

interface Flow {
  id: string;
  name: string;
  version: number;
  active: boolean;
  program_id: string;
  start?: string;
  triggers?: { keywords: string[] }[];
  steps: GraphStep[];
  [k: string]: unknown;
}

interface EditorState {
  steps?: string[];
  settings?: string;
  stepErrors?: Map<number, string[]>;
  error?: string;
  notice?: string;
}

export function flowPages(r: ConsoleRouter): void {
  r.get('/console/flows', async (pc) => {
    const q = pc.req.query as { page?: string };
    const pageNo = Math.max(1, Number(q.page) || 1);
    const res = await pc.api.get(`/v1/flows${qs({ page: pageNo, limit: 25 })}`);
    const flows = listItems<Flow>(res.body);
    const body = html`<div class="scroll"><table><thead><tr><th scope="col">Flow</th><th scope="col">Keywords</th>
<th scope="col">Version</th><th scope="col">State</th><th scope="col">Report</th></tr></thead><tbody>${flows.map(
      (f) => html`<tr><td><a href="/console/flows/${enc(f.id)}">${f.name}</a></td>
      <td>${(f.triggers ?? []).flatMap((t) => t.keywords).join(', ')}</td><td>${f.version}</td>
      <td>${f.active ? 'active' : 'inactive'}</td><td><a href="/console/reports/${enc(f.id)}">Report</a></td></tr>`,
    )}</tbody></table></div>
${
  res.ok && res.body.total > pageNo * 25
    ? html`<nav class="pager"><a href="/console/flows?page=${pageNo + 1}">Next →</a></nav>`
    : ''
}`;
    const error = res.ok ? undefined : apiErrorText(res.body);
    return sendPage(pc.reply, page({ title: 'Flows', session: pc.session, path: '/console/flows', error }, body));
  });

  r.get('/console/flows/:id', async (pc) => editor(pc));

  r.post('/console/flows/:id', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const f = pc.req.body as Record<string, string | undefined>;
    const count = Math.min(100, Number(f.step_count) || 0);
    const steps = Array.from({ length: count }, (_, i) => f[`step_${i}`] ?? '');
    const settings = f.settings ?? '{}';
    const state: EditorState = { steps, settings, stepErrors: new Map() };
    const parsedSteps: unknown[] = [];
    steps.forEach((text, i) => {
      try {
        parsedSteps.push(JSON.parse(text));
      } catch (err) {
        addError(state, i, `Not JSON: ${(err as Error).message}`);
      }
    });
    let parsedSettings: Record<string, unknown> = {};
    try {
      parsedSettings = JSON.parse(settings);
    } catch (err) {
      state.error = `Flow settings are not JSON: ${(err as Error).message}`;
    }
    if (state.error || state.stepErrors?.size) return editor(pc, state, 422);
    for (const k of READ_ONLY) delete parsedSettings[k];
    const res = await pc.api.put(`/v1/flows/${enc(id)}`, { ...parsedSettings, steps: parsedSteps });
    if (!res.ok) {
      placeErrors(state, res.body);
      return editor(pc, state, 422);
    }
    return pc.reply.redirect(`/console/flows/${enc(id)}?saved=${res.body.version}`, 303);
  });

  r.post('/console/flows/:id/active', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const { active } = pc.req.body as { active?: string };
    const res = await pc.api.put(`/v1/flows/${enc(id)}`, { active: active === 'true' });
    if (!res.ok) return editor(pc, { error: apiErrorText(res.body) }, 422);
    return pc.reply.redirect(`/console/flows/${enc(id)}`, 303);
  });

  r.post('/console/flows/:id/clone', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const { name } = pc.req.body as { name?: string };
    const res = await pc.api.post(`/v1/flows/${enc(id)}/clone`, name ? { name } : {});
    if (!res.ok) return editor(pc, { error: apiErrorText(res.body) }, 422);
    return pc.reply.redirect(`/console/flows/${enc(res.body.id)}`, 303);
  });

  r.get('/console/flows/:id/diff', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const q = pc.req.query as { from?: string; to?: string };
    const current = await pc.api.get(`/v1/flows/${enc(id)}`);
    if (!current.ok)
      return sendPage(
        pc.reply,
        page({ title: 'Flow', session: pc.session, error: apiErrorText(current.body) }, html``),
        404,
      );
    const to = Number(q.to) || current.body.version;
    const from = Number(q.from) || Math.max(1, to - 1);
    const [a, b] = await Promise.all([
      pc.api.get(`/v1/flows/${enc(id)}${qs({ version: from })}`),
      pc.api.get(`/v1/flows/${enc(id)}${qs({ version: to })}`),
    ]);
    const text = (f: Flow | undefined) => JSON.stringify(definitionOf(f), null, 2);
    const lines = withContext(diffLines(a.ok ? text(a.body) : '', b.ok ? text(b.body) : ''), 4);
    const body = html`<p><a href="/console/flows/${enc(id)}">Back to the editor</a></p>
<p>Changes from version ${from} to version ${to}:
<span class="del">− removed</span>, <span class="add">+ added</span>.</p>
<pre class="diff" data-testid="diff">${lines.map((l) =>
      l === GAP
        ? html`<span class="gap">…</span>`
        : html`<span class="${l.op === '+' ? 'add' : l.op === '-' ? 'del' : ''}">${l.op} ${l.text}\n</span>`,
    )}</pre>`;
    return sendPage(
      pc.reply,
      page(
        { title: `${current.body.name}: versions ${from} → ${to}`, session: pc.session, path: '/console/flows' },
        body,
      ),
    );
  });
}

const GAP: DiffLine = { op: ' ', text: '…' };

/** The changed lines with `n` unchanged lines around each; longer unchanged runs become one gap. */
function withContext(lines: DiffLine[], n: number): DiffLine[] {
  const near = lines.map(() => false);
  lines.forEach((l, i) => {
    if (l.op !== ' ') for (let j = Math.max(0, i - n); j <= Math.min(lines.length - 1, i + n); j++) near[j] = true;
  });
  const out: DiffLine[] = [];
  lines.forEach((l, i) => {
    if (near[i]) out.push(l);
    else if (out.at(-1) !== GAP) out.push(GAP);
  });
  return out;
}

function addError(state: EditorState, step: number, message: string) {
  state.stepErrors ??= new Map();
  state.stepErrors.set(step, [...(state.stepErrors.get(step) ?? []), message]);
}

/** Puts each of the API's errors beside the step it names (`steps[2].next`); the rest at the top. */
export function placeErrors(state: EditorState, body: unknown) {
  const b = (body ?? {}) as { errors?: { field?: string; message?: string }[]; details?: unknown };
  const general: string[] = [];
  const list = b.errors?.length ? b.errors : [{ field: undefined, message: apiErrorText(body) }];
  for (const e of list) {
    const m = /^steps\[(\d+)\](.*)$/.exec(e.field ?? '') ?? /steps[/[](\d+)/.exec(e.message ?? '');
    if (m) addError(state, Number(m[1]), `${e.field ? `${e.field}: ` : ''}${e.message ?? ''}`);
    else general.push(`${e.field ? `${e.field}: ` : ''}${e.message ?? ''}`);
  }
  if (general.length) state.error = general.join('; ');
}

function definitionOf(f: Flow | undefined): Record<string, unknown> {
  if (!f) return {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(f)) if (!READ_ONLY.includes(k) || k === 'steps') out[k] = v;
  return out;
}

async function editor(pc: PageContext, state: EditorState = {}, status = 200) {
  const { id } = pc.req.params as { id: string };
  const q = pc.req.query as { saved?: string; from?: string; channel_id?: string; error?: string };
  const [res, versions] = await Promise.all([
    pc.api.get(`/v1/flows/${enc(id)}`),
    pc.api.get(`/v1/flows/${enc(id)}/versions`),
  ]);
  if (!res.ok) {
    return sendPage(
      pc.reply,
      page({ title: 'Flow', session: pc.session, path: '/console/flows', error: apiErrorText(res.body) }, html``),
      res.status,
    );
  }
  const flow = res.body as Flow;
  const stepTexts = state.steps ?? flow.steps.map((s) => JSON.stringify(s, null, 2));
  const settings =
    state.settings ??
    JSON.stringify(Object.fromEntries(Object.entries(flow).filter(([k]) => !READ_ONLY.includes(k))), null, 2);
  const invalidIds = new Set<string>();
  for (const i of state.stepErrors?.keys() ?? []) invalidIds.add(flow.steps[i]?.id ?? '');
  const phoneNow = await phoneState(pc.api, q.from ?? '', q.channel_id, q.error);
  const body = html`
<section class="card">
  <p>Version ${flow.version} · ${flow.active ? 'active' : 'inactive'} ·
  <a href="/console/reports/${enc(flow.id)}">Report</a> ·
  <a href="/console/flows/${enc(flow.id)}/diff">Changes in the last version</a></p>
  <form method="post" action="/console/flows/${enc(flow.id)}/active" class="inline">${csrfField(pc.session)}
    <input type="hidden" name="active" value="${flow.active ? 'false' : 'true'}">
    <button type="submit" class="secondary">${flow.active ? 'Deactivate' : 'Activate'}</button></form>
  <form method="post" action="/console/flows/${enc(flow.id)}/clone" class="inline clone">${csrfField(pc.session)}
    <label for="clone-name" class="sr-only">Name of the copy</label>
    <input id="clone-name" name="name" value="${flow.name} (copy)">
    <button type="submit" class="secondary">Clone</button></form>
</section>
<section><h2>Steps</h2><div class="scroll">${flowGraph(flow.steps, flow.start, invalidIds)}</div></section>
<div class="editor">
<form method="post" action="/console/flows/${enc(flow.id)}" class="steps">
  ${csrfField(pc.session)}
  <input type="hidden" name="step_count" value="${stepTexts.length}">
  ${stepTexts.map((text, i) => {
    const errors = state.stepErrors?.get(i);
    const stepId = flow.steps[i]?.id ?? `#${i + 1}`;
    return html`<fieldset class="step${errors ? ' invalid' : ''}" data-testid="step-${stepId}">
    <legend>Step ${stepId} (${flow.steps[i]?.type ?? ''})</legend>
    <label for="step_${i}" class="sr-only">Step ${stepId} as JSON</label>
    <textarea id="step_${i}" name="step_${i}" rows="${Math.min(14, text.split('\n').length + 1)}"
      ${errors ? html`aria-invalid="true" aria-describedby="step_${i}_error"` : ''}>${text}</textarea>
    ${errors ? html`<p id="step_${i}_error" class="field-error" role="alert">${errors.join('; ')}</p>` : ''}
    </fieldset>`;
  })}
  <details${state.error ? html` open` : ''}><summary>Flow settings (JSON: name, triggers, channels, messages)</summary>
    <label for="settings" class="sr-only">Flow settings as JSON</label>
    <textarea id="settings" name="settings" rows="16">${settings}</textarea></details>
  <button type="submit">Save as a new version</button>
</form>
<aside aria-label="Phone simulator"><h2>Try it</h2>${phone(phoneNow, pc.session, `/console/flows/${flow.id}`)}
<h2>Versions</h2><ul>${listItems<{ version: number; created_at: string }>(versions.body).map(
    (v) =>
      html`<li>v${v.version} · ${fmtDate(v.created_at)}${
        v.version > 1
          ? html` · <a href="/console/flows/${enc(flow.id)}/diff?from=${v.version - 1}&to=${v.version}">diff</a>`
          : ''
      }</li>`,
  )}</ul></aside>
</div>`;
  const notice = q.saved ? `Saved as version ${q.saved}.` : state.notice;
  return sendPage(
    pc.reply,
    page(
      { title: `Flow: ${flow.name}`, session: pc.session, path: '/console/flows', notice, error: state.error },
      body,
    ),
    status,
  );
}
