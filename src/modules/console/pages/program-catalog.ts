import { randomUUID } from 'node:crypto';
import { enc, listItems } from '../api.ts';
import { html, type SafeHtml } from '../html.ts';
import { apiErrorText, csrfField, page } from '../layout.ts';
import { type ConsoleRouter, type PageContext, sendPage } from '../routes.ts';

// Programs, the rest of the catalog: rewards (create one and assign it with a points cost, edit
// its name and stock, remove an assignment), tiers (create, edit) and balance definitions (edit the
// name and when points expire; a definition is added through the API). Every form posts to a
// console route that calls the public API as the signed-in key; a 400's `errors[].field` puts its
// message beside the form field it names.

export type Form = Record<string, string | undefined>;
export type FieldErrors = Map<string, string[]>;

export interface CatalogState {
  which?: 'rule' | 'reward' | 'tier';
  form?: Form;
  fields?: FieldErrors;
  error?: string;
}

/** Renders a program's page with a form's state (its values and errors), or as is. */
export type ProgramPage = (pc: PageContext, state?: CatalogState, status?: number) => Promise<unknown>;

/** A number when the text is one; else the text as typed, for the API to refuse beside its field. */
export const num = (v: string | undefined) => {
  if (v === undefined || v.trim() === '') return v;
  const n = Number(v);
  return Number.isFinite(n) ? n : v;
};

/** `body[0].points.to` and `[0].points.to` → `points.to`: the field inside one item. */
const itemField = (f: string | undefined) => (f ?? '').replace(/^body/, '').replace(/^\[\d+\]\.?/, '');

/** The API's errors: each named field's message for the form field `formField` maps it to, the rest as a banner. */
export function errorsFor(
  body: unknown,
  formField: (apiField: string, message: string) => string | undefined,
): { fields: FieldErrors; general?: string } {
  const b = (body ?? {}) as { errors?: { field?: string; message?: string }[] };
  const fields: FieldErrors = new Map();
  const general: string[] = [];
  for (const e of b.errors ?? []) {
    const f = formField(itemField(e.field), e.message ?? '');
    if (f) fields.set(f, [...(fields.get(f) ?? []), e.message ?? 'invalid']);
    else general.push(`${e.field ?? ''} ${e.message ?? ''}`.trim());
  }
  if (!b.errors?.length) general.push(apiErrorText(body));
  return { fields, general: general.length ? general.join('; ') : undefined };
}

/**
 * The labelled fields of one form, each with its error below it (tied by aria-describedby); the
 * first field with an error takes the focus when the page loads, so the browser scrolls to it.
 */
function fieldsOf(prefix: string, errors: FieldErrors) {
  let focused = false;
  return (name: string, label: string, input: (id: string, attrs: SafeHtml) => SafeHtml): SafeHtml => {
    const id = `${prefix}-${name}`;
    const err = errors.get(name);
    const focus = err && !focused ? html` autofocus` : '';
    if (err) focused = true;
    const attrs = err ? html`aria-invalid="true" aria-describedby="${id}-error"${focus}` : html``;
    return html`<div><label for="${id}">${label}</label>${input(id, attrs)}
    ${err ? html`<p id="${id}-error" class="field-error">${err.join('; ')}</p>` : ''}</div>`;
  };
}

const text =
  (name: string, value: string | undefined, numeric = false) =>
  (id: string, a: SafeHtml) =>
    html`<input id="${id}" name="${name}"${numeric ? html` inputmode="numeric"` : ''} value="${value ?? ''}" ${a}>`;

const options = (values: [string, string][], selected: string | undefined) =>
  values.map(([v, label]) => html`<option value="${v}"${v === selected ? html` selected` : ''}>${label}</option>`);

// ---- rewards ----

export interface Reward {
  id: string;
  name: string;
  type: 'CAMPAIGN' | 'COIN' | 'MATERIAL';
  stock: number | null;
  redeemed: number | null;
  parameters: { campaign?: { id: string }; product?: { id: string } };
}

interface Assignment {
  id: string;
  reward_id: string;
  parameters: { loyalty?: { points: number | null } };
}

