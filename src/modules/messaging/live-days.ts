import { sql } from 'kysely';
import type { AppContext } from '../../context.ts';
import type { Executor } from '../../storage/database.ts';
import { hot, writeAtCommit } from '../../storage/hot.ts';
import { MemberSketch } from './member-sketch.ts';
import {
  MEMBER_BITS,
  MESSAGED,
  NOT_MESSAGED,
  WRITING,
  addMatches,
  bitChange,
  figuresOf,
  memberChange,
  moveCounts,
} from './message-figures.ts';
import { ATTRIBUTION_MS, isFinalDay } from './report-days.ts';
import { FLOW_DAY_FIGURES, type MsgFlowLiveDaysTable } from './tables.ts';

// The flow report's running figures of the days not yet final (msg_flow_live_days), so that a
// report reads a row per recent day instead of the day's messages.
//
// Writes only note what changed, in their own transactions: a flow message's insert and each
// change of its status queue the message (msg_flow_report_queue), and a redemption credits the
// flow's day in a msg_flow_redemptions row (pending; a rollback marks it). The fold moves what is
// queued and pending into the day rows in batches, one transaction each: the worker runs it every
// half second, and a report first, so the figures it reads are those of every write committed
// before it. The fold never writes a message (on PostgreSQL a new version of that wide row goes
// into each of its indexes).
//
// Invariants:
// - A day row holds, for each of its messages, the bits in msg_flow_message_figures (0 when it has
//   no row), and for each of its credited redemptions, `report_counted` × (1, points). A fold
//   changes both in one transaction, and folds run one at a time, so a status change moves each
//   count exactly once.
// - A queued message is folded as it is when the fold reads it: a write committed after that read
//   queued it again, and the next fold moves what that write changed.
// - Per-day distinct members are exact: a member counts on a day while any of their messages of
//   the day counts them (msg_flow_member_days keeps how many do).
// - The sketches (window-wide members) only grow, except in their exact form: a member whose
//   messages of a day all stop counting (cancelled on opting out) stays in an estimate.
// - When a day becomes final its row is no longer read (the roll-up computes the final figures
//   from messages, msg_flow_days) and retention deletes it.

const FOLD_BATCH = 500;

/**
 * Queue rows a process's folds delete before its worker has the table reclaimed (Database.reclaim:
 * on PostgreSQL a VACUUM of the queue, a few ms). Until then each check for pending work and each
 * fold's read step over the deleted rows' index entries (docs/performance.md).
 */
const RECLAIM_AFTER = 2_000;

/** Message ids per statement that queues them. */
const QUEUE_CHUNK = 50;

/**
 * Queues flow messages (only those: other messages have no running figures) whose figures a write
 * may have changed, in the write's transaction. Nothing reads these rows in the transaction, so
 * they go out with its COMMIT (storage/hot.ts `writeAtCommit`: on PostgreSQL no round trip of
 * their own; on the keyword path that round trip was most of what queueing cost).
 */
export async function queueFigures(trx: Executor, messageIds: string[]): Promise<void> {
  const parts = [];
  for (let i = 0; i < messageIds.length; i += QUEUE_CHUNK) {
    const ids = messageIds.slice(i, i + QUEUE_CHUNK);
    parts.push({
      // One text per chunk size (at most QUEUE_CHUNK of them), compiled once.
      key: `msg.queueFigures:${ids.length}`,
      params: ids,
      build: () => trx.insertInto('msg_flow_report_queue').values(ids.map((id) => ({ message_id: id }))),
    });
  }
  if (parts.length > 0) await writeAtCommit(trx, parts);
}

type LiveDay = MsgFlowLiveDaysTable;
/** A folded message's bits: what its day held of it, and what it holds now. */
type MemberChange = { before: number; after: number };
interface DayState {
  row: LiveDay;
  keywords: Record<string, number>;
  messaged: MemberSketch;
  writing: MemberSketch;
}

const emptyRow = (flowId: string, day: string, at: string): LiveDay => ({
  flow_id: flowId,
  day,
  messages: 0,
  messages_sent: 0,
  delivered: 0,
  failed: 0,
  inbound: 0,
  keyword_matches: '{}',
  members_messaged: 0,
  members_replied: 0,
  redemptions_within_7_days: 0,
  points_redeemed_within_7_days: 0,
  messaged_sketch: new MemberSketch().serialize(),
  writing_sketch: new MemberSketch().serialize(),
  sketch_revision: 0,
  updated_at: at,
});

