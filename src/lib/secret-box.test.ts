import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  generateSecretKey,
  isSealed,
  keyIdOf,
  matchesDigest,
  parseSecretKeys,
  SecretBox,
  SecretKeyError,
  SecretOpenError,
} from './secret-box.ts';

describe('secret box', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);

  it('round trip: the sealed form names the key and hides the value', () => {
    const box = new SecretBox([k1]);
    const sealed = box.seal('whsec_abc', 'webhook_endpoints:whep_1');
    assert.ok(isSealed(sealed));
    assert.match(sealed, new RegExp(`^enc:v1:${keyIdOf(k1)}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]+$`));
    assert.ok(!sealed.includes('whsec_abc'));
    assert.notEqual(box.seal('whsec_abc', 'webhook_endpoints:whep_1'), sealed, 'a fresh IV each time');
    assert.equal(box.open(sealed, 'webhook_endpoints:whep_1'), 'whsec_abc');
    assert.equal(box.open(box.seal('', 'c'), 'c'), '');
    assert.equal(box.open(box.seal('ünïcødé ✓', 'c'), 'c'), 'ünïcødé ✓');
  });

  it('a wrong key fails with a clear error, not garbage', () => {
    const sealed = new SecretBox([k1]).seal('secret', 'c');
    assert.throws(
      () => new SecretBox([k2]).open(sealed, 'c'),
      (e: Error) => e instanceof SecretOpenError && /not among the configured keys/.test(e.message),
    );
    // Same key id forged onto another key's box: authentication fails.
    const forged = sealed.replace(keyIdOf(k1), keyIdOf(k2));
    assert.throws(() => new SecretBox([k2]).open(forged, 'c'), /does not authenticate/);
  });

  it('tampering and moving a value to another record fail', () => {
    const box = new SecretBox([k1]);
    const sealed = box.seal('secret-value', 'msg_channels:chn_1:api_key');
    const parts = sealed.split(':');
    const body = Buffer.from(parts[4], 'base64url');
    body[0] ^= 1;
    const tampered = [...parts.slice(0, 4), body.toString('base64url')].join(':');
    assert.throws(() => box.open(tampered, 'msg_channels:chn_1:api_key'), SecretOpenError);
    assert.throws(() => box.open(sealed, 'msg_channels:chn_2:api_key'), SecretOpenError);
    assert.throws(() => box.open('enc:v1:abc', 'x'), /enc:v1 format/);
    assert.throws(() => box.open('clear text', 'x'), /enc:v1 format/);
  });

  it('rotation: open with any listed key, seal with the first; reseal moves old values', () => {
    const old = new SecretBox([k1]);
    const sealedOld = old.seal('token', 'c');
    const both = new SecretBox([k2, k1]);
    assert.equal(both.currentKeyId, keyIdOf(k2));
    assert.deepEqual(both.keyIds, [keyIdOf(k2), keyIdOf(k1)]);
    assert.equal(both.open(sealedOld, 'c'), 'token');
    assert.equal(both.keyIdOf(both.seal('x', 'c')), keyIdOf(k2));
    const moved = both.reseal(sealedOld, 'c');
    assert.equal(both.keyIdOf(moved), keyIdOf(k2));
    assert.equal(both.reseal(moved, 'c'), moved, 'already current: unchanged');
    const newOnly = new SecretBox([k2]);
    assert.equal(newOnly.open(moved, 'c'), 'token', 'the old key can be dropped');
    assert.throws(() => newOnly.open(sealedOld, 'c'), SecretOpenError);
  });

  it('sealed digests compare without keeping the secret, and survive a rotation', () => {
    const box = new SecretBox([k1]);
    const sealed = box.sealDigest('inbound-token-123456', 'c');
    assert.ok(!sealed.includes('inbound-token'));
    const d = box.openDigest(sealed, 'c');
    assert.ok(matchesDigest('inbound-token-123456', d));
    assert.ok(!matchesDigest('inbound-token-123457', d));
    assert.ok(!matchesDigest('', d));
    assert.notEqual(
      box.openDigest(box.sealDigest('inbound-token-123456', 'c'), 'c').hash.toString('hex'),
      d.hash.toString('hex'),
      'salted',
    );
    const rotated = new SecretBox([k2, k1]).reseal(sealed, 'c');
    assert.ok(matchesDigest('inbound-token-123456', new SecretBox([k2]).openDigest(rotated, 'c')));
  });

  it('parses keys as base64, base64url or hex, several separated by commas or spaces', () => {
    const b64 = k1.toString('base64');
    assert.deepEqual(parseSecretKeys(b64), [k1]);
    assert.deepEqual(parseSecretKeys(k1.toString('base64url')), [k1]);
    assert.deepEqual(parseSecretKeys(k1.toString('hex')), [k1]);
    assert.deepEqual(parseSecretKeys(` ${k2.toString('hex')}, ${b64}\n`), [k2, k1]);
    assert.equal(Buffer.from(generateSecretKey(), 'base64').length, 32);
    for (const bad of [
      '',
      'short',
      randomBytes(16).toString('base64'),
      randomBytes(31).toString('hex'),
      `${b64},${b64}`,
      `${b64}!`,
    ]) {
      assert.throws(() => parseSecretKeys(bad), SecretKeyError, `refused: ${JSON.stringify(bad)}`);
    }
    assert.throws(() => parseSecretKeys('nope'), /TALLY_SECRET_KEY is not a 32-byte key/);
    assert.throws(() => parseSecretKeys(`${b64},nope`, 'data/tally.key'), /data\/tally.key \(key 2 of 2\)/);
  });
});
