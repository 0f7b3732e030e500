import type BetterSqlite3 from 'better-sqlite3';
import type { Executor } from '../database.ts';

/**
 * Kysely's SQLite driver prepares every statement it runs; preparing costs more than running a
 * small statement. The hot paths run the same few SQL texts over and over, so prepared statements
 * are kept by SQL text (bounded; the cache starts over when full).
 */
export type StatementCache = ReturnType<typeof cachingStatements>;

export function cachingStatements(native: BetterSqlite3.Database, max = 1000) {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    prepare(sql: string) {
      let stmt = cache.get(sql);
      if (!stmt) {
        if (cache.size >= max) cache.clear();
        stmt = native.prepare(sql);
        cache.set(sql, stmt);
      }
      return stmt;
    },
    close() {
      cache.clear();
      native.close();
    },
  };
}

/**
 * The statements of the SQLite connection lent to a group-commit batch, by the executor its
 * transactions receive (set by group-commit.ts for the batch's duration). Only queries on that
 * executor may bypass Kysely (`sqliteInTransaction`): one on the pool executor during a batch would
 * read the batch's uncommitted writes.
 */
export const batchStatements = new WeakMap<object, StatementCache>();

/**
 * Runs a compiled statement directly on SQLite when `executor` is a group-commit transaction
 * (answers its rows, or [] for a write); undefined anywhere else. Skips Kysely's executor for the
 * hot statements (src/storage/hot.ts), which it would only pass through.
 */
export function sqliteInTransaction(
  executor: Executor,
): ((text: string, params: readonly unknown[], arrays?: boolean) => unknown[]) | undefined {
  const stmts = batchStatements.get(executor);
  if (!stmts) return undefined;
  return (text, params, arrays) => {
    const stmt = stmts.prepare(text);
    if (stmt.reader && arrays) {
      // Rows as arrays: a wide row (the card query's 58 columns) costs less without building an
      // object per row. The statement is shared with Kysely's executor, which expects objects.
      stmt.raw(true);
      try {
        return stmt.all(params as unknown[]) as unknown[];
      } finally {
        stmt.raw(false);
      }
    }
    if (stmt.reader) return stmt.all(params as unknown[]) as unknown[];
    stmt.run(params as unknown[]);
    return [];
  };
}