function rewardField(f: string): string | undefined {
  if (f === 'name' || f === 'stock' || f === 'type') return f;
  if (f.startsWith('parameters.product')) return 'product';
  if (f.startsWith('parameters.campaign')) return 'campaign';
  if (f.endsWith('loyalty.points')) return 'points';
  return f === 'parameters' ? 'type' : undefined;
}

export function rewardBody(f: Form): Record<string, unknown> {
  const type = f.type === 'CAMPAIGN' ? 'CAMPAIGN' : 'MATERIAL';
  return {
    name: f.name ?? '',
    type,
    stock: (f.stock ?? '').trim() === '' ? null : num(f.stock),
    parameters: type === 'CAMPAIGN' ? { campaign: { id: f.campaign ?? '' } } : { product: { id: f.product ?? '' } },
  };
}

function newRewardForm(
  pc: PageContext,
  id: string,
  campaigns: { id: string; name: string }[],
  f: Form,
  errors: FieldErrors,
): SafeHtml {
  const fld = fieldsOf('reward', errors);
  return html`<form method="post" action="/console/programs/${enc(id)}/rewards" class="card rule-form">
  ${csrfField(pc.session)}
  <input type="hidden" name="idempotency_key" value="${randomUUID()}">
  ${fld('name', 'Reward name', text('name', f.name))}
  ${fld(
    'type',
    'Kind',
    (i, a) =>
      html`<select id="${i}" name="type" ${a}>${options(
        [
          ['MATERIAL', 'a product, with a stock'],
          ['CAMPAIGN', 'a discount coupon from a campaign'],
        ],
        f.type ?? 'MATERIAL',
      )}</select>`,
  )}
  ${fld('product', 'Product id (products)', text('product', f.product))}
  ${fld('stock', 'Stock (empty: unlimited)', text('stock', f.stock, true))}
  ${fld(
    'campaign',
    'Discount campaign (coupons)',
    (i, a) =>
      html`<select id="${i}" name="campaign" ${a}><option value="">(none)</option>${options(
        campaigns.map((c) => [c.id, c.name]),
        f.campaign,
      )}</select>`,
  )}
  ${fld('points', 'Points cost', text('points', f.points, true))}
  <button type="submit">Create reward</button>
</form>`;
}

export async function rewardsSection(pc: PageContext, id: string, state: CatalogState): Promise<SafeHtml> {
  const [assignments, rewards, campaigns] = await Promise.all([
    pc.api.get(`/v1/loyalties/${enc(id)}/rewards?limit=100`),
    pc.api.get('/v1/rewards?limit=100'),
    pc.api.get('/v1/campaigns?campaign_type=DISCOUNT_COUPONS&limit=100'),
  ]);
  const byId = new Map(listItems<Reward>(rewards.body).map((r) => [r.id, r]));
  const mine = state.which === 'reward';
  const rows = listItems<Assignment>(assignments.body).map((a) => {
    const r = byId.get(a.reward_id);
    const name = r?.name ?? a.reward_id;
    const stock = r?.stock == null ? 'unlimited' : `${r.stock - (r.redeemed ?? 0)} of ${r.stock} left`;
    return html`<tr><td>${name}</td><td>${r?.type === 'CAMPAIGN' ? 'coupon' : (r?.type.toLowerCase() ?? '')}</td>
    <td>${stock}</td><td>${a.parameters.loyalty?.points ?? ''}</td>
    <td><a href="/console/programs/${enc(id)}/rewards/${enc(a.reward_id)}">Edit</a>
    <form method="post" action="/console/programs/${enc(id)}/assignments/${enc(a.id)}/remove" class="inline">
      ${csrfField(pc.session)}
      <button type="submit" class="secondary" aria-label="Remove ${name}">Remove</button></form></td></tr>`;
  });
  return html`<section><h2>Rewards</h2>
<div class="scroll"><table data-testid="rewards"><thead><tr><th scope="col">Reward</th><th scope="col">Kind</th>
<th scope="col">Stock</th><th scope="col">Points cost</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows}</tbody></table></div>
<h3>New reward</h3>
${newRewardForm(
  pc,
  id,
  listItems<{ id: string; name: string }>(campaigns.body),
  mine ? (state.form ?? {}) : {},
  mine ? (state.fields ?? new Map()) : new Map(),
)}
</section>`;
}

