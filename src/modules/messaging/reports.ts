import { sql } from 'kysely';
import type { AppContext } from '../../context.ts';
import { perUtcDay } from '../../lib/days.ts';
import type { Executor } from '../../storage/database.ts';
import { invalid } from '../../lib/errors.ts';
import type { MessagingDeps } from './deps.ts';
import { MemberSketch, intersectionCount } from './member-sketch.ts';
import { LiveDays } from './live-days.ts';
import { type MemberSketches, StoredUnions } from './stored-unions.ts';
import { INBOUND, MESSAGED, NOT_MESSAGED, WRITING, addMatches, figuresOf, moveCounts } from './message-figures.ts';
import { FLOW_DAY_FIGURES, type MsgFlowDaysTable } from './tables.ts';
import {
  ATTRIBUTION_MS,
  DAY_MS,
  type Range,
  dayOf,
  dayRuns,
  daysIn,
  floorDay,
  isFinalDay,
  liveParts,
  splitWindow,
} from './report-days.ts';

// Flow reporting: messages sent / delivered / failed, inbound messages, keyword matches per alias,
// interaction rate (members who replied / members messaged), and redemptions (reward and voucher
// redemptions, asked of the vouchers module) by messaged customers within 7 days after a flow
// message; in total and per day (UTC).
//
// Cost: final days (ended more than 8 days ago, report-days.ts) come from the daily roll-up
// msg_flow_days, computed once from messages — on demand by the first report that asks, or by the
// retention sweep before it deletes the day's messages. The recent days come from their running
// figures (msg_flow_live_days, live-days.ts), kept as messages and redemptions are written, so a
// report reads a row per day whatever the traffic. Counted from messages on each report: only a
// partial day at either end of an explicit date-time window, and recent days written before the
// running figures began (msg_report_state). Counts and redemptions of the window are sums of its
// days: each redemption counts once, on the day of the flow's latest message to the customer
// before it (whatever the window), so a day's figures do not depend on the window asking. Distinct
// members of the window are not sums of days: they are the union of its days' members — the
// stored days' sketches (member-sketch.ts: exact up to 1,024 members, then an estimate within
// about 1 %) and the sets of the days computed from messages. Days rolled up before the sketches
// (migration 0292) have none; a window holding one counts its members over its stored messages
// (index msg_messages_flow_members) — past message retention, retained messages only.

interface DayFigures {
  date: string;
  /** Every message of the day (a day shows in `days` when it has any). */
  messages: number;
  messages_sent: number;
  delivered: number;
  failed: number;
  inbound: number;
  keyword_matches: Record<string, number>;
  members_messaged: number;
  members_replied: number;
  redemptions_within_7_days: number;
  points_redeemed_within_7_days: number;
  /** Who the flow messaged that day, and who wrote to it: null on a day rolled up before 0292. */
  members: DayMembers | null;
}

/**
 * A day's members, as sets of membership ids (a day computed from messages), as stored sketches
 * (the window's last day of running figures, read with its figures), or in the union of the
 * window's other stored days (StoredUnions: revision null for a rolled-up day). `writing` holds
 * every member who wrote to the flow that day, messaged or not: the window's repliers are those
 * of its writers it messaged, on any of its days.
 */
type DayMembers =
  | MemberSets
  | { kind: 'sketches'; messaged: string; writing: string }
  | { kind: 'stored'; revision: number | null };
type MemberSets = { kind: 'sets'; messaged: Set<string>; writing: Set<string> };
/** A day computed from its messages: its members as sets. */
type ComputedDay = DayFigures & { members: MemberSets };

const emptyDay = (date: string): ComputedDay => ({
  date,
  messages: 0,
  messages_sent: 0,
  delivered: 0,
  failed: 0,
  inbound: 0,
  keyword_matches: {},
  members_messaged: 0,
  members_replied: 0,
  redemptions_within_7_days: 0,
  points_redeemed_within_7_days: 0,
  members: { kind: 'sets', messaged: new Set(), writing: new Set() },
});

export class ReportService {
  /** The running figures of the days not yet final. */
  readonly live: LiveDays;
  /** The roll-up a report of this process is running, by flow (one at a time per flow). */
  private rollingUp = new Map<string, Promise<void>>();
  private storedUnions: StoredUnions;

  constructor(
    private ctx: AppContext,
    private services: Pick<MessagingDeps, 'redemptionsOf'>,
  ) {
    this.live = new LiveDays(ctx);
    this.storedUnions = new StoredUnions(this.live);
  }

