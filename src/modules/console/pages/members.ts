import { randomUUID } from 'node:crypto';
import { enc, qs } from '../api.ts';
import { html, type SafeHtml } from '../html.ts';
import { apiErrorText, csrfField, fmtDate, page, pager } from '../layout.ts';
import { type ConsoleRouter, type PageContext, sendPage } from '../routes.ts';

// Members: search by phone, card code, name or email; a member's page (one loyalty card) with
// balances, tier, ledger with running balance, vouchers, messages; adjust points.

const PAGE_SIZE = 20;

interface Customer {
  id: string;
  name: string | null;
  email: string | null;
  phone: string | null;
  loyalty?: { campaigns?: Record<string, { points: number; card_code?: string }> };
  created_at: string;
}

/** Which customer field a search string is: an e-mail, a phone number, else a name (a card code is tried first). */
export function searchField(q: string): 'email' | 'phone' | 'name' {
  if (q.includes('@')) return 'email';
  if (/^\+?[\d\s().-]{6,}$/.test(q)) return 'phone';
  return 'name';
}

export function memberPages(r: ConsoleRouter): void {
  r.get('/console/members', async (pc) => {
    const query = pc.req.query as { q?: string; page?: string };
    const q = (query.q ?? '').trim();
    const pageNo = Math.max(1, Number(query.page) || 1);
    let rows: Customer[] = [];
    let hasMore = false;
    let error: string | undefined;
    if (q) {
      // A card code names one member: go straight to their page.
      if (!/\s/.test(q) && searchField(q) === 'name') {
        const card = await pc.api.get(`/v1/loyalties/members/${enc(q)}`);
        if (card.ok) return pc.reply.redirect(`/console/members/${enc(card.body.code)}`, 303);
      }
      const res = await pc.api.get(`/v1/customers${qs({ [searchField(q)]: q, page: pageNo, limit: PAGE_SIZE })}`);
      if (res.ok) {
        rows = res.body.customers;
        hasMore = res.body.has_more;
      } else error = apiErrorText(res.body);
    } else {
      const res = await pc.api.get(`/v1/customers${qs({ page: pageNo, limit: PAGE_SIZE, order: '-created_at' })}`);
      if (res.ok) {
        rows = res.body.customers;
        hasMore = res.body.has_more;
      } else error = apiErrorText(res.body);
    }
    const body = html`<form method="get" action="/console/members" role="search" class="search">
  <label for="q">Search members</label>
  <input id="q" name="q" type="search" value="${q}" placeholder="Phone, card code, name or e-mail" autofocus>
  <button type="submit">Search</button>
</form>
${
  rows.length === 0 && q
    ? html`<p>No member matches “${q}”.</p>`
    : html`<div class="scroll"><table>
  <caption>${q ? `Members matching “${q}”` : 'Newest members'}</caption>
  <thead><tr><th scope="col">Name</th><th scope="col">Phone</th><th scope="col">E-mail</th>
  <th scope="col">Cards</th><th scope="col">Joined</th></tr></thead>
  <tbody>${rows.map(
    (c) => html`<tr><td>${c.name ?? '—'}</td><td>${c.phone ?? ''}</td><td>${c.email ?? ''}</td>
    <td>${Object.entries(c.loyalty?.campaigns ?? {}).map(([program, v]) =>
      v.card_code
        ? html`<a href="/console/members/${enc(v.card_code)}">${v.card_code}</a>
          <small>${program} · ${v.points} pts</small><br>`
        : '',
    )}</td><td>${fmtDate(c.created_at)}</td></tr>`,
  )}</tbody></table></div>
${pager('/console/members', pageNo, hasMore, q ? { q } : {})}`
}`;
    return sendPage(pc.reply, page({ title: 'Members', session: pc.session, path: '/console/members', error }, body));
  });

  r.get('/console/members/:code', async (pc) => memberPage(pc));

  r.post('/console/members/:code/adjust', async (pc) => {
    const { code } = pc.req.params as { code: string };
    const form = pc.req.body as { points?: string; reason?: string; idempotency_key?: string };
    const points = Number(form.points);
    const res = await pc.api.post(
      `/v1/loyalties/members/${enc(code)}/balance`,
      { points: Number.isFinite(points) ? Math.trunc(points) : form.points, reason: form.reason || undefined },
      // The form's key: a second click (or a reload) of the same form replays the first answer.
      form.idempotency_key ? { 'idempotency-key': `console:${form.idempotency_key}` } : {},
    );
    if (!res.ok) return memberPage(pc, { adjustError: apiErrorText(res.body), form }, 422);
    return pc.reply.redirect(`/console/members/${enc(code)}?adjusted=${enc(String(points))}`, 303);
  });
}

interface AdjustState {
  adjustError?: string;
  form?: { points?: string; reason?: string; idempotency_key?: string };
}

