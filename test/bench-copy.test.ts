// The COPY text escaping of the scale loader (bench/copy.ts): what PostgreSQL reads back is the value written.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { copyField, copyLine } from '../bench/copy.ts';

test('NULL, numbers, booleans and times', () => {
  assert.equal(copyField(null), '\\N');
  assert.equal(copyField(undefined), '\\N');
  assert.equal(copyField(0), '0');
  assert.equal(copyField(-12.5), '-12.5');
  assert.equal(copyField(10n), '10');
  assert.equal(copyField(true), 't');
  assert.equal(copyField(false), 'f');
  assert.equal(copyField(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6))), '2026-01-02T03:04:05.006Z');
});

test('the string "\\N" and an empty string stay apart from NULL', () => {
  assert.equal(copyField('\\N'), '\\\\N');
  assert.equal(copyField(''), '');
});

test('backslashes, tabs, newlines and carriage returns are escaped', () => {
  assert.equal(copyField('plain text, with ; and "quotes"'), 'plain text, with ; and "quotes"');
  assert.equal(copyField('a\\b\tc\nd\re'), 'a\\\\b\\tc\\nd\\re');
  // Twice in a row: the global regular expression keeps no state between calls.
  assert.equal(copyField('x\ty'), 'x\\ty');
  assert.equal(copyField('x\ty'), 'x\\ty');
});

test('JSON: objects and arrays as their JSON, the escapes inside it escaped again', () => {
  assert.equal(copyField({ a: 1, b: [true, null] }), '{"a":1,"b":[true,null]}');
  assert.equal(copyField(['x']), '["x"]');
  // JSON.stringify writes a newline in a string as \n and a quote as \" (a backslash each): COPY must read
  // a backslash there.
  assert.equal(copyField({ text: 'line 1\nline 2\t"q"' }), '{"text":"line 1\\\\nline 2\\\\t\\\\"q\\\\""}');
});

test('a line: fields by tabs, one newline at the end', () => {
  assert.equal(copyLine(['id_1', null, 3, { k: 'v\n' }]), 'id_1\t\\N\t3\t{"k":"v\\\\n"}\n');
});
