import type { AppContext } from '../../context.ts';
import { DAY_MS, type RetentionPolicy } from '../scheduler/retention.ts';
import type { UntypedDb } from '../../storage/migrate.ts';
import { FINAL_AFTER_MS } from './report-days.ts';
import type { ReportService } from './reports.ts';

/** Statuses of a message still on its way out: never old enough to delete. */
const IN_FLIGHT = ['queued', 'retrying', 'sending'];

/**
 * Stored messages older than config.messageRetentionDays, oldest first (index msg_messages_created,
 * migration 0290). Consent and its history live in their own tables and are kept.
 *
 * Before a batch goes, the flow days its messages belong to are rolled up (msg_flow_days, in the
 * same transaction), so flow reports keep those days' figures after their messages are gone. The
 * batch is the oldest messages, so the first batch that touches a day finds all of the day's
 * messages (and the 7 days after it) still stored. A day is rolled up only once final (ended more
 * than 8 days ago): with a retention under 9 days a day's messages go before it is final, and
 * reports over it count what is left.
 */
export function messageRetention(ctx: AppContext, reports: Pick<ReportService, 'rollUpDays'>): RetentionPolicy {
  return {
    name: 'msg_messages',
    keepMs: ctx.config.messageRetentionDays * DAY_MS,
    async deleteBatch(trx, cutoff, limit) {
      const batch = await trx
        .selectFrom('msg_messages')
        .select(['id', 'flow_id', 'created_at'])
        .where('created_at', '<', cutoff)
        .where('status', 'not in', IN_FLIGHT)
        .orderBy('created_at')
        .orderBy('id')
        .limit(limit)
        .execute();
      if (batch.length === 0) return 0;
      const flowDays = new Map<string, Set<string>>();
      for (const m of batch) {
        if (!m.flow_id) continue;
        const days = flowDays.get(m.flow_id) ?? new Set<string>();
        days.add(m.created_at.slice(0, 10));
        flowDays.set(m.flow_id, days);
      }
      for (const [flowId, days] of flowDays) await reports.rollUpDays(trx, flowId, [...days]);
      // Exactly the rows rolled up above, in statements of at most 1,000 ids (bound parameters).
      let deleted = 0;
      for (let i = 0; i < batch.length; i += 1000) {
        const ids = batch.slice(i, i + 1000).map((m) => m.id);
        const res = await trx.deleteFrom('msg_messages').where('id', 'in', ids).executeTakeFirst();
        deleted += Number(res.numDeletedRows ?? 0);
      }
      return deleted;
    },
  };
}

/**
 * The running figures of days that became final (the report reads the roll-up for them, never
 * these rows again), the redemptions credited to those days, their members' counts and what they
 * hold of each message: a day's rows go once it ended more than 10 days ago (by an index on `day`).
 */
export function liveDaysRetention(): RetentionPolicy[] {
  return [
    finalDayRows('msg_flow_live_days', ['flow_id', 'day']),
    finalDayRows('msg_flow_redemptions', ['redemption_id', 'flow_id']),
    finalDayRows('msg_flow_member_days', ['flow_id', 'day', 'membership_id']),
    finalDayRows('msg_flow_message_figures', ['day', 'message_id']),
  ];
}

function finalDayRows(table: string, key: string[]): RetentionPolicy {
  return {
    name: table,
    keepMs: FINAL_AFTER_MS + 2 * DAY_MS,
    async deleteBatch(trx, cutoff, limit) {
      // Tables named here, each with a `day` and its own key: untyped.
      const db = trx as unknown as UntypedDb;
      const rows = await db
        .selectFrom(table)
        .select(key)
        .where('day', '<', cutoff.slice(0, 10))
        .orderBy('day')
        .limit(limit)
        .execute();
      for (const r of rows) {
        let del = db.deleteFrom(table);
        for (const k of key) del = del.where(k, '=', r[k]);
        await del.execute();
      }
      return rows.length;
    },
  };
}