async function rewardPage(pc: PageContext, state: CatalogState = {}, status = 200) {
  const { id, rewardId } = pc.req.params as { id: string; rewardId: string };
  const res = await pc.api.get<Reward>(`/v1/rewards/${enc(rewardId)}`);
  if (!res.ok) {
    const p = page({ title: 'Reward', session: pc.session, error: apiErrorText(res.body) }, html``);
    return sendPage(pc.reply, p, res.status);
  }
  const f = state.form ?? { name: res.body.name, stock: res.body.stock === null ? '' : String(res.body.stock) };
  const fld = fieldsOf('reward', state.fields ?? new Map());
  const body = html`<p><a href="/console/programs/${enc(id)}">Back to the program</a></p>
<form method="post" action="/console/programs/${enc(id)}/rewards/${enc(rewardId)}" class="card rule-form">
  ${csrfField(pc.session)}
  <input type="hidden" name="idempotency_key" value="${randomUUID()}">
  ${fld('name', 'Name', text('name', f.name))}
  ${fld('stock', 'Stock (empty: unlimited)', text('stock', f.stock, true))}
  <button type="submit">Save</button>
</form>`;
  const p = page(
    { title: `Reward: ${res.body.name}`, session: pc.session, path: '/console/programs', error: state.error },
    body,
  );
  return sendPage(pc.reply, p, status);
}

// ---- tiers ----

interface Tier {
  id: string;
  name: string;
  points: { from: number; to?: number | null };
}

function tierField(f: string): string | undefined {
  if (f === 'name') return f;
  if (f === 'points.to') return 'to';
  return f === 'points' || f === 'points.from' ? 'from' : undefined;
}

export const tierBody = (f: Form) => ({
  name: f.name ?? '',
  points: { from: num(f.from) ?? '', to: (f.to ?? '').trim() === '' ? null : num(f.to) },
});

function tierForm(pc: PageContext, action: string, f: Form, errors: FieldErrors, edit: boolean): SafeHtml {
  const fld = fieldsOf('tier', errors);
  return html`<form method="post" action="${action}" class="card rule-form">
  ${csrfField(pc.session)}
  <input type="hidden" name="idempotency_key" value="${randomUUID()}">
  ${fld('name', edit ? 'Name' : 'Tier name', text('name', f.name))}
  ${fld('from', 'Points from', text('from', f.from, true))}
  ${fld('to', 'Points to (empty: no upper end)', text('to', f.to, true))}
  <button type="submit">${edit ? 'Save' : 'Create tier'}</button>
</form>`;
}

export async function tiersSection(pc: PageContext, id: string, state: CatalogState): Promise<SafeHtml> {
  const res = await pc.api.get(`/v1/loyalties/${enc(id)}/tiers?limit=100`);
  const mine = state.which === 'tier';
  const rows = listItems<Tier>(res.body).map(
    (t) => html`<tr><td>${t.name}</td><td>${t.points.from}</td><td>${t.points.to ?? 'and up'}</td>
    <td><a href="/console/programs/${enc(id)}/tiers/${enc(t.id)}" aria-label="Edit ${t.name}">Edit</a></td></tr>`,
  );
  return html`<section><h2>Tiers</h2>
<div class="scroll"><table data-testid="tiers"><thead><tr><th scope="col">Tier</th><th scope="col">Points from</th>
<th scope="col">Points to</th><th scope="col">Actions</th></tr></thead><tbody>${rows}</tbody></table></div>
<h3>New tier</h3>
${tierForm(
  pc,
  `/console/programs/${enc(id)}/tiers`,
  mine ? (state.form ?? {}) : {},
  mine ? (state.fields ?? new Map()) : new Map(),
  false,
)}
</section>`;
}

