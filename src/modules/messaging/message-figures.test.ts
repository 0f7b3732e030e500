import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  COUNTED,
  DELIVERED,
  FAILED,
  INBOUND,
  MESSAGED,
  SENT,
  WRITING,
  addMatches,
  countChange,
  figuresOf,
  memberChange,
} from './message-figures.ts';

const out = (status: string, sent = false, member = true) => ({
  direction: 'out',
  status,
  sent_at: sent ? '2026-03-01T10:00:00.000Z' : null,
  membership_id: member ? 'mem_1' : null,
});

describe('message figures', () => {
  it('gives an outbound message its bits by status', () => {
    assert.equal(figuresOf(out('queued')), COUNTED | MESSAGED);
    assert.equal(figuresOf(out('sent', true)), COUNTED | SENT | MESSAGED);
    assert.equal(figuresOf(out('delivered', true)), COUNTED | SENT | DELIVERED | MESSAGED);
    assert.equal(figuresOf(out('failed')), COUNTED | FAILED | MESSAGED, 'failed, never sent: still messaged');
    assert.equal(figuresOf(out('cancelled')), COUNTED, 'opted out before sending: not messaged');
    assert.equal(figuresOf(out('skipped')), COUNTED);
    assert.equal(figuresOf(out('sent', true, false)), COUNTED | SENT, 'to no member');
  });

  it('gives an inbound message its bits', () => {
    const m = { direction: 'in', status: 'processed', sent_at: null };
    assert.equal(figuresOf({ ...m, membership_id: 'mem_1' }), COUNTED | INBOUND | WRITING);
    assert.equal(figuresOf({ ...m, membership_id: null }), COUNTED | INBOUND);
  });

  it('moves each count once from what was counted to what is', () => {
    const zero = { messages: 0, messages_sent: 0, delivered: 0, failed: 0, inbound: 0 };
    assert.deepEqual(countChange(0, figuresOf(out('queued'))), { ...zero, messages: 1 });
    assert.deepEqual(countChange(figuresOf(out('sent', true)), figuresOf(out('delivered', true))), {
      ...zero,
      delivered: 1,
    });
    assert.deepEqual(countChange(figuresOf(out('delivered', true)), figuresOf(out('failed', true))), {
      ...zero,
      delivered: -1,
      failed: 1,
    });
    assert.deepEqual(countChange(COUNTED | INBOUND, COUNTED | INBOUND), zero);
  });

  it('counts a member replied only while both messaged and writing on the day', () => {
    assert.deepEqual(memberChange(0, MESSAGED), { messaged: 1, writing: 0, replied: 0 });
    assert.deepEqual(memberChange(MESSAGED, MESSAGED | WRITING), { messaged: 0, writing: 1, replied: 1 });
    assert.deepEqual(memberChange(WRITING, MESSAGED | WRITING), { messaged: 1, writing: 0, replied: 1 });
    assert.deepEqual(memberChange(MESSAGED | WRITING, WRITING), { messaged: -1, writing: 0, replied: -1 });
    assert.deepEqual(memberChange(0, MESSAGED | WRITING), { messaged: 1, writing: 1, replied: 1 });
    assert.deepEqual(memberChange(MESSAGED, MESSAGED), { messaged: 0, writing: 0, replied: 0 });
  });

  it('adds keyword matches as own keys, whatever the alias', () => {
    const matches: Record<string, number> = JSON.parse('{"POINTS":2}');
    for (const alias of ['constructor', '__proto__', 'toString', 'POINTS', '__proto__']) addMatches(matches, alias, 1);
    assert.equal(JSON.stringify(matches), '{"POINTS":3,"constructor":1,"__proto__":2,"toString":1}');
    assert.equal(Object.getPrototypeOf(matches), Object.prototype);
  });
});
