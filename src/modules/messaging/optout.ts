import type { AppContext } from '../../context.ts';
import { newId } from '../../lib/ids.ts';
import type { Executor } from '../../storage/database.ts';
import { hot } from '../../storage/hot.ts';
import { queueFigures } from './live-days.ts';

// Consent per phone number, before any flow: STOP and its variants opt the number out (the only
// message it then gets is the confirmation), START opts it back in. Every change is recorded with
// its time, channel, word and message.

export class OptOutService {
  constructor(private ctx: AppContext) {}

  async isOptedOut(db: Executor, phone: string): Promise<boolean> {
    const [row] = await hot(db, 'msg.consent', [phone], () =>
      db.selectFrom('msg_consents').select('status').where('phone', '=', phone),
    );
    return row?.status === 'opted_out';
  }

  async optedOutAmong(db: Executor, phones: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let i = 0; i < phones.length; i += 500) {
      const rows = await db
        .selectFrom('msg_consents')
        .select('phone')
        .where('phone', 'in', phones.slice(i, i + 500))
        .where('status', '=', 'opted_out')
        .execute();
      for (const r of rows) out.add(r.phone);
    }
    return out;
  }

  async record(
    trx: Executor,
    input: {
      phone: string;
      action: 'opt_out' | 'opt_in';
      channelId: string | null;
      keyword?: string | null;
      messageId?: string | null;
    },
  ): Promise<void> {
    const now = this.ctx.clock.nowIso();
    const status = input.action === 'opt_out' ? 'opted_out' : 'opted_in';
    await trx
      .insertInto('msg_consents')
      .values({ phone: input.phone, status, channel_id: input.channelId, updated_at: now })
      .onConflict((oc) => oc.column('phone').doUpdateSet({ status, channel_id: input.channelId, updated_at: now }))
      .execute();
    await trx
      .insertInto('msg_consent_events')
      .values({
        id: newId('cev'),
        phone: input.phone,
        action: input.action,
        channel_id: input.channelId,
        keyword: input.keyword ?? null,
        message_id: input.messageId ?? null,
        created_at: now,
      })
      .execute();
    if (input.action === 'opt_out') {
      // An opted-out number has no conversation in progress and nothing left to receive.
      await trx
        .updateTable('msg_conversations')
        .set({ state: 'ended', updated_at: now })
        .where('phone', '=', input.phone)
        .where('state', '=', 'waiting')
        .execute();
      const cancelled = await trx
        .updateTable('msg_messages')
        .set({ status: 'cancelled', error: 'opted_out', updated_at: now })
        .where('to_number', '=', input.phone)
        .where('direction', '=', 'out')
        .where('system', '=', 0)
        .where('status', 'in', ['queued', 'retrying'])
        .returning(['id', 'flow_id'])
        .execute();
      await queueFigures(
        trx,
        cancelled.filter((m) => m.flow_id !== null).map((m) => m.id),
      );
    }
  }

  async history(db: Executor, phone: string) {
    const rows = await db
      .selectFrom('msg_consent_events')
      .selectAll()
      .where('phone', '=', phone)
      .orderBy('seq')
      .execute();
    return rows.map(({ seq: _seq, ...r }) => r);
  }

  async status(db: Executor, phone: string) {
    return db.selectFrom('msg_consents').selectAll().where('phone', '=', phone).executeTakeFirst();
  }
}
