import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allCodes, codeSpace, DEFAULT_CODE_CONFIG, generateCode, validateCodeConfig } from './codes.ts';

describe('code generation from code_config', () => {
  it('a pattern fills each # from the charset, between prefix and postfix', () => {
    const c = { length: 0, charset: 'AB', prefix: 'X-', postfix: '-Z', pattern: '##-#' };
    for (let i = 0; i < 50; i++) assert.match(generateCode(c), /^X-[AB]{2}-[AB]-Z$/);
    assert.equal(codeSpace(c), 8);
    assert.deepEqual(allCodes(c)?.length, 8);
    assert.equal(new Set(allCodes(c)).size, 8);
  });

  it('without a pattern, length random characters', () => {
    assert.match(generateCode({ ...DEFAULT_CODE_CONFIG, pattern: '', length: 12 }), /^[0-9A-Za-z]{12}$/);
    assert.equal(allCodes({ ...DEFAULT_CODE_CONFIG, pattern: '', length: 12 }), null, 'too many to list');
  });

  it('refuses configurations that cannot make codes', () => {
    assert.match(validateCodeConfig({ charset: 'A', length: 4 }) ?? '', /2 distinct/);
    assert.match(validateCodeConfig({ charset: 'AB', pattern: 'ABC' }) ?? '', /at least one #/);
    assert.match(validateCodeConfig({ charset: 'AB', length: 4, prefix: 'a b' }) ?? '', /whitespace/);
    assert.equal(validateCodeConfig({ charset: 'AB', length: 4 }), null);
  });
});
