import { type KeyWalk, pageByCreated } from '../../storage/paging.ts';
import type { AppContext } from '../../context.ts';
import { newId } from '../../lib/ids.ts';
import { toE164 } from '../../lib/phone.ts';
import type { Executor } from '../../storage/database.ts';
import { hot } from '../../storage/hot.ts';
import { publicBase, type ChannelRow, type ChannelService } from './channels.ts';
import type { OptOutService } from './optout.ts';
import { sendInfobip } from './providers/infobip.ts';
import { SimulatorInbox } from './providers/simulator.ts';
import { sendTwilio } from './providers/twilio.ts';
import type { OutgoingMessage, SendResult, WhatsAppTemplate } from './providers/types.ts';
import type { MessageListQuery } from './schemas.ts';
import type { MsgMessagesTable } from './tables.ts';
import { Limiter } from './limiter.ts';
import { queueFigures } from './live-days.ts';

// Outbound messages are rows of msg_messages (direction 'out'). A reply is queued in the
// transaction that handles the inbound message and sent right after it commits; a provider
// failure that may pass (5xx, 429, timeout, network) is retried with exponential backoff by
// `tick()` (the worker runs it every half second; tests call it after moving the clock).
// Statuses: queued → sending → sent → delivered | failed; retrying; cancelled (opted out).

export type MessageRow = MsgMessagesTable;

export const MAX_ATTEMPTS = 6;
export const LEASE_MS = 60_000;
/**
 * Outcome writes start at least this far apart: under load one commit records many sends (each
 * commit also wakes the other writers' listeners); when idle an outcome is written at once.
 */
const OUTCOME_GAP_MS = 20;
/** Delay before attempt n+1 after n failed attempts: 2s, 4s, 8s, 16s, 32s. */
export const backoffMs = (attempts: number) => Math.min(300_000, 1000 * 2 ** attempts);

export interface QueueInput {
  channel: ChannelRow;
  to: string;
  /** The text, or a template message's readable preview. */
  text: string;
  template?: WhatsAppTemplate | null;
  sendAt?: string;
  flow_id?: string | null;
  flow_version?: number | null;
  conversation_id?: string | null;
  broadcast_id?: string | null;
  in_reply_to?: string | null;
  program_id?: string | null;
  customer_id?: string | null;
  membership_id?: string | null;
  system?: boolean;
  status?: 'queued' | 'skipped';
  error?: string | null;
  /** Queue it already claimed by this process, to be sent with `dispatch` right after commit. */
  claimed?: boolean;
}

export class Outbound {
  readonly simulator = new SimulatorInbox();
  private inflight = new Set<Promise<unknown>>();
  private outcomes: {
    id: string;
    set: Partial<MessageRow>;
    /** A flow message whose figures this outcome changes (live-days.ts). */
    figures: boolean;
    resolve: () => void;
    reject: (err: unknown) => void;
  }[] = [];
  private flushing = false;
  private lastFlushAt = -Infinity;
  /** Sends in flight at once (each mostly waits on the provider). */
  private sends = new Limiter(32);

  constructor(
    private ctx: AppContext,
    private channels: ChannelService,
    private optout: OptOutService,
  ) {}

  async queue(trx: Executor, input: QueueInput): Promise<MessageRow> {
    const now = this.ctx.clock.nowIso();
    const row: MessageRow = {
      id: newId('msg'),
      channel_id: input.channel.id,
      direction: 'out',
      inbound_key: null,
      provider_message_id: null,
      from_number: input.channel.sender,
      to_number: input.to,
      text: input.text,
      status: input.claimed ? 'sending' : (input.status ?? 'queued'),
      error: input.error ?? null,
      attempts: 0,
      next_attempt_at: input.status === 'skipped' ? null : (input.sendAt ?? now),
      // A claimed message whose process dies before sending is picked up when the lease expires.
      locked_until: input.claimed ? new Date(this.ctx.clock.nowMs() + LEASE_MS).toISOString() : null,
      flow_id: input.flow_id ?? null,
      flow_version: input.flow_version ?? null,
      keyword: null,
      conversation_id: input.conversation_id ?? null,
      broadcast_id: input.broadcast_id ?? null,
      in_reply_to: input.in_reply_to ?? null,
      program_id: input.program_id ?? null,
      customer_id: input.customer_id ?? null,
      membership_id: input.membership_id ?? null,
      system: input.system ? 1 : 0,
      created_at: now,
      updated_at: now,
      sent_at: null,
      delivered_at: null,
      template: input.template ? JSON.stringify(input.template) : null,
    };
    await hot(trx, 'msg.insert', Object.values(row), () => trx.insertInto('msg_messages').values(row));
    // A flow message's figures are folded into its day's running figures (live-days.ts).
    if (row.flow_id) await queueFigures(trx, [row.id]);
    return row;
  }

