import { enc, listItems, qs } from '../api.ts';
import { html, type SafeHtml } from '../html.ts';
import { apiErrorText, csrfField, fmtDate, page } from '../layout.ts';
import { type ConsoleRouter, type PageContext, sendPage } from '../routes.ts';
import {
  type CatalogState,
  catalogPages,
  definitionsSection,
  rewardsSection,
  tiersSection,
} from './program-catalog.ts';

// Programs: earning rules (create, edit, enable, disable) with the API's validation errors beside
// the field they name; rewards, tiers and balance definitions are in program-catalog.ts.

interface Rule {
  id: string;
  event: string;
  active: boolean;
  loyalty: { type: 'FIXED' | 'PROPORTIONAL'; points?: number; order?: { amount?: { every: number; points: number } } };
  created_at: string;
}

type RuleForm = {
  event?: string;
  type?: string;
  points?: string;
  every?: string;
};

type FieldErrors = Map<string, string[]>;

/** The rule body of the form: FIXED points, or PROPORTIONAL points for every N of the order amount. */
export function ruleBody(f: RuleForm): Record<string, unknown> {
  const num = (v: string | undefined) => (v === undefined || v.trim() === '' ? v : Number(v));
  const loyalty =
    f.type === 'PROPORTIONAL'
      ? {
          type: 'PROPORTIONAL',
          calculation_type: 'ORDER_AMOUNT',
          order: { amount: { every: num(f.every), points: num(f.points) } },
        }
      : { type: 'FIXED', points: num(f.points) };
  return { event: f.event ?? '', loyalty };
}

/** The form field an API error names (`body[0].loyalty.points` → points); undefined: no field of the form. */
export function fieldOf(apiField: string | undefined): string | undefined {
  if (!apiField) return undefined;
  const last = apiField
    .split('.')
    .at(-1)
    ?.replace(/\[\d+\]$/, '');
  if (last === 'points' || last === 'every' || last === 'event') return last;
  if (last === 'type' || last === 'calculation_type') return 'type';
  return undefined;
}

function errorsOf(body: unknown): { fields: FieldErrors; general?: string } {
  const b = (body ?? {}) as { errors?: { field?: string; message?: string }[] };
  const fields: FieldErrors = new Map();
  const general: string[] = [];
  for (const e of b.errors ?? []) {
    const f = fieldOf(e.field);
    if (f) fields.set(f, [...(fields.get(f) ?? []), e.message ?? 'invalid']);
    else general.push(`${e.field ?? ''} ${e.message ?? ''}`.trim());
  }
  if (!b.errors?.length) general.push(apiErrorText(body));
  return { fields, general: general.length ? general.join('; ') : undefined };
}

function ruleForm(
  pc: PageContext,
  action: string,
  f: RuleForm,
  errors: FieldErrors = new Map(),
  submit = 'Create rule',
): SafeHtml {
  let focused = false;
  const field = (name: string, label: string, input: (attrs: SafeHtml) => SafeHtml) => {
    const err = errors.get(name);
    // The first field with an error takes the focus on load: the browser scrolls to it.
    const focus = err && !focused ? html` autofocus` : '';
    if (err) focused = true;
    const attrs = err ? html`aria-invalid="true" aria-describedby="rule-${name}-error"${focus}` : html``;
    return html`<div><label for="rule-${name}">${label}</label>${input(attrs)}
      ${err ? html`<p id="rule-${name}-error" class="field-error">${err.join('; ')}</p>` : ''}</div>`;
  };
  return html`<form method="post" action="${action}" class="card rule-form">
  ${csrfField(pc.session)}
  ${field(
    'event',
    'Event',
    (a) => html`<input id="rule-event" name="event" list="rule-events" required value="${f.event ?? 'order.paid'}" ${a}>
    <datalist id="rule-events"><option value="order.paid"></option></datalist>`,
  )}
  ${field(
    'type',
    'Points are',
    (a) => html`<select id="rule-type" name="type" ${a}>
      <option value="FIXED"${f.type !== 'PROPORTIONAL' ? html` selected` : ''}>a fixed number</option>
      <option value="PROPORTIONAL"${f.type === 'PROPORTIONAL' ? html` selected` : ''}>per amount of the order</option>
    </select>`,
  )}
  ${field(
    'points',
    'Points',
    (a) => html`<input id="rule-points" name="points" inputmode="numeric" value="${f.points ?? ''}" ${a}>`,
  )}
  ${field(
    'every',
    'For every (order amount, per-amount rules only)',
    (a) => html`<input id="rule-every" name="every" inputmode="numeric" value="${f.every ?? ''}" ${a}>`,
  )}
  <button type="submit">${submit}</button>
</form>`;
}

const formOf = (r: Rule): RuleForm => ({
  event: r.event,
  type: r.loyalty.type,
  points: String(
    r.loyalty.type === 'PROPORTIONAL' ? (r.loyalty.order?.amount?.points ?? '') : (r.loyalty.points ?? ''),
  ),
  every: r.loyalty.order?.amount?.every !== undefined ? String(r.loyalty.order.amount.every) : '',
});