  async flowReport(flowId: string, fromRaw?: string, toRaw?: string) {
    const now = this.ctx.clock.nowMs();
    const to = toRaw ? parseDate(toRaw, 'to', true) : now;
    // By default the 30 whole UTC days before `to`'s day, and that day up to `to`.
    const from = fromRaw ? parseDate(fromRaw, 'from', false) : floorDay(to - 30 * DAY_MS);
    if (from >= to)
      throw invalid('invalid_range', 'Invalid range', 'from must be before to', [
        { field: 'from', message: 'must be before to' },
      ]);
    if (to - from > 400 * DAY_MS)
      throw invalid('invalid_range', 'Invalid range', 'the range may span at most 400 days', [
        { field: 'to', message: 'at most 400 days after from' },
      ]);
    const fromIso = new Date(from).toISOString();
    const toIso = new Date(to).toISOString();
    const db = this.ctx.database.db;

    // A flow has no messages before it was created: days before are neither computed nor stored.
    const flow = await db.selectFrom('msg_flows').select('created_at').where('id', '=', flowId).executeTakeFirst();
    const start = Math.max(from, flow ? Math.floor(Date.parse(flow.created_at) / DAY_MS) * DAY_MS : to);
    const split = splitWindow(start, to, now);
    const days: DayFigures[] = [];
    if (split.final) days.push(...(await this.finalDays(db, flowId, split.final)));
    if (split.live.length > 0) {
      // Every write committed before this report is in the running figures it reads.
      await this.live.fold({ skipLocked: false });
      const liveFrom = await this.live.liveFrom(db);
      const parts = split.live.map((r) => liveParts(r, now, liveFrom));
      const running = parts.flatMap((p) => p.stored).sort();
      // The last day is the one traffic changes (today's, by default): its sketches are read with
      // its figures, the other days' come from their cached union while their revisions hold.
      const last = running.at(-1) ?? null;
      for (const x of await this.live.read(db, flowId, running, last))
        days.push(
          dayFromRow(
            x,
            x.messaged_sketch !== null && x.writing_sketch !== null
              ? { kind: 'sketches', messaged: x.messaged_sketch, writing: x.writing_sketch }
              : { kind: 'stored', revision: Number(x.sketch_revision) },
          ),
        );
      for (const p of parts) for (const c of p.computed) days.push(...(await this.computeDays(db, flowId, c)).values());
    }

    const total = {
      messages_sent: 0,
      delivered: 0,
      failed: 0,
      inbound: 0,
      keyword_matches: {} as Record<string, number>,
    };
    let redemptions = 0;
    let pointsRedeemed = 0;
    const shown = days.filter((d) => d.messages > 0).sort((a, b) => (a.date < b.date ? -1 : 1));
    for (const d of shown) {
      total.messages_sent += d.messages_sent;
      total.delivered += d.delivered;
      total.failed += d.failed;
      total.inbound += d.inbound;
      for (const [k, n] of Object.entries(d.keyword_matches)) addMatches(total.keyword_matches, k, n);
      redemptions += d.redemptions_within_7_days;
      pointsRedeemed += d.points_redeemed_within_7_days;
    }
    const stored = shown.flatMap((d) => (d.members?.kind === 'stored' ? [{ date: d.date, ...d.members }] : []));
    // A day rolled up before 0292 keeps no members: the window's are counted over its messages.
    const members = shown.some((d) => d.members === null)
      ? await this.windowMembersFromMessages(db, flowId, fromIso, toIso)
      : unionMembers(shown, await this.storedUnions.of(db, flowId, stored));
    // Counted from messages, a window's members are only those of retained messages (the roll-up
    // keeps the older days' figures): when the window starts before that, they count from there on.
    const keep = this.ctx.config.messageRetentionDays * DAY_MS;
    const membersCountedFrom =
      members.fromMessages && keep > 0 && from < now - keep ? new Date(now - keep).toISOString() : null;
    return {
      object: 'flow_report' as const,
      flow_id: flowId,
      from: fromIso,
      to: toIso,
      members_counted_from: membersCountedFrom,
      totals: {
        ...total,
        members_messaged: members.messaged,
        members_replied: members.replied,
        interaction_rate: members.messaged ? round(members.replied / members.messaged) : null,
        members_estimated: members.estimated,
        redemptions_within_7_days: redemptions,
        points_redeemed_within_7_days: pointsRedeemed,
      },
      days: shown.map(({ messages: _, ...d }) => ({
        date: d.date,
        messages_sent: d.messages_sent,
        delivered: d.delivered,
        failed: d.failed,
        inbound: d.inbound,
        keyword_matches: d.keyword_matches,
        members_messaged: d.members_messaged,
        members_replied: d.members_replied,
        interaction_rate: d.members_messaged ? round(d.members_replied / d.members_messaged) : null,
        redemptions_within_7_days: d.redemptions_within_7_days,
        points_redeemed_within_7_days: d.points_redeemed_within_7_days,
      })),
    };
  }

