import assert from 'node:assert/strict';
import type { Executor } from '../../src/storage/database.ts';

/**
 * The ledger's invariant: for every balance, balance = sum of its ledger entries = sum of its open
 * lots, and no lot holds more than it was given or less than nothing.
 */
export async function assertLedgerInvariants(db: Executor): Promise<number> {
  const balances = await db.selectFrom('balances').selectAll().execute();
  const sums = await db
    .selectFrom('ledger_entries')
    .select(['membership_id', 'balance_definition_id', (eb) => eb.fn.sum<number>('points').as('total')])
    .groupBy(['membership_id', 'balance_definition_id'])
    .execute();
  const lots = await db
    .selectFrom('point_lots')
    .select(['membership_id', 'balance_definition_id', (eb) => eb.fn.sum<number>('remaining').as('total')])
    .groupBy(['membership_id', 'balance_definition_id'])
    .execute();
  const key = (r: { membership_id: string; balance_definition_id: string }) =>
    `${r.membership_id}/${r.balance_definition_id}`;
  const ledger = new Map(sums.map((r) => [key(r), Number(r.total)]));
  const open = new Map(lots.map((r) => [key(r), Number(r.total)]));
  for (const b of balances) {
    const k = key(b);
    assert.equal(Number(b.balance), ledger.get(k) ?? 0, `balance of ${k} equals the sum of its ledger entries`);
    assert.equal(Number(b.balance), open.get(k) ?? 0, `balance of ${k} equals the sum of its open lots`);
    assert.ok(Number(b.balance) >= 0, `balance of ${k} is not negative`);
  }
  const bad = await db
    .selectFrom('point_lots')
    .select('id')
    .where((eb) => eb.or([eb('remaining', '<', 0), eb('remaining', '>', eb.ref('points'))]))
    .execute();
  assert.equal(bad.length, 0, 'no lot holds less than nothing or more than it was given');
  // Every entry records the balance after it: replaying the entries in order reproduces it.
  const entries = await db
    .selectFrom('ledger_entries')
    .select(['membership_id', 'balance_definition_id', 'points', 'balance_after'])
    .orderBy('seq')
    .execute();
  const running = new Map<string, number>();
  for (const e of entries) {
    const k = key(e);
    const next = (running.get(k) ?? 0) + Number(e.points);
    assert.equal(Number(e.balance_after), next, `balance_after of an entry of ${k} follows from the entries before it`);
    running.set(k, next);
  }
  return balances.length;
}
