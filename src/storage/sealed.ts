import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { generateSecretKey, parseSecretKeys, SecretBox, SecretKeyError, SecretOpenError } from '../lib/secret-box.ts';
import { parseDatabaseUrl, type Database } from './database.ts';
import type { UntypedDb } from './migrate.ts';

// Where the secret key comes from, and the stored columns that hold sealed secrets (secret-box.ts).
//
// The key: TALLY_SECRET_KEY when set (keys separated by commas, the current one first). Unset, on
// SQLite a key file beside the database file (`./data/tally.key` for `./data/tally.db`), made on
// first start with mode 0600, one key per line, the current one first; it must be backed up with
// the database. On PostgreSQL TALLY_SECRET_KEY is required: several servers, often on several
// machines, share that database, and a key file made by each would seal with keys the others
// cannot open.

/** A column holding secrets: modules list theirs (TallyModule.sealedColumns). Rows have a text `id`. */
export interface SealedColumn {
  table: string;
  column: string;
  /**
   * The stored value with every secret in it sealed under `box`'s current key (clear values of an
   * older version sealed or digested, sealed values under an older key moved); undefined when it
   * is already so.
   */
  reseal(value: string, rowId: string, box: SecretBox): string | undefined;
  /** The sealed values in a stored value and the context each was sealed with. */
  sealedValues(value: string, rowId: string): { sealed: string; context: string }[];
}

/** What a migration may need besides the database (TallyMigration.up). */
export interface MigrationEnv {
  /** The secret box; loading it may refuse (no key on PostgreSQL), so migrations ask only when they need it. */
  secrets(): Promise<SecretBox>;
}

/** The key file of an SQLite database file: its name with `.key` for its extension. */
export function keyFilePath(sqlitePath: string): string {
  return sqlitePath.replace(/(\.[^./\\]*)?$/, '.key');
}

/**
 * The secret box for `databaseUrl`, loaded on first call (memoized). `columns` tell whether an
 * SQLite database already holds sealed secrets when its key file is missing: then the key is
 * lost (or not restored), and a new key file would only hide that.
 */
export function secretBoxLoader(
  databaseUrl: string,
  secretKey: string | undefined,
  db: UntypedDb,
  columns: SealedColumn[],
) {
  let loading: Promise<SecretBox> | undefined;
  return () => (loading ??= loadSecretBox(databaseUrl, secretKey, db, columns));
}

