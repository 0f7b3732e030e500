// npm run bench:keyword — latency from an inbound provider webhook to the outbound provider call.
//
// A `tally serve` child process on a fresh SQLite file (or BENCH_DATABASE_URL, e.g. a fresh
// PostgreSQL database); this process plays Infobip on both sides:
// it POSTs MO_JSON_2 inbound batches ("POINTS" from members with points) at a fixed open-loop rate
// and runs a fake Infobip API that receives the replies (POST /sms/3/messages). Latency = time
// from sending the webhook to the reply arriving at the fake provider. Prints p50/p99 at 200
// messages/s, then steps the rate up and reports where p99 passes 100 ms.
import { spawn } from 'node:child_process';
import { createServer as createNetServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Agent, setGlobalDispatcher } from 'undici';
import { FakeInfobip, infobipSms } from '../test/fakes/infobip.ts';
import { postgresTicks } from './lib.ts';

setGlobalDispatcher(new Agent({ connections: 256, pipelining: 1, keepAliveTimeout: 30_000 }));

const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 500);
const BASE_SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const STEP_SECONDS = Number(process.env.BENCH_STEP_SECONDS ?? 5);
const ON_POSTGRES = process.env.BENCH_DATABASE_URL?.startsWith('postgres') ?? false;
const RATES = (process.env.BENCH_RATES ?? '50,100,150,200,250,300,400,500,600,800,1000,1200,1500')
  .split(',')
  .map(Number);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createNetServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** CPU time (ms) the server process has used so far, user and system (Linux /proc). */
function cpuTimes(pid: number | undefined): { user: number; system: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: (Number(fields[11]) * 1000) / 100, system: (Number(fields[12]) * 1000) / 100 };
  } catch {
    return { user: NaN, system: NaN };
  }
}

function cpuMs(pid: number | undefined): number {
  const t = cpuTimes(pid);
  return t.user + t.system;
}

