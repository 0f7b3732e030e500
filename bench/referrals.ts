// `npm run bench:referrals`: referral conversions over HTTP — a new friend redeems a referrer's code,
// which records the referee, puts points on a card issued for them and gives the referrer a tier's
// points — beside plain redemptions of a discount voucher by a new customer (the same request
// without the referral program), on SQLite and on PostgreSQL, from BENCH_CONNECTIONS connections,
// each request with its own Idempotency-Key. Conversions of one campaign run one at a time (the
// program row lock, docs/referrals.md), so BENCH_CAMPAIGNS spreads the referrers over campaigns.
//
// Environment: as bench/ledger.ts (BENCH_DURATION, BENCH_CONNECTIONS, BENCH_BACKENDS, BENCH_PG_URL),
// plus BENCH_REFERRERS (codes, default 200) and BENCH_CAMPAIGNS (default 1).
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
  usPer,
  withTally,
} from './lib.ts';

const REFERRERS = Number(process.env.BENCH_REFERRERS ?? 200);
const CAMPAIGNS = Number(process.env.BENCH_CAMPAIGNS ?? 1);

interface Row {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  serverCpuUs: number;
}
const rows: Row[] = [];

async function measure(name: string, server: { pid: number; base: string }, request: () => string): Promise<Row> {
  const requests = [
    {
      method: 'POST' as const,
      setupRequest: (req: autocannon.Request) => ({
        ...req,
        path: request(),
        // A new customer each time: a referee is referred once per campaign.
        body: JSON.stringify({ customer: { source_id: randomUUID() }, order: { amount: 2000 } }),
        headers: { ...authHeaders, 'idempotency-key': randomUUID() },
      }),
    },
  ];
  await run({ url: server.base, duration: 2, requests });
  const cpu0 = cpuTicks(server.pid);
  const r = await run({ url: server.base, requests });
  const ok = r['2xx'];
  const row: Row = {
    name,
    rps: Math.round(ok / (r.duration || DURATION)),
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.non2xx + r.errors + r.timeouts,
    serverCpuUs: usPer(cpuTicks(server.pid) - cpu0, ok),
  };
  rows.push(row);
  console.log(
    `  ${name}: ${row.rps} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms, ${row.errors} errors, ` +
      `server CPU ${row.serverCpuUs} µs/req`,
  );
  if (row.errors > 0) console.log(`    non-2xx by status: ${JSON.stringify(r.statusCodeStats)}`);
  return row;
}

async function bench(backend: string) {
  await withTally(backend, async (server) => {
    const base = server.base;
    const program = await api(base, 'POST', '/v1/loyalties', { name: 'Bench' });
    await api(base, 'POST', '/v1/vouchers/PLAIN-5', { discount: { type: 'AMOUNT', amount_off: 500 } });
    const codes: string[] = [];
    for (let c = 0; c < CAMPAIGNS; c++) {
      const campaign = await api(base, 'POST', '/v1/campaigns', {
        name: `Bench friends ${c}`,
        campaign_type: 'REFERRAL_PROGRAM',
        voucher: { discount: { type: 'AMOUNT', amount_off: 500 } },
        referral_program: {
          conversion_event_type: 'redemption',
          referee_reward: { type: 'LOYALTY_CARD', amount: 10, related_object_parent: { id: program.id } },
        },
      });
      await api(base, 'POST', `/v1/referrals/${campaign.id}/tiers`, {
        name: 'per friend',
        event: 'EACH_REFEREE',
        reward: { type: 'POINTS', points: 5, campaign_id: program.id },
      });
      for (let i = 0; i < REFERRERS / CAMPAIGNS; i += 25) {
        const batch = await Promise.all(
          Array.from({ length: 25 }, async (_, j) => {
            const pub = await api(base, 'POST', '/v1/publications', {
              campaign: campaign.id,
              customer: { source_id: `referrer-${c}-${i + j}` },
            });
            return pub.voucher.code as string;
          }),
        );
        codes.push(...batch);
      }
    }
    const plain = await measure(
      `tally ${backend}: plain redemption (new customer)`,
      server,
      () => '/v1/vouchers/PLAIN-5/redemption',
    );
    const referral = await measure(
      `tally ${backend}: referral conversion (new referee)`,
      server,
      () => `/v1/vouchers/${encodeURIComponent(codes[Math.floor(Math.random() * codes.length)])}/redemption`,
    );
    console.log(`    conversions/plain redemptions: ${Math.round((100 * referral.rps) / Math.max(1, plain.rps))} %`);
  });
}

console.log(
  `bench:referrals: ${CONNECTIONS} connections, ${DURATION} s per run, ${REFERRERS} referrers in ${CAMPAIGNS} ` +
    `campaign(s), node ${process.version}`,
);
const havePg = BACKENDS.includes('postgres') && (await pgReachable());
for (const b of BACKENDS) {
  if (b === 'postgres' && !havePg) {
    console.log(`  PostgreSQL skipped: not reachable at ${PG_ADMIN}`);
    continue;
  }
  await bench(b);
}
console.log(`\n${loadAverageLine()}`);
console.log('\n| run | req/s | p50 ms | p99 ms | errors | server CPU µs/req |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${r.name} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.errors} | ${r.serverCpuUs} |`);