async function tierPage(pc: PageContext, state: CatalogState = {}, status = 200) {
  const { id, tierId } = pc.req.params as { id: string; tierId: string };
  const res = await pc.api.get<Tier>(`/v1/loyalties/${enc(id)}/tiers/${enc(tierId)}`);
  if (!res.ok) {
    const p = page({ title: 'Tier', session: pc.session, error: apiErrorText(res.body) }, html``);
    return sendPage(pc.reply, p, res.status);
  }
  const t = res.body;
  const f = state.form ?? {
    name: t.name,
    from: String(t.points.from),
    to: t.points.to == null ? '' : String(t.points.to),
  };
  const action = `/console/programs/${enc(id)}/tiers/${enc(tierId)}`;
  const body = html`<p><a href="/console/programs/${enc(id)}">Back to the program</a></p>
${tierForm(pc, action, f, state.fields ?? new Map(), true)}`;
  const p = page(
    { title: `Tier: ${t.name}`, session: pc.session, path: '/console/programs', error: state.error },
    body,
  );
  return sendPage(pc.reply, p, status);
}

// ---- balance definitions ----

interface ExpirationRules {
  period_type: 'MONTH' | 'FIXED_DAY_OF_YEAR';
  period_value?: number;
  rounding_type?: string;
  rounding_value?: number;
  fixed_month?: number;
  fixed_day?: number;
}

interface Definition {
  id: string;
  name: string;
  unit: string;
  min: number | null;
  max: number | null;
  default: boolean;
  expiration_rules: ExpirationRules | null;
}

const ROUNDINGS: [string, string][] = [
  ['', 'not rounded'],
  ['END_OF_MONTH', 'to the end of the month'],
  ['END_OF_QUARTER', 'to the end of the quarter'],
  ['END_OF_HALF_YEAR', 'to the end of the half-year'],
  ['END_OF_YEAR', 'to the end of the year'],
  ['PARTICULAR_MONTH', 'to the end of a given month'],
];

export function expiryText(r: ExpirationRules | null): string {
  if (!r) return 'never';
  if (r.period_type === 'FIXED_DAY_OF_YEAR') return `every year on ${r.fixed_day}/${r.fixed_month} (day/month)`;
  const rounding = ROUNDINGS.find(([v]) => v === (r.rounding_type ?? ''))?.[1] ?? r.rounding_type;
  const month = r.rounding_type === 'PARTICULAR_MONTH' ? ` (${r.rounding_value})` : '';
  return `${r.period_value ?? 1} months after earning, ${rounding}${month}`;
}

function definitionField(f: string, message: string): string | undefined {
  if (f === 'name') return f;
  const prop = f === 'expiration_rules' ? message.split(' ')[0] : f.replace(/^expiration_rules\./, '');
  const byProp: Record<string, string> = {
    period_type: 'expires',
    period_value: 'months',
    rounding_type: 'rounding',
    rounding_value: 'rounding_month',
    fixed_month: 'fixed_month',
    'fixed_month/fixed_day': 'fixed_day',
    fixed_day: 'fixed_day',
  };
  return byProp[prop ?? ''] ?? (f.startsWith('expiration_rules') ? 'expires' : undefined);
}

export function definitionBody(f: Form): Record<string, unknown> {
  const n = (v: string | undefined) => num(v) ?? '';
  let rules: Record<string, unknown> | null = null;
  if (f.expires === 'MONTH') {
    rules = { period_type: 'MONTH', period_value: n(f.months) };
    if (f.rounding) rules.rounding_type = f.rounding;
    if (f.rounding === 'PARTICULAR_MONTH') rules.rounding_value = n(f.rounding_month);
  } else if (f.expires === 'FIXED_DAY_OF_YEAR') {
    rules = { period_type: 'FIXED_DAY_OF_YEAR', fixed_month: n(f.fixed_month), fixed_day: n(f.fixed_day) };
  }
  return { name: f.name ?? '', expiration_rules: rules };
}

const formOfDefinition = (d: Definition): Form => {
  const r = d.expiration_rules;
  const s = (v: number | undefined) => (v === undefined ? '' : String(v));
  return {
    name: d.name,
    expires: r?.period_type ?? '',
    months: s(r?.period_value),
    rounding: r?.rounding_type ?? '',
    rounding_month: s(r?.rounding_value),
    fixed_month: s(r?.fixed_month),
    fixed_day: s(r?.fixed_day),
  };
};

