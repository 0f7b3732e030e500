import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertLedgerInvariants } from './helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from './helpers/server.ts';

describe('customers, programs and members: shapes, lookups, paging', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  it('stores phones in E.164 and finds customers by phone in any format', async () => {
    const a = await t.api('POST', '/v1/customers', {
      source_id: 'ph-1',
      name: 'Ana',
      phone: '+385 91 624 2493',
      address: { city: 'Zagreb', country: 'HR' },
      birthdate: '1990-04-01',
    });
    assert.equal(a.status, 200);
    assert.equal(a.body.phone, '+385916242493');
    assert.deepEqual(a.body.address, { city: 'Zagreb', country: 'HR' });
    assert.equal(a.body.object, 'customer');
    assert.deepEqual(a.body.loyalty, { points: 0, referred_customers: 0, campaigns: {} });
    for (const q of ['+385916242493', '00385916242493', '385 91 624 2493', 'whatsapp:+385916242493']) {
      const res = await t.api('GET', `/v1/customers?phone=${encodeURIComponent(q)}`);
      assert.equal(res.status, 200);
      assert.deepEqual(
        res.body.customers.map((c: any) => c.id),
        [a.body.id],
        q,
      );
    }
    const byService = await t.server.services.customers.findByPhone(t.server.ctx.database.db, '0038591 624 2493');
    assert.deepEqual(
      byService.map((c) => c.id),
      [a.body.id],
    );
    // source_id upsert, get by source_id, partial update with metadata merge, delete.
    const again = await t.api('POST', '/v1/customers', {
      source_id: 'ph-1',
      email: 'ana@example.com',
      metadata: { a: 1, b: 2 },
    });
    assert.equal(again.body.id, a.body.id);
    assert.equal(again.body.name, 'Ana');
    const upd = await t.api('PUT', '/v1/customers/ph-1', { metadata: { b: null, c: 3 } });
    assert.deepEqual(upd.body.metadata, { a: 1, c: 3 });
    assert.equal((await t.api('GET', '/v1/customers/ph-1')).body.email, 'ana@example.com');
  });

  it('lists in the Voucherify envelope with limit and page', async () => {
    for (let i = 0; i < 7; i++) await t.api('POST', '/v1/customers', { source_id: `page-${i}`, name: 'Pager' });
    const p1 = await t.api('GET', '/v1/customers?name=Pager&limit=3&page=1&order=created_at');
    assert.equal(p1.body.object, 'list');
    assert.equal(p1.body.data_ref, 'customers');
    assert.equal(p1.body.total, 7);
    assert.equal(p1.body.has_more, true);
    const p3 = await t.api('GET', '/v1/customers?name=Pager&limit=3&page=3&order=created_at');
    assert.equal(p3.body.customers.length, 1);
    assert.equal(p3.body.has_more, false);
    const all = [
      ...p1.body.customers,
      ...(await t.api('GET', '/v1/customers?name=Pager&limit=3&page=2&order=created_at')).body.customers,
      ...p3.body.customers,
    ];
    assert.equal(new Set(all.map((c: any) => c.id)).size, 7);
    const programs = await t.api('GET', '/v1/loyalties?limit=1');
    assert.equal(programs.body.data_ref, 'campaigns');
    assert.ok(Array.isArray(programs.body.campaigns));
  });

  it('generates card codes from code_config, collision-safe, and refuses when the space is exhausted', async () => {
    const program = await createProgram(t, {
      join_once: false,
      voucher: { code_config: { pattern: 'T-##-##', charset: 'AB', prefix: 'X', postfix: 'Z' } },
    });
    assert.deepEqual(program.voucher.code_config, {
      length: 8,
      charset: 'AB',
      prefix: 'X',
      postfix: 'Z',
      pattern: 'T-##-##',
    });
    const codes = new Set<string>();
    for (let i = 0; i < 16; i++) {
      const m = await createMember(t, program.id);
      assert.match(m.code, /^XT-[AB]{2}-[AB]{2}Z$/);
      codes.add(m.code);
    }
    assert.equal(codes.size, 16, '16 distinct codes fill the 2^4 space');
    const full = await t.api('POST', `/v1/loyalties/${program.id}/members`, {
      customer: { source_id: 'one-too-many' },
    });
    assert.equal(full.status, 422);
    assert.equal(full.body.key, 'code_space_exhausted');
    const members = await t.api('GET', `/v1/loyalties/${program.id}/members?limit=5&page=4`);
    assert.equal(members.body.data_ref, 'vouchers');
    assert.equal(members.body.total, 16);
    assert.equal(members.body.vouchers.length, 1);
  });

  it('join_once holds: one card per customer, also under concurrency; not join_once allows more', async () => {
    const once = await createProgram(t, { join_once: true });
    const cust = (await t.api('POST', '/v1/customers', { source_id: 'joiner' })).body;
    const results = await Promise.all(
      Array.from({ length: 10 }, () => t.api('POST', `/v1/loyalties/${once.id}/members`, { customer: cust.id })),
    );
    assert.equal(results.filter((r) => r.status === 200).length, 1);
    assert.deepEqual(
      [...new Set(results.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.body.key}`))],
      ['409 already_joined'],
    );
    const many = await createProgram(t, { join_once: false });
    assert.equal((await t.api('POST', `/v1/loyalties/${many.id}/members`, { customer: cust.id })).status, 200);
    assert.equal((await t.api('POST', `/v1/loyalties/${many.id}/members`, { customer: cust.id })).status, 200);
    const summary = await t.api('GET', `/v1/customers/${cust.id}`);
    assert.deepEqual(Object.keys(summary.body.loyalty.campaigns).sort(), [once.name, many.name].sort());
  });

  it('a program takes members only between its start_date and expiration_date', async () => {
    const future = await createProgram(t, { start_date: new Date(Date.now() + 86400_000).toISOString() });
    const early = await t.api('POST', `/v1/loyalties/${future.id}/members`, { customer: { source_id: 'early' } });
    assert.deepEqual([early.status, early.body.key], [422, 'campaign_not_started']);
    const past = await createProgram(t, {
      start_date: '2020-01-01T00:00:00Z',
      expiration_date: '2020-02-01T00:00:00+01:00',
    });
    const late = await t.api('POST', `/v1/loyalties/${past.id}/members`, { customer: { source_id: 'late' } });
    assert.deepEqual([late.status, late.body.key], [422, 'campaign_expired']);
    const inactive = await createProgram(t, { active: false });
    const off = await t.api('POST', `/v1/loyalties/${inactive.id}/members`, { customer: { source_id: 'off' } });
    assert.deepEqual([off.status, off.body.key], [422, 'campaign_inactive']);
  });

  it('initial points, a program update and a customer delete that revokes the cards', async () => {
    const program = await createProgram(t, {
      voucher: { loyalty_card: { points: 25 } },
      metadata: { tier: 'gold' },
      timezone: 'Europe/Zagreb',
      description: 'd',
    });
    assert.equal(program.timezone, 'Europe/Zagreb');
    const member = await createMember(t, program.id, { source_id: 'to-delete', name: 'Del' });
    assert.equal(member.loyalty_card.balance, 25);
    const upd = await t.api('PUT', `/v1/loyalties/${program.id}`, { description: 'new', auto_join: false });
    assert.equal(upd.status, 200);
    assert.equal(upd.body.description, 'new');
    assert.equal(upd.body.auto_join, false);
    assert.equal(upd.body.vouchers_count, 1);
    const del = await t.api('DELETE', '/v1/customers/to-delete');
    assert.equal(del.status, 204);
    const card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.status, 'REVOKED');
    const refused = await t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: 5 });
    assert.equal(refused.status, 422);
    assert.equal(refused.body.key, 'loyalty_card_inactive');
  });
});
