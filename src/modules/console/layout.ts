import { html, type SafeHtml } from './html.ts';
import type { ConsoleSession } from './sessions.ts';

export const NAV: [string, string][] = [
  ['/console', 'Overview'],
  ['/console/members', 'Members'],
  ['/console/programs', 'Programs'],
  ['/console/simulator', 'Simulator'],
  ['/console/flows', 'Flows'],
  ['/console/reports', 'Reports'],
  ['/console/webhooks', 'Webhooks'],
  ['/console/messages', 'Messages'],
  ['/console/api-keys', 'API keys'],
];

export interface PageOptions {
  title: string;
  session?: ConsoleSession;
  /** The nav entry to mark current. */
  path?: string;
  /** A status line at the top (role=status, announced by screen readers). */
  notice?: string;
  error?: string;
}

export function page(opts: PageOptions, body: SafeHtml): string {
  const s = opts.session;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}'>
<title>${opts.title} · Tally console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/assets/console.css">
<script src="/console/assets/htmx.min.js" defer></script>
<script src="/console/assets/chart.umd.min.js" defer></script>
<script src="/console/assets/console.js" defer></script>
</head>
<body${s ? html` hx-headers='${JSON.stringify({ 'x-csrf-token': s.csrfToken })}'` : ''}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/console">Tally</a>
  ${
    s
      ? html`<nav aria-label="Console"><ul>${NAV.map(
          ([href, label]) => html`<li><a href="${href}"${current(opts.path, href)}>${label}</a></li>`,
        )}</ul></nav>
  <form method="post" action="/console/sign-out" class="signout">${csrfField(s)}
    <span class="who">${s.appId}</span> <button type="submit">Sign out</button></form>`
      : ''
  }
</header>
<main id="main" tabindex="-1">
<h1>${opts.title}</h1>
${opts.notice ? html`<p class="notice" role="status">${opts.notice}</p>` : ''}
${opts.error ? html`<p class="error" role="alert">${opts.error}</p>` : ''}
${body}
</main>
</body>
</html>`.value;
}

const current = (path: string | undefined, href: string) => (navCurrent(path, href) ? html` aria-current="page"` : '');

function navCurrent(path: string | undefined, href: string): boolean {
  if (!path) return false;
  return href === '/console' ? path === '/console' : path === href || path.startsWith(`${href}/`);
}

export const csrfField = (s: ConsoleSession) => html`<input type="hidden" name="_csrf" value="${s.csrfToken}">`;

/** Previous / next links of a page-numbered list. */
export function pager(base: string, pageNo: number, hasMore: boolean, params: Record<string, string> = {}): SafeHtml {
  const link = (n: number) => {
    const p = new URLSearchParams({ ...params, page: String(n) });
    return `${base}?${p.toString()}`;
  };
  return html`<nav class="pager" aria-label="Pages">
    ${pageNo > 1 ? html`<a href="${link(pageNo - 1)}" rel="prev">← Previous</a>` : ''}
    <span>Page ${pageNo}</span>
    ${hasMore ? html`<a href="${link(pageNo + 1)}" rel="next">Next →</a>` : ''}
  </nav>`;
}

/** The API's error message and details, for a banner. */
export function apiErrorText(body: unknown): string {
  const b = (body ?? {}) as { message?: string; details?: unknown };
  const details = typeof b.details === 'string' ? b.details : b.details ? JSON.stringify(b.details) : '';
  return [b.message, details].filter(Boolean).join(': ') || 'The request failed';
}

export const fmtDate = (iso: string | null | undefined) => (iso ? iso.replace('T', ' ').slice(0, 19) : '');
