import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { customer, ok } from './helpers.ts';

describe('vouchers: every write route stores its Idempotency-Key answer', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => t.close());

  it('a keyed request to each write route is replayed to its retry', async () => {
    const c = await customer(t, 'idem-voucher');
    await ok(t, 'POST', '/v1/vouchers/IDEM-V', { discount: { type: 'AMOUNT', amount_off: 100 } });
    const discount = { type: 'AMOUNT', amount_off: 100 };
    const routes: [string, string, unknown?][] = [
      ['POST', '/v1/campaigns', { name: 'idem', voucher: { type: 'DISCOUNT_VOUCHER', discount } }],
      ['PUT', '/v1/campaigns/nope', {}],
      ['DELETE', '/v1/campaigns/nope'],
      ['POST', '/v1/campaigns/nope/import', ['X-1']],
      ['POST', '/v1/campaigns/idem/vouchers', {}],
      ['POST', '/v1/campaigns/idem/vouchers/IDEM-CODE', {}],
      ['POST', '/v1/vouchers', { discount }],
      ['POST', '/v1/vouchers/IDEM-NEW', { discount }],
      ['PUT', '/v1/vouchers/nope', {}],
      ['DELETE', '/v1/vouchers/nope'],
      ['POST', '/v1/vouchers/IDEM-V/disable'],
      ['POST', '/v1/vouchers/IDEM-V/enable'],
      ['POST', '/v1/publications', { campaign: 'idem', customer: c.id }],
      ['POST', '/v1/vouchers/IDEM-V/validate', { order: { amount: 500 } }],
      ['POST', '/v1/validations', { redeemables: [{ object: 'voucher', id: 'IDEM-V' }], order: { amount: 500 } }],
      ['POST', '/v1/vouchers/IDEM-V/redemption', { order: { amount: 500 } }],
      ['POST', '/v1/redemptions', { redeemables: [{ object: 'voucher', id: 'IDEM-V' }], order: { amount: 500 } }],
      ['POST', '/v1/redemptions/r_nope/rollback'],
    ];
    const unstored: string[] = [];
    for (const [i, [method, path, body]] of routes.entries()) {
      const key = `voucher-route-${i}`;
      const first = await t.api(method, path, body, { 'idempotency-key': key });
      assert.ok(
        first.status < 500 && first.body?.key !== 'invalid_payload',
        `${method} ${path}: ${first.status} ${JSON.stringify(first.body)}`,
      );
      const again = await t.api(method, path, body, { 'idempotency-key': key });
      if (again.headers.get('idempotent-replayed') !== 'true' || again.status !== first.status)
        unstored.push(`${method} ${path} (${first.status}, then ${again.status})`);
    }
    assert.deepEqual(unstored, []);
    // The replayed redemptions redeemed once each.
    assert.equal((await ok(t, 'GET', '/v1/vouchers/IDEM-V')).redemption.redeemed_quantity, 2);
  });
});
