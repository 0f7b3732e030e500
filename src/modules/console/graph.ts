import { html, type SafeHtml } from './html.ts';

// A flow's steps drawn as a graph (server-rendered SVG): each step a box, placed in columns by its
// distance from the start step; an arrow for every field of a step that names another step
// (next, else, cases[].next, replies[].next, refused, ...), labelled with that field.

export interface GraphStep {
  id: string;
  type: string;
  [k: string]: unknown;
}

export interface Edge {
  from: string;
  to: string;
  label: string;
}

/** Fields that hold text or the step's own name, never a reference to another step. */
const TEXT_FIELDS = new Set(['id', 'type', 'template', 'text', 'reward', 'by']);

/** Every place in a step that names another step. */
export function edgesOf(steps: GraphStep[]): Edge[] {
  const ids = new Set(steps.map((s) => s.id));
  const edges: Edge[] = [];
  const walk = (from: string, v: unknown, path: string) => {
    if (typeof v === 'string') {
      if (ids.has(v) && !TEXT_FIELDS.has(path.split('.').at(-1) ?? ''))
        edges.push({ from, to: v, label: path.replace(/\.next$/, '') });
    } else if (Array.isArray(v)) {
      for (const [i, x] of v.entries()) walk(from, x, `${path}[${i}]`);
    } else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) walk(from, x, path ? `${path}.${k}` : k);
  };
  for (const s of steps) walk(s.id, s, '');
  return edges;
}

const W = 150;
const H = 44;
const GAP_X = 60;
const GAP_Y = 18;

export function flowGraph(steps: GraphStep[], start: string | undefined, invalid: Set<string> = new Set()): SafeHtml {
  if (steps.length === 0) return html``;
  const edges = edgesOf(steps);
  // Columns: breadth-first distance from the start step; unreachable steps in a last column.
  const depth = new Map<string, number>();
  const first = start && steps.some((s) => s.id === start) ? start : (steps[0] as GraphStep).id;
  depth.set(first, 0);
  const queue = [first];
  while (queue.length) {
    const id = queue.shift() as string;
    for (const e of edges) {
      if (e.from === id && !depth.has(e.to)) {
        depth.set(e.to, (depth.get(id) as number) + 1);
        queue.push(e.to);
      }
    }
  }
  const maxDepth = Math.max(...depth.values());
  for (const s of steps) if (!depth.has(s.id)) depth.set(s.id, maxDepth + 1);
  const rows = new Map<number, number>();
  const pos = new Map<string, { x: number; y: number }>();
  for (const s of steps) {
    const d = depth.get(s.id) as number;
    const r = rows.get(d) ?? 0;
    rows.set(d, r + 1);
    pos.set(s.id, { x: 10 + d * (W + GAP_X), y: 10 + r * (H + GAP_Y) });
  }
  const width = 20 + (Math.max(...depth.values()) + 1) * (W + GAP_X);
  const height = 20 + Math.max(...rows.values()) * (H + GAP_Y);
  const arrows = edges.map((e) => {
    const a = pos.get(e.from) as { x: number; y: number };
    const b = pos.get(e.to) as { x: number; y: number };
    const x1 = a.x + W;
    const y1 = a.y + H / 2;
    const x2 = b.x;
    const y2 = b.y + H / 2;
    const back = x2 <= x1;
    const path = back
      ? `M${a.x + W / 2},${a.y + H} C${a.x + W / 2},${a.y + H + 40} ` +
        `${b.x + W / 2},${b.y + H + 40} ${b.x + W / 2},${b.y + H}`
      : `M${x1},${y1} C${x1 + GAP_X / 2},${y1} ${x2 - GAP_X / 2},${y2} ${x2},${y2}`;
    return html`<path d="${path}" class="edge" marker-end="url(#arrow)">
      <title>${e.from} ${e.label} → ${e.to}</title></path>`;
  });
  const boxes = steps.map((s) => {
    const p = pos.get(s.id) as { x: number; y: number };
    return html`<g class="node${invalid.has(s.id) ? ' invalid' : ''}${s.id === first ? ' start' : ''}">
  <rect x="${p.x}" y="${p.y}" width="${W}" height="${H}" rx="6"></rect>
  <text x="${p.x + 8}" y="${p.y + 18}" class="id">${s.id.slice(0, 20)}</text>
  <text x="${p.x + 8}" y="${p.y + 35}" class="type">${s.type}</text></g>`;
  });
  const described = edges.map((e) => `${e.from} → ${e.to} (${e.label})`).join('; ');
  return html`<svg class="flow-graph" viewBox="0 0 ${width} ${height + 40}" width="${width}" height="${height + 40}"
  role="img" aria-label="Flow steps: ${described}">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"
  orient="auto-start-reverse">
<path d="M0,0 L10,5 L0,10 z" class="arrowhead"></path></marker></defs>
${arrows}${boxes}</svg>`;
}
