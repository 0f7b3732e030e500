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

describe('loadConfig: retention', () => {
  it('keeps events 30 days and messages 90 by default, deleting 5,000 rows of a table per batch', () => {
    const c = loadConfig({}, {});
    assert.equal(c.eventRetentionDays, 30);
    assert.equal(c.messageRetentionDays, 90);
    assert.equal(c.retentionBatch, 5000);
  });

  it('takes days and batch from the environment or flags; 0 days keeps everything', () => {
    const c = loadConfig(
      { 'retention-batch': '200' },
      { TALLY_EVENT_RETENTION_DAYS: '7', TALLY_MESSAGE_RETENTION_DAYS: '0', TALLY_RETENTION_BATCH: '10' },
    );
    assert.equal(c.eventRetentionDays, 7);
    assert.equal(c.messageRetentionDays, 0);
    assert.equal(c.retentionBatch, 200);
  });

  it('refuses a batch of 0 or a negative number of days', () => {
    assert.throws(() => loadConfig({}, { TALLY_RETENTION_BATCH: '0' }), {
      message: 'TALLY_RETENTION_BATCH must be a positive integer, got "0"',
    });
    assert.throws(() => loadConfig({}, { TALLY_MESSAGE_RETENTION_DAYS: '-1' }), {
      message: 'TALLY_MESSAGE_RETENTION_DAYS must be a non-negative integer, got "-1"',
    });
  });
});
