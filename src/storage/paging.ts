import { type SelectQueryBuilder, type Selectable, sql } from 'kysely';
import { invalid } from '../lib/errors.ts';
import { type Executor, isPostgres } from './database.ts';

/**
 * Cursor paging over an append-only table with an auto-increment `seq`, newest first:
 * `starting_after_id` in, `has_more` and `more_starting_after` out (Voucherify's transaction lists).
 * `fetch(beforeSeq, n)` returns up to n rows with seq < beforeSeq (all rows when undefined), newest first;
 * `seqOf(id)` finds the cursor row's seq.
 */
export async function pageBySeq<R extends { id: string }>(
  page: { limit: number; starting_after_id?: string },
  what: string,
  seqOf: (id: string) => Promise<number | undefined>,
  fetch: (beforeSeq: number | undefined, n: number) => Promise<R[]>,
): Promise<{ data: R[]; has_more: boolean; more_starting_after: string | null }> {
  let before: number | undefined;
  if (page.starting_after_id) {
    before = await seqOf(page.starting_after_id);
    if (before === undefined) {
      throw invalid(
        'invalid_cursor',
        'Invalid cursor',
        `starting_after_id ${page.starting_after_id} is not ${what} id`,
        [{ field: 'starting_after_id', message: `unknown ${what} id` }],
      );
    }
  }
  const rows = await fetch(before, page.limit + 1);
  const has_more = rows.length > page.limit;
  const data = rows.slice(0, page.limit);
  return { data, has_more, more_starting_after: has_more ? data[data.length - 1].id : null };
}

/**
 * A list's one equality filter, `column = value`, read as a walk of an index that starts with `column` and goes
 * on with the list's order (`seq`, or `created_at, id`): its rows in order, from the first of the list or from
 * a cursor, whatever the table's size and however old the value's rows. That walk reads the page and no more;
 * the planners can prefer another, unbounded one, and this keeps them from it.
 *
 * The other walk: an index on the order alone (the primary key `seq`, an index on `created_at`) walked
 * backwards, filtering on the column. Both planners think it cheap for a value that holds a few percent of
 * the table or more (their statistics say how many rows a value has, not where they lie in the order): when
 * the value's rows are old (a card with a long history that has gone quiet, last year's bulk voucher
 * campaign), that walk reads every newer row of the table first. Measured (docs/performance.md): a card
 * holding 5 % of a 200,000-entry PostgreSQL ledger, 186 ms a page instead of 0.2 ms; on SQLite a card
 * holding 10,000 entries of 51,000, all older than the rest, 10.9 ms instead of 0.04 ms.
 *
 * - PostgreSQL: the equality is written as a range (`column >= value AND column <= value`) and the rows
 *   are ordered by `column` first. Written `column = value`, the column is a constant to the planner,
 *   and the index on the order alone gives the same order; in the range it is not, the order names it,
 *   and only the column's index gives that order.
 * - SQLite: `unlikely(column = value)`: the planner still uses the equality on the index (the cursor's
 *   bound with it), and expecting few rows to match, never walks the whole order for them. (A range
 *   would end the index's bounds at its first column, leaving the cursor's bound a filter.)
 */
export interface KeyWalk {
  db: Executor;
  column: string;
  value: string;
}

/** The walk's filter and, on PostgreSQL, the column its order starts with. */
function walkOf(walk: KeyWalk) {
  const key = sql.ref(walk.column);
  return isPostgres(walk.db)
    ? { where: sql<boolean>`${key} >= ${walk.value} and ${key} <= ${walk.value}`, orderFirst: key }
    : { where: sql<boolean>`unlikely(${key} = ${walk.value})`, orderFirst: undefined };
}

/** The rows of `base` in `walk` (KeyWalk), newest `seq` first, those before `before` when given. */
export function newestOfKey<DB, TB extends keyof DB, O>(
  base: SelectQueryBuilder<DB, TB, O>,
  walk: KeyWalk,
  before: number | undefined,
): SelectQueryBuilder<DB, TB, O> {
  const { where, orderFirst } = walkOf(walk);
  let q = base.where(where);
  if (orderFirst) q = q.orderBy(orderFirst, 'desc');
  if (before !== undefined) q = q.where(sql<boolean>`seq < ${before}`);
  return q.orderBy(sql`seq`, 'desc');
}

/**
 * Page-number paging (Voucherify's `limit` and `page`): the total of `base` and one page of the
 * rows `rowsOf(base)` selects and orders. Both queries read the same filtered `base`. `total`, when
 * given, answers the count instead (a counter the module keeps for an unfiltered list, see
 * src/storage/counters.ts): then the list is not counted.
 */
export async function pageByNumber<DB, TB extends keyof DB, R>(
  base: SelectQueryBuilder<DB, TB, object>,
  page: { limit: number; page: number },
  rowsOf: (base: SelectQueryBuilder<DB, TB, object>) => SelectQueryBuilder<DB, TB, R>,
  total?: TotalOf,
): Promise<{ rows: R[]; total: number }> {
  const counted = total ? await total() : await countOf(base);
  const rows = await rowsOf(base)
    .limit(page.limit)
    .offset((page.page - 1) * page.limit)
    .execute();
  return { rows: rows as R[], total: counted };
}

