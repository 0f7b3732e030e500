import { sql } from 'kysely';
import { newestOfKey, pageBySeq } from '../../storage/paging.ts';
import type { Selectable } from 'kysely';
import type { AppContext } from '../../context.ts';
import { DomainError, invalid } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson } from '../../lib/json.ts';
import { perUtcDay } from '../../lib/days.ts';
import type { Executor } from '../../storage/database.ts';
import { type HotPart, hot, hotRows, writeAtCommit } from '../../storage/hot.ts';
import type {
  CustomersTable,
  LedgerEntriesTable,
  MembershipsTable,
  PointLotsTable,
  ProgramsTable,
} from '../../storage/schema.ts';
import { presentCustomerRef } from '../customers/service.ts';
import type { OutgoingEvent } from '../events/outbox.ts';
import { computeExpiry, type ExpirationRules } from '../loyalties/expiration.ts';
import {
  balanceDefinitionRef,
  presentProgram,
  programRef,
  programVoucher,
  type BalanceDefinitionRow,
  type ProgramRow,
} from '../loyalties/service.ts';
import { assertActive, presentMember, type BalanceRow, type MembershipRow } from '../members/service.ts';

// The points ledger. Every change of a balance is one call of `applyChange` inside one database
// transaction, which
//   1. locks the balance row (SELECT ... FOR UPDATE on PostgreSQL; SQLite has one writer),
//   2. checks the balance definition's min/max,
//   3. writes the ledger entry with the balance after it,
//   4. adds a lot (credit) or consumes lots earliest-expiring first (debit),
//   5. writes the new balance,
//   6. writes the events to the outbox.
// Invariant, checked by the tests after every scenario:
//   balance = sum(ledger_entries.points) = sum(point_lots.remaining).

const MEMBERSHIP_COLUMNS = [
  'id',
  'code',
  'program_id',
  'customer_id',
  'status',
  'join_key',
  'metadata',
  'created_at',
  'updated_at',
  'revoked_at',
] as const satisfies readonly (keyof MembershipsTable)[];
const PROGRAM_COLUMNS = [
  'id',
  'name',
  'description',
  'type',
  'auto_join',
  'join_once',
  'active',
  'start_date',
  'expiration_date',
  'timezone',
  'metadata',
  'voucher',
  'extra',
  'created_at',
  'updated_at',
  'deleted_at',
] as const satisfies readonly (keyof ProgramsTable)[];
const DEFINITION_COLUMNS = [
  'id',
  'program_id',
  'name',
  'unit',
  'min_value',
  'max_value',
  'is_default',
  'expiration',
  'metadata',
  'created_at',
  'updated_at',
] as const satisfies readonly (keyof BalanceDefinitionRow)[];
const BALANCE_COLUMNS = [
  'membership_id',
  'balance_definition_id',
  'program_id',
  'balance',
  'points',
  'pending_points',
  'expired_points',
  'subtracted_points',
  'created_at',
  'updated_at',
] as const satisfies readonly (keyof BalanceRow)[];
const CUSTOMER_COLUMNS = [
  'id',
  'source_id',
  'name',
  'email',
  'phone',
  'description',
  'birthdate',
  'address',
  'metadata',
  'created_at',
  'updated_at',
] as const satisfies readonly (keyof CustomersTable)[];

export type LedgerEntryRow = Omit<Selectable<LedgerEntriesTable>, 'seq'> & { seq?: number };
export type PointLotRow = PointLotsTable;

export type TransactionType =
  | 'POINTS_ADDITION'
  | 'POINTS_REMOVAL'
  | 'POINTS_ACCRUAL'
  | 'POINTS_REDEMPTION'
  | 'POINTS_REFUND'
  | 'POINTS_EXPIRATION'
  | 'POINTS_TRANSFER_IN'
  | 'POINTS_TRANSFER_OUT'
  | 'POINTS_CANCELLATION';

export type ExpirationType = 'PROGRAM_RULES' | 'PROGRAM_DEFAULT' | 'CUSTOM_DATE' | 'NON_EXPIRING';

