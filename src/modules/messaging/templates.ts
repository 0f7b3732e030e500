import { Liquid, Tag, type FS, type LiquidOptions, type Template } from 'liquidjs';

// Reply texts are Liquid templates (a safe, well-known template language: no code execution, no
// access to anything but the variables handed in). Parsed once and cached; rendering is bounded
// in time and output size.
//
// Templates have no file system. Liquid's `include`, `render` and `layout` read other templates
// from files (by default the server's working directory, where the database and `.env` live), so:
// - those tags are replaced by one that fails when the template is parsed, which every place that
//   saves a template runs first (a 400 naming the field);
// - the engine's file system refuses every lookup and read, for whatever might still reach it
//   (a template stored before this check existed is parsed again at render and fails the same way).

export const FILE_TAGS_REFUSED = 'include/render/layout are not available in Tally templates';

/** Thrown when Liquid tries to touch a file: never an answer, always a failure. */
export class TemplateFileAccess extends Error {
  constructor() {
    super('Tally templates cannot read files');
    this.name = 'TemplateFileAccess';
  }
}

const refuse = (): never => {
  throw new TemplateFileAccess();
};

/** A file system with no files: lookups find nothing, reads throw. */
export const noFileSystem: FS = {
  exists: async () => false,
  existsSync: () => false,
  readFile: async () => refuse(),
  readFileSync: () => refuse(),
  resolve: (_dir, file) => file,
  contains: async () => false,
  containsSync: () => false,
  fallback: () => undefined,
};

class FileTagRefused extends Tag {
  constructor(...args: ConstructorParameters<typeof Tag>) {
    super(...args);
    throw new Error(`${FILE_TAGS_REFUSED} ({% ${this.name} %})`);
  }
  // Never reached: the constructor throws.
  *render(): Generator<never, void, unknown> {}
}

/** The engine's options (the file-tag refusal comes on top: FILE_TAGS). */
export const LIQUID_OPTIONS: Readonly<LiquidOptions> = {
  ownPropertyOnly: true,
  strictFilters: true,
  strictVariables: false,
  parseLimit: 20_000,
  renderLimit: 200,
  memoryLimit: 1_000_000,
  cache: false,
  fs: noFileSystem,
  root: [],
  partials: [],
  layouts: [],
  relativeReference: false,
};
/** The Liquid tags that read other templates from files. */
export const FILE_TAGS = ['include', 'render', 'layout'] as const;

const engine = new Liquid(LIQUID_OPTIONS);
for (const name of FILE_TAGS) engine.registerTag(name, FileTagRefused);

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

/** The template's problem in one line (null when it is valid): what every save reports as a 400. */
export function templateError(source: string): string | null {
  try {
    parseTemplate(source);
    return null;
  } catch (err) {
    return (err as Error).message.split('\n')[0];
  }
}

const SPACE = 0x20;
const TAB = 0x09;

/**
 * Drops spaces and tabs before each line break, in one pass (a regex such as /[ \t]+\n/g goes back
 * over a run of blanks from every position in it: quadratic on a long run that ends in no line break).
 */
export function trimLineEnds(text: string): string {
  let out = '';
  let lineStart = 0;
  for (;;) {
    const nl = text.indexOf('\n', lineStart);
    const lineEnd = nl === -1 ? text.length : nl;
    let end = lineEnd;
    if (nl !== -1) {
      while (end > lineStart && (text.charCodeAt(end - 1) === SPACE || text.charCodeAt(end - 1) === TAB)) end--;
    }
    out += text.slice(lineStart, end);
    if (nl === -1) return out;
    out += '\n';
    lineStart = nl + 1;
  }
}

export async function render(source: string, vars: Record<string, unknown>): Promise<string> {
  const out = await engine.render(parseTemplate(source), vars);
  const text = trimLineEnds(String(out)).trim();
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text;
}
