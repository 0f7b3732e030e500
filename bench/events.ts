// `npm run bench:events`: custom events per second through POST /v1/events with 20 active earning
// rules, from 50 concurrent connections, on SQLite and on PostgreSQL, against a `tally serve` child
// process (NODE_ENV=production, LOG_LEVEL=warn; see bench/lib.ts).
//
// One program (time zone Europe/Zagreb, auto-join) with 20 active rules: 5 match every event (fixed
// points, proportional on the event's metadata, a condition on the metadata, a weekend multiplier,
// a daily cap) and 15 listen to other events. The events spread over BENCH_CUSTOMERS customers
// (300), each with its own source_event_id; every customer's first event (the warm-up) creates
// the customer and its card.
//
// Prints events/s, p50/p99 and the CPU time per event of the server process (and of all
// PostgreSQL processes) from /proc. Afterwards it checks that the cards hold exactly the points the
// answers earned: events sent but not answered when the run's time was up are sent again (the
// same source_event_id answers the first result, or earns now if the first never arrived).
//
// BENCH_TIERS=1 gives the program three tiers (0, 500 and 2000 points): every credit then
// re-evaluates the member's tier in its transaction, and members move up during the run.
//
// Environment: BENCH_DURATION (10), BENCH_CONNECTIONS (50), BENCH_CUSTOMERS (300), BENCH_BACKENDS,
// BENCH_PG_URL, BENCH_NODE_ARGS and BENCH_SHOW_SERVER_OUTPUT for profiling (see bench/lib.ts).
import type autocannon from 'autocannon';
import {
  api,
  authHeaders,
  BACKENDS,
  CONNECTIONS,
  DURATION,
  load,
  loadAverageLine,
  pgReachable,
  postgresTicks,
  processesOf,
  treeTicks,
  usPer,
  withTally,
} from './lib.ts';

const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 300);
const TIERS = process.env.BENCH_TIERS === '1';

const RULES: unknown[] = [
  { event: 'purchase', loyalty: { type: 'FIXED', points: 5 } },
  {
    event: 'purchase',
    loyalty: {
      type: 'PROPORTIONAL',
      calculation_type: 'CUSTOM_EVENT_METADATA',
      custom_event: { metadata: { every: 10, points: 1, property: 'value' } },
    },
  },
  {
    event: 'purchase',
    loyalty: { type: 'FIXED', points: 2 },
    conditions: { 'event.metadata.channel': { $in: ['web', 'app'] } },
  },
  {
    event: 'purchase',
    loyalty: { type: 'FIXED', points: 3 },
    multipliers: [{ multiplier: 2, validity_day_of_week: [0, 6] }],
  },
  { event: 'purchase', loyalty: { type: 'FIXED', points: 1 }, limits: [{ period: 'DAY', max_points: 1_000_000 }] },
  ...Array.from({ length: 15 }, (_, i) => ({ event: `other_${i}`, loyalty: { type: 'FIXED', points: 1 } })),
];

interface Row {
  backend: string;
  eps: number;
  p50: number;
  p99: number;
  errors: number;
  serverCpuUs: number;
  dbCpuUs?: number;
  check: string;
}
const rows: Row[] = [];

/** The i-th event of a run: customers, values and channels in turn. */
const eventOf = (id: string, i: number) => ({
  event: 'purchase',
  customer: { source_id: `bench-${i % CUSTOMERS}` },
  metadata: { value: 40 + (i % 100), channel: ['web', 'app', 'pos'][i % 3] },
  source_event_id: id,
});

/** Points earned per source_event_id, from the answers. */
type Earned = Map<string, number>;
function recordAnswer(earned: Earned, status: number, body: string) {
  if (status !== 200) return;
  const r = JSON.parse(body);
  earned.set(r.source_event_id, r.earned.points + r.earned.pending_points);
}

function eventsLoad(
  base: string,
  prefix: string,
  sent: Set<string>,
  earned: Earned,
  duration: number,
): Promise<autocannon.Result> {
  let n = 0;
  return load({
    url: base,
    duration,
    requests: [
      {
        method: 'POST',
        path: '/v1/events',
        headers: authHeaders,
        setupRequest: (req) => {
          const i = n++;
          const id = `${prefix}-${i}`;
          sent.add(id);
          return { ...req, body: JSON.stringify(eventOf(id, i)) };
        },
        onResponse: (status, body) => recordAnswer(earned, status, body),
      },
    ],
  });
}

