import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { boundInbound, cutText, MAX_CONTACT_NAME, MAX_INBOUND_TEXT } from './types.ts';

describe('inbound message bounds', () => {
  it('cuts text without splitting an emoji', () => {
    assert.equal(cutText('abc', 3), 'abc');
    assert.equal(cutText('abcd', 3), 'abc');
    assert.equal(cutText('ab👍', 3), 'ab');
    assert.equal(cutText('a👍b', 3), 'a👍');
  });

  it('keeps a message within the limits as it is, and cuts text and contact name beyond them', () => {
    const msg = { providerMessageId: 'm', from: '+38591000', to: '', text: 'POINTS', kind: 'SMS', contactName: 'A' };
    assert.equal(boundInbound(msg), msg);
    const big = boundInbound({ ...msg, text: 'x'.repeat(MAX_INBOUND_TEXT * 3), contactName: 'n'.repeat(10_000) });
    assert.equal(big.text.length, MAX_INBOUND_TEXT);
    assert.equal(big.contactName?.length, MAX_CONTACT_NAME);
    assert.equal(boundInbound({ ...msg, text: 'x'.repeat(MAX_INBOUND_TEXT + 1), contactName: null }).contactName, null);
  });
});
