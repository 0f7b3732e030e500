import type { DateTime } from 'luxon';
import type { AppContext } from '../../context.ts';
import {
  monthAnniversary,
  nextMonthAnniversary,
  nextReminderBefore,
  nextYearReminder,
  normalizeReminders,
  type Reminder,
  utcIso,
} from '../../lib/anniversaries.ts';
import { invalid } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson } from '../../lib/json.ts';
import { TtlCache } from '../../lib/ttl-cache.ts';
import type { Executor } from '../../storage/database.ts';
import { pageByNumber } from '../../storage/paging.ts';
import type { OutgoingEvent } from '../events/outbox.ts';
import type { BalanceChange, ChangeResult, LedgerService } from '../ledger/service.ts';
import {
  balanceDefinitionRef,
  programRef,
  type BalanceDefinitionRow,
  type ProgramRow,
  type ProgramService,
} from '../loyalties/service.ts';
import type { MemberService, MembershipRow } from '../members/service.ts';
import { groupRef, tierRef, type TierGroupRow, type TierRow, type TierService } from '../tiers/service.ts';
import type { VoucherRow, VoucherService } from '../vouchers/service.ts';
import type { DueItemsTable, DueKind } from './tables.ts';
import './tables.ts';

// The time engine: anniversaries and reminders that fire once, on time, for any number of members.
//
// Each subject (a card; a card in a tier group or a balance definition; a voucher) has at most one
// `due_items` row per kind, holding the next moment its kind is due. Planning writes that row in
// the transaction of the change that makes it (a card joins, a tier changes, points that expire
// are credited, a configuration changes: a `time.replan` job). The worker takes the due rows in
// batches (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer) and, in that same
// transaction, emits each occurrence's events and moves the row to its next moment, so an
// occurrence fires once even with several processes. An occurrence older than the look-back is
// recorded in `due_skips` instead of being sent.

export type DueItemRow = DueItemsTable;

/** The event types each kind emits (the schedule filters on either). */
export const KIND_EVENTS: Record<DueKind, string[]> = {
  subscription_anniversary: ['subscription_month_anniversary', 'subscription_year_anniversary'],
  membership_reminder: ['membership_anniversary_reminder'],
  tier_anniversary: ['tier_association_month_anniversary', 'tier_association_year_anniversary'],
  tier_reminder: ['tier_anniversary_reminder'],
  balance_reminder: ['balance_expiration_reminder'],
  voucher_reminder: ['voucher_expiration_reminder'],
};
export const DUE_KINDS = Object.keys(KIND_EVENTS) as DueKind[];

/** A tier change, as the tiers module reports it (services.ts passes `tierChanged` as its callback). */
export interface TierChange {
  program: ProgramRow;
  membership: MembershipRow;
  group: TierGroupRow;
  tier: TierRow | null;
  attributedAt: string;
}

/** When a tier group re-evaluates a member's tier (tiers module: strategies). */
export type AnniversaryOccasion = 'membership_anniversary' | 'tier_anniversary';

/** The services the time engine calls. */
export interface TimeDeps {
  programs: ProgramService;
  members: MemberService;
  ledger: LedgerService;
  tiers: TierService;
  vouchers: VoucherService;
}

/** One occurrence of a due item: its events (without due_at), the next moment, what to run after. */
interface Occurrence {
  events: OutgoingEvent[];
  next: string | null;
  anchor?: string;
  /** State changes at the moment (a tier re-evaluated at an anniversary): run even when skipped. */
  apply?: (trx: Executor) => Promise<void>;
}

/** What one batch looked up, shared by its items. */
interface BatchState {
  members: Map<string, MembershipRow>;
  vouchers: Map<string, VoucherRow>;
  programs: Map<string, ProgramRow | undefined>;
}

const DAY_MS = 86_400_000;

export const remindersOf = (json: string | null | undefined): Reminder[] =>
  normalizeReminders(fromJson<Reminder[] | null>(json ?? null, null));
export const programReminders = (program: ProgramRow): Reminder[] =>
  normalizeReminders(fromJson<{ reminders?: Reminder[] }>(program.extra, {}).reminders);

