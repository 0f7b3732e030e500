import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { perUtcDay, utcDays } from './days.ts';

describe('utcDays / perUtcDay', () => {
  it('covers the day of the start to the day of the end, each a [from, to) UTC range', () => {
    const days = utcDays('2026-01-30T18:00:00.000Z', Date.parse('2026-02-01T01:00:00.000Z'));
    assert.deepEqual(
      days.map((d) => [d.day, d.from, d.to]),
      [
        ['2026-01-30', '2026-01-30T00:00:00.000Z', '2026-01-31T00:00:00.000Z'],
        ['2026-01-31', '2026-01-31T00:00:00.000Z', '2026-02-01T00:00:00.000Z'],
        ['2026-02-01', '2026-02-01T00:00:00.000Z', '2026-02-02T00:00:00.000Z'],
      ],
    );
  });

  it('asks for each day in order and labels each answer with its day', async () => {
    const asked: string[] = [];
    const out = await perUtcDay(
      '2026-03-01T00:00:00.000Z',
      Date.parse('2026-03-02T12:00:00.000Z'),
      async (from, to) => {
        asked.push(`${from}..${to}`);
        return { n: asked.length };
      },
    );
    assert.deepEqual(out, [
      { day: '2026-03-01', n: 1 },
      { day: '2026-03-02', n: 2 },
    ]);
    assert.deepEqual(asked, [
      '2026-03-01T00:00:00.000Z..2026-03-02T00:00:00.000Z',
      '2026-03-02T00:00:00.000Z..2026-03-03T00:00:00.000Z',
    ]);
  });
});
