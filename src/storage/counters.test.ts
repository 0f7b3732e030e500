import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COUNTER_SLOTS, counterSlot } from './counters.ts';

describe('counterSlot', () => {
  it('gives a transaction one slot for all its changes', () => {
    const trx = {};
    const slot = counterSlot(trx);
    for (let i = 0; i < 5; i++) assert.equal(counterSlot(trx), slot);
    assert.ok(slot >= 0 && slot < COUNTER_SLOTS);
  });

  it('gives transactions that start counting one after another different slots, in turn', () => {
    const seen = new Set(Array.from({ length: COUNTER_SLOTS }, () => counterSlot({})));
    assert.equal(seen.size, COUNTER_SLOTS);
  });
});
