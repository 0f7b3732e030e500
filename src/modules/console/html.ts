// Server-rendered HTML from template literals. Every interpolated value is escaped unless it is
// itself the result of `html` (or `raw`, for trusted markup such as a JSON island): a member's
// name or a webhook response can never inject markup into a console page.

const SAFE = Symbol('safe-html');

export interface SafeHtml {
  readonly [SAFE]: true;
  readonly value: string;
}

const safe = (value: string): SafeHtml => ({ [SAFE]: true, value });

export function isSafe(v: unknown): v is SafeHtml {
  return typeof v === 'object' && v !== null && SAFE in v;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

type Value = SafeHtml | string | number | boolean | null | undefined | Value[];

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return '';
  if (Array.isArray(v)) return v.map(render).join('');
  if (isSafe(v)) return v.value;
  return escapeHtml(String(v));
}

/** The tagged template: `html\`<p>${name}</p>\``. Arrays are joined; null, undefined and false render nothing. */
export function html(strings: TemplateStringsArray, ...values: Value[]): SafeHtml {
  let out = strings[0] as string;
  for (let i = 0; i < values.length; i++) out += render(values[i] as Value) + (strings[i + 1] as string);
  return safe(out);
}

/** Trusted markup, inserted as is (never for data from a request or the database). */
export const raw = (s: string): SafeHtml => safe(s);

/**
 * JSON for a `<script type="application/json">` island: `<` is escaped so a value holding
 * `</script>` cannot end the element.
 */
export function jsonIsland(id: string, data: unknown, attrs: Record<string, string> = {}): SafeHtml {
  const extra = Object.entries(attrs)
    .map(([k, v]) => ` ${escapeHtml(k)}="${escapeHtml(v)}"`)
    .join('');
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return safe(`<script type="application/json" id="${escapeHtml(id)}"${extra}>${json}</script>`);
}