  /**
   * Distinct members messaged in [from, to) and, of them, those who replied in it, counted over the
   * window's messages (a window with days rolled up before their sketches): one count(distinct)
   * each over the covering index msg_messages_flow_members.
   */
  private async windowMembersFromMessages(db: Executor, flowId: string, fromIso: string, toIso: string) {
    const messaged = db
      .selectFrom('msg_messages')
      .where('flow_id', '=', flowId)
      .where('direction', '=', 'out')
      .where('created_at', '>=', fromIso)
      .where('created_at', '<', toIso)
      .where('status', 'not in', NOT_MESSAGED)
      .where('membership_id', 'is not', null);
    const m = await messaged.select(sql<number>`count(distinct membership_id)`.as('n')).executeTakeFirstOrThrow();
    const r = await db
      .selectFrom('msg_messages')
      .select(sql<number>`count(distinct membership_id)`.as('n'))
      .where('flow_id', '=', flowId)
      .where('direction', '=', 'in')
      .where('created_at', '>=', fromIso)
      .where('created_at', '<', toIso)
      .where('membership_id', 'in', messaged.select('membership_id'))
      .executeTakeFirstOrThrow();
    return { messaged: Number(m.n), replied: Number(r.n), estimated: false, fromMessages: true };
  }

  /**
   * The roll-up's rows of a run of final days, first rolling up the days it lacks. Not their
   * sketches: the window's union of them is merged once (StoredUnions).
   */
  private async finalDays(db: Executor, flowId: string, r: Range): Promise<DayFigures[]> {
    const read = () =>
      db
        .selectFrom('msg_flow_days')
        .select(FLOW_DAY_FIGURES)
        .select(
          sql<number>`case when messaged_sketch is null or writing_sketch is null then 0 else 1 end`.as('sketched'),
        )
        .where('flow_id', '=', flowId)
        .where('day', '>=', dayOf(r.from))
        .where('day', '<', dayOf(r.to))
        .execute();
    let rows = await read();
    const missing = () => {
      const have = new Set(rows.map((x) => x.day));
      return daysIn(r).filter((d) => !have.has(d));
    };
    // Reports of a flow asking at once (a console page opened by several people, the morning a
    // day became final) wait for the roll-up one of them runs instead of each computing the days.
    const running = this.rollingUp.get(flowId);
    if (running && missing().length > 0) {
      await running.catch(() => undefined); // its failure is its report's: this one rolls up below
      rows = await read();
    }
    const days = missing();
    if (days.length > 0) {
      const rollUp = this.rollUp(db, flowId, days).finally(() => this.rollingUp.delete(flowId));
      this.rollingUp.set(flowId, rollUp);
      await rollUp;
      // Read back what is stored: a concurrent roll-up (another process, the retention sweep) may
      // have stored a day first, and the stored row is what every later report returns.
      rows = await read();
    }
    return rows.map((x) => dayFromRow(x, Number(x.sketched) === 1 ? { kind: 'stored', revision: null } : null));
  }

  /**
   * Rolls up these days of a flow that are final and not yet rolled up (the retention sweep calls
   * it, in its transaction, with the days of the messages it is about to delete). Days not final
   * are left alone: their figures may still change (report-days.ts).
   */
  async rollUpDays(db: Executor, flowId: string, days: string[]): Promise<void> {
    const now = this.ctx.clock.nowMs();
    const final = [...new Set(days)].filter((d) => isFinalDay(Date.parse(`${d}T00:00:00.000Z`), now));
    if (final.length === 0) return;
    const have = await db
      .selectFrom('msg_flow_days')
      .select('day')
      .where('flow_id', '=', flowId)
      .where('day', 'in', final)
      .execute();
    const stored = new Set(have.map((x) => x.day));
    await this.rollUp(
      db,
      flowId,
      final.filter((d) => !stored.has(d)),
    );
  }