export interface BalanceChange {
  program: ProgramRow;
  membership: MembershipRow;
  definition: BalanceDefinitionRow;
  /** Signed: positive credits, negative debits. A non-zero safe integer. */
  points: number;
  type: TransactionType;
  reason?: string | null;
  source_id?: string | null;
  source?: string | null;
  operation_type?: 'MANUAL' | 'AUTOMATIC';
  related_transaction_id?: string | null;
  /** Extra transaction details (earning rule, order, event, reward...), merged into `details`. */
  details?: Record<string, unknown>;
  expiration_type?: ExpirationType;
  expiration_date?: string | null;
  /** Rules that override the definition's (an earning rule's own expiration_rules). */
  expiration_rules?: ExpirationRules | null;
  /**
   * Id of what caused the change, carried by events as `source_event_id`. Defaults to source_id,
   * then the transaction id.
   */
  source_event_id?: string | null;
  /**
   * Debits by default lower the card's lifetime `points` too; redemptions do not (they only spend).
   * A spend_only credit (a redemption's refund) gives spent points back without counting them as
   * earned a second time.
   */
  spend_only?: boolean;
  /**
   * A credit that gives back what a debit took (a rolled-back redemption): the points return to these
   * lots (`spent_lots` of the debit's result), keeping their own expiry dates, instead of a new lot.
   * Their amounts must add up to `points`. A lot whose date has passed meanwhile expires again at once.
   */
  restore_lots?: SpentLot[];
  /** Debit this lot before any other (an expiry takes exactly its own lot). */
  consume_lot_id?: string;
  /** The card holder's row when the caller already has it (saves a read for the card events). */
  customer?: CustomersTable | null;
  /**
   * The balance row of (membership, definition) when the caller has already read it with its lock
   * in this same transaction (`resolveCard(..., { lockBalance: true })`); saves a round trip.
   */
  locked_balance?: BalanceRow;
}

export interface BalanceAnswer {
  points: number;
  total: number;
  balance: number;
  type: 'loyalty_card';
  object: 'balance';
  related_object: { type: 'voucher'; id: string };
  operation_type: 'MANUAL' | 'AUTOMATIC';
  balance_definition?: { id: string; name: string; unit: string };
}

/** Points a debit took from one lot. */
export interface SpentLot {
  id: string;
  points: number;
}

export interface ChangeResult {
  /** A debit's points per lot, in the order taken (a rollback gives them back: `restore_lots`). */
  spent_lots?: SpentLot[];
  entry: LedgerEntryRow;
  balance: BalanceRow;
  before: number;
  created: boolean;
  answer: BalanceAnswer;
  lot?: PointLotRow;
  events: OutgoingEvent[];
}

/** A change refused by a balance definition's limits; the caller records the refusal event. */
export class BalanceLimitError extends DomainError {
  constructor(
    message: string,
    details: string,
    readonly refusal: OutgoingEvent,
    extra: Record<string, unknown>,
  ) {
    super(
      'refused',
      extra.limit === 'max' ? 'balance_maximum_exceeded' : 'insufficient_balance',
      message,
      details,
      undefined,
      extra,
    );
  }
}

/** `details`: the entry's details when the caller has them as an object (saves parsing them back). */
export function presentTransaction(e: LedgerEntryRow, details?: Record<string, unknown>) {
  return {
    id: e.id,
    source_id: e.source_id,
    voucher_id: e.membership_id,
    campaign_id: e.program_id,
    source: e.source,
    reason: e.reason,
    type: e.type,
    details: details ?? fromJson<Record<string, unknown>>(e.details, {}),
    related_transaction_id: e.related_transaction_id,
    balance_definition_id: e.balance_definition_id,
    created_at: e.created_at,
    object: 'loyalty_card_transaction' as const,
  };
}

export function presentLot(l: PointLotRow, campaignId: string) {
  return {
    id: l.id,
    voucher_id: l.membership_id,
    campaign_id: campaignId,
    balance_definition_id: l.balance_definition_id,
    bucket: { total_points: Number(l.remaining) },
    points: Number(l.points),
    status: 'ACTIVE',
    expires_at: l.expires_at,
    created_at: l.created_at,
    updated_at: null,
    object: 'loyalty_points_bucket' as const,
  };
}

/**
 * Called inside the transaction of every balance change, after the ledger entry, lots, balance and
 * events are written: other modules react in the same transaction (tiers move up the moment a
 * balance crosses a threshold). A listener that throws rolls the whole change back.
 */
export type BalanceChangeListener = (trx: Executor, change: BalanceChange, result: ChangeResult) => Promise<void>;

export class LedgerService {
  /**
   * `onBalanceChange`: called in the transaction of every balance change, after its writes (the
   * tiers module moves members up there). Passed at construction: the ledger never learns of
   * listeners later.
   */
  constructor(
    private ctx: AppContext,
    private onBalanceChange?: BalanceChangeListener,
  ) {}

