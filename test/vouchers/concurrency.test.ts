import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { allEvents, assertEventsMatchCatalog, customer, ok } from './helpers.ts';

describe('vouchers under concurrency', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  it('a voucher with quantity 1 redeemed by 10 requests at once: exactly one succeeds', async () => {
    await ok(t, 'POST', '/v1/vouchers/ONCE-1', {
      discount: { type: 'AMOUNT', amount_off: 500 },
      redemption: { quantity: 1 },
    });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        t.api('POST', '/v1/vouchers/ONCE-1/redemption', { order: { amount: 1000, source_id: `o-${i}` } }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, ...Array(9).fill(422)], JSON.stringify(results.map((r) => r.body)));
    for (const r of results.filter((x) => x.status === 422)) assert.equal(r.body.key, 'quantity_exceeded');
    const v = await ok(t, 'GET', '/v1/vouchers/ONCE-1');
    assert.equal(v.redemption.redeemed_quantity, 1);
    assert.equal((await ok(t, 'GET', '/v1/redemptions?voucher=ONCE-1&result=SUCCESS')).total, 1);
    // Each refusal is kept as a FAILURE record with its reason.
    const failed = await ok(t, 'GET', '/v1/redemptions?voucher=ONCE-1&result=FAILURE');
    assert.equal(failed.total, 9);
    assert.ok(failed.redemptions.every((r: any) => r.failure_code === 'quantity_exceeded'));
    const events = await allEvents(t);
    assert.equal(events.filter((e) => e.type === 'voucher_redeemed' && e.data.code === 'ONCE-1').length, 1);
    assert.equal(events.filter((e) => e.type === 'voucher_redeem_unauthorized' && e.data.code === 'ONCE-1').length, 9);
  });

  it('a pool of N imported codes published N+3 times at once: N distinct codes, 3 refusals', async () => {
    const N = 5;
    const campaign = await ok(t, 'POST', '/v1/campaigns', {
      name: 'Pool',
      type: 'STATIC',
      voucher: { type: 'DISCOUNT_VOUCHER', discount: { type: 'PERCENT', percent_off: 15 } },
    });
    const codes = Array.from({ length: N }, (_, i) => `POOL-${i}`);
    const imported = await ok(
      t,
      'POST',
      `/v1/campaigns/${campaign.id}/import`,
      codes.map((code) => ({ code })),
    );
    assert.equal(imported.imported, N);
    assert.equal(imported.codes_left, N);
    // Importing a code that exists refuses the whole import.
    const dup = await t.api('POST', `/v1/campaigns/${campaign.id}/import`, ['POOL-0', 'POOL-NEW']);
    assert.equal(dup.status, 409);
    assert.equal((await ok(t, 'GET', `/v1/campaigns/${campaign.id}`)).codes_left, N);

    const customers = [];
    for (let i = 0; i < N + 3; i++) customers.push(await customer(t, `pool-${i}`));
    const results = await Promise.all(
      customers.map((c) => t.api('POST', '/v1/publications', { campaign: campaign.id, customer: c.id })),
    );
    const won = results.filter((r) => r.status === 200);
    const lost = results.filter((r) => r.status !== 200);
    assert.equal(won.length, N, JSON.stringify(results.map((r) => r.body)));
    assert.deepEqual(new Set(won.map((r) => r.body.voucher.code)), new Set(codes));
    assert.equal(lost.length, 3);
    for (const r of lost) {
      assert.equal(r.status, 422);
      assert.equal(r.body.key, 'no_voucher_suitable_for_publication');
    }
    assert.equal((await ok(t, 'GET', `/v1/campaigns/${campaign.id}`)).codes_left, 0);
    const events = await allEvents(t);
    assert.equal(events.filter((e) => e.type === 'voucher_attribution_failed').length, 3);
    assert.equal(events.filter((e) => e.type === 'voucher_created' && e.data.code.startsWith('POOL-')).length, N);
    assertEventsMatchCatalog(events);
  });

  it('Idempotency-Key on a redemption: the retry replays the answer and redeems nothing more', async () => {
    await ok(t, 'POST', '/v1/vouchers/IDEM-1', { discount: { type: 'AMOUNT', amount_off: 100 } });
    const send = () =>
      t.api('POST', '/v1/vouchers/IDEM-1/redemption', { order: { amount: 1000 } }, { 'idempotency-key': 'redeem-1' });
    const [a, b] = await Promise.all([send(), send()]);
    const c = await send();
    for (const r of [a, b, c]) assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(a.body.id, b.body.id);
    assert.equal(a.body.id, c.body.id);
    assert.equal((await ok(t, 'GET', '/v1/vouchers/IDEM-1')).redemption.redeemed_quantity, 1);
  });
});
