import { CompiledQuery, type Compilable } from 'kysely';
import { type Executor, isPostgres } from './database.ts';
import { executePrepared, keepForCommit } from './postgres/connection.ts';
import { combineWrites, writtenTable, type KeptWrite } from './postgres/kept-writes.ts';
import { sqliteInTransaction } from './sqlite/statements.ts';

// Compiled-query cache for the few statements every ledger write runs. Building a Kysely query
// (immutable nodes, freezing, parsing, compiling) costs several times more than running a small
// statement on SQLite. A hot statement's SQL text depends only on its shape, so it is compiled
// once per shape (`key`) and dialect; later runs send that text with the new parameters. On SQLite
// the prepared statement is cached by text (sqlite/statements.ts); on PostgreSQL it runs as a named
// statement, prepared once per connection (`executePrepared` in postgres/connection.ts).
//
// The caller passes the parameters explicitly, in the order the builder produces them. The first
// run of each shape checks that they are exactly the builder's, so a wrong order fails loudly in
// the tests instead of writing wrong columns.

// Texts are kept per dialect adapter (one per open database), so two databases of different
// dialects in one process never share a text.
const byAdapter = new WeakMap<object, Map<string, string>>();

/** Runs the statement `build` makes, compiled once per `key` (texts are cached per executor's adapter). */
export async function hot<R>(
  db: Executor,
  key: string,
  params: readonly unknown[],
  build: () => Compilable<R>,
): Promise<R[]> {
  const texts = textsOf(db);
  const text = texts.get(key);
  if (text !== undefined) {
    const direct = sqliteInTransaction(db);
    if (direct) return direct(text, params) as R[];
    return (await executePrepared<R>(db, CompiledQuery.raw(text, params as unknown[]))).rows;
  }
  const compiled = build().compile();
  const same = compiled.parameters.length === params.length && compiled.parameters.every((p, i) => p === params[i]);
  if (!same) {
    const [given, built] = [JSON.stringify(params), JSON.stringify(compiled.parameters)];
    throw new Error(`hot query "${key}": the parameters given (${given}) are not the builder's (${built})`);
  }
  texts.set(key, compiled.sql);
  return (await executePrepared<R>(db, compiled)).rows;
}

/**
 * As `hot`, for a wide row read in a group-commit transaction on SQLite: there the rows come as
 * arrays of column values, in the select list's order (no object per row); anywhere else as objects.
 */
export async function hotRows<R>(
  db: Executor,
  key: string,
  params: readonly unknown[],
  build: () => Compilable<R>,
): Promise<{ arrays: true; rows: unknown[][] } | { arrays: false; rows: R[] }> {
  const text = textsOf(db).get(key);
  const direct = text !== undefined ? sqliteInTransaction(db) : undefined;
  if (direct) return { arrays: true, rows: direct(text!, params, true) as unknown[][] };
  return { arrays: false, rows: await hot(db, key, params, build) };
}

export interface HotPart {
  key: string;
  params: readonly unknown[];
  build: () => Compilable<unknown>;
}

/** The hot statements compiled so far on this database (key → SQL): test/plans.test.ts explains them. */
export function hotStatements(db: Executor): ReadonlyMap<string, string> {
  return textsOf(db);
}

function textsOf(db: Executor): Map<string, string> {
  const adapter = db.getExecutor().adapter as object;
  let texts = byAdapter.get(adapter);
  if (!texts) {
    texts = new Map();
    byAdapter.set(adapter, texts);
  }
  return texts;
}

/** The SQL text of a part, compiled once per key (checking, that first time, its parameters). */
function partText(texts: Map<string, string>, part: HotPart): string {
  let text = texts.get(part.key);
  if (text === undefined) {
    const compiled = part.build().compile();
    const same =
      compiled.parameters.length === part.params.length && compiled.parameters.every((p, j) => p === part.params[j]);
    if (!same) throw new Error(`hot query "${part.key}": the parameters given are not the builder's`);
    text = compiled.sql;
    texts.set(part.key, text);
  }
  return text;
}

/**
 * PostgreSQL only: several writes as one statement, each a data-modifying CTE
 * (`WITH s0 AS (INSERT ...), s1 AS (UPDATE ...) SELECT 1`), so they cost one round trip. The parts
 * must not depend on each other's effects (they all see the same snapshot).
 */
export async function hotCombined(db: Executor, key: string, parts: HotPart[]): Promise<void> {
  const texts = textsOf(db);
  let text = texts.get(key);
  if (text === undefined) {
    text = combineWrites(parts.map((p) => ({ text: partText(texts, p), values: p.params }))).text;
    texts.set(key, text);
  }
  await executePrepared(db, CompiledQuery.raw(text, parts.flatMap((p) => p.params) as unknown[]));
}

/** The table each kept write's text writes (writtenTable), by text. */
const tables = new Map<string, string>();

/**
 * Writes whose results nobody reads, as the last writes of a transaction. In a PostgreSQL
 * transaction the connection keeps them and sends them together just before the COMMIT, one round
 * trip for all of them (PipelinedConnection.keep in postgres/connection.ts: any later query of the
 * transaction sends them first, so reads always see them). Anywhere else they run at once. Errors
 * of kept writes (a unique violation) surface from the commit, failing the transaction as a whole,
 * as they would have here. On SQLite the parts run one after another, in order: the same writes
 * as calling `hot` for each.
 */
export async function writeAtCommit(db: Executor, parts: HotPart[]): Promise<void> {
  const postgres = isPostgres(db);
  if (postgres && db.isTransaction) {
    const texts = textsOf(db);
    const writes = parts.map((part): KeptWrite => {
      const text = partText(texts, part);
      let table = tables.get(text);
      if (table === undefined) {
        table = writtenTable(text);
        tables.set(text, table);
      }
      return { table, text, values: part.params };
    });
    if (await keepForCommit(db, writes)) return;
  }
  if (postgres && parts.length > 1) {
    await hotCombined(db, parts.map((p) => p.key).join('+'), parts);
    return;
  }
  for (const part of parts) await hot(db, part.key, part.params, part.build);
}