async function memberPage(pc: PageContext, state: AdjustState = {}, status = 200) {
  const { code } = pc.req.params as { code: string };
  const query = pc.req.query as { after?: string; adjusted?: string };
  const cardRes = await pc.api.get(`/v1/loyalties/members/${enc(code)}`);
  if (!cardRes.ok) {
    return sendPage(
      pc.reply,
      page(
        { title: 'Member', session: pc.session, path: '/console/members', error: apiErrorText(cardRes.body) },
        html``,
      ),
      cardRes.status,
    );
  }
  const card = cardRes.body;
  const [customer, balances, tiers, ledger, redeemables, holders, referrals] = await Promise.all([
    pc.api.get(`/v1/customers/${enc(card.holder_id)}`),
    pc.api.get(`/v1/loyalties/members/${enc(card.id)}/balances`),
    pc.api.get(`/v1/loyalties/members/${enc(card.id)}/tiers`),
    pc.api.get(
      `/v1/loyalties/members/${enc(card.id)}/transactions${qs({ limit: 20, starting_after_id: query.after })}`,
    ),
    pc.api.get(`/v1/customers/${enc(card.holder_id)}/redeemables${qs({ limit: 20 })}`),
    pc.api.get(`/v1/loyalties/members/${enc(card.id)}/holders`),
    pc.api.get(`/v1/customers/${enc(card.holder_id)}/referrals`),
  ]);
  const c: Customer | undefined = customer.ok ? customer.body : undefined;
  const messages = c?.phone ? await pc.api.get(`/v1/messages${qs({ phone: c.phone, limit: 10 })}`) : undefined;
  const tier = tiers.ok ? tiers.body.data?.[0] : undefined;
  const form = state.form ?? {};
  const key = state.adjustError && form.idempotency_key ? form.idempotency_key : randomUUID();
  const body = html`
<section class="grid">
  <div class="card">
    <h2>${c?.name ?? 'Member'}</h2>
    <dl>
      <dt>Card</dt><dd>${card.code}</dd>
      <dt>Program</dt><dd>${card.campaign}</dd>
      <dt>Phone</dt><dd>${c?.phone ?? '—'}</dd>
      <dt>E-mail</dt><dd>${c?.email ?? '—'}</dd>
      <dt>Tier</dt><dd data-testid="tier">${tier ? tier.name : 'None'}</dd>
      <dt>Status</dt><dd>${card.status}</dd>
    </dl>
  </div>
  <div class="card">
    <h2>Balances</h2>
    <dl>${(balances.ok ? balances.body.data : []).map(
      (b: { balance_definition: { name: string; unit: string }; balance: number; pending_points: number }) =>
        html`<dt>${b.balance_definition.name}</dt><dd><strong data-testid="balance-${b.balance_definition.name}">${
          b.balance
        }</strong> ${b.balance_definition.unit}${
          b.pending_points ? html` <small>(${b.pending_points} pending)</small>` : ''
        }</dd>`,
    )}</dl>
  </div>
  <form class="card" method="post" action="/console/members/${enc(card.code)}/adjust">
    <h2>Adjust points</h2>
    ${csrfField(pc.session)}
    <input type="hidden" name="idempotency_key" value="${key}">
    <label for="points">Points (negative to remove)</label>
    <input id="points" name="points" type="number" step="1" required value="${form.points ?? ''}"
      ${state.adjustError ? html`aria-invalid="true" aria-describedby="adjust-error"` : ''}>
    ${state.adjustError ? html`<p id="adjust-error" class="field-error">${state.adjustError}</p>` : ''}
    <label for="reason">Reason</label>
    <input id="reason" name="reason" required maxlength="1000" value="${form.reason ?? ''}">
    <button type="submit">Adjust points</button>
  </form>
</section>
<section class="grid">
  <div class="card">
    <h2>Household</h2>
    ${householdList(holders.ok ? holders.body.data : [])}
  </div>
  <div class="card">
    <h2>Referrals</h2>
    ${referralSummary(referrals.ok ? referrals.body : undefined)}
  </div>
</section>
<section>
  <h2>Ledger</h2>
  <div class="scroll"><table data-testid="ledger">
  <thead><tr><th scope="col">When</th><th scope="col">Type</th><th scope="col" class="num">Points</th>
  <th scope="col" class="num">Balance after</th><th scope="col">Reason</th>
  <th scope="col">Rule / source</th></tr></thead>
  <tbody>${(ledger.ok ? ledger.body.data : []).map(ledgerRow)}</tbody></table></div>
  ${
    ledger.ok && ledger.body.has_more
      ? html`<nav class="pager" aria-label="Ledger pages"><a href="/console/members/${enc(card.code)}?after=${enc(
          ledger.body.more_starting_after,
        )}">Older entries →</a></nav>`
      : ''
  }
</section>
<section>
  <h2>Vouchers</h2>
  ${redeemablesTable(redeemables.ok ? redeemables.body : undefined)}
</section>
<section>
  <h2>Messages</h2>
  ${messagesTable(messages?.ok ? (messages.body.messages ?? messages.body.data ?? []) : [])}
  ${c?.phone ? html`<p><a href="/console/messages?phone=${enc(c.phone)}">Conversation and consent</a></p>` : ''}
