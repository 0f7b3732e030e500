import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertLedgerInvariants } from './helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from './helpers/server.ts';

async function ledgerCount(t: TestServer, membershipId: string) {
  const r = await t.server.ctx.database.db
    .selectFrom('ledger_entries')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('membership_id', '=', membershipId)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

describe('concurrent writers and Idempotency-Key', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  it('200 concurrent +1 requests on one card give exactly +200', async () => {
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        t.api(
          'POST',
          i % 2
            ? `/v1/loyalties/members/${member.code}/balance`
            : `/v1/loyalties/${program.id}/members/${member.code}/balance`,
          { points: 1 },
        ),
      ),
    );
    assert.deepEqual([...new Set(results.map((r) => r.status))], [200]);
    // Every answer saw a distinct balance: no two writers read the same "before".
    assert.deepEqual(
      results.map((r) => r.body.balance).sort((a: number, b: number) => a - b),
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
    const card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.balance, 200);
    assert.equal(card.body.loyalty_card.points, 200);
    assert.equal(await ledgerCount(t, member.id), 200);
    await assertLedgerInvariants(t.server.ctx.database.db);
  });

  it('concurrent additions and removals never overdraw', async () => {
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    await t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: 50 });
    const results = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: i % 3 === 0 ? 1 : -1 }),
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 422);
    assert.equal(ok.length + refused.length, 120);
    const delta = ok.reduce((s, r) => s + r.body.points, 0);
    const card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.balance, 50 + delta);
    assert.ok(card.body.loyalty_card.balance >= 0);
    await assertLedgerInvariants(t.server.ctx.database.db);
  });

  it('same key and same body: same status and body, one ledger entry', async () => {
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    const path = `/v1/loyalties/members/${member.code}/balance`;
    const first = await t.api('POST', path, { points: 25, reason: 'order 1' }, { 'idempotency-key': 'order-1' });
    assert.equal(first.status, 200);
    // Same body with another key order: the same request.
    const again = await t.api('POST', path, { reason: 'order 1', points: 25 }, { 'idempotency-key': 'order-1' });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, first.body);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(await ledgerCount(t, member.id), 1);
    const card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.balance, 25);

    // Same key, another body: refused, nothing changes.
    const other = await t.api('POST', path, { points: 26, reason: 'order 1' }, { 'idempotency-key': 'order-1' });
    assert.equal(other.status, 422);
    assert.equal(other.body.key, 'idempotency_key_reused');
    // Same key, same body, other path (campaign-scoped): another request, refused.
    const otherPath = await t.api(
      'POST',
      `/v1/loyalties/${program.id}/members/${member.code}/balance`,
      { points: 25, reason: 'order 1' },
      { 'idempotency-key': 'order-1' },
    );
    assert.equal(otherPath.status, 422);
    assert.equal(await ledgerCount(t, member.id), 1);

    // Keys are scoped per API key: another key's "order-1" is its own request.
    const second = await t.server.services.apiKeys.create('second');
    const res = await fetch(`${t.url}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${second.token}`,
        'content-type': 'application/json',
        'idempotency-key': 'order-1',
      },
      body: JSON.stringify({ points: 25, reason: 'order 1' }),
    });
    assert.equal(res.status, 200);
    assert.equal(await ledgerCount(t, member.id), 2);
  });

  it('concurrent requests with one key: exactly one applies, all answer the same', async () => {
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    const path = `/v1/loyalties/members/${member.code}/balance`;
    const results = await Promise.all(
      Array.from({ length: 30 }, () => t.api('POST', path, { points: 7 }, { 'idempotency-key': 'race-1' })),
    );
    const ok = results.filter((r) => r.status === 200);
    for (const r of results)
      assert.ok(r.status === 200 || r.status === 409, `status ${r.status} ${JSON.stringify(r.body)}`);
    assert.ok(ok.length >= 1);
    for (const r of ok) assert.deepEqual(r.body, ok[0].body);
    assert.equal(await ledgerCount(t, member.id), 1);
    const card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.balance, 7);
    await assertLedgerInvariants(t.server.ctx.database.db);
  });

  it('a retried debit that its first run made impossible gets the first answer, not a 422', async () => {
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    const path = `/v1/loyalties/members/${member.code}/balance`;
    await t.api('POST', path, { points: 10 });
    const first = await t.api('POST', path, { points: -10 }, { 'idempotency-key': 'empty-it' });
    assert.equal(first.status, 200);
    assert.equal(first.body.balance, 0);
    // Run again, the debit would now be refused (balance 0): the stored answer comes back instead.
    const retry = await t.api('POST', path, { points: -10 }, { 'idempotency-key': 'empty-it' });
    assert.deepEqual([retry.status, retry.body], [200, first.body]);
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');
    const refusals = await t.api('GET', `/v1/events?type=balance_transaction_unauthorized&resource_id=${member.id}`);
    assert.equal(refusals.status, 200);
    assert.equal(refusals.body.data.length, 0, 'the replay recorded no refusal event');
    const txs = await t.api('GET', `/v1/loyalties/members/${member.code}/transactions`);
    assert.equal(txs.body.data.length, 2);
    await assertLedgerInvariants(t.server.ctx.database.db);
  });

  it('a 4xx answer is replayed for its key, even after the state changes', async () => {
    const program = await createProgram(t);
    const member = await createMember(t, program.id);
    const path = `/v1/loyalties/members/${member.code}/balance`;
    const refused = await t.api('POST', path, { points: -5 }, { 'idempotency-key': 'debit-1' });
    assert.equal(refused.status, 422);
    assert.equal(refused.body.key, 'insufficient_balance');
    await t.api('POST', path, { points: 10 });
    const replay = await t.api('POST', path, { points: -5 }, { 'idempotency-key': 'debit-1' });
    assert.equal(replay.status, 422);
    assert.deepEqual(replay.body, refused.body);
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    const card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.balance, 10);

    const notFound = await t.api(
      'POST',
      '/v1/loyalties/members/NOPE/balance',
      { points: 5 },
      { 'idempotency-key': 'nf-1' },
    );
    assert.equal(notFound.status, 404);
    const nfReplay = await t.api(
      'POST',
      '/v1/loyalties/members/NOPE/balance',
      { points: 5 },
      { 'idempotency-key': 'nf-1' },
    );
    assert.deepEqual([nfReplay.status, nfReplay.body], [404, notFound.body]);
  });

  it('Idempotency-Key works on other writes: one customer, one program', async () => {
    const c1 = await t.api('POST', '/v1/customers', { name: 'Idem' }, { 'idempotency-key': 'cust-1' });
    const c2 = await t.api('POST', '/v1/customers', { name: 'Idem' }, { 'idempotency-key': 'cust-1' });
    assert.equal(c1.status, 200);
    assert.deepEqual([c2.status, c2.body.id], [200, c1.body.id]);
    const list = await t.api('GET', '/v1/customers?name=Idem');
    assert.equal(list.body.total, 1);
    const p1 = await t.api('POST', '/v1/loyalties', { name: 'Idem program' }, { 'idempotency-key': 'prog-1' });
    const p2 = await t.api('POST', '/v1/loyalties', { name: 'Idem program' }, { 'idempotency-key': 'prog-1' });
    assert.deepEqual([p2.status, p2.body], [p1.status, p1.body]);
    const m = await Promise.all(
      Array.from({ length: 5 }, () =>
        t.api('POST', `/v1/loyalties/${p1.body.id}/members`, { customer: c1.body.id }, { 'idempotency-key': 'join-1' }),
      ),
    );
    const ok = m.filter((r) => r.status === 200);
    assert.ok(ok.length >= 1);
    for (const r of m) assert.ok(r.status === 200 || r.status === 409);
    for (const r of ok) assert.equal(r.body.id, ok[0].body.id);
    const members = await t.api('GET', `/v1/loyalties/${p1.body.id}/members`);
    assert.equal(members.body.total, 1);
  });
});
