import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  monthAnniversary,
  nextMonthAnniversary,
  nextReminderBefore,
  nextYearReminder,
  normalizeReminders,
  utcIso,
} from './anniversaries.ts';

const iso = (d: { toUTC(): { toISO(): string | null } }) => d.toUTC().toISO();

describe('month anniversaries', () => {
  it('clamp the day to the month end, always from the original date', () => {
    const anchor = '2025-01-31T10:00:00.000Z';
    const months = [1, 2, 3, 4, 13].map((n) => iso(monthAnniversary(anchor, n, 'UTC')));
    assert.deepEqual(months, [
      '2025-02-28T10:00:00.000Z',
      '2025-03-31T10:00:00.000Z', // not 28 March: counted from 31 January, not from 28 February
      '2025-04-30T10:00:00.000Z',
      '2025-05-31T10:00:00.000Z',
      '2026-02-28T10:00:00.000Z',
    ]);
  });

  it('leap years: 31 January → 29 February 2024; 29 February → 28 February, then 29 again', () => {
    assert.equal(iso(monthAnniversary('2024-01-31T00:00:00.000Z', 1, 'UTC')), '2024-02-29T00:00:00.000Z');
    assert.equal(iso(monthAnniversary('2024-02-29T12:00:00.000Z', 12, 'UTC')), '2025-02-28T12:00:00.000Z');
    assert.equal(iso(monthAnniversary('2024-02-29T12:00:00.000Z', 48, 'UTC')), '2028-02-29T12:00:00.000Z');
    assert.equal(iso(monthAnniversary('2024-02-29T12:00:00.000Z', 1, 'UTC')), '2024-03-29T12:00:00.000Z');
  });

  it('in the program zone: the local day and time, across DST', () => {
    // 31 January 23:30 in Zagreb is 22:30 UTC; in summer (UTC+2) the same wall time is 21:30 UTC.
    const anchor = '2025-01-31T22:30:00.000Z';
    assert.equal(iso(monthAnniversary(anchor, 1, 'Europe/Zagreb')), '2025-02-28T22:30:00.000Z');
    assert.equal(iso(monthAnniversary(anchor, 3, 'Europe/Zagreb')), '2025-04-30T21:30:00.000Z');
    // In UTC the same instant is 31 January 22:30: the same clamping but one hour later in April.
    assert.equal(iso(monthAnniversary(anchor, 3, 'UTC')), '2025-04-30T22:30:00.000Z');
    // New York: 1 Jan 00:30 local (05:30Z); 1 April is EDT (UTC-4): 04:30Z.
    assert.equal(iso(monthAnniversary('2025-01-01T05:30:00.000Z', 3, 'America/New_York')), '2025-04-01T04:30:00.000Z');
  });

  it('a wall time that does not exist on the DST day moves forward by the gap', () => {
    // 9 February 2025 02:30 New York; 9 March 2025 02:30 does not exist (clocks jump 02:00 → 03:00).
    const at = monthAnniversary('2025-02-09T07:30:00.000Z', 1, 'America/New_York');
    assert.equal(at.toISO(), '2025-03-09T03:30:00.000-04:00');
  });

  it('the next anniversary strictly after a moment, with its number; month 12 is the year', () => {
    const anchor = '2024-06-15T08:00:00.000Z';
    const a = nextMonthAnniversary(anchor, new Date('2024-06-15T08:00:00.000Z'), 'UTC');
    assert.equal(a.n, 1, 'never month 0');
    const b = nextMonthAnniversary(anchor, new Date('2025-06-15T07:59:59.999Z'), 'UTC');
    assert.deepEqual([b.n, utcIso(b.at)], [12, '2025-06-15T08:00:00.000Z']);
    const c = nextMonthAnniversary(anchor, new Date('2025-06-15T08:00:00.000Z'), 'UTC');
    assert.equal(c.n, 13);
    // From an anchor on the 31st, far away: still counted from the anchor.
    const d = nextMonthAnniversary('2020-01-31T00:00:00.000Z', new Date('2026-02-01T00:00:00.000Z'), 'UTC');
    assert.deepEqual([d.n, utcIso(d.at)], [73, '2026-02-28T00:00:00.000Z']);
  });
});

describe('reminders', () => {
  it('before the year anniversary: days, weeks, months', () => {
    const anchor = '2024-03-31T09:00:00.000Z';
    const after = new Date('2024-04-01T00:00:00.000Z');
    const day = nextYearReminder(anchor, [{ unit: 'day', value: 3 }], after, 'UTC')!;
    assert.deepEqual(
      [utcIso(day.at), utcIso(day.anniversary), day.year],
      ['2025-03-28T09:00:00.000Z', '2025-03-31T09:00:00.000Z', 1],
    );
    const week = nextYearReminder(anchor, [{ unit: 'week', value: 1 }], after, 'UTC')!;
    assert.equal(utcIso(week.at), '2025-03-24T09:00:00.000Z');
    // A month before 31 March is 28 February (clamped).
    const month = nextYearReminder(anchor, [{ unit: 'month', value: 1 }], after, 'UTC')!;
    assert.equal(utcIso(month.at), '2025-02-28T09:00:00.000Z');
    // Several: the earliest still to come; after it, the next one.
    const both = [
      { unit: 'day', value: 3 },
      { unit: 'month', value: 1 },
    ] as const;
    const first = nextYearReminder(anchor, both, after, 'UTC')!;
    assert.deepEqual(first.reminder, { unit: 'month', value: 1 });
    const second = nextYearReminder(anchor, both, first.at.toMillis(), 'UTC')!;
    assert.deepEqual([second.reminder, utcIso(second.at)], [{ unit: 'day', value: 3 }, '2025-03-28T09:00:00.000Z']);
    const third = nextYearReminder(anchor, both, second.at.toMillis(), 'UTC')!;
    assert.equal(third.year, 2);
  });

  it('never before the anchor; none without reminders', () => {
    // Two months before the first anniversary of a member who joined a month ago: the second year.
    const r = nextYearReminder(
      '2025-01-10T00:00:00.000Z',
      [{ unit: 'month', value: 13 }],
      new Date('2025-01-11T00:00:00.000Z'),
      'UTC',
    )!;
    assert.equal(r.year, 2);
    assert.equal(utcIso(r.at), '2025-12-10T00:00:00.000Z');
    assert.equal(nextYearReminder('2025-01-10T00:00:00.000Z', [], new Date(), 'UTC'), null);
  });

  it('before a single moment (an expiry): the earliest still to come, none once all passed', () => {
    const target = '2025-07-01T00:00:00.000Z';
    const list = [
      { unit: 'week', value: 2 },
      { unit: 'day', value: 1 },
    ] as const;
    const a = nextReminderBefore(target, list, new Date('2025-06-01T00:00:00.000Z'), 'UTC')!;
    assert.equal(utcIso(a.at), '2025-06-17T00:00:00.000Z');
    const b = nextReminderBefore(target, list, a.at.toMillis(), 'UTC')!;
    assert.equal(utcIso(b.at), '2025-06-30T00:00:00.000Z');
    assert.equal(nextReminderBefore(target, list, b.at.toMillis(), 'UTC'), null);
  });

  it('duplicates are dropped', () => {
    assert.deepEqual(
      normalizeReminders([
        { unit: 'day', value: 7 },
        { unit: 'day', value: 7 },
        { unit: 'week', value: 1 },
      ]),
      [
        { unit: 'day', value: 7 },
        { unit: 'week', value: 1 },
      ],
    );
  });
});