async function loadSecretBox(
  databaseUrl: string,
  secretKey: string | undefined,
  db: UntypedDb,
  columns: SealedColumn[],
): Promise<SecretBox> {
  if (secretKey) return new SecretBox(parseSecretKeys(secretKey));
  const { dialect, target } = parseDatabaseUrl(databaseUrl);
  if (dialect === 'postgres') {
    throw new SecretKeyError(
      'TALLY_SECRET_KEY is not set. On PostgreSQL it is required: stored secrets (webhook signing secrets, provider ' +
        'credentials) are encrypted with it, and every server on the database must use the same key. Generate one ' +
        'with `npx tally secrets generate-key`, keep it safe (and backed up), and set it on every process.',
    );
  }
  // An in-memory database lives and dies with the process; so may its key.
  if (target === ':memory:') return new SecretBox([randomBytes(32)]);
  const file = keyFilePath(target);
  const read = () => new SecretBox(parseSecretKeys(readFileSync(file, 'utf8'), file));
  try {
    return read();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const sealed = await countSealed(db, columns).catch(() => 0);
  if (sealed > 0) {
    throw new SecretKeyError(
      `The key file ${file} is missing, but the database holds ${sealed} encrypted secret(s). Restore the key file ` +
        'from the backup made with the database (or set TALLY_SECRET_KEY to that key).',
    );
  }
  // Written whole under another name, then linked into place: a process starting at the same time
  // never reads a half-written file, and the first link wins (the others read the winner's key).
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(temp, `${generateSecretKey()}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(temp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(temp);
  }
  return read();
}

async function countSealed(db: UntypedDb, columns: SealedColumn[]): Promise<number> {
  let n = 0;
  for (const c of columns) {
    const rows = await db.selectFrom(c.table).select(['id', c.column]).where(c.column, 'is not', null).execute();
    for (const r of rows) n += c.sealedValues(r[c.column], r.id).length;
  }
  return n;
}

/**
 * Refuses a key list that cannot open the stored secrets: each key id found in the database must be
 * configured, and one value of each opens. Run at start, so a wrong TALLY_SECRET_KEY stops the
 * server with a clear message instead of failing deliveries and callbacks one by one.
 */
export async function checkSecretKeys(db: UntypedDb, box: SecretBox, columns: SealedColumn[]): Promise<void> {
  const sample = new Map<string, { sealed: string; context: string; where: string }>();
  const counts = new Map<string, number>();
  for (const c of columns) {
    const rows = await db.selectFrom(c.table).select(['id', c.column]).where(c.column, 'is not', null).execute();
    for (const r of rows) {
      for (const v of c.sealedValues(r[c.column], r.id)) {
        const kid = box.keyIdOf(v.sealed);
        counts.set(kid, (counts.get(kid) ?? 0) + 1);
        if (!sample.has(kid)) sample.set(kid, { ...v, where: `${c.table}.${c.column} of ${r.id}` });
      }
    }
  }
  const unknown = [...counts.keys()].filter((kid) => !box.keyIds.includes(kid));
  if (unknown.length > 0) {
    throw new SecretOpenError(
      `The configured secret key cannot decrypt this database's secrets: ${unknown
        .map((k) => `${counts.get(k)} are encrypted ` + `with key ${k}`)
        .join(', ')}; the configured key(s): ${box.keyIds.join(', ')}. Set TALLY_SECRET_KEY (or the key file) ` +
        'to the key the database was written with; during a rotation list the new key first and the old one after it.',
    );
  }
  for (const [, v] of sample) {
    try {
      box.open(v.sealed, v.context);
    } catch (err) {
      throw new SecretOpenError(`${(err as Error).message} (${v.where})`);
    }
  }
}

/**
 * One batch of `reseal` over a column: rows with an id after `afterId`, in id order. Answers the
 * last id read (undefined at the end) and how many rows changed. A row changed meanwhile by
 * someone else is left as it is (the update names the value it replaces); a later run takes it.
 */
export async function resealBatch(
  db: UntypedDb,
  box: SecretBox,
  column: SealedColumn,
  afterId: string | undefined,
  limit: number,
): Promise<{ lastId: string | undefined; changed: number }> {
  let q = db.selectFrom(column.table).select(['id', column.column]).where(column.column, 'is not', null);
  if (afterId !== undefined) q = q.where('id', '>', afterId);
  const rows = await q.orderBy('id').limit(limit).execute();
  let changed = 0;
  for (const r of rows) {
    const next = column.reseal(r[column.column], r.id, box);
    if (next === undefined) continue;
    const res = await db
      .updateTable(column.table)
      .set({ [column.column]: next })
      .where('id', '=', r.id)
      .where(column.column, '=', r[column.column])
      .executeTakeFirst();
    changed += Number(res.numUpdatedRows ?? 0);
  }
  return { lastId: rows.length < limit ? undefined : rows[rows.length - 1]?.id, changed };
}

/** `reseal` over every row of `column` in one go (migrations: inside their transaction). */
export async function resealAll(
  db: UntypedDb,
  secrets: () => Promise<SecretBox>,
  column: SealedColumn,
): Promise<number> {
  const any = await db
    .selectFrom(column.table)
    .select('id')
    .where(column.column, 'is not', null)
    .limit(1)
    .executeTakeFirst();
  if (!any) return 0;
  const box = await secrets();
  let after: string | undefined;
  let changed = 0;
  do {
    const batch = await resealBatch(db, box, column, after, 500);
    changed += batch.changed;
    after = batch.lastId;
  } while (after !== undefined);
  return changed;
}

/**
 * `tally secrets rotate`: every stored secret under the box's current key, in batches of one
 * transaction each (a running server is never held up for long). Secrets an older version left
 * in clear are sealed on the way. Answers how many values changed per column, and how many still
 * use another key (0 unless rows changed meanwhile: run it again).
 */
export async function rotateSecrets(
  database: Database,
  box: SecretBox,
  columns: SealedColumn[],
  batchSize = 200,
): Promise<{ changed: Record<string, number>; remaining: number }> {
  await checkSecretKeys(database.db as UntypedDb, box, columns);
  const changed: Record<string, number> = {};
  for (const column of columns) {
    const name = `${column.table}.${column.column}`;
    changed[name] = 0;
    let after: string | undefined;
    do {
      const batch = await database.transaction((trx) =>
        resealBatch(trx as unknown as UntypedDb, box, column, after, batchSize),
      );
      changed[name] += batch.changed;
      after = batch.lastId;
    } while (after !== undefined);
  }
  let remaining = 0;
  for (const c of columns) {
    const rows = await (database.db as UntypedDb)
      .selectFrom(c.table)
      .select(['id', c.column])
      .where(c.column, 'is not', null)
      .execute();
    for (const r of rows)
      remaining += c.sealedValues(r[c.column], r.id).filter((v) => box.keyIdOf(v.sealed) !== box.currentKeyId).length;
  }
  return { changed, remaining };
}