</section>`;
  const notice = query.adjusted ? `Points adjusted by ${query.adjusted}.` : undefined;
  return sendPage(
    pc.reply,
    page(
      { title: c?.name ? `Member: ${c.name}` : 'Member', session: pc.session, path: '/console/members', notice },
      body,
    ),
    status,
  );
}

interface Txn {
  id: string;
  type: string;
  reason: string | null;
  source: string | null;
  created_at: string;
  details: {
    balance?: { points: number; balance: number };
    earning_rule?: { id: string };
    rule?: { id: string };
    [k: string]: unknown;
  };
}

function ledgerRow(t: Txn): SafeHtml {
  const rule = t.details.earning_rule?.id ?? t.details.rule?.id;
  return html`<tr><td>${fmtDate(t.created_at)}</td><td>${t.type}</td>
  <td class="num">${t.details.balance?.points ?? ''}</td><td class="num">${t.details.balance?.balance ?? ''}</td>
  <td>${t.reason ?? ''}</td><td>${rule ? html`<code>${rule}</code>` : (t.source ?? '')}</td></tr>`;
}

function redeemablesTable(body: { data?: unknown[] } | undefined): SafeHtml {
  const rows = (body?.data ?? []) as {
    id: string;
    voucher_type?: string;
    campaign_type?: string;
    holder_role?: string;
    created_at: string;
    redeemable?: { voucher?: { code?: string } };
  }[];
  if (rows.length === 0) return html`<p class="muted">No vouchers.</p>`;
  return html`<div class="scroll"><table><thead><tr><th scope="col">Code</th><th scope="col">Type</th>
  <th scope="col">Campaign type</th><th scope="col">Held as</th><th scope="col">Since</th></tr></thead>
  <tbody>${rows.map(
    (v) => html`<tr><td>${v.redeemable?.voucher?.code ?? v.id}</td><td>${v.voucher_type ?? ''}</td>
    <td>${v.campaign_type ?? ''}</td><td>${v.holder_role ?? ''}</td><td>${fmtDate(v.created_at)}</td></tr>`,
  )}</tbody></table></div>`;
}

export interface MessageRow {
  id: string;
  direction: string;
  text?: string | null;
  body?: string | null;
  status: string;
  created_at: string;
  phone?: string;
}

export function messagesTable(rows: MessageRow[]): SafeHtml {
  if (rows.length === 0) return html`<p class="muted">No messages.</p>`;
  return html`<div class="scroll"><table><thead><tr><th scope="col">When</th><th scope="col">Direction</th>
  <th scope="col">Text</th><th scope="col">Status</th></tr></thead><tbody>${rows.map(
    (m) => html`<tr><td>${fmtDate(m.created_at)}</td><td>${m.direction === 'in' ? 'From member' : 'To member'}</td>
    <td>${m.text ?? m.body ?? ''}</td><td>${m.status}</td></tr>`,
  )}</tbody></table></div>`;
}

interface Holder {
  id: string;
  member_id: number;
  customer_id: string;
  created_at: string;
}

/** The card's member contacts (a household sharing its balances), by their number on the card. */
function householdList(holders: Holder[]): SafeHtml {
  if (holders.length === 0) return html`<p class="muted">No member contacts share this card.</p>`;
  return html`<table data-testid="household"><thead><tr><th scope="col">Member</th><th scope="col">Customer</th>
  <th scope="col">Since</th></tr></thead><tbody>${holders.map(
    (h) => html`<tr><td>${h.member_id}</td><td>${h.customer_id}</td><td>${fmtDate(h.created_at)}</td></tr>`,
  )}</tbody></table>`;
}

interface ReferralStatus {
  referred_customers: number;
  campaigns: {
    campaign: string;
    code: string;
    referred_customers: number;
    next_tier: { referees_needed: number; reward_text: string } | null;
  }[];
  referrals: { total: number; campaigns: { campaign_id: string; referrer_id: string; date: string }[] };
}

const friends = (n: number) => (n === 1 ? 'next friend' : `${n} more friends`);

/** Referral codes with their counts and what the next friend earns; who referred this member. */
function referralSummary(r: ReferralStatus | undefined): SafeHtml {
  if (!r) return html`<p class="muted">Referral status unavailable.</p>`;
  const codes = r.campaigns.length
    ? html`<table data-testid="referrals"><thead><tr><th scope="col">Code</th><th scope="col">Campaign</th>
  <th scope="col" class="num">Referred</th><th scope="col">Next tier</th></tr></thead><tbody>${r.campaigns.map(
    (c) =>
      html`<tr><td>${c.code}</td><td>${c.campaign}</td><td class="num">${c.referred_customers}</td><td>${
        c.next_tier ? `${friends(c.next_tier.referees_needed)}: ${c.next_tier.reward_text}` : '—'
      }</td></tr>`,
  )}</tbody></table>`
    : html`<p class="muted">No referral code.</p>`;
  const by = r.referrals.campaigns.map((x) => html`<li>by ${x.referrer_id} on ${fmtDate(x.date)}</li>`);
  return html`<p>Referred <strong>${r.referred_customers}</strong> customers.</p>${codes}${
    by.length ? html`<p>Was referred:</p><ul>${by}</ul>` : ''
  }`;
}
