import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextTier, refereeMatches, type TierRule, tiersEarned } from './rules.ts';

const each: TierRule = { id: 'each', kind: 'EACH_REFEREE', referees: 1, conditions: null };
const three: TierRule = { id: 'three', kind: 'MIN_REFEREES', referees: 3, conditions: null };
const five: TierRule = { id: 'five', kind: 'MIN_REFEREES', referees: 5, conditions: null };
const vip: TierRule = {
  id: 'vip',
  kind: 'EACH_REFEREE',
  referees: 1,
  conditions: { referee: { metadata: { vip: true } } },
};
const anyone = { metadata: {} };

describe('referral rules', () => {
  it('EACH_REFEREE earns at every referee, MIN_REFEREES once at its count', () => {
    assert.deepEqual(
      tiersEarned([each, three], 1, anyone).map((t) => t.id),
      ['each'],
    );
    assert.deepEqual(
      tiersEarned([each, three], 3, anyone).map((t) => t.id),
      ['each', 'three'],
    );
    assert.deepEqual(
      tiersEarned([three], 4, anyone).map((t) => t.id),
      [],
    );
  });

  it('conditions on the referee: metadata equality', () => {
    assert.equal(refereeMatches(null, anyone), true);
    assert.equal(refereeMatches(vip.conditions, anyone), false);
    assert.equal(refereeMatches(vip.conditions, { metadata: { vip: true } }), true);
    assert.equal(refereeMatches(vip.conditions, { metadata: { vip: 'true' } }), false);
    assert.deepEqual(
      tiersEarned([vip], 1, { metadata: { vip: true } }).map((t) => t.id),
      ['vip'],
    );
  });

  it('the next tier: the soonest, with the referees it still needs', () => {
    assert.deepEqual(nextTier([three, five], 0), { tier: three, tiers: [three], referees_needed: 3 });
    assert.deepEqual(nextTier([three, five], 3), { tier: five, tiers: [five], referees_needed: 2 });
    assert.equal(nextTier([three, five], 5), null);
    assert.deepEqual(nextTier([five, each], 2), { tier: each, tiers: [each], referees_needed: 1 });
    // The third friend earns both the per-friend tier and the 3-friend one.
    assert.deepEqual(nextTier([each, three], 2), { tier: each, tiers: [each, three], referees_needed: 1 });
    assert.equal(nextTier([], 0), null);
  });
});