const dayStart = (day: string) => Date.parse(`${day}T00:00:00.000Z`);

export class LiveDays {
  /** Queue rows this process's folds deleted since its worker last had the queue reclaimed. */
  private deletedSinceReclaim = 0;

  constructor(private ctx: AppContext) {}

  /** The first UTC day whose running figures are complete (msg_report_state, migration 0293). */
  async liveFrom(db: Executor): Promise<number> {
    const row = await db.selectFrom('msg_report_state').select('live_from').where('id', '=', 1).executeTakeFirst();
    return row ? dayStart(row.live_from) : Number.POSITIVE_INFINITY;
  }

  /**
   * The running figures of these days of a flow (the days without traffic have no row), with the
   * sketches of the day `withSketches` only (null on the other rows): a report merges the other
   * days' from its cached union, by their `sketch_revision` (reports.ts).
   */
  async read(db: Executor, flowId: string, days: string[], withSketches: string | null) {
    if (days.length === 0) return [];
    return db
      .selectFrom('msg_flow_live_days')
      .select(['flow_id', ...FLOW_DAY_FIGURES, 'sketch_revision'])
      .select([
        sql<string | null>`case when day = ${withSketches} then messaged_sketch end`.as('messaged_sketch'),
        sql<string | null>`case when day = ${withSketches} then writing_sketch end`.as('writing_sketch'),
      ])
      .where('flow_id', '=', flowId)
      .where('day', 'in', days)
      .execute();
  }

  /** The sketches of these days of a flow, with their revision (a report's cached union, reports.ts). */
  async readSketches(db: Executor, flowId: string, days: string[]) {
    if (days.length === 0) return [];
    return db
      .selectFrom('msg_flow_live_days')
      .select(['day', 'messaged_sketch', 'writing_sketch', 'sketch_revision'])
      .where('flow_id', '=', flowId)
      .where('day', 'in', days)
      .execute();
  }

  /**
   * Folds everything pending, a batch per transaction; returns how many messages and credits it
   * folded. `skipLocked` (the worker): on PostgreSQL, pass over what another fold holds. Without it
   * (a report) wait for that fold to commit, so the report reads every write committed before it.
   */
  async fold(opts: { skipLocked: boolean }): Promise<number> {
    // The worker (not a report, which would wait for it) has the deleted queue rows reclaimed.
    if (opts.skipLocked && this.deletedSinceReclaim >= RECLAIM_AFTER) {
      this.deletedSinceReclaim = 0;
      await this.ctx.database.reclaim('msg_flow_report_queue');
    }
    // Most of the worker's ticks find nothing: look before opening a transaction.
    if (!(await this.anyPending())) return 0;
    let total = 0;
    for (;;) {
      const n = await this.ctx.transaction((trx) => this.foldBatch(trx, opts.skipLocked));
      total += n.folded;
      this.deletedSinceReclaim += n.deleted;
      if (n.folded < FOLD_BATCH) return total;
    }
  }

  /** Whether anything waits to be folded: one statement (a report asks it every time). */
  private async anyPending(): Promise<boolean> {
    const db = this.ctx.database.db;
    const row = await db
      .selectNoFrom((eb) => [
        // By its key: the queue's deleted rows stay in PostgreSQL's table until a vacuum, and a
        // scan of the table would step over them; the index skips them once marked dead.
        eb.exists(db.selectFrom('msg_flow_report_queue').select('seq').orderBy('seq').limit(1)).as('queued'),
        eb
          .exists(db.selectFrom('msg_flow_redemptions').select('day').where(sql<boolean>`report_pending = 1`))
          .as('credits'),
      ])
      .executeTakeFirstOrThrow();
    return Boolean(row.queued) || Boolean(row.credits);
  }