  /**
   * Computes these final days from the messages and stores them, a row for every day (a day
   * without traffic too). Idempotent and safe under races: a day stored meanwhile by someone else
   * is left as it is (ON CONFLICT DO NOTHING; both computed it from the same final data).
   */
  private async rollUp(db: Executor, flowId: string, days: string[]): Promise<void> {
    const createdAt = this.ctx.clock.nowIso();
    for (const run of dayRuns(days)) {
      const computed = await this.computeDays(db, flowId, run);
      const rows = daysIn(run).map((d) => {
        const f = computed.get(d) ?? emptyDay(d);
        return {
          flow_id: flowId,
          day: d,
          messages: f.messages,
          messages_sent: f.messages_sent,
          delivered: f.delivered,
          failed: f.failed,
          inbound: f.inbound,
          keyword_matches: JSON.stringify(f.keyword_matches),
          members_messaged: f.members_messaged,
          members_replied: f.members_replied,
          redemptions_within_7_days: f.redemptions_within_7_days,
          points_redeemed_within_7_days: f.points_redeemed_within_7_days,
          messaged_sketch: sketchOf(f.members.messaged).serialize(),
          writing_sketch: sketchOf(f.members.writing).serialize(),
          created_at: createdAt,
        };
      });
      await db
        .insertInto('msg_flow_days')
        .values(rows)
        .onConflict((oc) => oc.columns(['flow_id', 'day']).doNothing())
        .execute();
    }
  }

  /**
   * Each UTC day's figures over the messages of [from, to) (days with messages only), as the
   * report returns them: per-day counts, distinct members per day, and the redemptions each day
   * is credited with — those whose latest flow message strictly before them (within 7 days; a
   * reply sent in the same instant answers the redemption, it did not bring it) is in the range,
   * so messages up to 7 days after `to` are read too, to see a later message take a redemption over.
   */
  private async computeDays(db: Executor, flowId: string, r: Range): Promise<Map<string, ComputedDay>> {
    const fromIso = new Date(r.from).toISOString();
    const toIso = new Date(r.to).toISOString();
    const msgs = await db
      .selectFrom('msg_messages')
      .select(['direction', 'status', 'keyword', 'membership_id', 'customer_id', 'sent_at', 'created_at'])
      .where('flow_id', '=', flowId)
      .where('created_at', '>=', fromIso)
      .where('created_at', '<', toIso)
      .execute();

    const days = new Map<string, ComputedDay>();
    const day = (iso: string) => {
      const d = iso.slice(0, 10);
      let s = days.get(d);
      if (!s) {
        s = emptyDay(d);
        days.set(d, s);
      }
      return s;
    };
    /** Flow messages that reached each customer: [time, inside the range]. */
    const sentTimes = new Map<string, [number, boolean][]>();
    const sent = (customerId: string, at: number, inRange: boolean) => {
      const list = sentTimes.get(customerId) ?? [];
      list.push([at, inRange]);
      sentTimes.set(customerId, list);
    };
    for (const m of msgs) {
      const s = day(m.created_at);
      // What a message adds: the one definition the running figures fold too (message-figures.ts).
      const bits = figuresOf(m);
      moveCounts(s, 0, bits);
      if (bits & MESSAGED) {
        s.members.messaged.add(m.membership_id!);
        // Redemptions are the customer's (a voucher has no card): timed per customer.
        if (m.customer_id) sent(m.customer_id, Date.parse(m.created_at), true);
      }
      if (bits & INBOUND && m.keyword) addMatches(s.keyword_matches, m.keyword, 1);
      if (bits & WRITING) s.members.writing.add(m.membership_id!);
    }

    const customers = [...sentTimes.keys()];
    const redeemable = this.services.redemptionsOf;
    if (redeemable && customers.length > 0) {
      const aheadIso = new Date(r.to + ATTRIBUTION_MS).toISOString();
      const redeemed = [];
      for (let i = 0; i < customers.length; i += 500)
        redeemed.push(...(await redeemable(db, customers.slice(i, i + 500), { from: fromIso, to: aheadIso })));
      if (redeemed.length > 0) {
        // Later messages of the flow to the same customers: a redemption counts on the latest one.
        const later = await db
          .selectFrom('msg_messages')
          .select(['customer_id', 'created_at'])
          .where('flow_id', '=', flowId)
          .where('direction', '=', 'out')
          .where('created_at', '>=', toIso)
          .where('created_at', '<', aheadIso)
          .where('status', 'not in', NOT_MESSAGED)
          .where('membership_id', 'is not', null)
          .execute();
        for (const m of later)
          if (m.customer_id && sentTimes.has(m.customer_id)) sent(m.customer_id, Date.parse(m.created_at), false);
      }
      for (const e of redeemed) {
        const at = Date.parse(e.created_at);
        let latest: [number, boolean] | undefined;
        for (const x of sentTimes.get(e.customer_id) ?? [])
          if (x[0] < at && at <= x[0] + ATTRIBUTION_MS && (!latest || x[0] > latest[0])) latest = x;
        if (!latest?.[1]) continue;
        const s = day(new Date(latest[0]).toISOString());
        s.redemptions_within_7_days++;
        s.points_redeemed_within_7_days += e.points;
      }
    }

    for (const s of days.values()) {
      const { messaged, writing } = s.members;
      s.members_messaged = messaged.size;
      s.members_replied = [...writing].filter((x) => messaged.has(x)).length;
    }
    return days;
  }

