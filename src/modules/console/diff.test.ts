import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diffLines } from './diff.ts';

const render = (before: string, after: string) =>
  diffLines(before, after)
    .map((l) => `${l.op}${l.text}`)
    .join('\n');

test('equal texts diff to unchanged lines only', () => {
  assert.equal(render('a\nb', 'a\nb'), ' a\n b');
});

test('a changed line is a removal then an addition, in place', () => {
  assert.equal(render('a\nb\nc', 'a\nB\nc'), ' a\n-b\n+B\n c');
});

test('lines added at the end and removed at the start', () => {
  assert.equal(render('x\na\nb', 'a\nb\nc\nd'), '-x\n a\n b\n+c\n+d');
  assert.equal(render('', 'a'), '-\n+a');
});

test('the common lines are the longest common subsequence', () => {
  const out = diffLines('a\nb\nc\nd\ne', 'a\nc\nd\nx\ne');
  assert.deepEqual(
    out.filter((l) => l.op === ' ').map((l) => l.text),
    ['a', 'c', 'd', 'e'],
  );
});
