import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  consentIntent,
  matches,
  normalize,
  normalizeKeyword,
  pickTrigger,
  pickTriggers,
  rawTokens,
  tokenize,
} from './keywords.ts';

describe('keyword matching rules', () => {
  it('tokenises on punctuation and spaces, emoji are tokens of their own', () => {
    assert.deepEqual(tokenize('Points!'), ['points']);
    assert.deepEqual(tokenize('  points  '), ['points']);
    assert.deepEqual(tokenize('POINTS please'), ['points', 'please']);
    assert.deepEqual(tokenize('points,please'), ['points', 'please']);
    assert.deepEqual(tokenize("don't_stop 42"), ["don't_stop", '42']);
    assert.deepEqual(tokenize('👍points'), ['👍', 'points']);
    assert.deepEqual(tokenize('points👍'), ['points', '👍']);
    assert.deepEqual(tokenize('...'), []);
    assert.deepEqual(rawTokens('POINTS Ab12Cd34'), ['POINTS', 'Ab12Cd34']);
  });

  it('is case- and accent-insensitive (NFKD, marks stripped)', () => {
    assert.equal(normalize('PÖINTS'), 'points');
    assert.equal(normalize('Pöints'), 'points');
    assert.equal(normalize('ＰＯＩＮＴＳ'), 'points');
    assert.equal(normalize('Bodovi ČŠŽ'), 'bodovi csz');
    assert.deepEqual(tokenize('Pöints?'), ['points']);
  });

  it('matches first_word and only_word', () => {
    assert.equal(matches(tokenize('points please'), 'points', 'first_word'), true);
    assert.equal(matches(tokenize('points please'), 'points', 'only_word'), false);
    assert.equal(matches(tokenize('Points!'), 'points', 'only_word'), true);
    assert.equal(matches(tokenize('my points'), 'points', 'first_word'), false);
    assert.equal(matches(tokenize('pointsy'), 'points', 'first_word'), false);
  });

  it('validates keywords: one token of 1 to 16 characters', () => {
    assert.equal(normalizeKeyword('POINTS'), 'points');
    assert.equal(normalizeKeyword('Bälance'), 'balance');
    assert.equal(normalizeKeyword('two words'), null);
    assert.equal(normalizeKeyword(''), null);
    assert.equal(normalizeKeyword('abcdefghijklmnopq'), null);
  });

  it('picks the most specific trigger', () => {
    const base = { keyword: 'points', alias: 'POINTS', created_at: '2026-01-01T00:00:00Z' };
    const unboundFirst = { ...base, flow_id: 'a', match: 'first_word', channel_id: '' };
    const unboundOnly = { ...base, flow_id: 'b', match: 'only_word', channel_id: '' };
    const boundFirst = { ...base, flow_id: 'c', match: 'first_word', channel_id: 'chn_1' };
    const otherChannel = { ...base, flow_id: 'd', match: 'only_word', channel_id: 'chn_2' };
    const all = [unboundFirst, unboundOnly, boundFirst, otherChannel];
    assert.equal(pickTrigger(tokenize('points'), all, 'chn_1')?.flow_id, 'c');
    assert.equal(pickTrigger(tokenize('points'), all, 'chn_3')?.flow_id, 'b');
    assert.equal(pickTrigger(tokenize('points please'), all, 'chn_3')?.flow_id, 'a');
    assert.equal(pickTrigger(tokenize('points'), [unboundFirst, otherChannel], 'chn_2')?.flow_id, 'd');
    assert.equal(pickTrigger(tokenize('hello'), all, 'chn_1'), null);
  });

  it('answers every equally specific trigger, oldest first (programs sharing a number)', () => {
    const base = { keyword: 'points', alias: 'POINTS', match: 'first_word', channel_id: 'chn_1' };
    const newer = { ...base, flow_id: 'books', created_at: '2026-02-01T00:00:00Z' };
    const older = { ...base, flow_id: 'coffee', created_at: '2026-01-01T00:00:00Z' };
    const unbound = { ...base, flow_id: 'any', channel_id: '', created_at: '2025-01-01T00:00:00Z' };
    const tied = pickTriggers(tokenize('points'), [newer, unbound, older], 'chn_1');
    assert.deepEqual(
      tied.map((c) => c.flow_id),
      ['coffee', 'books'],
    );
    assert.equal(pickTrigger(tokenize('points'), [newer, older], 'chn_1')?.flow_id, 'coffee');
    assert.deepEqual(
      pickTriggers(tokenize('points'), [newer, unbound], 'chn_2').map((c) => c.flow_id),
      ['any'],
    );
  });

  it('recognises opt-out and opt-in words alone', () => {
    for (const w of ['STOP', 'stop.', 'Unsubscribe', 'CANCEL', 'end', 'QUIT', 'STOPALL', 'stop all', 'opt out']) {
      assert.equal(consentIntent(w)?.action, 'opt_out', w);
    }
    for (const w of ['START', 'unstop']) assert.equal(consentIntent(w)?.action, 'opt_in', w);
    assert.equal(consentIntent('stop sending me points'), null);
    assert.equal(consentIntent('points'), null);
  });
});
