import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { modules } from '../src/modules/index.ts';
import { migrateToLatest } from '../src/storage/migrate.ts';
import { backend, startTestServer, type TestServer } from './helpers/server.ts';

// The README tells an operator of a large PostgreSQL database to build the lists' indexes of
// migrations 0580, 0581 and 0296 with CREATE INDEX CONCURRENTLY before upgrading. This runs the
// README's statements on a database that predates those migrations and checks that they make the
// very indexes the migrations make, and that the migrations then run over them.

const root = new URL('..', import.meta.url).pathname;
const MIGRATIONS = ['0296_messaging_channel_order', '0580_vouchers_list_indexes', '0581_vouchers_campaign_order'];

/** The README's block of CREATE INDEX CONCURRENTLY statements. */
function readmeStatements(): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```sql\n([\s\S]*?)```/g)]
    .map((m) => m[1])
    .find((b) => b.includes('CREATE INDEX CONCURRENTLY'));
  assert.ok(block, 'the README has a sql block of CREATE INDEX CONCURRENTLY statements');
  return block
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean);
}

describe('indexes built ahead of their migrations (README, large PostgreSQL databases)', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });
  const db = () => t.server.ctx.database.db;

  /** What an index is, in a form both ways of making it print alike. */
  async function definition(name: string): Promise<string | undefined> {
    if (backend === 'postgres') {
      const r = await sql<{ indexdef: string }>`select indexdef from pg_indexes where indexname = ${name}`.execute(
        db(),
      );
      return r.rows[0]?.indexdef;
    }
    const table = await sql<{
      tbl_name: string;
    }>`select tbl_name from sqlite_master where type = 'index' and name = ${name}`.execute(db());
    if (!table.rows[0]) return undefined;
    const columns = await sql<{ name: string }>`select name from pragma_index_info(${name}) order by seqno`.execute(
      db(),
    );
    return `${table.rows[0].tbl_name} (${columns.rows.map((c) => c.name).join(', ')})`;
  }

  it('the README’s statements make the migrations’ indexes, and the migrations then run', async () => {
    const statements = readmeStatements();
    const names = statements.map((s) => {
      const name = /IF NOT EXISTS (\w+) ON/.exec(s)?.[1];
      assert.ok(name, `the statement names its index: ${s}`);
      return name;
    });
    assert.equal(names.length, 4);
    const made = new Map<string, string | undefined>();
    for (const name of names) {
      made.set(name, await definition(name));
      assert.ok(made.get(name), `${name} is an index the migrations make`);
    }
    const assertAsMigrationsMade = async () => {
      for (const name of names) assert.equal(await definition(name), made.get(name), name);
    };

    // As before those migrations ran: their indexes and their records gone.
    for (const name of names) await sql`drop index ${sql.id(name)}`.execute(db());
    await db()
      .deleteFrom('tally_migrations' as never)
      .where(sql.ref('name'), 'in', MIGRATIONS)
      .execute();

    // The operator's statements, one at a time outside a transaction (CONCURRENTLY needs it; SQLite
    // has no such thing and builds the index in place).
    for (const statement of statements) {
      await sql.raw(backend === 'postgres' ? statement : statement.replace(' CONCURRENTLY', '')).execute(db());
    }
    await assertAsMigrationsMade();

    const ran = await migrateToLatest(
      db(),
      backend,
      modules.flatMap((m) => m.migrations ?? []),
    );
    assert.equal(ran.error, undefined, String(ran.error));
    assert.deepEqual(
      ran.results?.map((r) => [r.migrationName, r.status]).sort(),
      MIGRATIONS.map((m) => [m, 'Success']),
    );
    await assertAsMigrationsMade();
  });
});
