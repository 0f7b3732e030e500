#!/usr/bin/env node
// Lines of code are at most 120 columns (the formatter wraps code; this catches long strings and
// comments it leaves alone). The generated event catalog is exempt.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const LIMIT = 120;
const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', 'src', 'test', 'bench', 'scripts', 'bin'], {
  encoding: 'utf8',
})
  .split('\n')
  .filter((f) => /\.(ts|mjs|js)$/.test(f) && !f.endsWith('catalog/reference.ts'));
let long = 0;
for (const file of files) {
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.length > LIMIT) {
        long++;
        console.log(`${file}:${i + 1}: ${line.length} columns`);
      }
    });
}
if (long > 0) {
  console.error(`${long} lines longer than ${LIMIT} columns`);
  process.exit(1);
}
