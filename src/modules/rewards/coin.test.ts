import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coinQuote, toRatioNumber } from './coin.ts';

describe('COIN reward arithmetic', () => {
  const r = { exchange_ratio: 20, points_ratio: 100 };

  it("matches Voucherify's examples: 100 points = 2000 cents; a 45000 order without points costs 2300", () => {
    assert.deepEqual(coinQuote(r, 45000, { points: 100, balance: 5000 }), { points: 100, discount: 2000 });
    assert.deepEqual(coinQuote(r, 45000, { balance: 1_000_000 }), { points: 2300, discount: 45000 });
  });

  it('spends whole units of points_ratio only, and never more than the order needs', () => {
    assert.deepEqual(coinQuote(r, 45000, { points: 150, balance: 5000 }), { points: 100, discount: 2000 });
    assert.deepEqual(coinQuote(r, 3000, { points: 1000, balance: 5000 }), { points: 200, discount: 3000 });
    assert.equal(coinQuote(r, 3000, { points: 99, balance: 5000 }), 'points_below_ratio');
  });

  it('without points, pays what the balance allows', () => {
    assert.deepEqual(coinQuote(r, 45000, { balance: 750 }), { points: 700, discount: 14000 });
    assert.equal(coinQuote(r, 45000, { balance: 99 }), 'balance_below_ratio');
  });

  it('rounds the unit value to 6 decimals and a fractional discount down to a cent', () => {
    // 0.29 × 100 is 28.999999999999996 in floating point: 2900 cents would need 101 units unrounded.
    assert.deepEqual(coinQuote({ exchange_ratio: 0.29, points_ratio: 10 }, 2900, { balance: 10_000 }), {
      points: 1000,
      discount: 2900,
    });
    // 0.005 currency units per point: 3 units are 1.5 cents, rounded down to 1.
    assert.deepEqual(coinQuote({ exchange_ratio: 0.005, points_ratio: 1 }, 1000, { points: 3, balance: 10 }), {
      points: 3,
      discount: 1,
    });
  });

  it('reads ratios given as strings or numbers', () => {
    assert.equal(toRatioNumber('20'), 20);
    assert.equal(toRatioNumber(0.5), 0.5);
    assert.equal(toRatioNumber('x'), undefined);
    assert.equal(toRatioNumber(''), undefined);
  });
});
