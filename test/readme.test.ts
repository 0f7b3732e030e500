import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { serveChild } from './helpers/child-server.ts';
import { freshDatabaseUrl } from './helpers/server.ts';

// The README's quick start, run as a new user runs it, so it stays true. The blocks marked
// `<!-- test: quickstart -->` (sh) run in order in one bash session (variables carry over);
// a block marked `<!-- test: quickstart file=NAME -->` is written to NAME first. They run in a
// temporary folder inside the repository (so `npx tally` and `@voucherify/sdk` resolve as in a
// checkout) against `tally serve` in a child process on a fresh database of the selected backend.
// What the test changes, and only this:
// - `http://127.0.0.1:3000` becomes the server's address (it listens on a free port);
// - bash gets DATABASE_URL of that server, as the README tells the reader to give the CLI;
// - `set -euo pipefail`, and curl fails on an HTTP error (`--fail-with-body`), so a step that
//   goes wrong stops the run instead of feeding an error answer to the next step.
// A comment line right after a command (`# {"points":40,...}`) is that command's output as the
// README shows it (`...` stands for anything): the run must print such a line.

const root = new URL('..', import.meta.url).pathname;
const README_URL = 'http://127.0.0.1:3000';

interface Block {
  lang: string;
  file: string | null;
  code: string;
}

/** The README's blocks marked for the quick-start test, in order. */
export function quickstartBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const marked = /<!-- test: quickstart(?: file=(\S+))? -->\s*\n```(\w+)\n([\s\S]*?)\n```/g;
  for (const m of markdown.matchAll(marked)) blocks.push({ file: m[1] ?? null, lang: m[2], code: m[3] });
  return blocks;
}

/** Output lines the README shows: comment lines right after a complete command line. */
export function shownOutputs(code: string): RegExp[] {
  const lines = code.split('\n');
  const shown: RegExp[] = [];
  for (let i = 1; i < lines.length; i++) {
    const previous = lines[i - 1].trim();
    if (!lines[i].startsWith('# ') || previous === '' || previous.startsWith('#') || previous.endsWith('\\')) continue;
    const parts = lines[i]
      .slice(2)
      .split('...')
      .map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    shown.push(new RegExp(`^${parts.join('.*?')}$`, 'm'));
  }
  return shown;
}

function has(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}

/** `tally serve` on a free port, with no key of its own (the reader makes one). */
const serve = (databaseUrl: string) =>
  serveChild({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'info', TALLY_APP_ID: '', TALLY_APP_TOKEN: '' });

describe('README quick start', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('marks the quick-start blocks: the curl steps, the SDK module and how to run it', () => {
    const blocks = quickstartBlocks(readFileSync(join(root, 'README.md'), 'utf8'));
    assert.deepEqual(
      blocks.map((b) => [b.lang, b.file]),
      [
        ['sh', null],
        ['js', 'quickstart.mjs'],
        ['sh', null],
      ],
    );
    const sdk = blocks.find((b) => b.lang === 'js')!;
    assert.ok(sdk.code.includes(README_URL), 'the SDK block names the default address');
  });

  it('runs top to bottom as written: curl steps, then the SDK module twice (the second reuses the card)', async (t) => {
    if (!has('curl') || !has('bash')) {
      t.skip('needs curl and bash on this machine (the README’s steps are shell commands)');
      return;
    }
    const blocks = quickstartBlocks(readFileSync(join(root, 'README.md'), 'utf8'));
    const db = await freshDatabaseUrl();
    cleanups.push(db.drop);
    const { child, url } = await serve(db.url);
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    mkdirSync(join(root, '.tmp'), { recursive: true });
    const dir = mkdtempSync(join(root, '.tmp', 'readme-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

    const here = (code: string) => code.replaceAll(README_URL, url);
    const script = ['set -euo pipefail', 'curl() { command curl --fail-with-body "$@"; }'];
    for (const b of blocks) {
      if (b.file) writeFileSync(join(dir, b.file), here(b.code));
      else script.push(here(b.code));
    }
    // Once more, the last step (running the SDK module): Sam is a member now, so it takes that card.
    script.push(here(blocks.at(-1)!.code));
    writeFileSync(join(dir, 'quickstart.sh'), `${script.join('\n')}\n`);
    const res = spawnSync('bash', ['quickstart.sh'], {
      cwd: dir,
      env: { ...process.env, DATABASE_URL: db.url },
      encoding: 'utf8',
      timeout: 240_000,
    });
    const output = `${res.stdout}\n${res.stderr}`;
    assert.equal(res.status, 0, `the quick start stopped:\n${output}`);
    const shown = blocks.filter((b) => b.lang === 'sh').flatMap((b) => shownOutputs(b.code));
    assert.equal(shown.length, 3, `the README shows the balance answer, the ids, the SDK's line: ${shown.join(', ')}`);
    for (const line of shown) assert.match(res.stdout, line, `the README shows this output:\n${output}`);
    assert.match(res.stdout, /"points":40,"total":40,"balance":40/, output);
    const sdkRuns = [...res.stdout.matchAll(/^card (\S+): (\d+) points$/gm)];
    assert.equal(sdkRuns.length, 2, output);
    assert.equal(sdkRuns[0][1], sdkRuns[1][1], 'the second run uses the card of the first');
    assert.deepEqual(
      sdkRuns.map((r) => Number(r[2])),
      [40, 80],
    );
  });
});