  /**
   * Credits a successful redemption to each flow that messaged the customer in the 7 days before
   * it: to the day of that flow's latest such message (as the report has always counted it), in
   * the redemption's transaction.
   */
  async redemptionRecorded(
    trx: Executor,
    r: { id: string; customer_id: string; points: number; created_at: string },
  ): Promise<void> {
    // On every redemption: one statement compiled once (storage/hot.ts), by the partial index
    // msg_messages_flow_customer. Credits of days before liveFrom are left to the fold to skip.
    const since = new Date(Date.parse(r.created_at) - ATTRIBUTION_MS).toISOString();
    const [a, b] = NOT_MESSAGED;
    const sent = await hot(trx, 'msg.flowMessagesBefore', [r.customer_id, since, r.created_at, 'out', a, b], () =>
      trx
        .selectFrom('msg_messages')
        .select(['flow_id', 'created_at'])
        .where('customer_id', '=', r.customer_id)
        .where('flow_id', 'is not', null)
        .where('created_at', '>=', since)
        // Strictly before: a reply sent in the same instant answers the redemption, it did not bring it.
        .where('created_at', '<', r.created_at)
        .where('direction', '=', 'out')
        .where('status', 'not in', [a, b])
        .where('membership_id', 'is not', null),
    );
    if (sent.length === 0) return;
    const latest = new Map<string, string>();
    for (const m of sent) if (m.created_at > (latest.get(m.flow_id!) ?? '')) latest.set(m.flow_id!, m.created_at);
    const rows = [...latest].map(([flowId, createdAt]) => ({
      redemption_id: r.id,
      flow_id: flowId,
      day: createdAt.slice(0, 10),
      points: r.points,
      rolled_back: 0,
      report_pending: 1,
      report_counted: 0,
      created_at: r.created_at,
    }));
    await trx.insertInto('msg_flow_redemptions').values(rows).execute();
  }

  /** Takes a rolled-back redemption's credits back (at the next fold). */
  async redemptionRolledBack(trx: Executor, redemptionId: string): Promise<void> {
    await trx
      .updateTable('msg_flow_redemptions')
      .set({ rolled_back: 1, report_pending: 1 })
      .where('redemption_id', '=', redemptionId)
      .execute();
  }

