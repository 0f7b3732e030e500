import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXACT_MAX, MemberSketch, intersectionCount, memberHash } from './member-sketch.ts';

const ids = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `mem_${from + i}`);
const sketchOf = (list: string[]) => list.reduce((s, id) => s.add(id), new MemberSketch());

describe('member sketch', () => {
  it('counts exactly while small, whatever the repeats', () => {
    const s = sketchOf([...ids(0, 300), ...ids(0, 300), ...ids(100, 400)]);
    assert.equal(s.exact, true);
    assert.equal(s.count(), 400);
    assert.equal(new MemberSketch().count(), 0);
  });

  it('unions exactly while the union is small', () => {
    const a = sketchOf(ids(0, 500));
    const b = sketchOf(ids(250, 700));
    const u = new MemberSketch().merge(a).merge(b);
    assert.equal(u.exact, true);
    assert.equal(u.count(), 700);
    assert.deepEqual(intersectionCount(a, b), { count: 250, exact: true });
    assert.deepEqual(intersectionCount(a, new MemberSketch()), { count: 0, exact: true });
  });

  it('becomes an estimate past the exact size, within 3 % at every size', () => {
    assert.equal(sketchOf(ids(0, EXACT_MAX)).exact, true);
    assert.equal(sketchOf(ids(0, EXACT_MAX + 1)).exact, false);
    for (const n of [EXACT_MAX + 1, 5_000, 20_000, 40_000, 100_000, 400_000]) {
      const got = sketchOf(ids(0, n)).count();
      assert.ok(Math.abs(got - n) / n < 0.03, `${n} members counted ${got}`);
    }
  });

  it('merges in any grouping to the same registers, and counting a day twice changes nothing', () => {
    const days = [ids(0, 30_000), ids(20_000, 50_000), ids(45_000, 46_000), ids(0, 10)].map(sketchOf);
    const left = days.reduce((u, d) => u.merge(d), new MemberSketch());
    const right = new MemberSketch().merge(days[3]).merge(new MemberSketch().merge(days[2]).merge(days[1]));
    right.merge(days[0]).merge(days[0]);
    assert.equal(left.serialize(), right.serialize());
    assert.ok(Math.abs(left.count() - 50_000) / 50_000 < 0.03, String(left.count()));
    // An exact sketch merged into an estimate, and the other way round, agree.
    const small = sketchOf(ids(60_000, 60_100));
    assert.equal(
      new MemberSketch().merge(left).merge(small).serialize(),
      new MemberSketch().merge(small).merge(left).serialize(),
    );
  });

  it('hashes a member id as it always has (stored sketches hold these hashes)', () => {
    assert.equal(memberHash('mem_1'), 2192175103604034);
    assert.equal(memberHash(''), 8293445567564373);
    assert.ok(Number.isSafeInteger(memberHash('mem_01JX0000000000000000000000')));
  });

  it('survives storage in both forms', () => {
    for (const s of [sketchOf(ids(0, 7)), sketchOf(ids(0, 9_000)), new MemberSketch()]) {
      const back = MemberSketch.parse(s.serialize());
      assert.equal(back.count(), s.count());
      assert.equal(back.exact, s.exact);
      assert.equal(back.serialize(), s.serialize());
    }
    assert.throws(() => MemberSketch.parse(Buffer.from([7, 1, 2]).toString('base64')));
  });

  it('merges stored sketches from their text as it merges parsed ones', () => {
    const days = [
      sketchOf(ids(0, 600)),
      sketchOf(ids(500, 1_100)),
      sketchOf(ids(0, 5_000)),
      sketchOf(ids(4_000, 4_100)),
    ];
    const parsed = new MemberSketch();
    const stored = new MemberSketch();
    for (const d of days) {
      parsed.merge(MemberSketch.parse(d.serialize()));
      stored.mergeStored(d.serialize());
    }
    assert.equal(stored.serialize(), parsed.serialize());
    assert.equal(new MemberSketch().mergeStored(days[0].serialize()).count(), 600);
    assert.equal(new MemberSketch().mergeStored(days[0].serialize()).exact, true);
  });

  it('estimates an intersection of large sets within 3 % of their union', () => {
    const a = sketchOf(ids(0, 60_000));
    const b = sketchOf(ids(10_000, 70_000));
    const { count, exact } = intersectionCount(a, b);
    assert.equal(exact, false);
    assert.ok(Math.abs(count - 50_000) < 0.03 * 70_000, String(count));
  });
});