const membershipRef = (m: MembershipRow) => ({ card_id: m.code, created_at: m.created_at });
/** The subscription id of a card: its external id when it was given one, else its id. */
const subscriptionId = (m: MembershipRow) => m.loyalty_subscription_id ?? m.id;

export class TimeService {
  /** The balance definitions of a program (their reminders), read when points that expire are credited. */
  private definitions = new TtlCache<BalanceDefinitionRow[]>(5000);
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;

  constructor(
    private ctx: AppContext,
    private deps: TimeDeps,
  ) {}

  // ---- planning (in the caller's transaction) ----

  /** Writes the item's next moment; `earliest`: keep the existing moment when it comes first. */
  private async plan(
    trx: Executor,
    item: { kind: DueKind; subject_id: string; scope_id?: string; program_id: string | null; anchor_at: string },
    nextAt: string | null,
    opts: { earliest?: boolean } = {},
  ): Promise<void> {
    const scope = item.scope_id ?? '';
    if (nextAt === null) {
      if (!opts.earliest) await this.unplan(trx, item.kind, item.subject_id, scope);
      return;
    }
    const now = this.ctx.clock.nowIso();
    await trx
      .insertInto('due_items')
      .values({
        id: newId('due'),
        kind: item.kind,
        subject_id: item.subject_id,
        scope_id: scope,
        program_id: item.program_id,
        anchor_at: item.anchor_at,
        next_at: nextAt,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) =>
        oc.columns(['kind', 'subject_id', 'scope_id']).doUpdateSet((eb) => ({
          anchor_at: eb.ref('excluded.anchor_at'),
          next_at: opts.earliest
            ? eb
                .case()
                .when('excluded.next_at', '<', eb.ref('due_items.next_at'))
                .then(eb.ref('excluded.next_at'))
                .else(eb.ref('due_items.next_at'))
                .end()
            : eb.ref('excluded.next_at'),
          updated_at: eb.ref('excluded.updated_at'),
        })),
      )
      .execute();
  }

  private async unplan(trx: Executor, kind: DueKind, subjectId: string, scopeId = ''): Promise<void> {
    await trx
      .deleteFrom('due_items')
      .where('kind', '=', kind)
      .where('subject_id', '=', subjectId)
      .where('scope_id', '=', scopeId)
      .execute();
  }

  /**
   * A card joined (the join workflow calls this in its transaction): its subscription anniversaries
   * and membership reminders from its created_at. Only moments after now are planned, so an
   * imported card's past anniversaries are never sent.
   */
  async memberJoined(trx: Executor, program: ProgramRow, m: MembershipRow): Promise<void> {
    const now = this.ctx.clock.nowMs();
    const zone = program.timezone;
    const base = { subject_id: m.id, program_id: program.id, anchor_at: m.created_at };
    await this.plan(
      trx,
      { ...base, kind: 'subscription_anniversary' },
      utcIso(nextMonthAnniversary(m.created_at, now, zone).at),
    );
    const reminders = programReminders(program);
    if (reminders.length > 0) {
      const r = nextYearReminder(m.created_at, reminders, now, zone);
      await this.plan(trx, { ...base, kind: 'membership_reminder' }, r ? utcIso(r.at) : null);
    }
  }

  /** The tiers module's `onTierChange`: tier anniversaries restart from the new association. */
  readonly tierChanged = async (trx: Executor, change: TierChange): Promise<void> => {
    const { membership: m, group, program } = change;
    if (!change.tier) {
      await this.unplan(trx, 'tier_anniversary', m.id, group.id);
      await this.unplan(trx, 'tier_reminder', m.id, group.id);
      return;
    }
    const now = this.ctx.clock.nowMs();
    const zone = program.timezone;
    const base = { subject_id: m.id, scope_id: group.id, program_id: program.id, anchor_at: change.attributedAt };
    await this.plan(
      trx,
      { ...base, kind: 'tier_anniversary' },
      utcIso(nextMonthAnniversary(change.attributedAt, now, zone).at),
    );
    const reminders = remindersOf((group as TierGroupRow & { reminders?: string | null }).reminders);
    const r = reminders.length ? nextYearReminder(change.attributedAt, reminders, now, zone) : null;
    await this.plan(trx, { ...base, kind: 'tier_reminder' }, r ? utcIso(r.at) : null);
  };

