import { CompiledQuery, Kysely, SqliteDialect } from 'kysely';
import BetterSqlite3 from 'better-sqlite3';
const native = new BetterSqlite3(':memory:');
native.exec('create table m (id text primary key, code text unique, program_id text, x text)');
for (let i = 0; i < 1000; i++) native.prepare('insert into m values (?,?,?,?)').run(`id${i}`, `c${i}`, 'p', 'x');
const cache = new Map();
const db = new Kysely<any>({ dialect: new SqliteDialect({ database: { prepare: (s: string) => cache.get(s) ?? (cache.set(s, native.prepare(s)), cache.get(s)), close: () => native.close() } }) });
const N = 20000;
for (let round = 0; round < 2; round++) {
let t0 = performance.now();
for (let i = 0; i < N; i++) await db.selectFrom('m').selectAll().where('code', '=', `c${i % 1000}`).where('program_id', '=', 'p').executeTakeFirst();
console.log('builder', ((performance.now() - t0) * 1000 / N).toFixed(1));
const text = db.selectFrom('m').selectAll().where('code', '=', 'x').where('program_id', '=', 'p').compile().sql;
t0 = performance.now();
for (let i = 0; i < N; i++) await db.executeQuery(CompiledQuery.raw(text, [`c${i % 1000}`, 'p']));
console.log('compiled raw', ((performance.now() - t0) * 1000 / N).toFixed(1));
const st = native.prepare(text);
t0 = performance.now();
for (let i = 0; i < N; i++) st.get(`c${i % 1000}`, 'p');
console.log('native', ((performance.now() - t0) * 1000 / N).toFixed(1));
}