async function countOf<DB, TB extends keyof DB>(base: SelectQueryBuilder<DB, TB, object>): Promise<number> {
  const r = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number((r as { n: number | string }).n);
}

/**
 * The number of rows a list holds, from somewhere cheaper than counting them: a counter kept in
 * the transactions that insert and delete the rows. Only for a list whose rows are exactly the ones
 * the counter counts (an unfiltered list); a filtered list leaves it out and is counted.
 */
export type TotalOf = () => Promise<number>;

/**
 * How deep page-number paging goes: `page × limit` at most this many rows. An OFFSET reads and
 * throws away every row before the page, so a deep page costs in proportion to its depth; past
 * this bound the list refuses (400 `page_too_deep`) and names the cursor to use instead.
 */
export const MAX_PAGE_DEPTH = 10_000;

/** A page of a list ordered by `(created_at, id)`: `total` only when paged by number. */
export interface KeysetPage<R> {
  rows: R[];
  total?: number;
  has_more: boolean;
  more_starting_after: string | null;
}

/**
 * One page of a table listed by `(created_at, id)`, either by cursor or by Voucherify's page number.
 *
 * - `starting_after_id` (the last id of the previous page): keyset paging, `WHERE (created_at, id)
 *   > (cursor's)` on an index that starts with the filter's equality columns then `created_at, id`,
 *   so every page costs the same however deep, and rows inserted meanwhile never shift the pages
 *   (a row is seen once; a row inserted behind the cursor is not). No `total`: counting is a scan.
 *   The cursor row must match the same filter, so a cursor from another list is refused. An empty
 *   `starting_after_id` asks for the first page by cursor (without the count of `total`).
 * - otherwise `page`/`limit` (compatibility): an OFFSET, bounded by MAX_PAGE_DEPTH, with `total`: the
 *   count of the filtered list, or `total()` when the caller has a counter for this list (`TotalOf`).
 * - `walk`: the list's equality filter whose index goes on with `created_at, id` (KeyWalk), added here.
 *
 * Both answer `has_more` and `more_starting_after`, so a page-number client can switch to cursors.
 */
export async function pageByCreated<
  DB,
  TB extends keyof DB,
  R extends { id: string } = Selectable<DB[TB]> & { id: string },
>(
  base: SelectQueryBuilder<DB, TB, object>,
  q: { limit: number; page?: number; starting_after_id?: string },
  what: string,
  order: 'asc' | 'desc',
  opts: { total?: TotalOf; walk?: KeyWalk } = {},
): Promise<KeysetPage<R>> {
  const { total } = opts;
  const walk = opts.walk && walkOf(opts.walk);
  if (walk) base = base.where(walk.where);
  // The helper is generic over the table; its columns are named in SQL, which every listed table has.
  const ordered = (b: SelectQueryBuilder<DB, TB, object>) => {
    let o = b.selectAll();
    if (walk?.orderFirst) o = o.orderBy(walk.orderFirst, order);
    return o.orderBy(sql`created_at`, order).orderBy(sql`id`, order) as unknown as SelectQueryBuilder<DB, TB, R>;
  };
  if (q.starting_after_id === '') return firstByCursor(ordered(base), q.limit);
  if (q.starting_after_id) {
    const cursor = (await base
      .select([sql<string>`created_at`.as('created_at'), sql<string>`id`.as('id')])
      .where(sql<boolean>`id = ${q.starting_after_id}`)
      .executeTakeFirst()) as { created_at: string; id: string } | undefined;
    if (!cursor) {
      throw invalid('invalid_cursor', 'Invalid cursor', `starting_after_id ${q.starting_after_id} is not ${what} id`, [
        { field: 'starting_after_id', message: `unknown ${what} id in this list` },
      ]);
    }
    const after = base.where(
      order === 'asc'
        ? sql<boolean>`(created_at, id) > (${cursor.created_at}, ${cursor.id})`
        : sql<boolean>`(created_at, id) < (${cursor.created_at}, ${cursor.id})`,
    );
    return firstByCursor(ordered(after), q.limit);
  }
  const pageNo = q.page ?? 1;
  if (pageNo * q.limit > MAX_PAGE_DEPTH) {
    throw invalid(
      'page_too_deep',
      'Page too deep',
      `page × limit is at most ${MAX_PAGE_DEPTH} (asked ${pageNo} × ${q.limit}); ` +
        'page further with starting_after_id, the more_starting_after of the previous page',
      [{ field: 'page', message: `at most ${Math.floor(MAX_PAGE_DEPTH / q.limit)} with limit ${q.limit}` }],
    );
  }
  const got = await pageByNumber(base, { limit: q.limit, page: pageNo }, ordered, total);
  const has_more = pageNo * q.limit < got.total;
  return {
    rows: got.rows,
    total: got.total,
    has_more,
    more_starting_after: has_more && got.rows.length ? got.rows[got.rows.length - 1].id : null,
  };
}

/** Up to `limit` rows of an ordered query, and whether more follow (one row more is read to know). */
async function firstByCursor<R extends { id: string }>(
  rows: { limit(n: number): { execute(): Promise<R[]> } },
  limit: number,
): Promise<KeysetPage<R>> {
  const got = await rows.limit(limit + 1).execute();
  const has_more = got.length > limit;
  const data = got.slice(0, limit);
  return { rows: data, has_more, more_starting_after: has_more ? data[data.length - 1].id : null };
}