  /** Sends these (just committed) messages now, in the background. */
  kick(ids: string[]): void {
    for (const id of ids) this.track(this.sends.run(() => this.sendOne(id)));
  }

  /** Sends these messages now and waits for the outcome. */
  async sendNow(ids: string[]): Promise<void> {
    for (const id of ids) await this.track(this.sendOne(id));
  }

  /** Sends messages queued with `claimed: true` (just committed), in the background. */
  dispatch(rows: MessageRow[], channel: ChannelRow): void {
    for (const row of rows) this.track(this.sends.run(() => this.deliverClaimed(row, channel)));
  }

  /** Like dispatch, and waits for the outcome. */
  async dispatchNow(rows: MessageRow[], channel: ChannelRow): Promise<void> {
    for (const row of rows) await this.track(this.deliverClaimed(row, channel));
  }

  private track<T>(p: Promise<T>): Promise<T> {
    const wrapped = p.catch((err) => {
      this.ctx.log.error({ err }, 'outbound send failed');
      return undefined as T;
    });
    this.inflight.add(wrapped);
    void wrapped.finally(() => this.inflight.delete(wrapped));
    return wrapped;
  }

  /** Waits until no send is in flight (tests, shutdown). */
  async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  /** Sends every message that is due (first attempts, retries, expired leases). Returns how many were tried. */
  async tick(limit = 100): Promise<number> {
    const now = this.ctx.clock.nowIso();
    const due = await this.ctx.database.db
      .selectFrom('msg_messages')
      .select('id')
      .where('direction', '=', 'out')
      .where((eb) =>
        eb.or([
          eb.and([eb('status', 'in', ['queued', 'retrying']), eb('next_attempt_at', '<=', now)]),
          eb.and([eb('status', '=', 'sending'), eb('locked_until', '<', now)]),
        ]),
      )
      .orderBy('next_attempt_at')
      .limit(limit)
      .execute();
    let n = 0;
    for (const { id } of due) {
      if (await this.track(this.sendOne(id, true))) n++;
    }
    return n;
  }

  /** Claims one message (atomically) and hands it to its provider. Returns false when not claimable. */
  private async sendOne(id: string, includeExpired = false): Promise<boolean> {
    const clock = this.ctx.clock;
    const now = clock.nowIso();
    const db = this.ctx.database.db;
    const claimed = await db
      .updateTable('msg_messages')
      .set({ status: 'sending', locked_until: new Date(clock.nowMs() + LEASE_MS).toISOString(), updated_at: now })
      .where('id', '=', id)
      .where((eb) =>
        eb.or([
          eb.and([eb('status', 'in', ['queued', 'retrying']), eb('next_attempt_at', '<=', now)]),
          ...(includeExpired ? [eb.and([eb('status', '=', 'sending'), eb('locked_until', '<', now)])] : []),
        ]),
      )
      .returningAll()
      .executeTakeFirst();
    if (!claimed) return false;
    const channel = await db
      .selectFrom('msg_channels')
      .selectAll()
      .where('id', '=', claimed.channel_id)
      .executeTakeFirst();
    await this.deliverClaimed(claimed, channel);
    return true;
  }

