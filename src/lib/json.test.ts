import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalJson, jsonDepthExceeds } from './json.ts';

const nestedArrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const nestedObjects = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

describe('jsonDepthExceeds', () => {
  it('counts arrays and objects, scalars have depth 0', () => {
    for (const text of ['1', '"x"', 'null', '']) assert.equal(jsonDepthExceeds(text, 0), false, text);
    assert.equal(jsonDepthExceeds('{}', 0), true);
    assert.equal(jsonDepthExceeds('{}', 1), false);
    assert.equal(jsonDepthExceeds('{"a":[1,{"b":[]}]}', 4), false);
    assert.equal(jsonDepthExceeds('{"a":[1,{"b":[]}]}', 3), true);
    // Siblings do not add up: depth goes down again after each closing bracket.
    assert.equal(jsonDepthExceeds(`[${Array(1000).fill('[[]]').join(',')}]`, 3), false);
  });

  it('is exact at the limit, for arrays and objects', () => {
    for (const make of [nestedArrays, nestedObjects]) {
      assert.equal(jsonDepthExceeds(make(64), 64), false);
      assert.equal(jsonDepthExceeds(make(65), 64), true);
    }
  });

  it('ignores brackets inside strings, escaped quotes included', () => {
    assert.equal(jsonDepthExceeds(JSON.stringify({ a: '[[[[{{{{' }), 1), false);
    assert.equal(jsonDepthExceeds(JSON.stringify({ a: 'say \\"[[[[\\" \\\\' }), 1), false);
    assert.equal(jsonDepthExceeds(JSON.stringify({ a: 'x\\', b: [[[]]] }), 3), true);
    assert.equal(jsonDepthExceeds(JSON.stringify(['"', '\\', '\\"[', '{']), 1), false);
    // An unterminated string hides nothing the parser will accept.
    assert.equal(jsonDepthExceeds('["[[[[', 1), false);
  });

  it('scans 100,000 levels without recursion', () => {
    assert.equal(jsonDepthExceeds(nestedArrays(100_000), 64), true);
    assert.equal(jsonDepthExceeds(nestedObjects(100_000), 64), true);
  });

  it('agrees with the real depth of random values', () => {
    const depthOf = (v: unknown): number =>
      v !== null && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v).map(depthOf)) : 0;
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const make = (d: number): unknown => {
      const r = rand();
      if (d === 0 || r < 0.3) return ['s"[{\\', 1, null, true, '}]'][Math.floor(rand() * 5)];
      if (r < 0.65) return Array.from({ length: 1 + Math.floor(rand() * 3) }, () => make(d - 1));
      const keys = Array.from({ length: 1 + Math.floor(rand() * 3) }, (_, i) => `k${i}[{"`);
      return Object.fromEntries(keys.map((k) => [k, make(d - 1)]));
    };
    for (let i = 0; i < 300; i++) {
      const value = make(8);
      const text = JSON.stringify(value);
      const depth = depthOf(value);
      assert.equal(jsonDepthExceeds(text, depth), false, text);
      if (depth > 0) assert.equal(jsonDepthExceeds(text, depth - 1), true, text);
    }
  });
});

describe('canonicalJson', () => {
  it('sorts keys and drops undefined', () => {
    assert.equal(canonicalJson({ b: 1, a: [{ d: undefined, c: 'x' }] }), '{"a":[{"c":"x"}],"b":1}');
  });
});
