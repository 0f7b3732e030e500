// `npm run bench:redeem`: reward redemptions over HTTP, each issuing a voucher (a DISCOUNT_COUPONS
// reward whose campaign generates a code per redemption), each with its own Idempotency-Key, from 50
// concurrent connections, on SQLite and on PostgreSQL; printed beside point additions
// (`bench:ledger`'s request) against the same server in the same run, with the ratio; then
// redemptions of a reward that issues nothing (MATERIAL), to tell the redemption's own cost from
// the voucher's.
//
// Environment: as bench/ledger.ts (BENCH_DURATION, BENCH_CONNECTIONS, BENCH_CARDS, BENCH_BACKENDS,
// BENCH_PG_URL, BENCH_NODE_ARGS, BENCH_SHOW_SERVER_OUTPUT).
import { randomUUID } from 'node:crypto';
import type autocannon from 'autocannon';
import {
  api,
  authHeaders,
  BACKENDS,
  CONNECTIONS,
  cpuTicks,
  DURATION,
  load as run,
  loadAverageLine,
  PG_ADMIN,
  pgReachable,
  postgresTicks,
  usPer,
  withTally,
} from './lib.ts';

const CARDS = Number(process.env.BENCH_CARDS ?? 1000);

interface Row {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  serverCpuUs: number;
  dbCpuUs?: number;
}
const rows: Row[] = [];

async function measure(
  name: string,
  server: { pid: number; base: string },
  backend: string,
  request: () => { path: string; body: string },
): Promise<Row> {
  const requests = [
    {
      method: 'POST' as const,
      setupRequest: (req: autocannon.Request) => {
        const { path, body } = request();
        return { ...req, path, body, headers: { ...authHeaders, 'idempotency-key': randomUUID() } };
      },
    },
  ];
  await run({ url: server.base, duration: 2, requests });
  const cpu0 = cpuTicks(server.pid);
  const pg0 = backend === 'postgres' ? postgresTicks() : 0;
  const r = await run({ url: server.base, requests });
  const ok = r['2xx'];
  const row: Row = {
    name,
    rps: Math.round(ok / (r.duration || DURATION)),
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.non2xx + r.errors + r.timeouts,
    serverCpuUs: usPer(cpuTicks(server.pid) - cpu0, ok),
    dbCpuUs: backend === 'postgres' ? usPer(postgresTicks() - pg0, ok) : undefined,
  };
  rows.push(row);
  console.log(
    `  ${name}: ${row.rps} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms, ${row.errors} errors, ` +
      `server CPU ${row.serverCpuUs} µs/req` +
      (row.dbCpuUs === undefined ? '' : `, PostgreSQL CPU ${row.dbCpuUs} µs/req`),
  );
  if (row.errors > 0) console.log(`    non-2xx by status: ${JSON.stringify(r.statusCodeStats)}`);
  return row;
}

async function bench(backend: string) {
  await withTally(backend, async (server) => {
    const base = server.base;
    const program = await api(base, 'POST', '/v1/loyalties', { name: 'Bench' });
    const campaign = await api(base, 'POST', '/v1/campaigns', {
      name: 'Bench coupons',
      campaign_type: 'DISCOUNT_COUPONS',
      voucher: {
        type: 'DISCOUNT_VOUCHER',
        discount: { type: 'AMOUNT', amount_off: 500 },
        code_config: { pattern: 'RW-##########', charset: '0123456789ABCDEFGHJKLMNPQRSTUVWXYZ' },
      },
    });
    const reward = await api(base, 'POST', '/v1/rewards', {
      name: 'Five off',
      parameters: { campaign: { id: campaign.id } },
    });
    // A reward that issues nothing (MATERIAL, unlimited): the redemption's own cost, without the voucher's.
    const material = await api(base, 'POST', '/v1/rewards', { name: 'Sticker', parameters: { product: { id: 'p' } } });
    await api(base, 'POST', `/v1/loyalties/${program.id}/rewards`, [
      { reward: reward.id, parameters: { loyalty: { points: 1 } } },
      { reward: material.id, parameters: { loyalty: { points: 1 } } },
    ]);
    // Each run has cards of its own, so that the additions' lots (one per +1) do not lengthen the
    // lot list a redemption's debit walks.
    const cards = async (prefix: string, points: number) => {
      const codes: string[] = [];
      for (let i = 0; i < CARDS; i += 50) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(50, CARDS - i) }, async (_, j) => {
            const m = await api(base, 'POST', `/v1/loyalties/${program.id}/members`, {
              customer: { source_id: `${prefix}-${i + j}` },
            });
            if (points > 0) await api(base, 'POST', `/v1/loyalties/members/${m.code}/balance`, { points });
            return m.code as string;
          }),
        );
        codes.push(...batch);
      }
      return () => codes[Math.floor(Math.random() * codes.length)];
    };
    const adding = await cards('add', 0);
    const redeeming = await cards('redeem', 1_000_000);
    const addBody = JSON.stringify({ points: 1, reason: 'bench' });
    const redeemBody = JSON.stringify({ reward: { id: reward.id } });
    const add = await measure(`tally ${backend}: POST balance +1`, server, backend, () => ({
      path: `/v1/loyalties/members/${adding()}/balance`,
      body: addBody,
    }));
    const redeem = await measure(`tally ${backend}: POST redemption (issues a voucher)`, server, backend, () => ({
      path: `/v1/loyalties/${program.id}/members/${redeeming()}/redemption`,
      body: redeemBody,
    }));
    console.log(`    redemptions/additions: ${Math.round((100 * redeem.rps) / Math.max(1, add.rps))} %`);
    const materialBody = JSON.stringify({ reward: { id: material.id } });
    await measure(`tally ${backend}: POST redemption (MATERIAL, issues nothing)`, server, backend, () => ({
      path: `/v1/loyalties/${program.id}/members/${redeeming()}/redemption`,
      body: materialBody,
    }));
    // Every answered redemption issued one voucher; nothing was issued twice.
    const list = await api(base, 'GET', `/v1/vouchers?campaign_id=${campaign.id}&limit=1`);
    console.log(
      `    vouchers issued ${list.total}; redemptions answered within the measured runs ${redeem.rps * DURATION}+`,
    );
  });
}

console.log(`bench:redeem: ${CONNECTIONS} connections, ${DURATION} s per run, node ${process.version}`);
const havePg = BACKENDS.includes('postgres') && (await pgReachable());
for (const b of BACKENDS) {
  if (b === 'postgres' && !havePg) {
    console.log(`  PostgreSQL skipped: not reachable at ${PG_ADMIN}`);
    continue;
  }
  await bench(b);
}
console.log(`\n${loadAverageLine()}`);
console.log('\n| run | req/s | p50 ms | p99 ms | errors | server CPU µs/req | PostgreSQL CPU µs/req |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows)
  console.log(`| ${r.name} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.errors} | ${r.serverCpuUs} | ${r.dbCpuUs ?? '-'} |`);
console.log('\ntarget: redemptions >= 50 % of the additions rate');
