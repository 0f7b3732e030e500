import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from './config.ts';

describe('loadConfig: TALLY_SQLITE_SYNCHRONOUS', () => {
  it('is NORMAL by default, FULL when asked (any case, env or flag)', () => {
    assert.equal(loadConfig({}, {}).sqliteSynchronous, 'NORMAL');
    assert.equal(loadConfig({}, { TALLY_SQLITE_SYNCHRONOUS: '' }).sqliteSynchronous, 'NORMAL');
    assert.equal(loadConfig({}, { TALLY_SQLITE_SYNCHRONOUS: 'full' }).sqliteSynchronous, 'FULL');
    assert.equal(
      loadConfig({ 'sqlite-synchronous': 'FULL' }, { TALLY_SQLITE_SYNCHRONOUS: 'NORMAL' }).sqliteSynchronous,
      'FULL',
    );
  });

  it('refuses anything else, naming the allowed values', () => {
    for (const v of ['OFF', 'EXTRA', '1', 'yes']) {
      assert.throws(() => loadConfig({}, { TALLY_SQLITE_SYNCHRONOUS: v }), {
        message: `TALLY_SQLITE_SYNCHRONOUS must be one of NORMAL, FULL, got "${v}"`,
      });
    }
  });
});

describe('loadConfig: the time engine', () => {
  it('looks back 7 days and fires 500 items per transaction by default; both can be set', () => {
    const dflt = loadConfig({}, {});
    assert.deepEqual([dflt.timeLookbackDays, dflt.timeBatchSize], [7, 500]);
    const set = loadConfig({ 'time-batch-size': '50' }, { TALLY_TIME_LOOKBACK_DAYS: '0' });
    assert.deepEqual([set.timeLookbackDays, set.timeBatchSize], [0, 50]);
    assert.throws(() => loadConfig({}, { TALLY_TIME_LOOKBACK_DAYS: '-1' }), /TALLY_TIME_LOOKBACK_DAYS/);
  });
});