  /**
   * The ledger's balance listener (after tiers): points credited with an expiry plan the card's
   * next balance expiration reminder, when the balance definition has reminders.
   */
  readonly balanceChanged = async (trx: Executor, change: BalanceChange, result: ChangeResult): Promise<void> => {
    const expiresAt = result.lot?.expires_at;
    if (!expiresAt) return;
    const definition = (await this.definitionsOf(trx, change.program.id)).find((d) => d.id === change.definition.id);
    const reminders = remindersOf(definition?.reminders);
    if (reminders.length === 0) return;
    const r = nextReminderBefore(expiresAt, reminders, this.ctx.clock.nowMs(), change.program.timezone);
    if (!r) return;
    await this.plan(
      trx,
      {
        kind: 'balance_reminder',
        subject_id: change.membership.id,
        scope_id: change.definition.id,
        program_id: change.program.id,
        anchor_at: expiresAt,
      },
      utcIso(r.at),
      { earliest: true },
    );
  };

  /**
   * The vouchers module's `onPublished`: a voucher with an expiry, published to a customer, gets its
   * expiration reminders from its campaign's `reminders`.
   */
  readonly voucherPublished = async (trx: Executor, v: VoucherRow): Promise<void> => {
    if (!v.expiration_date || !v.holder_id || !v.campaign_id) return;
    const reminders = await this.campaignReminders(trx, v.campaign_id);
    if (reminders.length === 0) return;
    const zone = await this.zoneOf(trx, v.program_id);
    const r = nextReminderBefore(v.expiration_date, reminders, this.ctx.clock.nowMs(), zone);
    await this.plan(
      trx,
      { kind: 'voucher_reminder', subject_id: v.id, program_id: v.program_id, anchor_at: v.expiration_date },
      r ? utcIso(r.at) : null,
    );
  };

  private async campaignReminders(db: Executor, campaignId: string): Promise<Reminder[]> {
    const c = await this.deps.vouchers.findCampaign(db, campaignId);
    return normalizeReminders(fromJson<{ reminders?: Reminder[] }>(c?.extra ?? null, {}).reminders);
  }

  /** A voucher's dates are read on its loyalty program's wall clock, else in UTC. */
  private async zoneOf(db: Executor, programId: string | null): Promise<string> {
    return programId ? ((await this.deps.programs.findAny(db, programId))?.timezone ?? 'UTC') : 'UTC';
  }

  private async definitionsOf(db: Executor, programId: string): Promise<BalanceDefinitionRow[]> {
    return this.definitions.getOr(programId, () => this.deps.programs.definitions(db, programId));
  }

  // ---- re-planning after a configuration change ----

  /**
   * Re-plans every card of a program (reminders changed on the program, a balance definition or a
   * tier group), in chunks: a `time.replan` job per chunk, each scheduling the next, so a program
   * of a million cards is never one long transaction.
   */
  async replanProgram(trx: Executor, programId: string): Promise<void> {
    this.definitions.delete(programId);
    await this.ctx.scheduler.schedule(trx, {
      kind: 'time.replan',
      runAt: this.ctx.clock.now(),
      payload: { program_id: programId, after: null },
    });
  }

  registerJobs(): void {
    this.ctx.scheduler.register('time.replan', async (job, trx) => {
      const programId = String(job.payload.program_id);
      const after = (job.payload.after ?? null) as { created_at: string; id: string } | null;
      const program = await this.deps.programs.findAny(trx, programId);
      if (!program) return;
      const cards = await this.deps.members.cardsAfter(trx, programId, after, REPLAN_CHUNK);
      for (const m of cards) await this.replanMember(trx, program, m);
      const last = cards[cards.length - 1];
      if (cards.length === REPLAN_CHUNK)
        await this.ctx.scheduler.schedule(trx, {
          kind: 'time.replan',
          runAt: this.ctx.clock.now(),
          payload: { program_id: programId, after: { created_at: last.created_at, id: last.id } },
        });
    });
  }