export async function definitionsSection(pc: PageContext, id: string): Promise<SafeHtml> {
  const res = await pc.api.get(`/v1/loyalties/${enc(id)}/balance-definitions`);
  const rows = listItems<Definition>(res.body).map(
    (d) => html`<tr><td>${d.name}${d.default ? ' (default)' : ''}</td><td>${d.unit}</td>
    <td>${d.min ?? 0}${d.max !== null ? `–${d.max}` : ' and up'}</td><td>${expiryText(d.expiration_rules)}</td>
    <td><a href="/console/programs/${enc(id)}/definitions/${enc(d.id)}" aria-label="Edit ${d.name}">Edit</a></td></tr>`,
  );
  return html`<section><h2>Balance definitions</h2>
<div class="scroll"><table data-testid="definitions"><thead><tr><th scope="col">Name</th><th scope="col">Unit</th>
<th scope="col">Balance limits</th><th scope="col">Points expire</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows}</tbody></table></div>
<p class="muted">A new balance definition is added through the API
(<code>POST /v1/loyalties/{id}/balance-definitions</code>).</p>
</section>`;
}

async function definitionPage(pc: PageContext, state: CatalogState = {}, status = 200) {
  const { id, defId } = pc.req.params as { id: string; defId: string };
  const res = await pc.api.get<Definition>(`/v1/loyalties/${enc(id)}/balance-definitions/${enc(defId)}`);
  if (!res.ok) {
    const p = page({ title: 'Balance definition', session: pc.session, error: apiErrorText(res.body) }, html``);
    return sendPage(pc.reply, p, res.status);
  }
  const f = state.form ?? formOfDefinition(res.body);
  const errors = state.fields ?? new Map();
  const fld = fieldsOf('definition', errors);
  const select = (name: string, values: [string, string][]) => (i: string, a: SafeHtml) =>
    html`<select id="${i}" name="${name}" ${a}>${options(values, f[name] ?? '')}</select>`;
  const body = html`<p><a href="/console/programs/${enc(id)}">Back to the program</a></p>
<form method="post" action="/console/programs/${enc(id)}/definitions/${enc(defId)}" class="card rule-form">
  ${csrfField(pc.session)}
  <input type="hidden" name="idempotency_key" value="${randomUUID()}">
  ${fld('name', 'Name', text('name', f.name))}
  ${fld(
    'expires',
    'Points expire',
    select('expires', [
      ['', 'never'],
      ['MONTH', 'some months after they are earned'],
      ['FIXED_DAY_OF_YEAR', 'on a fixed day every year'],
    ]),
  )}
  <fieldset><legend>Some months after they are earned</legend>
  ${fld('months', 'Months', text('months', f.months, true))}
  ${fld('rounding', 'Rounded', select('rounding', ROUNDINGS))}
  ${fld('rounding_month', 'Given month (1–12)', text('rounding_month', f.rounding_month, true))}
  </fieldset>
  <fieldset><legend>On a fixed day every year</legend>
  ${fld('fixed_month', 'Month (1–12)', text('fixed_month', f.fixed_month, true))}
  ${fld('fixed_day', 'Day', text('fixed_day', f.fixed_day, true))}
  </fieldset>
  <button type="submit">Save</button>
</form>`;
  const p = page(
    {
      title: `Balance definition: ${res.body.name}`,
      session: pc.session,
      path: '/console/programs',
      error: state.error,
    },
    body,
  );
  return sendPage(pc.reply, p, status);
}

const keyed = (f: Form, what: string) =>
  f.idempotency_key ? { 'idempotency-key': `console:${f.idempotency_key}:${what}` } : undefined;