  private async deliverClaimed(claimed: MessageRow, channel: ChannelRow | undefined): Promise<void> {
    const clock = this.ctx.clock;
    const db = this.ctx.database.db;
    let result: SendResult;
    if (!channel || channel.deleted_at) {
      result = { ok: false, retryable: false, error: 'channel deleted' };
    } else if (claimed.broadcast_id && (await this.optout.isOptedOut(db, claimed.to_number))) {
      // Replies are checked when the inbound message arrives (and an opt-out cancels queued ones);
      // broadcast messages can wait a while in the queue, so they are checked again here.
      await this.finish(claimed, 'cancelled', { error: 'opted_out' });
      return;
    } else {
      result = await this.deliver(channel, claimed);
    }
    const done = clock.nowIso();
    const attempts = claimed.attempts + 1;
    if (result.ok) {
      await this.finish(claimed, 'sent', {
        provider_message_id: result.providerMessageId,
        attempts,
        sent_at: done,
        error: null,
      });
      this.ctx.metrics
        .counter('tally_messages_sent_total', 'Messages accepted by a provider', ['provider'])
        .inc({ provider: channel!.provider });
    } else if (result.retryable && attempts < MAX_ATTEMPTS) {
      await this.finish(claimed, 'retrying', {
        attempts,
        error: result.error,
        next_attempt_at: new Date(clock.nowMs() + backoffMs(attempts)).toISOString(),
      });
    } else {
      await this.finish(claimed, 'failed', { attempts, error: result.error });
      this.ctx.log.warn(
        { message_id: claimed.id, channel_id: claimed.channel_id, error: result.error },
        'message failed',
      );
    }
  }

