// Profiling aid: `BENCH_NODE_ARGS="--import ./bench/sql-stats.mjs" BENCH_SHOW_SERVER_OUTPUT=1 npm run bench:ledger`
// prints, when the server exits, each SQL text with its count: on SQLite with the time spent in it
// (total, mean), on PostgreSQL the count only (each is one round trip). SQL_STATS_TOP (16) and
// SQL_STATS_WIDTH (70) size the listing.
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
const stats = new Map();
const width = Number(process.env.SQL_STATS_WIDTH ?? 70);
const count = (text, ms) => {
  const k = text.slice(0, width);
  const s = stats.get(k) ?? { n: 0, t: 0 };
  s.n++;
  s.t += ms;
  stats.set(k, s);
};
const proto = Object.getPrototypeOf(new BetterSqlite3(':memory:').prepare('select 1'));
for (const name of ['run', 'all', 'get']) {
  const orig = proto[name];
  proto[name] = function (...args) {
    const t0 = performance.now();
    try {
      return orig.apply(this, args);
    } finally {
      count(this.source, performance.now() - t0);
    }
  };
}
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (q, ...rest) {
  count(typeof q === 'string' ? q : (q?.text ?? ''), 0);
  return query.call(this, q, ...rest);
};
process.on('exit', () => {
  const rows = [...stats.entries()]
    .sort((a, b) => b[1].t - a[1].t || b[1].n - a[1].n)
    .slice(0, Number(process.env.SQL_STATS_TOP ?? 16));
  for (const [k, s] of rows)
    process.stderr.write(
      `${s.t.toFixed(0).padStart(6)}ms ${String(s.n).padStart(6)} ` +
        `${((s.t * 1000) / s.n).toFixed(1).padStart(7)}µs  ${k}\n`,
    );
});
