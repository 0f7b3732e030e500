import assert from 'node:assert/strict';
import { test } from 'node:test';
import { html, jsonIsland, raw } from './html.ts';

test('html escapes interpolated text and attributes', () => {
  const name = '<img src=x onerror="alert(1)"> & \'co\'';
  assert.equal(
    html`<p title="${name}">${name}</p>`.value,
    '<p title="&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &#39;co&#39;">' +
      '&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &#39;co&#39;</p>',
  );
});

test('nested html and arrays are not escaped twice; null, undefined and false render nothing', () => {
  const items = ['a<b', 'c'].map((s) => html`<li>${s}</li>`);
  assert.equal(html`<ul>${items}${null}${undefined}${false}${0}</ul>`.value, '<ul><li>a&lt;b</li><li>c</li>0</ul>');
  assert.equal(html`${raw('<b>x</b>')}`.value, '<b>x</b>');
});

test('a JSON island cannot close its script element', () => {
  const out = jsonIsland('d', { s: '</script><script>alert(1)</script>' }).value;
  assert.ok(!out.slice(0, -'</script>'.length).includes('</script'));
  assert.deepEqual(JSON.parse(out.replace(/^<script[^>]*>/, '').replace(/<\/script>$/, '')), {
    s: '</script><script>alert(1)</script>',
  });
});
