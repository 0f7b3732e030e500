import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ManualClock } from '../../src/lib/clock.ts';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from '../helpers/server.ts';
import { allEvents, assertEventsMatchCatalog } from '../vouchers/helpers.ts';

// Rolling a reward redemption back undoes all of it: the points go back to the very lots the debit
// took (their own expiry dates, not fresh points), the stock comes back, the gift card value is taken
// off the card (refused once spent). A second rollback is refused and changes nothing.
describe('reward redemption rollback', () => {
  let t: TestServer;
  let clock: ManualClock;
  before(async () => {
    t = await startTestServer({ manualClock: true });
    clock = t.clock as ManualClock;
    clock.set('2033-01-01T00:00:00.000Z');
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  const ok = async (method: string, path: string, body?: unknown) => {
    const res = await t.api(method, path, body);
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const card = async (code: string) => {
    const { points, balance, subtracted_points } = (await ok('GET', `/v1/loyalties/members/${code}`)).loyalty_card;
    return { points, balance, subtracted: subtracted_points };
  };
  const lots = async (programId: string, code: string) =>
    (await ok('GET', `/v1/loyalties/${programId}/members/${code}/points-expiration`)).data.map((l: any) => [
      l.expires_at,
      l.bucket.total_points,
    ]);

  it('gives the points back to their lots with their expiry dates; the stock back; twice is refused', async () => {
    const program = await createProgram(t);
    const reward = await ok('POST', '/v1/rewards', { name: 'Mug', stock: 1, parameters: { product: { id: 'mug' } } });
    await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 70 } } },
    ]);
    const m = await createMember(t, program.id);
    for (const [points, date] of [
      [50, '2033-02-01T00:00:00.000Z'],
      [50, '2033-06-01T00:00:00.000Z'],
    ] as const)
      await ok('POST', `/v1/loyalties/members/${m.code}/balance`, {
        points,
        expiration_type: 'CUSTOM_DATE',
        expiration_date: date,
      });

    const r = await ok('POST', `/v1/loyalties/members/${m.code}/redemption`, { reward: { id: reward.id } });
    // The debit took the earliest-expiring lot first.
    assert.deepEqual(await lots(program.id, m.code), [['2033-06-01T00:00:00.000Z', 30]]);
    assert.deepEqual(await card(m.code), { points: 100, balance: 30, subtracted: 70 });

    // The first lot's date passes while its points are spent: its expiry finds nothing to take.
    clock.set('2033-03-01T00:00:00.000Z');
    await t.server.ctx.scheduler.runDue();
    assert.equal((await card(m.code)).balance, 30);

    const rb = await ok('POST', `/v1/redemptions/${r.id}/rollback`, { reason: 'returned' });
    assert.equal(rb.redemption, r.id);
    // The refund is the same points back, not new ones: lifetime points stay 100.
    assert.deepEqual(await card(m.code), { points: 100, balance: 100, subtracted: 0 });
    assert.equal((await ok('GET', `/v1/rewards/${reward.id}`)).redeemed, 0, 'the unit of stock is back');
    const refund = (await ok('GET', `/v1/loyalties/members/${m.code}/transactions`)).data.find(
      (x: any) => x.type === 'POINTS_REFUND',
    );
    assert.equal(refund.details.rollback.id, rb.id);
    assert.equal(refund.details.redemption.id, r.id);

    // The 50 points of the lot whose date has passed expire again, as they would have unspent.
    await t.server.ctx.scheduler.runDue();
    assert.deepEqual(await card(m.code), { points: 50, balance: 50, subtracted: 0 });
    assert.deepEqual(await lots(program.id, m.code), [['2033-06-01T00:00:00.000Z', 50]]);

    // Rolled back twice: refused, nothing changes.
    const eventsBefore = (await allEvents(t)).length;
    const again = await t.api('POST', `/v1/redemptions/${r.id}/rollback`);
    assert.equal(again.status, 422);
    assert.equal(again.body.key, 'already_rolled_back');
    assert.deepEqual(await card(m.code), { points: 50, balance: 50, subtracted: 0 });
    assert.equal((await ok('GET', `/v1/rewards/${reward.id}`)).redeemed, 0);
    assert.equal((await allEvents(t)).length, eventsBefore);
    assert.equal((await ok('GET', `/v1/redemptions/${r.id}`)).status, 'ROLLED_BACK');
  });

  it('takes gift card value back; refused with nothing changed once that value was spent', async () => {
    const program = await createProgram(t);
    const campaign = await ok('POST', '/v1/campaigns', {
      name: 'Gift rollback',
      campaign_type: 'GIFT_VOUCHERS',
      voucher: { type: 'GIFT_VOUCHER', gift: { amount: 0 } },
    });
    const reward = await ok('POST', '/v1/rewards', {
      name: 'Ten on your gift card',
      parameters: { campaign: { id: campaign.id, balance: 1000 } },
    });
    await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 20 } } },
    ]);
    const m = await createMember(t, program.id);
    await ok('POST', `/v1/loyalties/members/${m.code}/balance`, { points: 50 });
    const first = await ok('POST', `/v1/loyalties/members/${m.code}/redemption`, { reward: { id: reward.id } });
    const second = await ok('POST', `/v1/loyalties/members/${m.code}/redemption`, { reward: { id: reward.id } });
    const giftCode = second.reward.voucher.code;
    assert.equal((await ok('GET', `/v1/vouchers/${giftCode}`)).gift.balance, 2000);

    await ok('POST', `/v1/redemptions/${second.id}/rollback`);
    const gift = await ok('GET', `/v1/vouchers/${giftCode}`);
    assert.equal(gift.gift.balance, 1000);
    assert.equal(gift.gift.amount, 1000);
    assert.equal((await card(m.code)).balance, 30);

    // Spend part of the card: the first redemption's 1000 are no longer all there.
    await ok('POST', `/v1/vouchers/${giftCode}/redemption`, {
      customer: m.holder_id,
      order: { amount: 400 },
    });
    const eventsBefore = (await allEvents(t)).length;
    const refused = await t.api('POST', `/v1/redemptions/${first.id}/rollback`);
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    assert.equal(refused.body.key, 'gift_balance_spent');
    assert.match(refused.body.details, /holds 600/);
    assert.equal((await ok('GET', `/v1/vouchers/${giftCode}`)).gift.balance, 600);
    assert.equal((await card(m.code)).balance, 30, 'no points back');
    assert.equal((await ok('GET', `/v1/redemptions/${first.id}`)).status, 'SUCCEEDED');
    assert.equal((await allEvents(t)).length, eventsBefore);
  });

  it('revokes the voucher a DISCOUNT_COUPONS reward issued (voucher_revoked)', async () => {
    const program = await createProgram(t);
    const campaign = await ok('POST', '/v1/campaigns', {
      name: 'Coupons rollback',
      voucher: { type: 'DISCOUNT_VOUCHER', discount: { type: 'AMOUNT', amount_off: 500 } },
    });
    const reward = await ok('POST', '/v1/rewards', { name: 'Five off', parameters: { campaign: { id: campaign.id } } });
    await ok('POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 10 } } },
    ]);
    const m = await createMember(t, program.id);
    await ok('POST', `/v1/loyalties/members/${m.code}/balance`, { points: 10 });
    const r = await ok('POST', `/v1/loyalties/members/${m.code}/redemption`, { reward: { id: reward.id } });
    const code = r.reward.voucher.code;
    await ok('POST', `/v1/redemptions/${r.id}/rollback`);
    assert.equal((await ok('GET', `/v1/vouchers/${code}`)).active, false);
    const refused = await t.api('POST', `/v1/vouchers/${code}/redemption`, {
      customer: m.holder_id,
      order: { amount: 1000 },
    });
    assert.equal(refused.body.key, 'voucher_disabled');
    const events = (await allEvents(t)).filter((e) => e.data?.code === code);
    assert.deepEqual(
      events.map((e) => e.type),
      ['voucher_created', 'voucher_revoked', 'voucher_redeem_unauthorized'],
    );
    assertEventsMatchCatalog(events);
  });
});
