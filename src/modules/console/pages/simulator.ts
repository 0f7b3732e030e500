import { enc, qs, type ConsoleApi } from '../api.ts';
import { html, type SafeHtml } from '../html.ts';
import { apiErrorText, csrfField, page } from '../layout.ts';
import { type ConsoleRouter, sendPage } from '../routes.ts';
import type { ConsoleSession } from '../sessions.ts';

// The phone simulator: text a simulator channel as a member, read the replies as a conversation.
// The form works without scripts (post, then redirect to the conversation); with htmx it swaps
// only the phone. The flows editor shows the same phone beside the flow.

interface SimMessage {
  id: string;
  direction: 'in' | 'out';
  text: string | null;
  created_at: string;
}

export interface PhoneState {
  channels: { id: string; name: string; type: string }[];
  channelId?: string;
  from: string;
  messages: SimMessage[];
  error?: string;
}

export async function simulatorChannels(api: ConsoleApi) {
  const res = await api.get(`/v1/channels${qs({ limit: 100 })}`);
  const all = (res.ok ? res.body.channels : []) as { id: string; name: string; type: string; provider: string }[];
  return all.filter((c) => c.provider === 'simulator');
}

export async function phoneState(api: ConsoleApi, from: string, channelId?: string, error?: string) {
  const channels = await simulatorChannels(api);
  const channel = channelId ?? channels[0]?.id;
  let messages: SimMessage[] = [];
  if (from && channel) {
    const res = await api.get(`/v1/simulator/messages${qs({ phone: from, channel_id: channel, limit: 50 })}`);
    if (res.ok) messages = res.body.messages;
    else error ??= apiErrorText(res.body);
  }
  return { channels, channelId: channel, from, messages, error } satisfies PhoneState;
}

/** The phone: channel picker, From, the conversation and the Message box. `back`: where a plain post returns. */
export function phone(s: PhoneState, session: ConsoleSession, back = '/console/simulator'): SafeHtml {
  if (s.channels.length === 0) {
    return html`<div id="phone" class="phone"><p>No simulator channel yet: create one with
      <code>POST /v1/channels</code> and <code>"provider": "simulator"</code>
      (or run <code>npx tally demo</code>).</p></div>`;
  }
  return html`<div id="phone" class="phone">
<form method="post" action="/console/simulator/send" hx-post="/console/simulator/send" hx-target="#phone"
  hx-swap="outerHTML" data-reset="text">
  ${csrfField(session)}
  <input type="hidden" name="back" value="${back}">
  <label for="sim-channel">Channel</label>
  <select id="sim-channel" name="channel_id">${s.channels.map(
    (c) => html`<option value="${c.id}"${c.id === s.channelId ? html` selected` : ''}>${c.name} (${c.type})</option>`,
  )}</select>
  <label for="sim-from">From</label>
  <input id="sim-from" name="from" type="tel" required value="${s.from}" placeholder="+385916242493">
  <h2 class="sr-only">Conversation</h2>
  <ol class="conversation" aria-live="polite" data-testid="conversation">${s.messages.map(
    (m) => html`<li class="bubble ${m.direction}"><span class="sr-only">${who(m)}: </span>${m.text ?? ''}</li>`,
  )}</ol>
  ${s.error ? html`<p class="field-error" role="alert">${s.error}</p>` : ''}
  <label for="sim-text">Message</label>
  <input id="sim-text" name="text" required autocomplete="off" placeholder="POINTS">
  <button type="submit">Send</button>
</form></div>`;
}

const who = (m: SimMessage) => (m.direction === 'in' ? 'Member' : 'Reply');

export function simulatorPages(r: ConsoleRouter): void {
  r.get('/console/simulator', async (pc) => {
    const q = pc.req.query as { from?: string; channel_id?: string; error?: string };
    const state = await phoneState(pc.api, q.from ?? '', q.channel_id, q.error);
    const body = html`<p>Text a simulator channel as a member and read the replies. Nothing is sent to a real phone.</p>
${phone(state, pc.session)}`;
    return sendPage(pc.reply, page({ title: 'Simulator', session: pc.session, path: '/console/simulator' }, body));
  });

  r.post('/console/simulator/send', async (pc) => {
    const f = pc.req.body as { from?: string; text?: string; channel_id?: string; back?: string };
    const from = (f.from ?? '').trim();
    const res = await pc.api.post('/v1/simulator/messages', {
      from,
      text: f.text ?? '',
      ...(f.channel_id ? { channel_id: f.channel_id } : {}),
    });
    const error = res.ok ? undefined : apiErrorText(res.body);
    if (pc.req.headers['hx-request']) {
      return sendPage(pc.reply, phone(await phoneState(pc.api, from, f.channel_id, error), pc.session, f.back).value);
    }
    const back = f.back?.startsWith('/console/') ? f.back : '/console/simulator';
    const sep = back.includes('?') ? '&' : '?';
    const errPart = error ? `&error=${enc(error)}` : '';
    return pc.reply.redirect(`${back}${sep}from=${enc(from)}&channel_id=${enc(f.channel_id ?? '')}${errPart}`, 303);
  });
}