  /**
   * One batch: up to FOLD_BATCH queued messages and as many pending credits, moved into their day
   * rows. Returns the larger count (`folded`) and the queue rows deleted. One fold runs at a time
   * (the lock on msg_report_state's row): a fold reads what each message's day holds of it and
   * writes it back, so two at once could move one change twice. Skip-locked (the worker): pass
   * over a fold in progress; else wait for it.
   */
  async foldBatch(trx: Executor, skipLocked: boolean): Promise<{ folded: number; deleted: number }> {
    const lock = <Q extends { forUpdate(): Q; skipLocked(): Q }>(q: Q) => {
      if (!this.ctx.database.forUpdate) return q;
      return skipLocked ? q.forUpdate().skipLocked() : q.forUpdate();
    };
    const turn = await lock(trx.selectFrom('msg_report_state').select('id').where('id', '=', 1)).executeTakeFirst();
    if (!turn) return { folded: 0, deleted: 0 };
    const queued = await trx
      .selectFrom('msg_flow_report_queue')
      .select(['seq', 'message_id'])
      .orderBy('seq')
      .limit(FOLD_BATCH)
      .execute();
    // Locked: a rollback that marks a credit waits for the fold that clears its flag, or the
    // reverse (the fold's own turn does not hold the vouchers' writes).
    const credits = await lock(
      trx
        .selectFrom('msg_flow_redemptions')
        .selectAll()
        .where(sql<boolean>`report_pending = 1`)
        .orderBy('day')
        .limit(FOLD_BATCH),
    ).execute();
    if (queued.length === 0 && credits.length === 0) return { folded: 0, deleted: 0 };

    // A message as it is now (a write after this read queued it again: the next fold moves that
    // change). Messages deleted since they were queued have nothing left to count.
    const ids = [...new Set(queued.map((q) => q.message_id))];
    const messages = ids.length
      ? await trx
          .selectFrom('msg_messages')
          .select(['id', 'flow_id', 'direction', 'status', 'keyword', 'membership_id', 'sent_at', 'created_at'])
          .where('id', 'in', ids)
          .execute()
      : [];

    // What still has running figures: a flow's messages of days that are not final and not
    // before liveFrom. The rest only leaves the queue.
    const now = this.ctx.clock.nowMs();
    const liveFrom = await this.liveFrom(trx);
    const live = (flowId: string | null, day: string) =>
      flowId !== null && dayStart(day) >= liveFrom && !isFinalDay(dayStart(day), now);
    const folded = messages.filter((m) => live(m.flow_id, m.created_at.slice(0, 10)));
    const counted = await this.countedBits(trx, folded);
    // Counts and keyword matches, message by message: what each held (`before`), what it holds now.
    const changes = folded
      .map((m) => ({ m, before: counted.get(m.id) ?? 0, after: figuresOf(m) }))
      .filter((c) => c.before !== c.after);
    const foldedCredits = credits.filter((c) => live(c.flow_id, c.day));

    const keys = new Set<string>();
    for (const { m } of changes) keys.add(`${m.flow_id}|${m.created_at.slice(0, 10)}`);
    for (const c of foldedCredits) keys.add(`${c.flow_id}|${c.day}`);
    const days = await this.lockDays(trx, [...keys].sort());

    const byMemberDay = new Map<string, MemberChange[]>();
    for (const { m, before, after } of changes) {
      const d = days.get(`${m.flow_id}|${m.created_at.slice(0, 10)}`)!;
      const c = moveCounts(d.row, before, after);
      if (c.inbound !== 0 && m.keyword) addMatches(d.keywords, m.keyword, c.inbound);
      if (m.membership_id && ((before ^ after) & MEMBER_BITS) !== 0) {
        const k = `${m.flow_id}|${m.created_at.slice(0, 10)}|${m.membership_id}`;
        byMemberDay.set(k, [...(byMemberDay.get(k) ?? []), { before, after }]);
      }
    }
    await this.foldMembers(trx, days, byMemberDay);

    for (const c of foldedCredits) {
      const d = days.get(`${c.flow_id}|${c.day}`)!;
      const change = (c.rolled_back ? 0 : 1) - Number(c.report_counted);
      d.row.redemptions_within_7_days += change;
      d.row.points_redeemed_within_7_days = Number(d.row.points_redeemed_within_7_days) + change * Number(c.points);
    }

    const at = this.ctx.clock.nowIso();
    for (const d of days.values()) {
      // The sketches only when they changed: most folds move counts (deliveries, credits), and
      // a report's cached union of a day holds while its revision does (reports.ts).
      const messaged = d.messaged.serialize();
      const writing = d.writing.serialize();
      const sketches =
        messaged !== d.row.messaged_sketch || writing !== d.row.writing_sketch
          ? { messaged_sketch: messaged, writing_sketch: writing, sketch_revision: d.row.sketch_revision + 1 }
          : {};
      await trx
        .updateTable('msg_flow_live_days')
        .set({
          messages: d.row.messages,
          messages_sent: d.row.messages_sent,
          delivered: d.row.delivered,
          failed: d.row.failed,
          inbound: d.row.inbound,
          keyword_matches: JSON.stringify(d.keywords),
          members_messaged: d.row.members_messaged,
          members_replied: d.row.members_replied,
          redemptions_within_7_days: d.row.redemptions_within_7_days,
          points_redeemed_within_7_days: d.row.points_redeemed_within_7_days,
          ...sketches,
          updated_at: at,
        })
        .where('flow_id', '=', d.row.flow_id)
        .where('day', '=', d.row.day)
        .execute();
    }

    // Each changed message's day now holds its new bits.
    const rows = changes.map(({ m, after }) => ({ day: m.created_at.slice(0, 10), message_id: m.id, counted: after }));
    for (let i = 0; i < rows.length; i += FOLD_BATCH)
      await trx
        .insertInto('msg_flow_message_figures')
        .values(rows.slice(i, i + FOLD_BATCH))
        .onConflict((oc) =>
          oc.columns(['day', 'message_id']).doUpdateSet((eb) => ({ counted: eb.ref('excluded.counted') })),
        )
        .execute();
    if (queued.length > 0)
      await trx
        .deleteFrom('msg_flow_report_queue')
        .where(
          'seq',
          'in',
          queued.map((q) => q.seq),
        )
        .execute();
    for (const c of credits)
      await trx
        .updateTable('msg_flow_redemptions')
        .set({ report_pending: 0, report_counted: c.rolled_back ? 0 : 1 })
        .where('redemption_id', '=', c.redemption_id)
        .where('flow_id', '=', c.flow_id)
        .execute();
    return { folded: Math.max(queued.length, credits.length), deleted: queued.length };
  }

  /** What these messages' days hold of them (by the key day, message_id); a message not there: 0. */
  private async countedBits(trx: Executor, messages: { id: string; created_at: string }[]) {
    const out = new Map<string, number>();
    if (messages.length === 0) return out;
    const days = [...new Set(messages.map((m) => m.created_at.slice(0, 10)))];
    const rows = await trx
      .selectFrom('msg_flow_message_figures')
      .select(['message_id', 'counted'])
      .where('day', 'in', days)
      .where(
        'message_id',
        'in',
        messages.map((m) => m.id),
      )
      .execute();
    for (const r of rows) out.set(r.message_id, Number(r.counted));
    return out;
  }

