import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { type ChildServer, serveChild } from './helpers/child-server.ts';
import { backend, freshDatabaseUrl } from './helpers/server.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const APP_ID = 'app_workers_test';
const TOKEN = 'tly_sk_workers_test_0123456789abcdef';

const until = async (what: string, check: () => Promise<boolean> | boolean, ms = 60_000) => {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
};
/** Pids of the processes that logged `msg` (pino writes each line with the pid). */
const pidsThatLogged = (out: string, msg: string) =>
  new Set([...out.matchAll(new RegExp(`"pid":(\\d+)[^\\n]*"msg":"${msg}"`, 'g'))].map((m) => m[1]));

describe('tally serve --workers N', () => {
  it('refuses N > 1 on SQLite, naming the one-writer rule and PostgreSQL', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-workers-'));
    try {
      const res = spawnSync(process.execPath, ['bin/tally.mjs', 'serve', '--workers', '2', '--port', '0'], {
        cwd: root,
        env: { ...process.env, DATABASE_URL: `sqlite:${join(dir, 'x.db')}` },
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(res.status, 2, res.stderr);
      assert.match(res.stderr, /SQLite allows one writer process: --workers N \(TALLY_WORKERS\) needs PostgreSQL/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('two workers on one PostgreSQL database', { skip: backend !== 'postgres' && 'PostgreSQL only' }, () => {
    let server: ChildServer;
    let db: { url: string; drop: () => Promise<void> };
    let client: pg.Client;
    before(async () => {
      db = await freshDatabaseUrl();
      server = await serveChild(
        { DATABASE_URL: db.url, TALLY_WORKERS: '2', TALLY_APP_ID: APP_ID, TALLY_APP_TOKEN: TOKEN },
        120_000,
      );
      await until('both workers listen', () => pidsThatLogged(server.output(), 'Tally is listening').size === 2);
      client = new pg.Client({ connectionString: db.url });
      await client.connect();
    });
    after(async () => {
      await client?.end();
      await server?.stop();
      await db?.drop();
    });

    it('share the requests of one port', async () => {
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${server.url}/v1/loyalties`, {
          method: 'POST',
          headers: {
            'x-app-id': APP_ID,
            'x-app-token': TOKEN,
            'content-type': 'application/json',
            connection: 'close',
          },
          body: JSON.stringify({ name: `P${i}` }),
        });
        assert.equal(res.status, 200);
      }
      // The primary hands connections to the workers in turn.
      await until('requests logged', () => pidsThatLogged(server.output(), 'request completed').size === 2, 5000);
    });

    it('run each due job once, never twice', async () => {
      // Every time a job is marked done, a row: a job run by both workers would have two.
      await client.query(`
        create table job_done_log (id text not null, by text);
        create function log_job_done() returns trigger language plpgsql as $$
          begin insert into job_done_log values (new.id, new.locked_by); return new; end $$;
        create trigger job_done after update on scheduled_jobs
          for each row when (new.state = 'done' and old.state <> 'done') execute function log_job_done();`);
      const jobs = 60;
      for (let round = 0; round < 6; round++) {
        const values = Array.from({ length: jobs / 6 }, (_, i) => `('job_w${round}_${i}')`).join(',');
        await client.query(`
          insert into scheduled_jobs (id, kind, run_at, payload, unique_key, state, attempts, created_at, updated_at)
          select v.id, 'retention.sweep', now()::text, 'null', v.id, 'pending', 0, now()::text, now()::text
          from (values ${values}) as v(id)`);
        await new Promise((r) => setTimeout(r, 400));
      }
      await until('all jobs done', async () => {
        const r = await client.query(
          `select count(*)::int n from scheduled_jobs where id like 'job_w%' and state = 'done'`,
        );
        return r.rows[0].n === jobs;
      });
      await new Promise((r) => setTimeout(r, 1500)); // a second run would show by now
      const log = await client.query(`select id, count(*)::int n from job_done_log group by id having count(*) > 1`);
      assert.deepEqual(log.rows, [], 'no job ran twice');
      const ran = await client.query(`select count(*)::int n from job_done_log where id like 'job_w%'`);
      assert.equal(ran.rows[0].n, jobs);
      // The hourly retention sweep: both workers schedule it, it exists (and ran) once per hour.
      const hourly = await client.query(
        `select unique_key, count(*)::int n from scheduled_jobs where unique_key like 'retention.sweep:%' group by 1`,
      );
      assert.ok(hourly.rows.length >= 1);
      for (const r of hourly.rows) assert.equal(r.n, 1);
    });

    it('stop together on SIGTERM to the primary', async () => {
      await server.stop();
      assert.equal(await server.exited, 0);
      assert.match(server.output(), /shutting down/);
    });
  });
});
