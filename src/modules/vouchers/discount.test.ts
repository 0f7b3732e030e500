import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { discountAmount, giftCredits, orderAfter, orderAmount } from './discount.ts';

describe('voucher discount arithmetic', () => {
  it('AMOUNT: amount_off, never more than the order', () => {
    assert.equal(discountAmount({ type: 'AMOUNT', amount_off: 1000 }, { amount: 5000 }), 1000);
    assert.equal(discountAmount({ type: 'AMOUNT', amount_off: 1000 }, { amount: 700 }), 700);
    assert.equal(discountAmount({ type: 'AMOUNT', amount_off: 1000 }, undefined), 0);
  });

  it('PERCENT: rounded half up to the cent, capped by amount_limit', () => {
    assert.equal(discountAmount({ type: 'PERCENT', percent_off: 10 }, { amount: 12345 }), 1235);
    assert.equal(discountAmount({ type: 'PERCENT', percent_off: 10 }, { amount: 12344 }), 1234);
    assert.equal(discountAmount({ type: 'PERCENT', percent_off: 50, amount_limit: 2000 }, { amount: 10000 }), 2000);
    assert.equal(discountAmount({ type: 'PERCENT', percent_off: 150 }, { amount: 100 }), 100);
  });

  it('UNIT: the matching item price per free unit, at most its quantity', () => {
    const order = {
      items: [
        { product_id: 'prod_1', price: 300, quantity: 2 },
        { sku_id: 'sku_x', price: 50 },
      ],
    };
    assert.equal(orderAmount(order), 650);
    assert.equal(discountAmount({ type: 'UNIT', unit_off: 1, unit_type: 'prod_1' }, order), 300);
    assert.equal(discountAmount({ type: 'UNIT', unit_off: 5, unit_type: 'prod_1' }, order), 600);
    assert.equal(discountAmount({ type: 'UNIT', unit_off: 1, unit_type: 'sku_x' }, order), 50);
    assert.equal(discountAmount({ type: 'UNIT', unit_off: 1, unit_type: 'other' }, order), 0);
  });

  it('gift credits: asked or the order amount, at most the balance', () => {
    assert.equal(giftCredits(1000, 300, { amount: 5000 }), 300);
    assert.equal(giftCredits(1000, undefined, { amount: 400 }), 400);
    assert.equal(giftCredits(1000, undefined, { amount: 5000 }), 1000);
    assert.equal(giftCredits(0, undefined, { amount: 5000 }), 0);
  });

  it('the order after the discount', () => {
    const o = orderAfter({ amount: 5000, source_id: 'o1' }, 1000);
    assert.equal(o.total_amount, 4000);
    assert.equal(o.discount_amount, 1000);
    assert.equal(o.source_id, 'o1');
  });
});
