import { CompiledQuery, type Compilable } from 'kysely';
import { sqliteInTransaction, type DialectName, type Executor } from './db.ts';

// Compiled-query cache for the few statements every ledger write runs. Building a Kysely query
// (immutable nodes, freezing, parsing, compiling) costs several times more than running a small
// statement on SQLite. A hot statement's SQL text depends only on its shape, so it is compiled
// once per shape (`key`) and dialect; later runs send that text with the new parameters.
//
// The caller passes the parameters explicitly, in the order the builder produces them. The first
// run of each shape checks that they are exactly the builder's, so a wrong order fails loudly in
// the tests instead of writing wrong columns.

// Texts are kept per dialect adapter (one per open database), so two databases of different
// dialects in one process never share a text.
const byAdapter = new WeakMap<object, Map<string, string>>();

/** `dialect` names the backend for readers of the call site; the cache itself keys on the executor's adapter. */
export async function hot<R>(db: Executor, _dialect: DialectName, key: string, params: readonly unknown[], build: () => Compilable<R>): Promise<R[]> {
  const adapter = db.getExecutor().adapter as object;
  let texts = byAdapter.get(adapter);
  if (!texts) {
    texts = new Map();
    byAdapter.set(adapter, texts);
  }
  const k = key;
  const text = texts.get(k);
  if (text !== undefined) {
    const direct = sqliteInTransaction(db);
    if (direct) return direct(text, params) as R[];
    return (await db.executeQuery<R>(CompiledQuery.raw(text, params as unknown[]))).rows;
  }
  const compiled = build().compile();
  const same = compiled.parameters.length === params.length && compiled.parameters.every((p, i) => p === params[i]);
  if (!same) {
    throw new Error(`hot query "${key}": the parameters given (${JSON.stringify(params)}) are not the builder's (${JSON.stringify(compiled.parameters)})`);
  }
  texts.set(k, compiled.sql);
  return (await db.executeQuery(compiled)).rows;
}

/**
 * PostgreSQL only: several writes as one statement, each a data-modifying CTE
 * (`WITH s0 AS (INSERT ...), s1 AS (UPDATE ...) SELECT 1`), so they cost one round trip. The parts
 * must not depend on each other's effects (they all see the same snapshot). Each part's text is
 * compiled once per shape, its $n placeholders renumbered after the previous parts'.
 */
export async function hotCombined(
  db: Executor,
  key: string,
  parts: { key: string; params: readonly unknown[]; build: () => Compilable<unknown> }[],
): Promise<void> {
  const adapter = db.getExecutor().adapter as object;
  let texts = byAdapter.get(adapter);
  if (!texts) {
    texts = new Map();
    byAdapter.set(adapter, texts);
  }
  const params = parts.flatMap((p) => p.params);
  let text = texts.get(key);
  if (text === undefined) {
    let offset = 0;
    const ctes: string[] = [];
    for (const [i, part] of parts.entries()) {
      const compiled = part.build().compile();
      const same = compiled.parameters.length === part.params.length && compiled.parameters.every((p, j) => p === part.params[j]);
      if (!same) throw new Error(`hot query "${key}/${part.key}": the parameters given are not the builder's`);
      const shifted = compiled.sql.replace(/\$(\d+)/g, (_m, n: string) => `$${Number(n) + offset}`);
      ctes.push(`s${i} as (${shifted})`);
      offset += compiled.parameters.length;
    }
    text = `with ${ctes.join(', ')} select 1`;
    texts.set(key, text);
  }
  await db.executeQuery(CompiledQuery.raw(text, params as unknown[]));
}