export function catalogPages(r: ConsoleRouter, programPage: ProgramPage): void {
  r.post('/console/programs/:id/rewards', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const f = pc.req.body as Form;
    const refused = (body: unknown) => {
      const { fields, general } = errorsFor(body, rewardField);
      return programPage(pc, { which: 'reward', form: f, fields, error: general }, 422);
    };
    const created = await pc.api.post<Reward>('/v1/rewards', rewardBody(f), keyed(f, 'reward'));
    if (!created.ok) return refused(created.body);
    const assigned = await pc.api.post(
      `/v1/loyalties/${enc(id)}/rewards`,
      [{ reward: created.body.id, parameters: { loyalty: { points: num(f.points) ?? '' } } }],
      keyed(f, 'assign'),
    );
    if (!assigned.ok) {
      // The reward was made for this program only: it goes with the refused assignment.
      await pc.api.delete(`/v1/rewards/${enc(created.body.id)}`);
      return refused(assigned.body);
    }
    return pc.reply.redirect(`/console/programs/${enc(id)}?notice=${enc('Reward created.')}`, 303);
  });

  r.get('/console/programs/:id/rewards/:rewardId', async (pc) => rewardPage(pc));

  r.post('/console/programs/:id/rewards/:rewardId', async (pc) => {
    const { id, rewardId } = pc.req.params as { id: string; rewardId: string };
    const f = pc.req.body as Form;
    const stock = (f.stock ?? '').trim() === '' ? null : num(f.stock);
    const res = await pc.api.call(
      'PUT',
      `/v1/rewards/${enc(rewardId)}`,
      { name: f.name ?? '', stock },
      keyed(f, 'edit'),
    );
    if (!res.ok) {
      const { fields, general } = errorsFor(res.body, rewardField);
      return rewardPage(pc, { form: f, fields, error: general }, 422);
    }
    return pc.reply.redirect(`/console/programs/${enc(id)}?notice=${enc('Reward saved.')}`, 303);
  });

  r.post('/console/programs/:id/tiers', async (pc) => {
    const { id } = pc.req.params as { id: string };
    const f = pc.req.body as Form;
    const res = await pc.api.post(`/v1/loyalties/${enc(id)}/tiers`, [tierBody(f)], keyed(f, 'tier'));
    if (!res.ok) {
      const { fields, general } = errorsFor(res.body, tierField);
      return programPage(pc, { which: 'tier', form: f, fields, error: general }, 422);
    }
    return pc.reply.redirect(`/console/programs/${enc(id)}?notice=${enc('Tier created.')}`, 303);
  });

  r.get('/console/programs/:id/tiers/:tierId', async (pc) => tierPage(pc));

  r.post('/console/programs/:id/tiers/:tierId', async (pc) => {
    const { id, tierId } = pc.req.params as { id: string; tierId: string };
    const f = pc.req.body as Form;
    const url = `/v1/loyalties/${enc(id)}/tiers/${enc(tierId)}`;
    const res = await pc.api.call('PUT', url, tierBody(f), keyed(f, 'edit'));
    if (!res.ok) {
      const { fields, general } = errorsFor(res.body, tierField);
      return tierPage(pc, { form: f, fields, error: general }, 422);
    }
    return pc.reply.redirect(`/console/programs/${enc(id)}?notice=${enc('Tier saved.')}`, 303);
  });

  r.get('/console/programs/:id/definitions/:defId', async (pc) => definitionPage(pc));

  r.post('/console/programs/:id/definitions/:defId', async (pc) => {
    const { id, defId } = pc.req.params as { id: string; defId: string };
    const f = pc.req.body as Form;
    const url = `/v1/loyalties/${enc(id)}/balance-definitions/${enc(defId)}`;
    const res = await pc.api.call('PUT', url, definitionBody(f), keyed(f, 'edit'));
    if (!res.ok) {
      const { fields, general } = errorsFor(res.body, definitionField);
      // The default definition keeps its name: the refusal names no field, but it is the name's.
      if ((res.body as { key?: string }).key === 'default_definition_rename') {
        fields.set('name', [apiErrorText(res.body)]);
        return definitionPage(pc, { form: f, fields }, 422);
      }
      return definitionPage(pc, { form: f, fields, error: general }, 422);
    }
    return pc.reply.redirect(`/console/programs/${enc(id)}?notice=${enc('Balance definition saved.')}`, 303);
  });

  r.post('/console/programs/:id/assignments/:assignmentId/remove', async (pc) => {
    const { id, assignmentId } = pc.req.params as { id: string; assignmentId: string };
    const res = await pc.api.delete(`/v1/loyalties/${enc(id)}/rewards/${enc(assignmentId)}`);
    const notice = res.ok ? 'Reward removed from the program.' : apiErrorText(res.body);
    return pc.reply.redirect(`/console/programs/${enc(id)}?notice=${enc(notice)}`, 303);
  });
}
