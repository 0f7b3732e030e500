import { CompiledQuery, type Compilable } from 'kysely';
import type { DialectName, Executor } from './db.ts';

// Compiled-query cache for the few statements every ledger write runs. Building a Kysely query
// (immutable nodes, freezing, parsing, compiling) costs several times more than running a small
// statement on SQLite. A hot statement's SQL text depends only on its shape, so it is compiled
// once per shape (`key`) and dialect; later runs send that text with the new parameters.
//
// The caller passes the parameters explicitly, in the order the builder produces them. The first
// run of each shape checks that they are exactly the builder's, so a wrong order fails loudly in
// the tests instead of writing wrong columns.

const texts = new Map<string, string>();

export async function hot<R>(db: Executor, dialect: DialectName, key: string, params: readonly unknown[], build: () => Compilable<R>): Promise<R[]> {
  const k = `${dialect}\u0000${key}`;
  const text = texts.get(k);
  if (text !== undefined) return (await db.executeQuery<R>(CompiledQuery.raw(text, params as unknown[]))).rows;
  const compiled = build().compile();
  const same = compiled.parameters.length === params.length && compiled.parameters.every((p, i) => p === params[i]);
  if (!same) {
    throw new Error(`hot query "${key}": the parameters given (${JSON.stringify(params)}) are not the builder's (${JSON.stringify(compiled.parameters)})`);
  }
  texts.set(k, compiled.sql);
  return (await db.executeQuery(compiled)).rows;
}