  /** Every due item of one card from the configuration as it is now. */
  private async replanMember(trx: Executor, program: ProgramRow, m: MembershipRow): Promise<void> {
    if (m.status !== 'ACTIVE') return;
    const now = this.ctx.clock.nowMs();
    const zone = program.timezone;
    const reminders = programReminders(program);
    const r = reminders.length ? nextYearReminder(m.created_at, reminders, now, zone) : null;
    await this.plan(
      trx,
      { kind: 'membership_reminder', subject_id: m.id, program_id: program.id, anchor_at: m.created_at },
      r ? utcIso(r.at) : null,
    );
    for (const { group, row } of await this.deps.tiers.memberTiers(trx, m)) {
      await this.tierChanged(trx, {
        program,
        membership: m,
        group,
        tier: { id: row.tier_id } as TierRow,
        attributedAt: row.attributed_at,
      });
    }
    for (const d of await this.deps.programs.definitions(trx, program.id)) {
      const next = await this.nextBalanceReminder(trx, program, m, d, now);
      await this.plan(
        trx,
        { kind: 'balance_reminder', subject_id: m.id, scope_id: d.id, program_id: program.id, anchor_at: '' },
        next,
      );
    }
  }

  /** The card's points that expire, by expiry moment (open lots only). */
  private async expiringBuckets(trx: Executor, membershipId: string, definitionId: string) {
    const buckets = new Map<string, number>();
    for (const lot of await this.deps.ledger.openLots(trx, membershipId, definitionId)) {
      if (!lot.expires_at) continue;
      buckets.set(lot.expires_at, (buckets.get(lot.expires_at) ?? 0) + Number(lot.remaining));
    }
    return buckets;
  }

  private async nextBalanceReminder(
    trx: Executor,
    program: ProgramRow,
    m: MembershipRow,
    d: BalanceDefinitionRow,
    afterMs: number,
  ): Promise<string | null> {
    const reminders = remindersOf(d.reminders);
    if (reminders.length === 0) return null;
    let next: DateTime | null = null;
    for (const [expiresAt, amount] of await this.expiringBuckets(trx, m.id, d.id)) {
      if (amount <= 0) continue;
      const r = nextReminderBefore(expiresAt, reminders, afterMs, program.timezone);
      if (r && (!next || r.at < next)) next = r.at;
    }
    return next ? utcIso(next) : null;
  }

  // ---- firing ----

  /** Fires everything due now, batch after batch. Returns the number of items handled. */
  fireDue(): Promise<number> {
    const prev = this.running ?? Promise.resolve(0);
    const next = prev.then(async () => {
      let total = 0;
      for (;;) {
        const n = await this.fireBatch();
        total += n;
        if (n < this.ctx.config.timeBatchSize) return total;
      }
    });
    this.running = next.finally(() => {
      if (this.running === next) this.running = null;
    }) as Promise<number>;
    return next;
  }

