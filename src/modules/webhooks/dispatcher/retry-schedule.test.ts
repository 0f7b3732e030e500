import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_ATTEMPTS, MAX_RETRY_AFTER_MS, RETRY_DELAYS_MS, parseRetryAfter, retryDelayMs } from './retry-schedule.ts';

const now = Date.parse('2026-03-01T12:00:00Z');
const exact = () => 0.5;

describe('Retry-After', () => {
  it('reads delay-seconds', () => {
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 7 ', now), 7_000);
    assert.equal(parseRetryAfter('0', now), 0);
  });

  it('reads an HTTP-date, as the wait from now', () => {
    assert.equal(parseRetryAfter('Sun, 01 Mar 2026 12:05:00 GMT', now), 300_000);
  });

  it('a date in the past asks for no wait', () => {
    assert.equal(parseRetryAfter('Sun, 01 Mar 2026 11:00:00 GMT', now), 0);
  });

  it('caps both forms at a day', () => {
    assert.equal(parseRetryAfter(String(3 * 24 * 3600), now), MAX_RETRY_AFTER_MS);
    assert.equal(parseRetryAfter('Fri, 01 May 2026 12:00:00 GMT', now), MAX_RETRY_AFTER_MS);
    assert.equal(MAX_RETRY_AFTER_MS, 24 * 3600_000);
  });

  it('ignores garbage and absence', () => {
    assert.equal(parseRetryAfter(undefined, now), null);
    assert.equal(parseRetryAfter('', now), null);
    assert.equal(parseRetryAfter('soon', now), null);
    assert.equal(parseRetryAfter('12 seconds', now), null);
    assert.equal(parseRetryAfter('Mon, 99 Foo', now), null);
  });

  it('of a repeated header the first counts', () => {
    assert.equal(parseRetryAfter(['3', '60'], now), 3_000);
    assert.equal(parseRetryAfter([], now), null);
  });
});

describe('retry schedule', () => {
  it('is the Svix table: 8 attempts over about 27.6 hours', () => {
    assert.deepEqual(RETRY_DELAYS_MS, [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
    assert.equal(MAX_ATTEMPTS, 8);
    const hours = RETRY_DELAYS_MS.reduce((a, b) => a + b, 0) / 3600_000;
    assert.ok(hours > 27.5 && hours < 27.7, `${hours} hours`);
  });

  it('waits the delay of the attempt that failed, exactly with random 0.5', () => {
    for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++)
      assert.equal(retryDelayMs(attempt, exact, null), RETRY_DELAYS_MS[attempt - 1], `after attempt ${attempt}`);
  });

  it('has no next attempt after the last, and does not draw a random number then', () => {
    let draws = 0;
    const random = () => {
      draws++;
      return 0.5;
    };
    assert.equal(retryDelayMs(MAX_ATTEMPTS, random, null), null);
    assert.equal(retryDelayMs(MAX_ATTEMPTS + 1, random, 1000), null);
    assert.equal(draws, 0);
    retryDelayMs(1, random, null);
    assert.equal(draws, 1);
  });

  it('jitters by ±20 %', () => {
    assert.equal(
      retryDelayMs(2, () => 0, null),
      240_000,
    );
    assert.equal(
      retryDelayMs(2, () => 0.999999, null),
      Math.round(300_000 * (0.8 + 0.4 * 0.999999)),
    );
    assert.equal(
      retryDelayMs(1, () => 0.25, null),
      4_500,
    );
  });

  it('never retries sooner than Retry-After asks, which only lengthens the wait', () => {
    assert.equal(retryDelayMs(1, exact, 60_000), 60_000);
    assert.equal(retryDelayMs(2, exact, 60_000), 300_000);
    assert.equal(retryDelayMs(1, exact, 0), 5_000);
  });
});
