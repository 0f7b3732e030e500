import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Liquid } from 'liquidjs';
import { FILE_TAGS_REFUSED, LIQUID_OPTIONS, MAX_TEXT, render, templateError, trimLineEnds } from './templates.ts';

describe('templates: no file system', () => {
  it('refuses include, render and layout when parsed, in every spelling', () => {
    for (const source of [
      "{% include '.env' %}",
      "{% render 'package.json' %}",
      "{% layout 'data/tally.db' %}text",
      "{%- include 'a' -%}",
      '{% include name %}',
      "{% liquid\n  render 'a'\n%}",
      "Hi {% if true %}{% include 'a' %}{% endif %}",
    ]) {
      const error = templateError(source);
      assert.ok(error?.startsWith(FILE_TAGS_REFUSED), `${source}: ${error}`);
    }
    // Only the tags: the words themselves are text, and so is a raw block.
    assert.equal(templateError('Please include your card code, render unto Caesar'), null);
    assert.equal(templateError("{% raw %}{% include 'a' %}{% endraw %}"), null);
  });

  it("the engine options alone (with Liquid's own file tags) read no file", async () => {
    // Belt and braces: were a file tag ever parsed, the file system behind it has no files.
    const marker = `marker-${process.pid}-${Date.now()}`;
    const file = `templates-test-${process.pid}.liquid`;
    writeFileSync(file, marker);
    try {
      const plain = new Liquid(LIQUID_OPTIONS);
      const sources = [
        `{% include '${file}' %}`,
        `{% render '${file}' %}`,
        `{% layout '${file}' %}x`,
        `{% include '${process.cwd()}/${file}' %}`,
      ];
      for (const source of sources) {
        const out = await plain.parseAndRender(source, {}).then(String, (err: Error) => `refused: ${err.message}`);
        assert.ok(!out.includes(marker), `${source} read the file`);
        assert.match(out, /^refused: /);
      }
    } finally {
      rmSync(file, { force: true });
    }
  });
});

describe('templates: output clean-up', () => {
  it('drops blanks before line breaks and trims', async () => {
    assert.equal(trimLineEnds('a  \nb\t\n  c  '), 'a\nb\n  c  ');
    assert.equal(trimLineEnds(' \n\n'), '\n\n');
    assert.equal(trimLineEnds('no break'), 'no break');
    assert.equal(await render('Hi {{ n }}   \n{% if true %}  {% endif %}\nbye ', { n: 'Ana' }), 'Hi Ana\n\nbye');
  });

  it('is linear in a long run of blanks', async () => {
    const started = performance.now();
    assert.equal(trimLineEnds(`${' '.repeat(2_000_000)}x`), `${' '.repeat(2_000_000)}x`);
    assert.equal(trimLineEnds(`x${' \t'.repeat(1_000_000)}\ny`), 'x\ny');
    const out = await render('{{ s }}', { s: `a${' '.repeat(500_000)}b` });
    assert.equal(out.length, MAX_TEXT);
    // /[ \t]+\n/g took seconds on 60,000 blanks; a single pass over 4 MB takes milliseconds.
    assert.ok(performance.now() - started < 1000, `took ${Math.round(performance.now() - started)} ms`);
  });
});
