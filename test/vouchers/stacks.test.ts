import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertLedgerInvariants } from '../helpers/invariants.ts';
import { createProgram, startTestServer, type TestServer } from '../helpers/server.ts';
import { allEvents, assertEventsMatchCatalog, customer, ok } from './helpers.ts';

// Stacked redemptions keep a parent redemption (Voucherify's `parent_redemption`): written with
// its children, read back and listed, and rolled back whole through
// POST /v1/redemptions/{parentRedemptionId}/rollbacks (all or none, once).

describe('stacked redemptions: the parent redemption', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  /** A discount voucher and a gift card of `customerId`, fresh codes per call. */
  async function twoVouchers(tag: string, gift = 5000) {
    const off = await ok(t, 'POST', `/v1/vouchers/OFF-${tag}`, {
      type: 'DISCOUNT_VOUCHER',
      discount: { type: 'AMOUNT', amount_off: 300 },
      redemption: { quantity: 1 },
    });
    const card = await ok(t, 'POST', `/v1/vouchers/GIFT-${tag}`, { type: 'GIFT_VOUCHER', gift: { amount: gift } });
    return { off: off.code as string, card: card.code as string };
  }

  const stack = (codes: string[], customerId: string, amount: number, credits = 1000) =>
    t.api('POST', '/v1/redemptions', {
      redeemables: codes.map((id) =>
        id.startsWith('GIFT-') ? { object: 'voucher', id, gift: { credits } } : { object: 'voucher', id },
      ),
      customer: customerId,
      order: { amount, source_id: `order-${codes.join('-')}` },
      metadata: { till: 4 },
    });

  /** A customer, a coupon and a gift card, redeemed together on an order of 50.00 (300 off, 1,000 credits). */
  async function redeemedStack(tag: string) {
    const who = await customer(t, `stack-${tag}`);
    const { off, card } = await twoVouchers(tag);
    const res = await stack([off, card], who.id, 5000);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return { who, off, card, body: res.body, parent: res.body.parent_redemption };
  }

  it('writes a parent with its children, answers it, reads it back and lists it', async () => {
    const { who: ana, off, card, body, parent } = await redeemedStack('A');
    const { redemptions, order } = body;
    assert.equal(redemptions.length, 2);
    assert.match(parent.id, /^r_/);
    assert.equal(parent.object, 'redemption');
    assert.equal(parent.result, 'SUCCESS');
    assert.equal(parent.status, 'SUCCEEDED');
    assert.equal(parent.customer_id, ana.id);
    assert.equal(parent.related_object_type, 'redemption');
    assert.equal(parent.related_object_id, parent.id);
    assert.equal(parent.voucher, null);
    assert.equal(parent.redemption, null);
    assert.deepEqual(parent.metadata, { till: 4 });
    // The whole order: 300 off and 1,000 of gift credits.
    assert.equal(parent.order.amount, 5000);
    assert.equal(parent.order.total_discount_amount, 1300);
    assert.equal(parent.order.total_amount, 3700);
    assert.equal(parent.order.source_id, `order-${off}-${card}`);
    const entry = parent.order.redemptions[parent.id];
    assert.equal(entry.related_object_type, 'redemption');
    assert.deepEqual(
      entry.stacked,
      redemptions.map((r: any) => r.id),
    );
    assert.deepEqual(order, parent.order, 'the answer order is the whole order');
    for (const child of redemptions) {
      assert.notEqual(child.id, parent.id);
      assert.equal(child.parent_redemption_id, parent.id);
      assert.equal(child.redemption, parent.id);
      assert.equal(child.related_object_type, 'voucher');
    }
    assert.deepEqual(
      redemptions.map((r: any) => [r.voucher.code, r.amount]),
      [
        [off, 300],
        [card, 1000],
      ],
    );

    const got = await ok(t, 'GET', `/v1/redemptions/${parent.id}`);
    assert.deepEqual(got, parent);
    const child = await ok(t, 'GET', `/v1/redemptions/${redemptions[1].id}`);
    assert.equal(child.parent_redemption_id, parent.id);

    // Lists show parents and children; the children of one parent by parent_redemption_id.
    const mine = await ok(t, 'GET', `/v1/redemptions?customer=${ana.id}`);
    assert.equal(mine.total, 3);
    assert.deepEqual(
      new Set(mine.redemptions.map((r: any) => r.id)),
      new Set([parent.id, ...redemptions.map((r: any) => r.id)]),
    );
    const children = await ok(t, 'GET', `/v1/redemptions?parent_redemption_id=${parent.id}`);
    assert.deepEqual(new Set(children.redemptions.map((r: any) => r.id)), new Set(redemptions.map((r: any) => r.id)));
    // A voucher's redemptions are its children only.
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${card}/redemption`)).total, 1);

    // One redeemable: no parent, as before.
    const single = await ok(t, 'POST', '/v1/redemptions', {
      redeemables: [{ object: 'voucher', id: card, gift: { credits: 100 } }],
      customer: ana.id,
      order: { amount: 100 },
    });
    assert.equal(single.parent_redemption, undefined);
    assert.equal(single.redemptions[0].redemption, null);
    assert.equal(single.redemptions[0].parent_redemption_id, undefined);
  });

  it('rolls every child back in one transaction, once; a second rollback is refused', async () => {
    const { off, card, body, parent } = await redeemedStack('B');
    const childIds = body.redemptions.map((r: any) => r.id);
    const before = (await allEvents(t)).length;

    const rb = await ok(t, 'POST', `/v1/redemptions/${parent.id}/rollbacks?reason=wrong%20order`);
    assert.equal(rb.rollbacks.length, 2);
    assert.deepEqual(
      rb.rollbacks.map((r: any) => r.redemption),
      childIds,
    );
    for (const r of rb.rollbacks) {
      assert.match(r.id, /^rr_/);
      assert.equal(r.object, 'redemption_rollback');
      assert.equal(r.reason, 'wrong order');
      assert.equal(r.result, 'SUCCESS');
    }
    assert.deepEqual(
      rb.rollbacks.map((r: any) => r.amount),
      [-300, -1000],
    );
    assert.match(rb.parent_rollback.id, /^rr_/);
    assert.equal(rb.parent_rollback.redemption, parent.id);
    assert.equal(rb.parent_rollback.related_object_type, 'redemption');
    assert.equal(rb.parent_rollback.reason, 'wrong order');
    assert.equal(rb.order.redemptions[parent.id].rollback_id, rb.parent_rollback.id);

    // Every row rolled back, the uses and credits back.
    assert.equal((await ok(t, 'GET', `/v1/redemptions/${parent.id}`)).status, 'ROLLED_BACK');
    for (const id of childIds) assert.equal((await ok(t, 'GET', `/v1/redemptions/${id}`)).status, 'ROLLED_BACK');
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${off}`)).redemption.redeemed_quantity, 0);
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${card}`)).gift.balance, 5000);

    const again = await t.api('POST', `/v1/redemptions/${parent.id}/rollbacks`);
    assert.equal(again.status, 422);
    assert.equal(again.body.key, 'already_rolled_back');
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${card}`)).gift.balance, 5000, 'credits given back once');
    // The events of the rollback: nothing for a plain voucher's rollback (as a single rollback), and
    // whatever events there are match the catalog.
    const events = await allEvents(t);
    assertEventsMatchCatalog(events.slice(before));
  });

  it('refuses a stack with a child rolled back on its own, and changes nothing', async () => {
    const { off, card, body, parent } = await redeemedStack('C');
    const [first, second] = body.redemptions;
    // A child alone, through the single rollback: still works.
    const one = await ok(t, 'POST', `/v1/redemptions/${second.id}/rollback`);
    assert.equal(one.redemption, second.id);
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${card}`)).gift.balance, 5000);

    const refused = await t.api('POST', `/v1/redemptions/${parent.id}/rollbacks`);
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    assert.equal(refused.body.key, 'child_already_rolled_back');
    assert.match(refused.body.details, new RegExp(second.id));
    assert.equal((await ok(t, 'GET', `/v1/redemptions/${parent.id}`)).status, 'SUCCEEDED');
    assert.equal((await ok(t, 'GET', `/v1/redemptions/${first.id}`)).status, 'SUCCEEDED');
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${off}`)).redemption.redeemed_quantity, 1);

    // The parent is not a single redemption; a child is not a parent.
    const single = await t.api('POST', `/v1/redemptions/${parent.id}/rollback`);
    assert.equal(single.status, 400);
    assert.equal(single.body.key, 'invalid_redemption');
    const notParent = await t.api('POST', `/v1/redemptions/${first.id}/rollbacks`);
    assert.equal(notParent.status, 400);
    assert.equal(notParent.body.key, 'invalid_redemption_parent');
    assert.equal((await ok(t, 'GET', `/v1/redemptions/${first.id}`)).status, 'SUCCEEDED');
    assert.equal((await t.api('POST', '/v1/redemptions/r_nope/rollbacks')).status, 404);

    // A redemption without a parent rolls back through /rollbacks alone.
    const lone = await ok(t, 'POST', `/v1/vouchers/${card}/redemption`, {
      gift: { credits: 200 },
      order: { amount: 200 },
    });
    const loneRb = await ok(t, 'POST', `/v1/redemptions/${lone.id}/rollbacks`);
    assert.equal(loneRb.rollbacks.length, 1);
    assert.equal(loneRb.rollbacks[0].redemption, lone.id);
    assert.equal(loneRb.parent_rollback, undefined);
  });

  it('rolls back all or none: a child whose rollback is refused leaves every child as it was', async () => {
    // A referral code whose conversion gave the friend 25 points; the friend spends them, so undoing
    // the conversion (the referral child's rollback) is refused after the gift card's was done.
    const program = await createProgram(t);
    const referrer = await customer(t, 'stack-referrer');
    await ok(t, 'POST', '/v1/campaigns', {
      name: 'Stack friends',
      campaign_type: 'REFERRAL_PROGRAM',
      voucher: { type: 'DISCOUNT_VOUCHER', discount: { type: 'AMOUNT', amount_off: 100 } },
      referral_program: {
        conversion_event_type: 'redemption',
        referee_reward: {
          related_object_parent: { id: program.id, name: program.name, object: 'CAMPAIGN' },
          type: 'LOYALTY_CARD',
          amount: 25,
        },
      },
    });
    const pub = await ok(t, 'POST', '/v1/publications', { campaign: 'Stack friends', customer: referrer.id });
    const friend = await customer(t, 'stack-friend');
    const card = (await ok(t, 'POST', '/v1/vouchers/GIFT-D', { type: 'GIFT_VOUCHER', gift: { amount: 5000 } })).code;
    const res = await stack([card, pub.voucher.code], friend.id, 3000);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const parent = res.body.parent_redemption;
    const members = await ok(t, 'GET', `/v1/loyalties/${program.id}/members?customer=${friend.id}`);
    const friendCard = members.vouchers[0].code;
    assert.equal((await ok(t, 'GET', `/v1/loyalties/members/${friendCard}`)).loyalty_card.points, 25);
    await ok(t, 'POST', `/v1/loyalties/members/${friendCard}/balance`, { points: -25 });

    const refused = await t.api('POST', `/v1/redemptions/${parent.id}/rollbacks`);
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    assert.equal(refused.body.key, 'insufficient_balance', 'the referral child: its points were spent');
    // Nothing changed: the gift card's rollback (done first) went with the refused transaction.
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${card}`)).gift.balance, 4000);
    assert.equal((await ok(t, 'GET', `/v1/redemptions/${parent.id}`)).status, 'SUCCEEDED');
    for (const r of res.body.redemptions)
      assert.equal((await ok(t, 'GET', `/v1/redemptions/${r.id}`)).status, 'SUCCEEDED');
  });

  it('a refused stack keeps a FAILURE parent beside the refused child', async () => {
    const di = await customer(t, 'stack-di');
    const { off, card } = await twoVouchers('E');
    await ok(t, 'POST', `/v1/vouchers/${off}/disable`);
    const res = await stack([card, off], di.id, 5000);
    assert.equal(res.status, 422);
    assert.equal(res.body.key, 'voucher_disabled');
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${card}`)).gift.balance, 5000, 'nothing redeemed');
    const failed = await ok(t, 'GET', `/v1/redemptions?customer=${di.id}&result=FAILURE`);
    assert.equal(failed.total, 2);
    const child = failed.redemptions.find((r: any) => r.related_object_type === 'voucher');
    const parent = failed.redemptions.find((r: any) => r.related_object_type === 'redemption');
    assert.equal(child.voucher.code, off);
    assert.equal(child.failure_code, 'voucher_disabled');
    assert.equal(child.parent_redemption_id, parent.id);
    assert.equal(parent.status, 'FAILED');
    assert.equal(parent.failure_code, 'voucher_disabled');
    assert.equal(parent.customer_id, di.id);
    assert.equal(parent.voucher, null);
    const noRollback = await t.api('POST', `/v1/redemptions/${parent.id}/rollbacks`);
    assert.equal(noRollback.status, 422);
    assert.equal(noRollback.body.key, 'redemption_failed');
  });

  it('8 concurrent rollbacks of one parent roll it back once', async () => {
    const { off, card, parent } = await redeemedStack('F');
    const before = await allEvents(t);
    const results = await Promise.all(
      Array.from({ length: 8 }, () => t.api('POST', `/v1/redemptions/${parent.id}/rollbacks`)),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, ...Array(7).fill(422)], JSON.stringify(results.map((r) => r.body)));
    for (const r of results.filter((x) => x.status === 422)) assert.equal(r.body.key, 'already_rolled_back');
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${card}`)).gift.balance, 5000, 'credits given back once');
    assert.equal((await ok(t, 'GET', `/v1/vouchers/${off}`)).redemption.redeemed_quantity, 0);
    const rolled = await ok(t, 'GET', `/v1/redemptions?parent_redemption_id=${parent.id}`);
    assert.ok(rolled.redemptions.every((r: any) => r.status === 'ROLLED_BACK'));
    assert.equal((await allEvents(t)).length, before.length, 'a plain voucher rollback emits no event');
  });
});