  /**
   * Messages sent to members and received from them per UTC day since `sinceIso`, over every
   * channel (the console's overview; index msg_messages_created).
   */
  async messagesPerDay(db: Executor, sinceIso: string): Promise<{ day: string; sent: number; replied: number }[]> {
    return perUtcDay(sinceIso, this.ctx.clock.nowMs(), async (from, to) => {
      const r = await db
        .selectFrom('msg_messages')
        .select([
          sql<number>`coalesce(sum(case when direction = 'out' then 1 else 0 end), 0)`.as('sent'),
          sql<number>`coalesce(sum(case when direction = 'in' then 1 else 0 end), 0)`.as('replied'),
        ])
        .where('created_at', '>=', from)
        .where('created_at', '<', to)
        .executeTakeFirstOrThrow();
      return { sent: Number(r.sent), replied: Number(r.replied) };
    });
  }
}

const round = (x: number) => Math.round(x * 10000) / 10000;

/** A stored day's figures (the roll-up's, or the running figures'), with its members. */
function dayFromRow(
  x: Omit<MsgFlowDaysTable, 'flow_id' | 'messaged_sketch' | 'writing_sketch' | 'created_at'>,
  members: DayMembers | null,
): DayFigures {
  return {
    date: x.day,
    messages: Number(x.messages),
    messages_sent: Number(x.messages_sent),
    delivered: Number(x.delivered),
    failed: Number(x.failed),
    inbound: Number(x.inbound),
    keyword_matches: JSON.parse(x.keyword_matches) as Record<string, number>,
    members_messaged: Number(x.members_messaged),
    members_replied: Number(x.members_replied),
    redemptions_within_7_days: Number(x.redemptions_within_7_days),
    points_redeemed_within_7_days: Number(x.points_redeemed_within_7_days),
    members,
  };
}

/** A computed day's members of one kind as a sketch (what the roll-up stores). */
function sketchOf(ids: Set<string>): MemberSketch {
  const sketch = new MemberSketch();
  for (const id of ids) sketch.add(id);
  return sketch;
}

/**
 * The window's distinct members from its days' members: exact sets while every day is one
 * (each id counted once, not hashed), else the union of sketches (the sets' ids hashed once), the
 * stored days' as `stored` (their union). Every day has its members (none is rolled up before 0292).
 */
function unionMembers(days: DayFigures[], stored: MemberSketches | null) {
  const messaged = new Set<string>();
  const writing = new Set<string>();
  const sketches = { messaged: new MemberSketch(), writing: new MemberSketch() };
  if (stored) {
    sketches.messaged.merge(stored.messaged);
    sketches.writing.merge(stored.writing);
  }
  for (const { members } of days) {
    if (members!.kind === 'stored') continue;
    if (members!.kind === 'sketches') {
      // Merged from their stored text: no sketch (nor set of hashes) is built per day.
      sketches.messaged.mergeStored(members!.messaged);
      sketches.writing.mergeStored(members!.writing);
    } else {
      for (const id of members!.messaged) messaged.add(id);
      for (const id of members!.writing) writing.add(id);
    }
  }
  if (days.every((d) => d.members!.kind === 'sets')) {
    let replied = 0;
    for (const id of writing) if (messaged.has(id)) replied++;
    return { messaged: messaged.size, replied, estimated: false, fromMessages: false };
  }
  for (const id of messaged) sketches.messaged.add(id);
  for (const id of writing) sketches.writing.add(id);
  const replied = intersectionCount(sketches.messaged, sketches.writing);
  return {
    messaged: sketches.messaged.count(),
    replied: replied.count,
    estimated: !(sketches.messaged.exact && replied.exact),
    fromMessages: false,
  };
}

function parseDate(raw: string, field: string, endOfDay: boolean): number {
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(raw);
  const ms = Date.parse(dateOnly ? `${raw}T00:00:00Z` : raw);
  if (!Number.isFinite(ms))
    throw invalid('invalid_date', 'Invalid date', `${field} must be a date or date-time`, [
      { field, message: 'must be a date (2026-01-31) or an ISO date-time' },
    ]);
  return dateOnly && endOfDay ? ms + DAY_MS : ms;
}
