import { Liquid, type Template } from 'liquidjs';

// Reply texts are Liquid templates (a safe, well-known template language: no code execution, no
// access to anything but the variables handed in). Parsed once and cached; rendering is bounded
// in time and output size.

const engine = new Liquid({
  ownPropertyOnly: true,
  strictFilters: true,
  strictVariables: false,
  parseLimit: 20_000,
  renderLimit: 200,
  memoryLimit: 1_000_000,
  cache: false,
});

const parsed = new Map<string, Template[]>();
export const MAX_TEXT = 1600;

/** Throws an Error with the parse problem when the template is not valid Liquid. */
export function parseTemplate(source: string): Template[] {
  let t = parsed.get(source);
  if (!t) {
    t = engine.parse(source);
    if (parsed.size > 5000) parsed.clear();
    parsed.set(source, t);
  }
  return t;
}

export function templateError(source: string): string | null {
  try {
    parseTemplate(source);
    return null;
  } catch (err) {
    return (err as Error).message.split('\n')[0];
  }
}

export async function render(source: string, vars: Record<string, unknown>): Promise<string> {
  const out = await engine.render(parseTemplate(source), vars);
  const text = out.replace(/[ \t]+\n/g, '\n').trim();
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text;
}