function pct(sorted: number[], p: number) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** PostgreSQL's WAL insert position in bytes (0 on SQLite). */
async function walPosition(): Promise<number> {
  if (!ON_POSTGRES) return 0;
  const client = new pg.Client({ connectionString: process.env.BENCH_DATABASE_URL });
  await client.connect();
  try {
    const r = await client.query(`select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::text as at`);
    return Number(r.rows[0].at);
  } finally {
    await client.end();
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'tally-bench-kw-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const headers = {
    'x-app-id': 'app_bench',
    'x-app-token': 'tly_sk_bench_0123456789abcdef',
    'content-type': 'application/json',
  };
  const child = spawn(
    process.execPath,
    [...(process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : []), 'bin/tally.mjs', 'serve'],
    {
      env: {
        ...process.env,
        DATABASE_URL: process.env.BENCH_DATABASE_URL ?? `sqlite:${join(dir, 'bench.db')}`,
        PORT: String(port),
        LOG_LEVEL: 'warn',
        TALLY_APP_ID: headers['x-app-id'],
        TALLY_APP_TOKEN: headers['x-app-token'],
        TALLY_ALLOW_PRIVATE_TARGETS: '1',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  const infobip = new FakeInfobip('bench-key-0123456789');
  try {
    await infobip.start();
    for (let i = 0; ; i++) {
      const ok = await fetch(`${url}/readyz`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) break;
      if (i > 200) throw new Error('server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const json = (await res.json()) as any;
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    };
    const program = await api('POST', '/v1/loyalties', { name: 'Bench program' });
    const phones: string[] = [];
    for (let i = 0; i < MEMBERS; i++) {
      const phone = `+38591${String(1000000 + i).padStart(7, '0')}`;
      phones.push(phone);
      const m = await api('POST', `/v1/loyalties/${program.id}/members`, {
        customer: { source_id: `b${i}`, name: `Member ${i}`, phone },
      });
      await api('POST', `/v1/loyalties/members/${m.code}/balance`, { points: 1000 + i });
    }
    const channel = await api('POST', '/v1/channels', {
      name: 'bench',
      provider: 'infobip',
      sender: 'Tally',
      credentials: { base_url: infobip.url, api_key: infobip.apiKey },
      inbound_auth: { type: 'token', token: 'bench-token-0123456789' },
    });
    await api('POST', '/v1/flows', {
      name: 'Points balance',
      program_id: program.id,
      triggers: [{ keywords: ['POINTS', 'BALANCE', 'PTS'], match: 'first_word' }],
      steps: [
        { id: 'find', type: 'find_member', next: 'reply' },
        {
          id: 'reply',
          type: 'reply',
          template:
            'Hi {{ customer.name }}, you have {{ points }} points on card {{ membership.code }}. ' +
            'Reply REDEEM to redeem.',
          next: 'wait',
        },
        { id: 'wait', type: 'wait', replies: [{ keywords: ['REDEEM'], next: 'redeem' }] },
        { id: 'redeem', type: 'reply', template: 'Show card {{ membership.code }} at the till.' },
      ],
    });
    const inboundUrl = `${url}/v1/channels/${channel.id}/inbound?token=bench-token-0123456789`;

    // Pending sends per phone (FIFO): the reply to the phone resolves the oldest.
    const pending = new Map<string, number[]>();
    let latencies: number[] = [];
    let errors = 0;
    const original = infobip.sent.push.bind(infobip.sent);
    infobip.sent.push = (...items) => {
      const now = performance.now();
      for (const s of items) {
        const q = pending.get(`+${s.to}`);
        const t0 = q?.shift();
        if (t0 !== undefined) latencies.push(now - t0);
      }
      return original(...items);
    };

    let seq = 0;
    async function run(rate: number, seconds: number) {
      latencies = [];
      errors = 0;
      const cpu0 = cpuTimes(child.pid);
      const pg0 = ON_POSTGRES ? postgresTicks() : 0;
      const wal0 = await walPosition();
      const total = Math.round(rate * seconds);
      const interval = 1000 / rate;
      const start = performance.now();
      const inflight: Promise<void>[] = [];
      for (let i = 0; i < total; i++) {
        const due = start + i * interval;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const phone = phones[seq++ % phones.length];
        const q = pending.get(phone) ?? [];
        q.push(performance.now());
        pending.set(phone, q);
        inflight.push(
          fetch(inboundUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(
              infobipSms(phone, '385921004026', seq % 3 === 0 ? 'balance' : 'POINTS', `bench-${seq}`),
            ),
          })
            .then(async (r) => {
              await r.arrayBuffer();
              if (r.status !== 200) errors++;
            })
            .catch(() => {
              errors++;
            }),
        );
      }
      await Promise.all(inflight);
      const deadline = performance.now() + 10_000;
      while (latencies.length + errors < total && performance.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      const elapsed = (performance.now() - start) / 1000;
      const sorted = [...latencies].sort((a, b) => a - b);
      const lost = total - latencies.length;
      for (const q of pending.values()) q.length = 0;
      const cpu1 = cpuTimes(child.pid);
      // PostgreSQL's CPU (all its processes; ticks of 10 ms) per message, beside the server's.
      const dbPerMessage = ON_POSTGRES ? ((postgresTicks() - pg0) * 10) / total : undefined;
      // The WAL PostgreSQL wrote per message (the whole cluster's: run it alone): the write work,
      // which unlike CPU time does not move with the machine's speed.
      const walPerMessage = ON_POSTGRES ? ((await walPosition()) - wal0) / total : undefined;
      const userPerMessage = (cpu1.user - cpu0.user) / total;
      const systemPerMessage = (cpu1.system - cpu0.system) / total;
      const cpuPerMessage = userPerMessage + systemPerMessage;
      return {
        rate,
        total,
        replies: latencies.length,
        lost,
        errors,
        cpuPerMessage,
        userPerMessage,
        systemPerMessage,
        dbPerMessage,
        walPerMessage,
        p50: pct(sorted, 50),
        p99: pct(sorted, 99),
        max: sorted.at(-1) ?? NaN,
        achieved: latencies.length / elapsed,
      };
    }
    const fmt = (r: Awaited<ReturnType<typeof run>>) =>
      `rate ${String(r.rate).padStart(5)}/s  replies ${r.replies}/${r.total}  p50 ${r.p50.toFixed(1)} ms  p99 ` +
      `${r.p99.toFixed(1)} ms  max ${r.max.toFixed(1)} ms  achieved ${r.achieved.toFixed(0)}/s  server CPU ` +
      `${r.cpuPerMessage.toFixed(2)} ms/msg (user ${r.userPerMessage.toFixed(2)}, system ` +
      `${r.systemPerMessage.toFixed(2)})` +
      `${r.dbPerMessage === undefined ? '' : `  PostgreSQL CPU ${r.dbPerMessage.toFixed(2)} ms/msg`}` +
      `${r.walPerMessage === undefined ? '' : `, WAL ${(r.walPerMessage / 1024).toFixed(1)} KB/msg`}` +
      `${r.errors ? `  errors ${r.errors}` : ''}${r.lost ? `  lost ${r.lost}` : ''}`;

    // Calibration: what a trivial request costs this server on this machine right now.
    const c0 = cpuMs(child.pid);
    for (let i = 0; i < 500; i++) await (await fetch(`${url}/healthz`)).arrayBuffer();
    const healthzCpu = (cpuMs(child.pid) - c0) / 500;

    // Warm-up (not measured): let V8 optimise the hot path and SQLite fill its page cache, so the
    // figures describe the steady state rather than the first seconds after start.
    await run(50, 2);
    await run(150, Number(process.env.BENCH_WARMUP_SECONDS ?? 5));
    const base = await run(200, BASE_SECONDS);
    console.log(
      `\nkeyword bench (${ON_POSTGRES ? 'PostgreSQL' : 'SQLite'}, ` +
        `${MEMBERS} members, webhook → flow → provider call; load average ${loadavg()[0].toFixed(1)} on ` +
        `${(await import('node:os')).cpus().length} CPUs)`,
    );
    console.log(
      `calibration: GET /healthz costs ${healthzCpu.toFixed(2)} ms of server CPU (about 0.1 ms on an idle machine)`,
    );
    console.log(fmt(base));
    console.log(
      `server CPU per keyword message ≈ ${(base.cpuPerMessage / healthzCpu).toFixed(1)} × a health check; one core ` +
        `sustains ≈ ${(1000 / base.cpuPerMessage).toFixed(0)} messages/s at this cost`,
    );
    console.log(`target p99 < 50 ms at 200/s: ${base.p99 < 50 && base.lost === 0 ? 'MET' : 'NOT MET'}\n`);
    console.log('stepping the rate up:');
    let crossed: Awaited<ReturnType<typeof run>> | null = null;
    let lastOk: Awaited<ReturnType<typeof run>> | null = null;
    for (const rate of RATES) {
      const r = await run(rate, STEP_SECONDS);
      console.log(fmt(r));
      if (r.p99 > 100 || r.lost > 0) {
        crossed = r;
        break;
      }
      lastOk = r;
      await new Promise((res) => setTimeout(res, 1000)); // let the queue drain between steps
    }
    if (crossed) {
      console.log(
        `\np99 passes 100 ms at ${crossed.rate} messages/s` +
          (lastOk
            ? ` (highest rate under 100 ms: ${lastOk.rate}/s, p99 ${lastOk.p99.toFixed(1)} ms)`
            : ' (already at the lowest step)'),
      );
    } else {
      console.log(`\np99 stayed under 100 ms up to ${lastOk?.rate} messages/s`);
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await infobip.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
