import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newId } from './ids.ts';

describe('newId', () => {
  it('ids made one after another sort in creation order, inside one millisecond too', () => {
    const ids = Array.from({ length: 5000 }, () => newId('rft'));
    const sorted = [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    assert.deepEqual(sorted, ids);
    assert.equal(new Set(ids).size, ids.length);
  });

  it('keeps the asked length and prefix; short ids are all random', () => {
    assert.match(newId('v', 32), /^v_[0-9A-Za-z]{32}$/);
    assert.match(newId('cust'), /^cust_[0-9A-Za-z]{24}$/);
    assert.match(newId('key', 12), /^key_[0-9A-Za-z]{12}$/);
  });
});
