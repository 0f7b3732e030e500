import { sql } from 'kysely';
import type { AppContext } from '../../context.ts';
import { perUtcDay } from '../../lib/days.ts';
import type { Executor } from '../../storage/database.ts';
import { invalid } from '../../lib/errors.ts';
import type { MessagingDeps } from './deps.ts';

// Flow reporting: messages sent / delivered / failed, inbound messages, keyword matches per alias,
// interaction rate (members who replied / members messaged), and redemptions (reward and voucher
// redemptions, asked of the vouchers module) by messaged customers within 7 days after a flow
// message; in total and per day (UTC).

const DAY = 86_400_000;
const WINDOW = 7 * DAY;

interface DayStats {
  date: string;
  messages_sent: number;
  delivered: number;
  failed: number;
  inbound: number;
  keyword_matches: Record<string, number>;
  members_messaged: number;
  members_replied: number;
  interaction_rate: number | null;
  redemptions_within_7_days: number;
  points_redeemed_within_7_days: number;
}

export class ReportService {
  constructor(
    private ctx: AppContext,
    private services: Pick<MessagingDeps, 'redemptionsOf'>,
  ) {}

  async flowReport(flowId: string, fromRaw?: string, toRaw?: string) {
    const to = toRaw ? parseDate(toRaw, 'to', true) : this.ctx.clock.nowMs();
    const from = fromRaw ? parseDate(fromRaw, 'from', false) : to - 30 * DAY;
    if (from >= to)
      throw invalid('invalid_range', 'Invalid range', 'from must be before to', [
        { field: 'from', message: 'must be before to' },
      ]);
    if (to - from > 400 * DAY)
      throw invalid('invalid_range', 'Invalid range', 'the range may span at most 400 days', [
        { field: 'to', message: 'at most 400 days after from' },
      ]);
    const fromIso = new Date(from).toISOString();
    const toIso = new Date(to).toISOString();
    const db = this.ctx.database.db;
    const msgs = await db
      .selectFrom('msg_messages')
      .select(['id', 'direction', 'status', 'keyword', 'membership_id', 'customer_id', 'sent_at', 'created_at'])
      .where('flow_id', '=', flowId)
      .where('created_at', '>=', fromIso)
      .where('created_at', '<', toIso)
      .execute();

    const days = new Map<string, DayStats & { messaged: Set<string>; replied: Set<string> }>();
    const day = (iso: string) => {
      const d = iso.slice(0, 10);
      let s = days.get(d);
      if (!s) {
        s = {
          date: d,
          messages_sent: 0,
          delivered: 0,
          failed: 0,
          inbound: 0,
          keyword_matches: {},
          members_messaged: 0,
          members_replied: 0,
          interaction_rate: null,
          redemptions_within_7_days: 0,
          points_redeemed_within_7_days: 0,
          messaged: new Set(),
          replied: new Set(),
        };
        days.set(d, s);
      }
      return s;
    };
    const messaged = new Set<string>();
    const repliedAll = new Set<string>();
    const sentTimes = new Map<string, number[]>();
    const total = {
      messages_sent: 0,
      delivered: 0,
      failed: 0,
      inbound: 0,
      keyword_matches: {} as Record<string, number>,
    };
    for (const m of msgs) {
      const s = day(m.created_at);
      if (m.direction === 'out') {
        if (m.sent_at) {
          s.messages_sent++;
          total.messages_sent++;
        }
        if (m.status === 'delivered') {
          s.delivered++;
          total.delivered++;
        }
        if (m.status === 'failed') {
          s.failed++;
          total.failed++;
        }
        if (m.membership_id && m.status !== 'skipped' && m.status !== 'cancelled') {
          messaged.add(m.membership_id);
          s.messaged.add(m.membership_id);
          // Redemptions are the customer's (a voucher has no card): timed per customer.
          if (m.customer_id) {
            const list = sentTimes.get(m.customer_id) ?? [];
            list.push(Date.parse(m.created_at));
            sentTimes.set(m.customer_id, list);
          }
        }
      } else {
        s.inbound++;
        total.inbound++;
        if (m.keyword) {
          s.keyword_matches[m.keyword] = (s.keyword_matches[m.keyword] ?? 0) + 1;
          total.keyword_matches[m.keyword] = (total.keyword_matches[m.keyword] ?? 0) + 1;
        }
        if (m.membership_id) {
          repliedAll.add(m.membership_id);
          s.replied.add(m.membership_id);
        }
      }
    }

    // Redemptions (of rewards and vouchers, the vouchers module's) by messaged customers within 7
    // days after one of their flow messages; each counts once, on the day of the latest message before it.
    let redemptions = 0;
    let pointsRedeemed = 0;
    const customers = [...sentTimes.keys()];
    const range = { from: fromIso, to: new Date(to + WINDOW).toISOString() };
    for (let i = 0; this.services.redemptionsOf && i < customers.length; i += 500) {
      for (const e of await this.services.redemptionsOf(db, customers.slice(i, i + 500), range)) {
        const at = Date.parse(e.created_at);
        const before = (sentTimes.get(e.customer_id) ?? []).filter((t) => t <= at && at <= t + WINDOW);
        if (before.length === 0) continue;
        const s = day(new Date(Math.max(...before)).toISOString());
        s.redemptions_within_7_days++;
        s.points_redeemed_within_7_days += e.points;
        redemptions++;
        pointsRedeemed += e.points;
      }
    }

    const replied = [...repliedAll].filter((m) => messaged.has(m)).length;
    const perDay = [...days.values()]
      .sort((a, b) => (a.date < b.date ? -1 : 1))
      .map(({ messaged: ms, replied: rs, ...s }) => {
        const r = [...rs].filter((x) => ms.has(x)).length;
        return {
          ...s,
          members_messaged: ms.size,
          members_replied: r,
          interaction_rate: ms.size ? round(r / ms.size) : null,
        };
      });
    return {
      object: 'flow_report' as const,
      flow_id: flowId,
      from: fromIso,
      to: toIso,
      totals: {
        ...total,
        members_messaged: messaged.size,
        members_replied: replied,
        interaction_rate: messaged.size ? round(replied / messaged.size) : null,
        redemptions_within_7_days: redemptions,
        points_redeemed_within_7_days: pointsRedeemed,
      },
      days: perDay,
    };
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

function parseDate(raw: string, field: string, endOfDay: boolean): number {
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(raw);
  const ms = Date.parse(dateOnly ? `${raw}T00:00:00Z` : raw);
  if (!Number.isFinite(ms))
    throw invalid('invalid_date', 'Invalid date', `${field} must be a date or date-time`, [
      { field, message: 'must be a date (2026-01-31) or an ISO date-time' },
    ]);
  return dateOnly && endOfDay ? ms + DAY : ms;
}
