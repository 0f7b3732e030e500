#!/usr/bin/env node
// `npm test`: runs every *.test.ts under src/ and test/ with node's test runner, on SQLite and then
// on PostgreSQL. With --backend (or TALLY_TEST_BACKEND) it runs one backend only. PostgreSQL is
// found at TALLY_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test); when it is not
// reachable and was not asked for explicitly, that run is skipped with a line saying so.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';

const root = new URL('..', import.meta.url).pathname;
const { values, positionals } = parseArgs({
  options: { backend: { type: 'string' }, concurrency: { type: 'string' } },
  allowPositionals: true,
});

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const files = (
  positionals.length ? positionals : [...findTests(join(root, 'src')), ...findTests(join(root, 'test'))]
).map((f) => relative(process.cwd(), f));
const pgUrl = process.env.TALLY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function postgresReachable() {
  const client = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function run(backend) {
  const tapFile = join(mkdtempSync(join(tmpdir(), 'tally-tap-')), 'report.tap');
  console.log(`\n=== tests on ${backend} (${files.length} files) ===`);
  const res = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      `--test-concurrency=${values.concurrency ?? 2}`,
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      '--test-reporter=tap',
      `--test-reporter-destination=${tapFile}`,
      ...files,
    ],
    { stdio: 'inherit', env: { ...process.env, TALLY_TEST_BACKEND: backend, TALLY_TEST_PG_URL: pgUrl } },
  );
  const tap = readFileSync(tapFile, 'utf8');
  const count = (label) => Number((tap.match(new RegExp(`^# ${label} (\\d+)$`, 'm')) ?? [])[1] ?? 0);
  return {
    backend,
    code: res.status ?? 1,
    pass: count('pass'),
    fail: count('fail'),
    skipped: count('skipped') + count('todo'),
  };
}

const requested = values.backend ?? process.env.TALLY_TEST_BACKEND;
const results = [];
if (!requested || requested === 'sqlite') results.push(run('sqlite'));
if (!requested || requested === 'postgres') {
  if (await postgresReachable()) results.push(run('postgres'));
  else if (requested === 'postgres') {
    console.error(`PostgreSQL is not reachable at ${pgUrl}`);
    process.exit(1);
  } else console.log(`\nPostgreSQL skipped: not reachable at ${pgUrl} (set TALLY_TEST_PG_URL to test it)`);
}

let pass = 0;
let fail = 0;
let skipped = 0;
for (const r of results) {
  console.log(
    `${r.backend}: ${r.pass} passed, ${r.fail} failed` +
      (r.code !== 0 && r.fail === 0 ? ' (runner exited with an error)' : ''),
  );
  pass += r.pass;
  fail += r.fail;
  skipped += r.skipped;
}
const ok = results.every((r) => r.code === 0) && fail === 0 && pass > 0;
console.log(`tests: ${pass} passed, ${ok ? fail : Math.max(fail, 1)} failed, ${skipped} skipped`);
process.exit(ok ? 0 : 1);
