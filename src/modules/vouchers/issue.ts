import type { Executor } from '../../storage/database.ts';
import { hot, writeAtCommit } from '../../storage/hot.ts';
import type { Outbox, OutgoingEvent } from '../events/outbox.ts';
import type { PublicationsTable, RedemptionsTable, VouchersTable } from './tables.ts';

// The statements of the reward redemption's hot path (bench:redeem), compiled once (storage/hot.ts).
//
// A reward that issues a voucher of an AUTO_UPDATE campaign that never had a code pool (`pooled` 0)
// needs no free-code lookup: the voucher is generated already published, one insert that tells
// whether the code was free (ON CONFLICT (code) DO NOTHING RETURNING id; a taken code tries
// another), and the publication and `voucher_created` are kept for the commit. `publish` (the
// general way: publication insert, free-code lookup, voucher insert, voucher update, publication
// update, the program's read, the event) runs 7 statements built by Kysely each time, 7 round trips
// on PostgreSQL, for what this path does in one round trip. That is worth this second path: the
// measured figures (server CPU per redemption, before and after) are in docs/performance.md.

/** Inserts an issued voucher unless its code is taken; true when it was inserted. */
export async function insertIssuedVoucher(trx: Executor, row: VouchersTable): Promise<boolean> {
  const rows = await hot(trx, 'vouchers.insertIssued', Object.values(row), () =>
    trx
      .insertInto('vouchers')
      .values(row)
      .onConflict((oc) => oc.column('code').doNothing())
      .returning('id'),
  );
  return rows.length > 0;
}

/** The issued voucher's publication and events, written as the transaction's last writes. */
export async function keepIssued(
  trx: Executor,
  outbox: Outbox,
  publication: PublicationsTable,
  events: OutgoingEvent[],
): Promise<void> {
  const rows = outbox.rowsFor(events);
  await writeAtCommit(trx, [
    {
      key: 'vouchers.insertPublication',
      params: Object.values(publication),
      build: () => trx.insertInto('publications').values(publication),
    },
    {
      key: `outbox.insert:${rows.length}`,
      params: rows.flatMap((r) => Object.values(r)),
      build: () => trx.insertInto('outbox_events').values(rows),
    },
  ]);
  outbox.written(trx, events);
}

/**
 * A redemption record, written at the commit (nothing reads it back in its transaction; a second
 * record with the same id, a redelivered message's, still fails the commit on the primary key).
 */
export async function keepRedemption(trx: Executor, row: RedemptionsTable): Promise<void> {
  const columns = Object.keys(row);
  await writeAtCommit(trx, [
    {
      // Rows are built in a few places with different columns: one compiled text per column list.
      key: `redemptions.insert:${columns.join(',')}`,
      params: Object.values(row),
      build: () => trx.insertInto('redemptions').values(row),
    },
  ]);
}
