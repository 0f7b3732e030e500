// Profiling aid: `BENCH_NODE_ARGS="--import ./bench/sql-stats.mjs" BENCH_SHOW_SERVER_OUTPUT=1 npm run bench:ledger`
// prints, when the SQLite server exits, the time spent in each SQL text (count, mean).
import BetterSqlite3 from 'better-sqlite3';
const stats = new Map();
const proto = Object.getPrototypeOf(new BetterSqlite3(':memory:').prepare('select 1'));
for (const name of ['run', 'all', 'get']) {
  const orig = proto[name];
  proto[name] = function (...args) {
    const t0 = performance.now();
    try { return orig.apply(this, args); } finally {
      const k = this.source.slice(0, Number(process.env.SQL_STATS_WIDTH ?? 70));
      const s = stats.get(k) ?? { n: 0, t: 0 };
      s.n++; s.t += performance.now() - t0; stats.set(k, s);
    }
  };
}
process.on('exit', () => {
  const rows = [...stats.entries()].sort((a, b) => b[1].t - a[1].t).slice(0, Number(process.env.SQL_STATS_TOP ?? 16));
  for (const [k, s] of rows) process.stderr.write(`${s.t.toFixed(0).padStart(6)}ms ${String(s.n).padStart(6)} ${(s.t * 1000 / s.n).toFixed(1).padStart(7)}µs  ${k}\n`);
});
