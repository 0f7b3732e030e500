import type { SelectQueryBuilder } from 'kysely';
import { invalid } from '../lib/errors.ts';

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
 * Page-number paging (Voucherify's `limit` and `page`): the total of `base` and one page of the
 * rows `rowsOf(base)` selects and orders. Both queries read the same filtered `base`.
 */
export async function pageByNumber<DB, TB extends keyof DB, R>(
  base: SelectQueryBuilder<DB, TB, object>,
  page: { limit: number; page: number },
  rowsOf: (base: SelectQueryBuilder<DB, TB, object>) => SelectQueryBuilder<DB, TB, R>,
): Promise<{ rows: R[]; total: number }> {
  const counted = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  const rows = await rowsOf(base)
    .limit(page.limit)
    .offset((page.page - 1) * page.limit)
    .execute();
  return { rows: rows as R[], total: Number((counted as { n: number | string }).n) };
}