  /** One transaction: take up to a batch of due items, fire them, move each to its next moment. */
  private fireBatch(): Promise<number> {
    return this.ctx.transaction(async (trx) => {
      const now = this.ctx.clock.nowIso();
      let q = trx
        .selectFrom('due_items')
        .selectAll()
        .where('next_at', '<=', now)
        .orderBy('next_at')
        .limit(this.ctx.config.timeBatchSize);
      // Another process's batch holds its rows: skip them rather than wait (SQLite: one writer).
      if (this.ctx.database.forUpdate) q = q.forUpdate().skipLocked();
      const items = await q.execute();
      if (items.length === 0) return 0;
      const memberIds = [...new Set(items.filter((i) => i.kind !== 'voucher_reminder').map((i) => i.subject_id))];
      const state: BatchState = {
        members: new Map((await this.deps.members.byIds(trx, memberIds)).map((m) => [m.id, m])),
        vouchers: await this.deps.vouchers.vouchersById(
          trx,
          items.filter((i) => i.kind === 'voucher_reminder').map((i) => i.subject_id),
        ),
        programs: new Map(),
      };
      const events: OutgoingEvent[] = [];
      const skips: { item: DueItemRow; due: string }[] = [];
      const after: ((trx: Executor) => Promise<void>)[] = [];
      const moved: DueItemRow[] = [];
      const gone: string[] = [];
      const cutoff = this.ctx.clock.nowMs() - this.ctx.config.timeLookbackDays * DAY_MS;
      for (const item of items) {
        let due: string | null = item.next_at;
        let anchor = item.anchor_at;
        // Catch-up: every occurrence up to now, each once (the row moves past it in this transaction).
        for (let i = 0; due !== null && due <= now && i < 1000; i++) {
          const occ = await this.occurrence(trx, { ...item, anchor_at: anchor }, due, state);
          if (Date.parse(due) >= cutoff) {
            for (const e of occ.events) events.push({ ...e, data: { ...e.data, due_at: due } });
          } else if (occ.events.length > 0) skips.push({ item, due });
          if (occ.apply) after.push(occ.apply);
          if (occ.anchor) anchor = occ.anchor;
          if (occ.next !== null && occ.next <= due) throw new Error(`due item ${item.id} did not move past ${due}`);
          due = occ.next;
        }
        if (due === null) gone.push(item.id);
        else moved.push({ ...item, next_at: due, anchor_at: anchor, updated_at: now });
      }
      // The rows move (or go) in a few statements per batch rather than one per item.
      for (let i = 0; i < gone.length; i += 500)
        await trx
          .deleteFrom('due_items')
          .where('id', 'in', gone.slice(i, i + 500))
          .execute();
      for (let i = 0; i < moved.length; i += 100)
        await trx
          .insertInto('due_items')
          .values(moved.slice(i, i + 100))
          .onConflict((oc) =>
            oc.column('id').doUpdateSet((eb) => ({
              next_at: eb.ref('excluded.next_at'),
              anchor_at: eb.ref('excluded.anchor_at'),
              updated_at: eb.ref('excluded.updated_at'),
            })),
          )
          .execute();
      for (let i = 0; i < events.length; i += 100) await this.ctx.outbox.emit(trx, events.slice(i, i + 100));
      if (skips.length > 0)
        await trx
          .insertInto('due_skips')
          .values(
            skips.map(({ item, due }) => ({
              id: newId('skip'),
              kind: item.kind,
              event_types: JSON.stringify(KIND_EVENTS[item.kind]),
              subject_id: item.subject_id,
              scope_id: item.scope_id,
              program_id: item.program_id,
              due_at: due,
              skipped_at: now,
            })),
          )
          .execute();
      // After the rows moved: a tier re-evaluated here may re-plan its own tier anniversary.
      for (const fn of after) await fn(trx);
      return items.length;
    });
  }

  private async program(trx: Executor, state: BatchState, id: string | null): Promise<ProgramRow | undefined> {
    if (!id) return undefined;
    if (!state.programs.has(id)) state.programs.set(id, await this.deps.programs.findAny(trx, id));
    return state.programs.get(id);
  }

