import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DAY_MS, dayRuns, daysIn, isFinalDay, liveParts, splitWindow } from './report-days.ts';

const t = (iso: string) => Date.parse(iso);
const iso = (r: { from: number; to: number }) => [new Date(r.from).toISOString(), new Date(r.to).toISOString()];

describe('flow report days', () => {
  it('a day is final once it ended more than 8 days ago', () => {
    const day = t('2026-03-01T00:00:00Z'); // ends 03-02T00:00
    assert.equal(isFinalDay(day, t('2026-03-10T00:00:00Z')), false, 'ended exactly 8 days ago');
    assert.equal(isFinalDay(day, t('2026-03-10T00:00:00.001Z')), true);
    assert.equal(isFinalDay(t('2026-03-01T13:00:00Z'), t('2026-03-10T00:00:00.001Z')), true, 'any instant of the day');
  });

  it('splits a window into a partial first day, final whole days and the recent part', () => {
    const now = t('2026-03-31T10:00:00Z');
    const s = splitWindow(now - 30 * DAY_MS, now, now);
    assert.ok(s.final);
    // The last final day is 03-22 (it ended 8 days and 10 hours before 03-31T10:00).
    assert.deepEqual(iso(s.final), ['2026-03-02T00:00:00.000Z', '2026-03-23T00:00:00.000Z']);
    assert.deepEqual(s.live.map(iso), [
      ['2026-03-01T10:00:00.000Z', '2026-03-02T00:00:00.000Z'],
      ['2026-03-23T00:00:00.000Z', '2026-03-31T10:00:00.000Z'],
    ]);
    for (const d of daysIn(s.final)) assert.ok(isFinalDay(t(`${d}T00:00:00Z`), now), d);
    assert.equal(isFinalDay(s.final.to, now), false, 'the day after the run is not final');
  });

  it('leaves a window of recent or partial days wholly live, and an empty one empty', () => {
    const now = t('2026-03-31T10:00:00Z');
    assert.deepEqual(splitWindow(now - 5 * DAY_MS, now, now), {
      final: null,
      live: [{ from: now - 5 * DAY_MS, to: now }],
    });
    const within = splitWindow(t('2026-01-05T01:00:00Z'), t('2026-01-05T23:00:00Z'), now);
    assert.equal(within.final, null);
    assert.equal(within.live.length, 1);
    assert.deepEqual(splitWindow(now, now, now), { final: null, live: [] });
    // Day-aligned and old: all final, nothing live.
    const old = splitWindow(t('2026-01-01T00:00:00Z'), t('2026-01-31T00:00:00Z'), now);
    assert.deepEqual(old.live, []);
    assert.equal(old.final && daysIn(old.final).length, 30);
  });

  it('groups days into runs of consecutive days, at most maxDays long', () => {
    const runs = dayRuns(['2026-01-03', '2026-01-01', '2026-01-02', '2026-01-05', '2026-01-06', '2026-01-07'], 2);
    assert.deepEqual(
      runs.map((r) => daysIn(r)),
      [['2026-01-01', '2026-01-02'], ['2026-01-03'], ['2026-01-05', '2026-01-06'], ['2026-01-07']],
    );
  });

  it('reads whole recent days from the running figures and computes partial ones', () => {
    const now = t('2026-03-31T10:00:00Z');
    const r = { from: t('2026-03-28T06:00:00Z'), to: now };
    assert.deepEqual(liveParts(r, now, 0), {
      stored: ['2026-03-29', '2026-03-30', '2026-03-31'],
      computed: [{ from: t('2026-03-28T06:00:00Z'), to: t('2026-03-29T00:00:00Z') }],
    });
    // A window ending before now in the middle of a day: that day is computed, from its start.
    const past = liveParts({ from: t('2026-03-28T00:00:00Z'), to: t('2026-03-30T12:00:00Z') }, now, 0);
    assert.deepEqual(past.stored, ['2026-03-28', '2026-03-29']);
    assert.deepEqual(past.computed, [{ from: t('2026-03-30T00:00:00Z'), to: t('2026-03-30T12:00:00Z') }]);
    // A window reaching past now holds today whole (no later message exists yet).
    assert.deepEqual(liveParts({ from: t('2026-03-31T00:00:00Z'), to: now + 3600_000 }, now, 0).stored, ['2026-03-31']);
  });

  it('computes the recent days before the running figures began, in one range', () => {
    const now = t('2026-03-31T10:00:00Z');
    const parts = liveParts({ from: t('2026-03-27T00:00:00Z'), to: now }, now, t('2026-03-30T00:00:00Z'));
    assert.deepEqual(parts.stored, ['2026-03-30', '2026-03-31']);
    assert.deepEqual(parts.computed, [{ from: t('2026-03-27T00:00:00Z'), to: t('2026-03-30T00:00:00Z') }]);
  });
});
