import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_PAGE_DEPTH } from '../src/storage/paging.ts';
import { type ApiResponse, createMember, createProgram, startTestServer, type TestServer } from './helpers/server.ts';

/** Follows `more_starting_after` from the first page to the last; `between` runs after each page. */
async function allPages(
  t: TestServer,
  path: string,
  dataRef: string,
  between: () => Promise<void> = async () => {},
): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  // An empty cursor: the first page by cursor (no total counted).
  let cursor: string | null = '';
  let pages = 0;
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const res: ApiResponse = await t.api('GET', `${path}${sep}limit=7&starting_after_id=${cursor}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    pages++;
    const rows = res.body[dataRef] as { id: string }[];
    ids.push(...rows.map((r) => r.id));
    assert.equal(res.body.total, undefined, 'a cursor page does not count the list');
    if (!res.body.has_more) {
      assert.equal(res.body.more_starting_after, null);
      return { ids, pages };
    }
    assert.equal(res.body.more_starting_after, rows[rows.length - 1].id);
    cursor = res.body.more_starting_after;
    await between();
  }
}

describe('cursor paging (starting_after_id) and bounded page numbers', () => {
  let t: TestServer;
  let programId: string;
  const members: string[] = [];
  before(async () => {
    // A manual clock: every row has the same created_at, so the id alone orders them (the tie-break).
    t = await startTestServer({ manualClock: true });
    programId = (await createProgram(t)).id;
    for (let i = 0; i < 23; i++) members.push((await createMember(t, programId)).id);
  });
  after(async () => {
    await t.close();
  });

  it('pages through a program’s members once each, while members join between pages', async () => {
    let added = 0;
    const { ids, pages } = await allPages(t, `/v1/loyalties/${programId}/members`, 'vouchers', async () => {
      members.push((await createMember(t, programId)).id);
      added++;
    });
    assert.ok(pages >= 4);
    assert.equal(new Set(ids).size, ids.length, 'no member twice');
    // Every member that existed before paging began is on some page; joiners may or may not be.
    const before = members.slice(0, members.length - added);
    for (const id of before) assert.ok(ids.includes(id), `member ${id} missing`);
    // Oldest first: the page-number list has the same order.
    const all = await t.api('GET', `/v1/loyalties/${programId}/members?limit=100`);
    const order = (all.body.vouchers as { id: string }[]).map((m) => m.id);
    assert.deepEqual(
      ids,
      order.filter((id) => ids.includes(id)),
    );
    assert.equal(all.body.total, members.length);
    assert.equal(all.body.has_more, false);
  });

  it('pages customers newest first and oldest first', async () => {
    for (const order of ['-created_at', 'created_at']) {
      const { ids } = await allPages(t, `/v1/customers?order=${order}`, 'customers');
      const all = await t.api('GET', `/v1/customers?limit=100&order=${order}`);
      assert.deepEqual(
        ids,
        (all.body.customers as { id: string }[]).map((c) => c.id),
      );
    }
  });

  it('a page number answers has_more and the cursor of the next page', async () => {
    const p1 = await t.api('GET', `/v1/loyalties/${programId}/members?limit=5&page=1`);
    assert.equal(p1.body.has_more, true);
    const next = await t.api(
      'GET',
      `/v1/loyalties/${programId}/members?limit=5&starting_after_id=${p1.body.more_starting_after}`,
    );
    const p2 = await t.api('GET', `/v1/loyalties/${programId}/members?limit=5&page=2`);
    assert.deepEqual(next.body.vouchers, p2.body.vouchers);
  });

  it('refuses a page deeper than the bound, and says what is allowed', async () => {
    for (const path of [
      `/v1/loyalties/${programId}/members`,
      '/v1/customers',
      '/v1/vouchers',
      '/v1/redemptions',
      '/v1/messages',
    ]) {
      const res = await t.api('GET', `${path}?limit=100&page=${MAX_PAGE_DEPTH / 100 + 1}`);
      assert.equal(res.status, 400, path);
      assert.equal(res.body.key, 'page_too_deep');
      assert.match(res.body.details, /starting_after_id/);
      const ok = await t.api('GET', `${path}?limit=100&page=${MAX_PAGE_DEPTH / 100}`);
      assert.equal(ok.status, 200, path);
    }
  });

  it('refuses an unknown cursor, and a cursor of another list', async () => {
    const other = (await createProgram(t)).id;
    const res = await t.api('GET', `/v1/loyalties/${other}/members?starting_after_id=${members[0]}`);
    assert.equal(res.status, 400);
    assert.equal(res.body.key, 'invalid_cursor');
    for (const path of ['/v1/customers', '/v1/vouchers', '/v1/redemptions', '/v1/messages']) {
      const bad = await t.api('GET', `${path}?starting_after_id=nope`);
      assert.equal(bad.status, 400, path);
      assert.equal(bad.body.key, 'invalid_cursor');
    }
  });
});