  /** What the item does at `due`, and when it is due next (null: never again, the row goes). */
  private async occurrence(trx: Executor, item: DueItemRow, due: string, state: BatchState): Promise<Occurrence> {
    if (item.kind === 'voucher_reminder') return this.voucherOccurrence(trx, item, due, state);
    const none: Occurrence = { events: [], next: null };
    const m = state.members.get(item.subject_id);
    const program = await this.program(trx, state, item.program_id);
    // Nothing for a revoked card (or a deleted program): its row goes.
    if (m?.status !== 'ACTIVE' || !program || program.deleted_at) return none;
    const zone = program.timezone;
    const dueMs = Date.parse(due);
    const ref = { resource_type: 'membership', resource_id: m.id, program_id: program.id };
    switch (item.kind) {
      case 'subscription_anniversary': {
        const { n } = nextMonthAnniversary(item.anchor_at, dueMs - 1, zone);
        const data = {
          loyalty_program: programRef(program),
          subscription: { created_at: m.created_at, loyalty_subscription_id: subscriptionId(m) },
        };
        const events: OutgoingEvent[] = [{ type: 'subscription_month_anniversary', data, ...ref }];
        const year = n % 12 === 0;
        if (year) events.push({ type: 'subscription_year_anniversary', data, ...ref });
        return {
          events,
          next: utcIso(monthAnniversary(item.anchor_at, n + 1, zone)),
          apply: year ? (t) => this.deps.tiers.anniversaryReached(t, program, m, 'membership_anniversary') : undefined,
        };
      }
      case 'membership_reminder': {
        const reminders = programReminders(program);
        const r = nextYearReminder(item.anchor_at, reminders, dueMs - 1, zone);
        const events: OutgoingEvent[] =
          r && r.at.toMillis() === dueMs
            ? [
                {
                  type: 'membership_anniversary_reminder',
                  data: { loyalty_program: programRef(program), membership: membershipRef(m), reminder: r.reminder },
                  ...ref,
                },
              ]
            : [];
        const next = nextYearReminder(item.anchor_at, reminders, dueMs, zone);
        return { events, next: next ? utcIso(next.at) : null };
      }
      case 'tier_anniversary':
      case 'tier_reminder': {
        const held = (await this.deps.tiers.memberTiers(trx, m)).find((t) => t.group.id === item.scope_id);
        if (!held) return none;
        const anchor = held.row.attributed_at;
        const tierData = { tier: tierRef(held.tier), tier_group: groupRef(held.group) };
        if (item.kind === 'tier_anniversary') {
          const { n } = nextMonthAnniversary(anchor, dueMs - 1, zone);
          const data = { created_at: anchor, loyalty_program: programRef(program), ...tierData };
          const events: OutgoingEvent[] = [{ type: 'tier_association_month_anniversary', data, ...ref }];
          const year = n % 12 === 0;
          if (year) events.push({ type: 'tier_association_year_anniversary', data, ...ref });
          return {
            events,
            anchor,
            next: utcIso(monthAnniversary(anchor, n + 1, zone)),
            apply: year
              ? (t) => this.deps.tiers.anniversaryReached(t, program, m, 'tier_anniversary', held.group.id)
              : undefined,
          };
        }
        const reminders = remindersOf((held.group as TierGroupRow & { reminders?: string | null }).reminders);
        const r = nextYearReminder(anchor, reminders, dueMs - 1, zone);
        const events: OutgoingEvent[] =
          r && r.at.toMillis() === dueMs
            ? [
                {
                  type: 'tier_anniversary_reminder',
                  data: {
                    attributed_at: anchor,
                    loyalty_program: programRef(program),
                    membership: membershipRef(m),
                    reminder: r.reminder,
                    ...tierData,
                  },
                  ...ref,
                },
              ]
            : [];
        const next = nextYearReminder(anchor, reminders, dueMs, zone);
        return { events, anchor, next: next ? utcIso(next.at) : null };
      }
      case 'balance_reminder': {
        const d = (await this.definitionsOf(trx, program.id)).find((x) => x.id === item.scope_id);
        if (!d) return none;
        const reminders = remindersOf(d.reminders);
        const events: OutgoingEvent[] = [];
        let next: DateTime | null = null;
        for (const [expiresAt, amount] of await this.expiringBuckets(trx, m.id, d.id)) {
          // Nothing for zero points.
          if (amount <= 0) continue;
          const r = nextReminderBefore(expiresAt, reminders, dueMs - 1, zone);
          if (r && r.at.toMillis() === dueMs)
            events.push({
              type: 'balance_expiration_reminder',
              data: {
                amount,
                balance_definition: balanceDefinitionRef(d),
                created_at: this.ctx.clock.nowIso(),
                expires_at: expiresAt,
                loyalty_program: programRef(program),
                membership: membershipRef(m),
                reminder: r.reminder,
              },
              ...ref,
            });
          const after = nextReminderBefore(expiresAt, reminders, dueMs, zone);
          if (after && (!next || after.at < next)) next = after.at;
        }
        return { events, next: next ? utcIso(next) : null };
      }
      default:
        return none;
    }
  }