  /** Locks and returns the balance row, creating it (empty) on first use. */
  async lockBalance(
    trx: Executor,
    change: Pick<BalanceChange, 'membership' | 'definition' | 'program'>,
  ): Promise<{ row: BalanceRow; created: boolean }> {
    const { forUpdate } = this.ctx.database;
    const select = async () => {
      const rows = await hot(trx, 'ledger.lockBalance', [change.membership.id, change.definition.id], () => {
        const q = trx
          .selectFrom('balances')
          .selectAll()
          .where('membership_id', '=', change.membership.id)
          .where('balance_definition_id', '=', change.definition.id);
        return forUpdate ? q.forUpdate() : q;
      });
      return rows[0];
    };
    const found = await select();
    if (found) return { row: found, created: false };
    const now = this.ctx.clock.nowIso();
    await trx
      .insertInto('balances')
      .values({
        membership_id: change.membership.id,
        balance_definition_id: change.definition.id,
        program_id: change.program.id,
        balance: 0,
        points: 0,
        pending_points: 0,
        expired_points: 0,
        subtracted_points: 0,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.doNothing())
      .execute();
    const row = await select();
    return { row: row!, created: true };
  }

  private expiryFor(change: BalanceChange, now: Date): string | null {
    const type = change.expiration_type ?? 'PROGRAM_RULES';
    if (type === 'NON_EXPIRING') return null;
    if (type === 'CUSTOM_DATE') {
      const at = change.expiration_date ? Date.parse(change.expiration_date) : NaN;
      if (Number.isNaN(at))
        throw invalid(
          'invalid_expiration_date',
          'Invalid expiration_date',
          'expiration_type CUSTOM_DATE needs an ISO-8601 expiration_date',
          [{ field: 'expiration_date', message: 'is required for CUSTOM_DATE' }],
        );
      if (at <= now.getTime())
        throw invalid('invalid_expiration_date', 'Invalid expiration_date', 'expiration_date must be in the future', [
          { field: 'expiration_date', message: 'must be in the future' },
        ]);
      return new Date(at).toISOString();
    }
    const rules =
      change.expiration_rules ??
      (change.definition.is_default === 1
        ? programVoucher(change.program).loyalty_card.expiration_rules
        : fromJson<ExpirationRules | null>(change.definition.expiration, null));
    return rules ? computeExpiry(rules, now, change.program.timezone).toISOString() : null;
  }

  async applyChange(trx: Executor, change: BalanceChange): Promise<ChangeResult> {
    const { program, membership, definition, points } = change;
    if (!Number.isSafeInteger(points) || points === 0) {
      throw invalid('invalid_points', 'Invalid points', 'points must be a non-zero integer within ±9007199254740991', [
        { field: 'points', message: 'must be a non-zero safe integer' },
      ]);
    }
    // Expiry runs on revoked cards too: their points still lapse on schedule.
    if (change.type !== 'POINTS_EXPIRATION') assertActive(membership);
    const clock = this.ctx.clock;
    const nowDate = clock.now();
    const now = nowDate.toISOString();
    const pre = change.locked_balance;
    const { row: bal, created } =
      pre && pre.membership_id === membership.id && pre.balance_definition_id === definition.id
        ? { row: pre, created: false }
        : await this.lockBalance(trx, change);
    const before = Number(bal.balance);
    const after = before + points;
    const min = definition.min_value ?? 0;
    const max = definition.max_value;
    const isCredit = points > 0;
    const expiresAt = isCredit ? this.expiryFor(change, nowDate) : null;

    // A change is refused when it would cross a limit: credits are held to `max` (and the
    // safe-integer range), debits to `min`. A credit that leaves a balance still below `min`
    // (a fresh balance of a definition with min > 0) moves towards it and is allowed.
    const lifetimeAfter = Number(bal.points) + (isCredit ? points : 0);
    const overMax =
      isCredit &&
      ((max !== null && after > max) || after > Number.MAX_SAFE_INTEGER || lifetimeAfter > Number.MAX_SAFE_INTEGER);
    const underMin = !isCredit && after < min;
    if (overMax || underMin) {
      const reason = overMax
        ? 'Amount falls above maximum balance amount limit'
        : 'Amount falls below minimum balance amount limit';
      throw new BalanceLimitError(
        overMax ? 'Balance limit exceeded' : 'Insufficient balance',
        overMax
          ? `Adding ${points} to balance ${before} would exceed the maximum ` +
              `${max ?? Number.MAX_SAFE_INTEGER} of "${definition.name}"`
          : `Removing ${-points} from balance ${before} would go below the minimum ${min} of "${definition.name}"`,
        {
          type: 'balance_transaction_unauthorized',
          data: {
            balance_definition: balanceDefinitionRef(definition),
            loyalty_program: programRef(program),
            reason,
            transaction: { type: isCredit ? 'credit' : 'debit', value: Math.abs(points) },
          },
          resource_type: 'membership',
          resource_id: membership.id,
          program_id: program.id,
        },
        { balance: before, limit: overMax ? 'max' : 'min', limit_value: overMax ? max : min },
      );
    }

    // Lifetime `points` (Voucherify's loyalty_card.points): credits add; manual removals and
    // expiries take away; spending (redemptions) does not.
    const lifetimeDelta = change.spend_only ? 0 : points;
    const total = Number(bal.points) + lifetimeDelta;
    const operationType = change.operation_type ?? 'MANUAL';
    const answer: BalanceAnswer = {
      points,
      total,
      balance: after,
      type: 'loyalty_card',
      object: 'balance',
      related_object: { type: 'voucher', id: membership.id },
      operation_type: operationType,
    };
    if (definition.is_default !== 1)
      answer.balance_definition = { id: definition.id, name: definition.name, unit: definition.unit };

    const details = { ...(change.details ?? {}), balance: answer };
    const entry: LedgerEntryRow = {
      id: newId('vtx', 24),
      membership_id: membership.id,
      program_id: program.id,
      balance_definition_id: definition.id,
      customer_id: membership.customer_id,
      type: change.type,
      points,
      balance_after: after,
      source_id: change.source_id ?? null,
      source: change.source ?? null,
      reason: change.reason ?? null,
      details: JSON.stringify(details),
      related_transaction_id: change.related_transaction_id ?? null,
      created_at: now,
    };
    const lot: PointLotRow | undefined =
      isCredit && !change.restore_lots
        ? {
            id: newId('lot'),
            membership_id: membership.id,
            balance_definition_id: definition.id,
            ledger_entry_id: entry.id,
            points,
            remaining: points,
            expires_at: expiresAt,
            created_at: now,
          }
        : undefined;
    const patch = {
      balance: after,
      points: total,
      subtracted_points:
        // A spend_only credit (a refund) undoes a spend: it comes off the subtracted points.
        Number(bal.subtracted_points) +
        (isCredit ? (change.spend_only ? -points : 0) : change.type === 'POINTS_EXPIRATION' ? 0 : -points),
      expired_points: Number(bal.expired_points) + (change.type === 'POINTS_EXPIRATION' ? -points : 0),
      updated_at: now,
    };
    const balance: BalanceRow = { ...bal, ...patch };
    // `created` of balance_value_updated: the first movement of this balance (joining a program
    // creates the empty default balance row ahead of any change, so the row's age is not enough).
    const firstMovement =
      created ||
      (before === 0 &&
        Number(bal.points) === 0 &&
        Number(bal.subtracted_points) === 0 &&
        Number(bal.expired_points) === 0);
    // The events are computed from the values about to be written (nothing below reads them back).
    const events = await this.eventsFor(trx, change, entry, details, balance, before, firstMovement, expiresAt, answer);

    const insertEntry = {
      key: 'ledger.insertEntry',
      params: Object.values(entry),
      build: () => trx.insertInto('ledger_entries').values(entry),
    };
    const updateBalance = {
      key: 'ledger.updateBalance',
      params: [...Object.values(patch), membership.id, definition.id],
      build: () =>
        trx
          .updateTable('balances')
          .set(patch)
          .where('membership_id', '=', membership.id)
          .where('balance_definition_id', '=', definition.id),
    };
    let spentLots: SpentLot[] | undefined;
    if (lot) {
      // A credit's writes depend on nothing read after them: entry, lot, balance and events go as
      // the transaction's last writes (writeAtCommit: on PostgreSQL kept by the client and sent
      // together, one statement of data-modifying CTEs, just before the COMMIT or before a later
      // query of this transaction, a listener's read; on SQLite run at once, in this order).
      const rows = this.ctx.outbox.rowsFor(events);
      await writeAtCommit(trx, [
        insertEntry,
        { key: 'ledger.insertLot', params: Object.values(lot), build: () => trx.insertInto('point_lots').values(lot) },
        updateBalance,
        ...(rows.length
          ? [
              {
                key: `outbox.insert:${rows.length}`,
                params: rows.flatMap((r) => Object.values(r)),
                build: () => trx.insertInto('outbox_events').values(rows),
              },
            ]
          : []),
      ]);
      this.ctx.outbox.written(trx, events);
    } else if (!isCredit) {
      // A debit reads the open lots, then its writes (entry, lots, balance, events) depend on
      // nothing read after them: kept for the commit as a credit's are (one round trip on
      // PostgreSQL instead of one per statement; measured in docs/performance.md, bench:redeem).
      const taken = await this.takeLots(trx, membership.id, definition.id, -points, change.consume_lot_id);
      spentLots = taken.spent;
      const rows = this.ctx.outbox.rowsFor(events);
      await writeAtCommit(trx, [
        insertEntry,
        ...taken.updates,
        updateBalance,
        ...(rows.length
          ? [
              {
                key: `outbox.insert:${rows.length}`,
                params: rows.flatMap((r) => Object.values(r)),
                build: () => trx.insertInto('outbox_events').values(rows),
              },
            ]
          : []),
      ]);
      this.ctx.outbox.written(trx, events);
    } else {
      await hot(trx, 'ledger.insertEntry', insertEntry.params, insertEntry.build);
      await this.restoreLots(trx, membership.id, definition.id, change.restore_lots ?? [], points, entry.id);
      await hot(trx, 'ledger.updateBalance', updateBalance.params, updateBalance.build);
      await this.ctx.outbox.emit(trx, events);
    }
    if (lot?.expires_at) {
      await this.ctx.scheduler.scheduleAtCommit(trx, {
        kind: 'ledger.expire_lot',
        runAt: lot.expires_at,
        payload: { lot_id: lot.id },
        uniqueKey: `expire_lot:${lot.id}`,
      });
    }
    this.ctx.metrics.ledgerWrites.inc({ type: change.type });
    const result: ChangeResult = { entry, balance, before, created, answer, lot, events };
    if (spentLots) result.spent_lots = spentLots;
    if (this.onBalanceChange) await this.onBalanceChange(trx, change, result);
    return result;
  }

  /**
   * Which open lots pay `amount` points, earliest expiry first, non-expiring last: what each gives
   * and the updates that take it (for the caller to write).
   */
  private async takeLots(
    trx: Executor,
    membershipId: string,
    definitionId: string,
    amount: number,
    firstLotId?: string,
  ): Promise<{ spent: SpentLot[]; updates: HotPart[] }> {
    const lots = await hot(trx, 'ledger.openLots', [membershipId, definitionId, 0], () =>
      trx
        .selectFrom('point_lots')
        .select(['id', 'remaining', 'expires_at', 'created_at'])
        .where('membership_id', '=', membershipId)
        .where('balance_definition_id', '=', definitionId)
        .where('remaining', '>', 0),
    );
    lots.sort((a, b) => {
      if (firstLotId && (a.id === firstLotId || b.id === firstLotId)) return a.id === firstLotId ? -1 : 1;
      if (a.expires_at !== b.expires_at) {
        if (a.expires_at === null) return 1;
        if (b.expires_at === null) return -1;
        return a.expires_at < b.expires_at ? -1 : 1;
      }
      return a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1;
    });
    let left = amount;
    const spent: SpentLot[] = [];
    const updates: HotPart[] = [];
    for (const lot of lots) {
      if (left === 0) break;
      const take = Math.min(left, Number(lot.remaining));
      const remaining = Number(lot.remaining) - take;
      spent.push({ id: lot.id, points: take });
      updates.push({
        key: 'ledger.updateLot',
        params: [remaining, lot.id],
        build: () => trx.updateTable('point_lots').set({ remaining }).where('id', '=', lot.id),
      });
      left -= take;
    }
    if (left !== 0)
      throw new Error(`ledger invariant broken: lots of ${membershipId}/${definitionId} are short by ${left}`);
    return { spent, updates };
  }

  /**
   * Gives points back to the lots a debit took (`restore_lots`). A lot never holds more than it was
   * credited with. A lot whose expiry passed since has had its expiry job run already: the points
   * given back to it expire at once (a job of their own), as they would have without the debit.
   */
  private async restoreLots(
    trx: Executor,
    membershipId: string,
    definitionId: string,
    restore: SpentLot[],
    points: number,
    entryId: string,
  ): Promise<void> {
    if (restore.length === 0 || restore.reduce((n, r) => n + r.points, 0) !== points)
      throw new Error(`ledger: restore_lots must give back exactly ${points} points`);
    const lots = await trx
      .selectFrom('point_lots')
      .select(['id', 'points', 'remaining', 'expires_at'])
      .where('membership_id', '=', membershipId)
      .where('balance_definition_id', '=', definitionId)
      .where(
        'id',
        'in',
        restore.map((r) => r.id),
      )
      .execute();
    const byId = new Map(lots.map((l) => [l.id, l]));
    const nowMs = this.ctx.clock.nowMs();
    for (const r of restore) {
      const lot = byId.get(r.id);
      const remaining = Number(lot?.remaining ?? 0) + r.points;
      if (!lot || r.points <= 0 || remaining > Number(lot.points))
        throw new Error(`ledger: cannot give ${r.points} points back to lot ${r.id} of ${membershipId}`);
      await trx.updateTable('point_lots').set({ remaining }).where('id', '=', lot.id).execute();
      lot.remaining = remaining;
      if (lot.expires_at && Date.parse(lot.expires_at) <= nowMs)
        await this.ctx.scheduler.scheduleAtCommit(trx, {
          kind: 'ledger.expire_lot',
          runAt: lot.expires_at,
          payload: { lot_id: lot.id },
          uniqueKey: `expire_lot:${lot.id}:${entryId}`,
        });
    }
  }

  private async eventsFor(
    trx: Executor,
    change: BalanceChange,
    entry: LedgerEntryRow,
    details: Record<string, unknown>,
    balance: BalanceRow,
    before: number,
    created: boolean,
    expiresAt: string | null,
    answer: BalanceAnswer,
  ): Promise<OutgoingEvent[]> {
    const { program, membership, definition, points } = change;
    const isCredit = points > 0;
    const sourceEventId = change.source_event_id ?? change.source_id ?? entry.id;
    const base = { resource_type: 'membership', resource_id: membership.id, program_id: program.id };
    const defRef = balanceDefinitionRef(definition);
    const after = Number(balance.balance);
    const events: OutgoingEvent[] = [
      {
        type: 'balance_value_updated',
        data: {
          balance_definition: defRef,
          created,
          expiration_date: expiresAt,
          initial_value: before,
          loyalty_program: programRef(program),
          source_event_id: sourceEventId,
          transaction: { type: isCredit ? 'credit' : 'debit', value: Math.abs(points) },
          value: after,
        },
        ...base,
      },
    ];
    const min = definition.min_value ?? 0;
    if (!isCredit && after === min) {
      events.push({
        type: 'balance_minimum_value_reached',
        data: {
          balance_definition: defRef,
          loyalty_program: programRef(program),
          source_event_id: sourceEventId,
          value: after,
        },
        ...base,
      });
    }
    if (isCredit && definition.max_value !== null && after === Number(definition.max_value)) {
      events.push({
        type: 'balance_maximum_value_reached',
        data: {
          balance_definition: defRef,
          loyalty_program: programRef(program),
          source_event_id: sourceEventId,
          value: after,
        },
        ...base,
      });
    }
    // Voucherify's card events speak of the default (points) balance only.
    if (definition.is_default === 1 && (isCredit || change.type === 'POINTS_EXPIRATION')) {
      const customer =
        change.customer !== undefined && change.customer?.id === membership.customer_id
          ? change.customer
          : await trx.selectFrom('customers').selectAll().where('id', '=', membership.customer_id).executeTakeFirst();
      const card = { points: Number(balance.points), balance: after };
      const voucher = presentMember(membership, program, card as never);
      events.push({
        type: isCredit ? 'customer.voucher.loyalty_card.points_added' : 'customer.voucher.loyalty_card.points_expired',
        data: {
          customer: customer
            ? presentCustomerRef(customer)
            : { id: membership.customer_id, name: null, source_id: null, metadata: {}, object: 'customer' },
          campaign: presentProgram(program),
          voucher: { ...voucher, loyalty_card: card, updated_at: entry.created_at },
          balance: answer,
          transaction: presentTransaction(entry, details),
        },
        ...base,
      });
    }
    if (change.type === 'POINTS_EXPIRATION') {
      events.push({
        type: 'balance_value_expired',
        data: { balance_definition: defRef, loyalty_program: programRef(program), value: -points },
        ...base,
      });
    }
    return events;
  }

  /**
   * A write refused for a balance limit leaves its refusal event, written by `trx` (the write's own
   * transaction rolled back): `onRefused` of runIdempotentWrite, which commits it with the
   * refusal's Idempotency-Key record. Other errors leave nothing.
   */
  recordRefusal = async (trx: Executor, err: unknown): Promise<void> => {
    if (err instanceof BalanceLimitError) await this.ctx.outbox.emit(trx, err.refusal);
  };

  /** Expires what is left of a lot (scheduled at its expires_at). */
  async expireLot(trx: Executor, lotId: string): Promise<ChangeResult | null> {
    const lot = await trx.selectFrom('point_lots').selectAll().where('id', '=', lotId).executeTakeFirst();
    if (!lot || Number(lot.remaining) <= 0) return null;
    const membership = await trx
      .selectFrom('memberships')
      .selectAll()
      .where('id', '=', lot.membership_id)
      .executeTakeFirstOrThrow();
    const program = await trx
      .selectFrom('programs')
      .selectAll()
      .where('id', '=', membership.program_id)
      .executeTakeFirstOrThrow();
    const definition = await trx
      .selectFrom('balance_definitions')
      .selectAll()
      .where('id', '=', lot.balance_definition_id)
      .executeTakeFirstOrThrow();
    // Take the balance lock first, then re-read the lot: a concurrent debit may have consumed it.
    await this.lockBalance(trx, { membership, definition, program });
    const fresh = await trx
      .selectFrom('point_lots')
      .select('remaining')
      .where('id', '=', lotId)
      .executeTakeFirstOrThrow();
    const remaining = Number(fresh.remaining);
    if (remaining <= 0) return null;
    return this.applyChange(trx, {
      program,
      membership,
      definition,
      points: -remaining,
      type: 'POINTS_EXPIRATION',
      reason: 'Points expired',
      source: 'tally-scheduler',
      operation_type: 'AUTOMATIC',
      details: { points_bucket: { id: lot.id, expires_at: lot.expires_at } },
      consume_lot_id: lot.id,
    });
  }

  /**
   * The card a balance change names, with its program, its holder and the program's default balance
   * definition, in one query (the hot path of POST .../balance). Undefined when any is missing; the
   * caller then looks them up one by one for the precise 404.
   */
  async resolveCard(db: Executor, memberId: string, programId?: string, opts: { lockBalance?: boolean } = {}) {
    const byId = memberId.startsWith('v_');
    const withBalance = !!opts.lockBalance;
    const forUpdate = withBalance && this.ctx.database.forUpdate;
    const params = [1, ...(byId ? [memberId, memberId] : [memberId]), ...(programId ? [programId] : [])];
    const build = () => {
      let q = db
        .selectFrom('memberships as m')
        .innerJoin('programs as p', 'p.id', 'm.program_id')
        .innerJoin('balance_definitions as d', (j) =>
          j.onRef('d.program_id', '=', 'm.program_id').on('d.is_default', '=', 1),
        )
        .leftJoin('customers as c', 'c.id', 'm.customer_id')
        .select([
          ...MEMBERSHIP_COLUMNS.map((k) => `m.${k} as m_${k}` as const),
          ...PROGRAM_COLUMNS.map((k) => `p.${k} as p_${k}` as const),
          ...DEFINITION_COLUMNS.map((k) => `d.${k} as d_${k}` as const),
          ...CUSTOMER_COLUMNS.map((k) => `c.${k} as c_${k}` as const),
        ] as never)
        .where('p.deleted_at', 'is', null);
      if (withBalance) {
        // The default balance row exists from the join on (joinProgram creates it); locking it here
        // (FOR UPDATE OF b on PostgreSQL) is the same lock applyChange would take.
        q = q
          .innerJoin('balances as b', (j) =>
            j.onRef('b.membership_id', '=', 'm.id').onRef('b.balance_definition_id', '=', 'd.id'),
          )
          .select(BALANCE_COLUMNS.map((k) => `b.${k} as b_${k}` as const) as never);
      }
      q = byId
        ? q.where((eb) => eb.or([eb('m.id', '=', memberId), eb('m.code', '=', memberId)]))
        : q.where('m.code', '=', memberId);
      if (programId) q = q.where('m.program_id', '=', programId);
      return forUpdate ? q.forUpdate(['b'] as never) : q;
    };
    const key = `ledger.resolveCard:${byId}:${!!programId}:${withBalance}`;
    const result = await hotRows(db, key, params, build);
    if (result.rows.length === 0) return undefined;
    // The columns in the select list's order: by position when the row is an array, else by alias.
    let at = 0;
    const column = result.arrays
      ? () => result.rows[0][at++]
      : (prefix: string, k: string) => (result.rows[0] as Record<string, unknown>)[`${prefix}_${k}`];
    const pick = <T>(prefix: string, cols: readonly string[]) => {
      const out: Record<string, unknown> = {};
      for (const k of cols) out[k] = column(prefix, k);
      return out as T;
    };
    const membership = pick<MembershipsTable>('m', MEMBERSHIP_COLUMNS);
    const program = pick<ProgramsTable>('p', PROGRAM_COLUMNS);
    const definition = pick<BalanceDefinitionRow>('d', DEFINITION_COLUMNS);
    const customer = pick<CustomersTable>('c', CUSTOMER_COLUMNS);
    const balance = withBalance ? pick<BalanceRow>('b', BALANCE_COLUMNS) : undefined;
    return { membership, program, definition, customer: customer.id ? customer : null, balance };
  }

  // ---- reads ----

  async transactions(
    db: Executor,
    of: { membershipId: string } | { programId: string },
    page: { limit: number; starting_after_id?: string },
  ) {
    // By the index ledger_membership_seq or ledger_program_seq.
    const [column, value] = 'membershipId' in of ? ['membership_id', of.membershipId] : ['program_id', of.programId];
    const all = db.selectFrom('ledger_entries').selectAll();
    return pageBySeq(
      page,
      'a transaction',
      async (id) => (await db.selectFrom('ledger_entries').select('seq').where('id', '=', id).executeTakeFirst())?.seq,
      (before, n) => newestOfKey(all, { db, column, value }, before).limit(n).execute(),
    );
  }

  async openLots(db: Executor, membershipId: string, definitionId?: string) {
    let q = db
      .selectFrom('point_lots')
      .selectAll()
      .where('membership_id', '=', membershipId)
      .where('remaining', '>', 0);
    if (definitionId) q = q.where('balance_definition_id', '=', definitionId);
    const lots = await q.execute();
    return lots.sort((a, b) => {
      if (a.expires_at === b.expires_at)
        return a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1;
      if (a.expires_at === null) return 1;
      if (b.expires_at === null) return -1;
      return a.expires_at < b.expires_at ? -1 : 1;
    });
  }

  async balancesOf(db: Executor, membershipId: string) {
    return db.selectFrom('balances').selectAll().where('membership_id', '=', membershipId).execute();
  }

  /** The card's balance in one balance definition; null when the card has no balance row for it. */
  async balanceValue(db: Executor, membershipId: string, definitionId: string): Promise<number | null> {
    const row = await db
      .selectFrom('balances')
      .select('balance')
      .where('membership_id', '=', membershipId)
      .where('balance_definition_id', '=', definitionId)
      .executeTakeFirst();
    return row ? Number(row.balance) : null;
  }

  /** Adds `delta` to the card's pending points counter (earning's pending points; the row is locked). */
  async addPendingPoints(trx: Executor, membershipId: string, definitionId: string, delta: number): Promise<void> {
    await trx
      .updateTable('balances')
      .set({ pending_points: sql`pending_points + ${delta}`, updated_at: this.ctx.clock.nowIso() })
      .where('membership_id', '=', membershipId)
      .where('balance_definition_id', '=', definitionId)
      .execute();
  }

  /** The card's pending points in one balance definition (0 without a balance row). */
  async pendingPoints(db: Executor, membershipId: string, definitionId: string): Promise<number> {
    const row = await db
      .selectFrom('balances')
      .select('pending_points')
      .where('membership_id', '=', membershipId)
      .where('balance_definition_id', '=', definitionId)
      .executeTakeFirst();
    return Number(row?.pending_points ?? 0);
  }

  /** The card's balance in the program's default balance definition (0 before its first change). */
  async defaultBalance(db: Executor, membershipId: string, programId: string): Promise<number> {
    const [row] = await hot(db, 'ledger.defaultBalance', [membershipId, programId, 1], () =>
      db
        .selectFrom('balances as b')
        .innerJoin('balance_definitions as d', 'd.id', 'b.balance_definition_id')
        .select('b.balance')
        .where('b.membership_id', '=', membershipId)
        .where('d.program_id', '=', programId)
        .where('d.is_default', '=', 1),
    );
    return Number(row?.balance ?? 0);
  }

  /** Points credited to the card (entries of `types`) with `from <= created_at < to` (ISO instants). */
  async creditedBetween(
    db: Executor,
    q: { membershipId: string; definitionId: string; types: readonly string[]; from: string; to: string },
  ): Promise<number> {
    const r = await db
      .selectFrom('ledger_entries')
      .select((eb) => eb.fn.sum<number>('points').as('total'))
      .where('membership_id', '=', q.membershipId)
      .where('balance_definition_id', '=', q.definitionId)
      .where('type', 'in', [...q.types])
      .where('created_at', '>=', q.from)
      .where('created_at', '<', q.to)
      .executeTakeFirst();
    return Number(r?.total ?? 0);
  }

  registerJobs(): void {
    this.ctx.scheduler.register('ledger.expire_lot', async (job, trx) => {
      await this.expireLot(trx, String(job.payload.lot_id));
    });
  }

  /**
   * Points issued (every entry that added points) and redeemed (POINTS_REDEMPTION) per UTC day
   * since `sinceIso`, across programs (the console's overview; index ledger_entries_created).
   */
  async pointsPerDay(db: Executor, sinceIso: string): Promise<{ day: string; issued: number; redeemed: number }[]> {
    return perUtcDay(sinceIso, this.ctx.clock.nowMs(), async (from, to) => {
      const r = await db
        .selectFrom('ledger_entries')
        .select([
          sql<number>`coalesce(sum(case when points > 0 then points else 0 end), 0)`.as('issued'),
          sql<number>`coalesce(sum(case when type = 'POINTS_REDEMPTION' then -points else 0 end), 0)`.as('redeemed'),
        ])
        .where('created_at', '>=', from)
        .where('created_at', '<', to)
        .executeTakeFirstOrThrow();
      return { issued: Number(r.issued), redeemed: Number(r.redeemed) };
    });
  }
}
