import assert from 'node:assert/strict';
import { test } from 'node:test';
import { edgesOf, flowGraph } from './graph.ts';

test('every field of a step that names another step is an edge, labelled with the field', () => {
  const steps = [
    { id: 'find', type: 'find_member', next: 'check' },
    { id: 'check', type: 'branch', cases: [{ when: { x: true }, next: 'yes' }], else: 'no' },
    // A message that happens to be a step's id is text, not an edge.
    { id: 'yes', type: 'reply', template: 'no', next: 'wait' },
    { id: 'no', type: 'reply', template: 'hi' },
    { id: 'wait', type: 'wait', replies: [{ keywords: ['AGAIN'], next: 'find' }] },
  ];
  assert.deepEqual(edgesOf(steps), [
    { from: 'find', to: 'check', label: 'next' },
    { from: 'check', to: 'yes', label: 'cases[0]' },
    { from: 'check', to: 'no', label: 'else' },
    { from: 'yes', to: 'wait', label: 'next' },
    { from: 'wait', to: 'find', label: 'replies[0]' },
  ]);
});

test('the graph marks the steps with errors and escapes step ids', () => {
  const svg = flowGraph(
    [
      { id: 'a<b', type: 'reply', next: 'c' },
      { id: 'c', type: 'reply' },
    ],
    'a<b',
    new Set(['c']),
  ).value;
  assert.match(svg, /a&lt;b/);
  assert.doesNotMatch(svg, /a<b/);
  assert.match(svg, /class="node invalid"/);
});