  /**
   * A voucher's expiration reminder: nothing once it is gone, expired, used up or no longer held;
   * its current expiration date counts (a changed date moves the reminders with it).
   */
  private async voucherOccurrence(
    trx: Executor,
    item: DueItemRow,
    due: string,
    state: BatchState,
  ): Promise<Occurrence> {
    const none: Occurrence = { events: [], next: null };
    const v = state.vouchers.get(item.subject_id);
    if (!v || v.deleted_at || v.expired_at || !v.holder_id || !v.expiration_date || v.active !== 1) return none;
    if (v.quantity !== null && v.redeemed_quantity >= v.quantity) return none;
    const reminders = v.campaign_id ? await this.campaignReminders(trx, v.campaign_id) : [];
    const program = await this.program(trx, state, v.program_id);
    const zone = program?.timezone ?? 'UTC';
    const dueMs = Date.parse(due);
    const r = nextReminderBefore(v.expiration_date, reminders, dueMs - 1, zone);
    const events: OutgoingEvent[] = [];
    if (r && r.at.toMillis() === dueMs) {
      const card = program ? (await this.deps.members.ofCustomer(trx, v.holder_id, program.id))[0] : undefined;
      const offer = fromJson<Record<string, unknown> | null>(v.offer, null) ?? {
        id: v.campaign_id ?? v.id,
        name: v.campaign_name ?? v.code,
        public_name: v.campaign_name ?? v.code,
        public_description: null,
        public_image: null,
      };
      events.push({
        type: 'voucher_expiration_reminder',
        data: {
          code: v.code,
          expired_at: v.expiration_date,
          id: v.id,
          loyalty_program: program ? programRef(program) : null,
          membership: card ? membershipRef(card) : null,
          offer,
          reminder: r.reminder,
          valid_from: v.start_date,
          customer_id: v.holder_id,
        },
        resource_type: 'voucher',
        resource_id: v.id,
        program_id: program?.id,
      });
    }
    const next = nextReminderBefore(v.expiration_date, reminders, dueMs, zone);
    return { events, anchor: v.expiration_date, next: next ? utcIso(next.at) : null };
  }

  // ---- the worker ----

  /** Polls every second (a due item fires within about a second of its moment). */
  start(intervalMs = 1000): () => Promise<void> {
    const tick = () => {
      this.fireDue().catch((err) => this.ctx.log.error({ err }, 'time engine pass failed'));
    };
    tick();
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
    return async () => {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      await this.running?.catch(() => undefined);
    };
  }

  // ---- the schedule ----

  /** Due items in [from, to], earliest first; `type`: a kind or one of its event types. */
  async schedule(db: Executor, q: { from: string; to: string; type?: string; limit: number; page: number }) {
    let base = db.selectFrom('due_items').where('next_at', '>=', q.from).where('next_at', '<=', q.to);
    if (q.type) {
      const kinds = DUE_KINDS.filter((k) => k === q.type || KIND_EVENTS[k].includes(q.type!));
      if (kinds.length === 0)
        throw invalid(
          'invalid_type',
          'Invalid type',
          `type ${q.type} is neither a due item kind nor an event type of one`,
          [{ field: 'type', message: `one of ${[...DUE_KINDS, ...Object.values(KIND_EVENTS).flat()].join(', ')}` }],
        );
      base = base.where('kind', 'in', kinds);
    }
    return pageByNumber(base, q, (b) => b.selectAll().orderBy('next_at').orderBy('id'));
  }

  async skipped(db: Executor, q: { limit: number; page: number }) {
    const base = db.selectFrom('due_skips');
    return pageByNumber(base, q, (b) => b.selectAll().orderBy('due_at', 'desc').orderBy('id', 'desc'));
  }
}

const REPLAN_CHUNK = 1000;
