import { Migrator, type ColumnDefinitionBuilder, type Kysely, type Migration, type MigrationResultSet } from 'kysely';
import type { DialectName } from './database.ts';
import type { MigrationEnv } from './sealed.ts';

/**
 * A Kysely handle without the schema's types: for migrations (which make the schema) and the few
 * reads and writes of tables named at run time (sealed.ts).
 */
export type UntypedDb = Kysely<any>;

/**
 * A forward-only migration. Both backends run the same list; `dialect` is there only for the
 * few column types that differ (auto-increment keys). Name them `NNNN_module_what`: each module
 * has its own number range (core 0001-0099, webhooks 0100-0199, messaging 0200-0299,
 * program rules 0300-0399, scheduler 0400-0499), so modules can add migrations independently.
 */
export interface TallyMigration {
  name: string;
  up(db: UntypedDb, dialect: DialectName, env: MigrationEnv): Promise<void>;
}

const noSecrets: MigrationEnv = {
  secrets: () =>
    Promise.reject(new Error('this migration encrypts stored secrets: it needs the secret key (MigrationEnv)')),
};

export async function migrateToLatest(
  db: Kysely<any>,
  dialect: DialectName,
  migrations: TallyMigration[],
  env: MigrationEnv = noSecrets,
): Promise<MigrationResultSet> {
  const byName: Record<string, Migration> = {};
  for (const m of migrations) {
    if (byName[m.name]) throw new Error(`duplicate migration name ${m.name}`);
    byName[m.name] = { up: (k) => m.up(k, dialect, env) };
  }
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => byName },
    allowUnorderedMigrations: true,
    migrationTableName: 'tally_migrations',
    migrationLockTableName: 'tally_migrations_lock',
  });
  const result = await migrator.migrateToLatest();
  if (result.error) throw result.error;
  return result;
}

/** Column type of an auto-increment primary key on each backend. */
export function autoIncrementType(dialect: DialectName): 'integer' | 'bigserial' {
  return dialect === 'sqlite' ? 'integer' : 'bigserial';
}

/** Column constraints of an auto-increment primary key on each backend (with `autoIncrementType`). */
export function autoIncrementKey(dialect: DialectName): (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder {
  return (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey());
}