export function programPages(r: ConsoleRouter): void {
  r.get('/console/programs', async (pc) => {
    const res = await pc.api.get(`/v1/loyalties${qs({ limit: 100 })}`);
    const programs = listItems<{ id: string; name: string; description: string | null; created_at: string }>(res.body);
    const body = html`<div class="scroll"><table><thead><tr><th scope="col">Program</th><th scope="col">Description</th>
<th scope="col">Created</th></tr></thead><tbody>${programs.map(
      (p) => html`<tr><td><a href="/console/programs/${enc(p.id)}">${p.name}</a></td><td>${p.description ?? ''}</td>
      <td>${fmtDate(p.created_at)}</td></tr>`,
    )}</tbody></table></div>`;
    return sendPage(pc.reply, page({ title: 'Programs', session: pc.session, path: '/console/programs' }, body));
  });

  r.get('/console/programs/:id', async (pc) => programPage(pc));

  r.post('/console/programs/:id/rules', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const f = pc.req.body as RuleForm;
    const res = await pc.api.post(`/v1/loyalties/${enc(id)}/earning-rules`, [ruleBody(f)]);
    if (!res.ok) {
      const { fields, general } = errorsOf(res.body);
      return programPage(pc, { which: 'rule', form: f, fields, error: general }, 422);
    }
    return pc.reply.redirect(`/console/programs/${enc(id)}?notice=${enc('Earning rule created.')}`, 303);
  });

  r.get('/console/programs/:id/rules/:ruleId', async (pc) => rulePage(pc));

  r.post('/console/programs/:id/rules/:ruleId', async (pc) => {
    const { id, ruleId } = pc.req.params as { id: string; ruleId: string };
    const f = pc.req.body as RuleForm;
    const res = await pc.api.put(`/v1/loyalties/${enc(id)}/earning-rules/${enc(ruleId)}`, ruleBody(f));
    if (!res.ok) {
      const { fields, general } = errorsOf(res.body);
      return rulePage(pc, { form: f, fields, error: general }, 422);
    }
    return pc.reply.redirect(`/console/programs/${enc(id)}?notice=${enc('Earning rule saved.')}`, 303);
  });

  r.post('/console/programs/:id/rules/:ruleId/:action', async (pc) => {
    const { id, ruleId, action } = pc.req.params as { id: string; ruleId: string; action: string };
    if (action !== 'enable' && action !== 'disable') return pc.reply.code(404).send('Not found');
    const res = await pc.api.post(`/v1/loyalties/${enc(id)}/earning-rules/${enc(ruleId)}/${action}`);
    const notice = res.ok ? `Earning rule ${action}d.` : apiErrorText(res.body);
    return pc.reply.redirect(`/console/programs/${enc(id)}?notice=${enc(notice)}`, 303);
  });

  catalogPages(r, programPage);
}

interface FormState {
  form?: RuleForm;
  fields?: FieldErrors;
  error?: string;
}

async function rulePage(pc: PageContext, state: FormState = {}, status = 200) {
  const { id, ruleId } = pc.req.params as { id: string; ruleId: string };
  const res = await pc.api.get(`/v1/loyalties/${enc(id)}/earning-rules/${enc(ruleId)}`);
  if (!res.ok) {
    const p = page({ title: 'Earning rule', session: pc.session, error: apiErrorText(res.body) }, html``);
    return sendPage(pc.reply, p, res.status);
  }
  const form = state.form ?? formOf(res.body);
  const body = html`<p><a href="/console/programs/${enc(id)}">Back to the program</a></p>
${ruleForm(pc, `/console/programs/${enc(id)}/rules/${enc(ruleId)}`, form, state.fields, 'Save')}`;
  const p = page(
    { title: `Earning rule ${ruleId}`, session: pc.session, path: '/console/programs', error: state.error },
    body,
  );
  return sendPage(pc.reply, p, status);
}

async function programPage(pc: PageContext, state: CatalogState = {}, status = 200) {
  const { id } = pc.req.params as { id: string };
  const q = pc.req.query as { notice?: string };
  const [program, rules, definitions, tiers, rewards] = await Promise.all([
    pc.api.get(`/v1/loyalties/${enc(id)}`),
    pc.api.get(`/v1/loyalties/${enc(id)}/earning-rules${qs({ limit: 100 })}`),
    definitionsSection(pc, id),
    tiersSection(pc, id, state),
    rewardsSection(pc, id, state),
  ]);
  if (!program.ok) {
    const p = page({ title: 'Program', session: pc.session, error: apiErrorText(program.body) }, html``);
    return sendPage(pc.reply, p, program.status);
  }
  const action = (rule: Rule, what: 'enable' | 'disable') =>
    html`<form method="post" action="/console/programs/${enc(id)}/rules/${enc(rule.id)}/${what}" class="inline">
      ${csrfField(pc.session)}
      <button type="submit" class="secondary">${what === 'enable' ? 'Enable' : 'Disable'}</button></form>`;
  const body = html`
<section><h2>Earning rules</h2>
<div class="scroll"><table data-testid="rules"><thead><tr><th scope="col">Event</th><th scope="col">Points</th>
<th scope="col">State</th><th scope="col">Actions</th></tr></thead><tbody>${listItems<Rule>(rules.body).map(
    (rule) => html`<tr><td>${rule.event}</td><td>${
      rule.loyalty.type === 'PROPORTIONAL'
        ? `${rule.loyalty.order?.amount?.points} per ${rule.loyalty.order?.amount?.every} of the order`
        : `${rule.loyalty.points ?? ''} (fixed)`
    }</td><td>${rule.active ? 'enabled' : 'disabled'}</td>
    <td><a href="/console/programs/${enc(id)}/rules/${enc(rule.id)}">Edit</a>
    ${action(rule, rule.active ? 'disable' : 'enable')}</td></tr>`,
  )}</tbody></table></div>
<h3>New earning rule</h3>
${
  state.which === 'rule'
    ? ruleForm(pc, `/console/programs/${enc(id)}/rules`, state.form ?? {}, state.fields)
    : ruleForm(pc, `/console/programs/${enc(id)}/rules`, {})
}
</section>
${rewards}
${tiers}
${definitions}
`;
  const p = page(
    { title: program.body.name, session: pc.session, path: '/console/programs', notice: q.notice, error: state.error },
    body,
  );
  return sendPage(pc.reply, p, status);
}