  /**
   * Records the outcome of a send. Outcomes that arrive within OUTCOME_GAP_MS of the last write
   * are written together in one transaction (one commit for many messages under load; no delay
   * when alone). Until then the message stays `sending` under its lease, as during the call.
   */
  private finish(row: MessageRow, status: string, patch: Partial<MessageRow>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // Any outcome but a retry changes a flow message's figures (sent, failed, cancelled).
      const figures = row.flow_id !== null && status !== 'retrying';
      this.outcomes.push({ id: row.id, set: { ...patch, status, locked_until: null }, figures, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        this.scheduleFlush();
      }
    });
  }

  private scheduleFlush(): void {
    const wait = this.lastFlushAt + OUTCOME_GAP_MS - performance.now();
    if (wait > 0) setTimeout(() => void this.flushOutcomes(), wait);
    else setImmediate(() => void this.flushOutcomes());
  }

  private async flushOutcomes(): Promise<void> {
    this.lastFlushAt = performance.now();
    const batch = this.outcomes.splice(0);
    try {
      await this.ctx.transaction(async (trx) => {
        const now = this.ctx.clock.nowIso();
        for (const o of batch) {
          const set = { ...o.set, updated_at: now };
          // One text per set of columns (an outcome's columns depend on its kind).
          await hot(trx, `msg.outcome:${Object.keys(set).join(',')}`, [...Object.values(set), o.id, 'sending'], () =>
            trx.updateTable('msg_messages').set(set).where('id', '=', o.id).where('status', '=', 'sending'),
          );
        }
        await queueFigures(
          trx,
          batch.filter((o) => o.figures).map((o) => o.id),
        );
      });
      for (const o of batch) o.resolve();
    } catch (err) {
      for (const o of batch) o.reject(err);
    } finally {
      if (this.outcomes.length > 0) this.scheduleFlush();
      else this.flushing = false;
    }
  }

  private async deliver(channel: ChannelRow, row: MessageRow): Promise<SendResult> {
    const forSend = this.channels.forSend(channel);
    const reportUrl =
      channel.public_url || this.ctx.config.publicUrl
        ? `${publicBase(this.ctx, channel)}/v1/channels/${channel.id}/reports`
        : null;
    const msg: OutgoingMessage = {
      id: row.id,
      to: row.to_number,
      text: row.text,
      template: row.template ? (JSON.parse(row.template) as WhatsAppTemplate) : null,
      reportUrl,
    };
    switch (channel.provider) {
      case 'infobip':
        return sendInfobip(this.ctx.egress, forSend, msg);
      case 'twilio':
        return sendTwilio(this.ctx.egress, forSend, msg);
      case 'simulator':
        return this.simulator.send(msg, this.ctx.clock.nowIso());
      default:
        return { ok: false, retryable: false, error: `unknown provider ${channel.provider}` };
    }
  }

  /**
   * The messages `ids` (text, status, template), in the order of `ids`: the replies an exchange
   * answers with (TwiML, the simulator). Ids not found are left out.
   */
  async summaries(db: Executor, ids: string[]) {
    if (ids.length === 0) return [];
    const rows = await db
      .selectFrom('msg_messages')
      .select(['id', 'text', 'status', 'template'])
      .where('id', 'in', ids)
      .execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    return ids.flatMap((id) => byId.get(id) ?? []);
  }

  /**
   * The last `limit` messages between `phone` and `channelId` (what it sent and what it got),
   * oldest first.
   */
  async conversation(db: Executor, channelId: string, phone: string, limit: number) {
    const rows = await db
      .selectFrom('msg_messages')
      .select(['id', 'direction', 'text', 'status', 'template', 'created_at'])
      .where('channel_id', '=', channelId)
      .where((eb) =>
        eb.or([
          eb.and([eb('direction', '=', 'in'), eb('from_number', '=', phone)]),
          eb.and([eb('direction', '=', 'out'), eb('to_number', '=', phone)]),
        ]),
      )
      // Newest first to keep the last `limit`, shown oldest first; within one millisecond the
      // member's message comes before its replies.
      .orderBy('created_at', 'desc')
      .orderBy('direction', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.reverse();
  }

  /** Stored messages (inbound and outbound), newest first, filtered and paged. */
  async list(db: Executor, q: MessageListQuery) {
    let base = db.selectFrom('msg_messages');
    if (q.direction) base = base.where('direction', '=', q.direction);
    if (q.status) base = base.where('status', '=', q.status);
    // A phone's messages (two indexes combined: a phone's few messages, sorted) or else a flow's
    // (msg_messages_flow) or a channel's (msg_messages_channel_created) walked in order.
    let walk: KeyWalk | undefined;
    if (q.phone) {
      const p = toE164(q.phone) ?? q.phone;
      base = base.where((eb) => eb.or([eb('from_number', '=', p), eb('to_number', '=', p)]));
    } else if (q.flow_id) walk = { db, column: 'flow_id', value: q.flow_id };
    else if (q.channel_id) walk = { db, column: 'channel_id', value: q.channel_id };
    if (q.flow_id && walk?.column !== 'flow_id') base = base.where('flow_id', '=', q.flow_id);
    if (q.channel_id && walk?.column !== 'channel_id') base = base.where('channel_id', '=', q.channel_id);
    return pageByCreated(base, q, 'a message', 'desc', { walk });
  }

  /** Marks replies answered in the webhook response itself (Twilio TwiML) as sent. */
  async markSentInline(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const now = this.ctx.clock.nowIso();
    await this.ctx.transaction(async (trx) => {
      const sent = await trx
        .updateTable('msg_messages')
        .set({ status: 'sent', attempts: 1, sent_at: now, updated_at: now })
        .where('id', 'in', ids)
        .where('status', 'in', ['queued', 'sending'])
        .returning(['id', 'flow_id'])
        .execute();
      await queueFigures(
        trx,
        sent.filter((m) => m.flow_id !== null).map((m) => m.id),
      );
    });
  }

  /** Applies a provider delivery report. Never moves a message backwards (delivered stays delivered). */
  async applyReport(
    channelId: string,
    providerMessageId: string,
    status: 'sent' | 'delivered' | 'failed',
    error?: string | null,
  ): Promise<boolean> {
    const now = this.ctx.clock.nowIso();
    const db = this.ctx.database.db;
    const row = await db
      .selectFrom('msg_messages')
      .select(['id', 'status', 'flow_id'])
      .where('channel_id', '=', channelId)
      .where('direction', '=', 'out')
      .where((eb) => eb.or([eb('provider_message_id', '=', providerMessageId), eb('id', '=', providerMessageId)]))
      .executeTakeFirst();
    if (!row) return false;
    if (status === 'sent' || row.status === 'delivered') return true;
    const update = (trx: Executor) =>
      trx
        .updateTable('msg_messages')
        .set(
          status === 'delivered'
            ? { status, delivered_at: now, updated_at: now }
            : { status: 'failed', error: error ?? 'undeliverable', updated_at: now },
        )
        .where('id', '=', row.id)
        .execute();
    // A flow message's delivery changes its figures (live-days.ts): queued in the same transaction.
    if (row.flow_id === null) await update(db);
    else
      await this.ctx.transaction(async (trx) => {
        await update(trx);
        await queueFigures(trx, [row.id]);
      });
    return true;
  }
}
