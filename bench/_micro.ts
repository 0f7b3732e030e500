import { loadConfig } from '/work/wt-core/src/config.ts';
import { buildServer } from '/work/wt-core/src/server.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const url = process.env.URL ?? `sqlite:${join(mkdtempSync(join(tmpdir(), 'm-')), 'x.db')}`;
const config = { ...loadConfig({}, {}), databaseUrl: url, logLevel: 'warn', workers: false, port: 0 };
const s = await buildServer(config, { logger: false });
await s.services.apiKeys.ensure('app_x', 'tok_x_123456789');
const h = { 'x-app-id': 'app_x', 'x-app-token': 'tok_x_123456789', 'content-type': 'application/json' };
const p = (await s.app.inject({ method: 'POST', url: '/v1/loyalties', headers: h, payload: { name: 'P' } })).json();
const m = (await s.app.inject({ method: 'POST', url: `/v1/loyalties/${p.id}/members`, headers: h, payload: { customer: { source_id: 'a' } } })).json();
const N = Number(process.env.N ?? 2000);
// raw sqlite statement speed
const db = s.ctx.database.db;
let t0 = performance.now();
for (let i = 0; i < N; i++) await db.selectFrom('memberships').selectAll().where('code', '=', m.code).executeTakeFirst();
console.log('select member via kysely: µs', ((performance.now() - t0) * 1000 / N).toFixed(1));
t0 = performance.now();
for (let i = 0; i < N; i++) {
  await s.ctx.transaction(async (trx) => {
    const program = await s.services.programs.get(trx, p.id);
    const membership = await s.services.members.get(trx, m.code, program.id);
    const definition = await s.services.programs.definition(trx, program.id);
    await s.services.ledger.applyChange(trx, { program, membership, definition, points: 1, type: 'POINTS_ADDITION' });
  });
}
console.log('applyChange txn: µs', ((performance.now() - t0) * 1000 / N).toFixed(1));
t0 = performance.now();
for (let i = 0; i < N; i++) {
  const r = await s.app.inject({ method: 'POST', url: `/v1/loyalties/members/${m.code}/balance`, headers: { ...h, 'idempotency-key': `k${i}` }, payload: { points: 1 } });
  if (r.statusCode !== 200) throw new Error(r.body);
}
console.log('inject POST balance: µs', ((performance.now() - t0) * 1000 / N).toFixed(1));
t0 = performance.now();
for (let i = 0; i < N; i += 50) {
  await Promise.all(Array.from({ length: 50 }, async (_, j) => {
    const r = await s.app.inject({ method: 'POST', url: `/v1/loyalties/members/${m.code}/balance`, headers: { ...h, 'idempotency-key': `c${i + j}` }, payload: { points: 1 } });
    if (r.statusCode !== 200) throw new Error(r.body);
  }));
}
console.log('inject POST balance, 50 concurrent: µs', ((performance.now() - t0) * 1000 / N).toFixed(1));
t0 = performance.now();
for (let i = 0; i < N; i++) {
  const r = await s.app.inject({ method: 'GET', url: `/healthz` });
}
console.log('inject healthz: µs', ((performance.now() - t0) * 1000 / N).toFixed(1));
await s.close();