async function benchEvents(backend: string, processes: number) {
  await withTally(
    backend,
    async (server) => {
      const base = server.base;
      const program = await api(base, 'POST', '/v1/loyalties', { name: 'Bench', timezone: 'Europe/Zagreb' });
      await api(base, 'POST', `/v1/loyalties/${program.id}/earning-rules`, RULES);
      if (TIERS) {
        await api(base, 'POST', `/v1/loyalties/${program.id}/tiers`, [
          { name: 'Bronze', points: { from: 0, to: 499 } },
          { name: 'Silver', points: { from: 500, to: 1999 } },
          { name: 'Gold', points: { from: 2000 } },
        ]);
      }
      // Every customer's first event: creates the customer and its card.
      const earned: Earned = new Map();
      const codes: string[] = [];
      for (let i = 0; i < CUSTOMERS; i += 50) {
        const answers = await Promise.all(
          Array.from({ length: Math.min(50, CUSTOMERS - i) }, (_, j) =>
            api(base, 'POST', '/v1/events', eventOf(`first-${i + j}`, i + j)),
          ),
        );
        for (const a of answers) {
          earned.set(a.source_event_id, a.earned.points + a.earned.pending_points);
          codes.push(a.earned.accruals[0].code);
        }
      }
      // Warm-up, then the measured run.
      const sent = new Set<string>();
      await eventsLoad(base, 'warm', sent, earned, 2);
      const answeredBefore = earned.size;
      const cpu0 = treeTicks(server.pid);
      const pg0 = backend === 'postgres' ? postgresTicks() : 0;
      const r = await eventsLoad(base, 'run', sent, earned, DURATION);
      const row: Row = {
        backend: processes > 1 ? `${backend}, ${processes} processes` : backend,
        eps: Math.round(r['2xx'] / (r.duration || DURATION)),
        p50: r.latency.p50,
        p99: r.latency.p99,
        errors: r.non2xx + r.errors + r.timeouts,
        serverCpuUs: usPer(treeTicks(server.pid) - cpu0, r['2xx']),
        dbCpuUs: backend === 'postgres' ? usPer(postgresTicks() - pg0, r['2xx']) : undefined,
        check: '',
      };
      console.log(
        `  ${row.backend}: ${row.eps} events/s, p50 ${row.p50} ms, p99 ${row.p99} ms, ${row.errors} errors; ` +
          `server CPU ${row.serverCpuUs} µs per event` +
          (row.dbCpuUs === undefined ? '' : `, PostgreSQL CPU ${row.dbCpuUs} µs per event`),
      );
      // Correctness: events whose answer did not arrive are sent again; then the cards must hold
      // exactly what the answers earned.
      const unanswered = [...sent].filter((id) => !earned.has(id));
      for (const id of unanswered) {
        const a = await api(base, 'POST', '/v1/events', eventOf(id, 0));
        earned.set(id, a.earned.points + a.earned.pending_points);
      }
      let held = 0;
      for (const code of codes) held += (await api(base, 'GET', `/v1/loyalties/members/${code}`)).loyalty_card.balance;
      const expected = [...earned.values()].reduce((s, p) => s + p, 0);
      const ok = held === expected;
      row.check = `${ok ? 'ok' : 'MISMATCH'}: cards hold ${held}, answers earned ${expected}`;
      console.log(
        `    ${row.check} (${earned.size - answeredBefore} events answered in the run, ` +
          `${unanswered.length} sent again)`,
      );
      if (!ok) process.exitCode = 1;
      rows.push(row);
    },
    processes,
  );
}

console.log(
  `bench:events: 20 active earning rules (5 match each event)${TIERS ? ', 3 tiers' : ''}, ${CUSTOMERS} customers, ` +
    `${CONNECTIONS} connections, ${DURATION} s, node ${process.version}`,
);
for (const b of BACKENDS) {
  if (b === 'postgres' && !(await pgReachable())) {
    console.log('  PostgreSQL skipped: not reachable');
    continue;
  }
  for (const n of processesOf(b)) await benchEvents(b, n);
}
console.log(`\n${loadAverageLine()}`);
console.log(
  '\n| backend | events/s | p50 ms | p99 ms | errors | server CPU µs/event | PostgreSQL CPU µs/event | ledger check |',
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
for (const r of rows)
  console.log(
    `| ${r.backend} | ${r.eps} | ${r.p50} | ${r.p99} | ${r.errors} | ${r.serverCpuUs} | ${r.dbCpuUs ?? '-'} | ` +
      `${r.check} |`,
  );
console.log('\ntarget: SQLite >= 3000 events/s');