  /** The day rows of these `flow|day` keys (created when missing), locked for the fold, parsed. */
  private async lockDays(trx: Executor, keys: string[]): Promise<Map<string, DayState>> {
    const out = new Map<string, DayState>();
    if (keys.length === 0) return out;
    const at = this.ctx.clock.nowIso();
    const pairs = keys.map((k) => k.split('|') as [string, string]);
    // Created in key order, then locked in key order: two folds never wait on each other in a cycle.
    await trx
      .insertInto('msg_flow_live_days')
      .values(pairs.map(([flowId, day]) => emptyRow(flowId, day, at)))
      .onConflict((oc) => oc.columns(['flow_id', 'day']).doNothing())
      .execute();
    let q = trx
      .selectFrom('msg_flow_live_days')
      .selectAll()
      .where((eb) => eb.or(pairs.map(([flowId, day]) => eb.and([eb('flow_id', '=', flowId), eb('day', '=', day)]))))
      .orderBy('flow_id')
      .orderBy('day');
    if (this.ctx.database.forUpdate) q = q.forUpdate();
    for (const row of await q.execute())
      out.set(`${row.flow_id}|${row.day}`, {
        row: {
          ...row,
          points_redeemed_within_7_days: Number(row.points_redeemed_within_7_days),
          sketch_revision: Number(row.sketch_revision),
        },
        keywords: JSON.parse(row.keyword_matches) as Record<string, number>,
        messaged: MemberSketch.parse(row.messaged_sketch),
        writing: MemberSketch.parse(row.writing_sketch),
      });
    return out;
  }

  /**
   * Per-day distinct members from msg_flow_member_days: how many of each member's messages of the
   * day count them as messaged and as writing. A member counts on the day while the count is above
   * 0, so the batch's changes move the day's distinct counts only when one crosses 0.
   */
  private async foldMembers(
    trx: Executor,
    days: Map<string, DayState>,
    byMemberDay: Map<string, MemberChange[]>,
  ): Promise<void> {
    if (byMemberDay.size === 0) return;
    const perDay = new Map<string, string[]>();
    for (const k of byMemberDay.keys()) {
      const [flowId, day, member] = k.split('|');
      const dk = `${flowId}|${day}`;
      perDay.set(dk, [...(perDay.get(dk) ?? []), member]);
    }
    // The counts so far, a statement per flow-day (its primary key; under the day row's lock).
    const counts = new Map<string, { messaged: number; writing: number }>();
    for (const [dk, members] of perDay) {
      const [flowId, day] = dk.split('|');
      for (let i = 0; i < members.length; i += 500) {
        const rows = await trx
          .selectFrom('msg_flow_member_days')
          .select(['membership_id', 'messaged', 'writing'])
          .where('flow_id', '=', flowId)
          .where('day', '=', day)
          .where('membership_id', 'in', members.slice(i, i + 500))
          .execute();
        for (const r of rows)
          counts.set(`${dk}|${r.membership_id}`, { messaged: Number(r.messaged), writing: Number(r.writing) });
      }
    }
    const standing = (c: { messaged: number; writing: number }) =>
      (c.messaged > 0 ? MESSAGED : 0) | (c.writing > 0 ? WRITING : 0);
    const changed = [];
    for (const [k, msgs] of byMemberDay) {
      const [flowId, day, member] = k.split('|');
      const d = days.get(`${flowId}|${day}`)!;
      const was = counts.get(k) ?? { messaged: 0, writing: 0 };
      const now = { ...was };
      for (const { before, after } of msgs) {
        now.messaged += bitChange(before, after, MESSAGED);
        now.writing += bitChange(before, after, WRITING);
      }
      const c = memberChange(standing(was), standing(now));
      d.row.members_messaged += c.messaged;
      d.row.members_replied += c.replied;
      if (c.messaged > 0) d.messaged.add(member);
      if (c.messaged < 0) d.messaged.remove(member);
      if (c.writing > 0) d.writing.add(member);
      if (c.writing < 0) d.writing.remove(member);
      changed.push({ flow_id: flowId, day, membership_id: member, messaged: now.messaged, writing: now.writing });
    }
    for (let i = 0; i < changed.length; i += 500)
      await trx
        .insertInto('msg_flow_member_days')
        .values(changed.slice(i, i + 500))
        .onConflict((oc) =>
          oc.columns(['flow_id', 'day', 'membership_id']).doUpdateSet((eb) => ({
            messaged: eb.ref('excluded.messaged'),
            writing: eb.ref('excluded.writing'),
          })),
        )
        .execute();
  }
}
