import type { AppContext } from '../../../context.ts';
import { newId } from '../../../lib/ids.ts';
import { fromJson, toJson } from '../../../lib/json.ts';
import type { MessagingDeps } from '../deps.ts';
import { isUniqueViolation, type Executor } from '../../../storage/database.ts';
import { hot } from '../../../storage/hot.ts';
import type { CustomerRow } from '../../customers/service.ts';
import type { MembershipRow } from '../../members/service.ts';
import { channelSettings, type ChannelRow } from '../channels.ts';
import type { ContextRegistry } from '../context-providers.ts';
import { consentIntent, normalizeKeyword, pickTrigger, pickTriggers, rawTokens, tokenize } from '../keywords.ts';
import { queueFigures } from '../live-days.ts';
import type { OptOutService } from '../optout.ts';
import type { MessageRow, Outbound } from '../outbound.ts';
import { boundInbound, MAX_INBOUND_TEXT, type InboundMessage } from '../providers/types.ts';
import { render } from '../templates.ts';
import type { Candidate, FlowService, FlowVersion } from './service.ts';
import { FlowRun, type MemberVisibility } from './steps.ts';

// What happens to one inbound message:
//   1. stored, deduplicated on the provider's message id (a provider retry stops here);
//   2. opt-out / opt-in words, before anything else (confirmation only);
//   3. an opted-out number gets nothing;
//   4. a conversation waiting for a follow-up keyword continues on its own flow version;
//   5. else the most specific trigger starts its flow's current version; else the catch-all.
// Replies, the session and the attribution of the inbound message are written in one transaction.

export interface ReceiveResult {
  duplicate: boolean;
  messageId: string | null;
  /** Replies, queued already claimed: hand them to `outbound.dispatch` (or answer them inline). */
  replies: MessageRow[];
  replyIds: string[];
}

interface Session {
  id: string;
  flow_id: string;
  flow_version: number;
  step_id: string;
  vars: {
    customer_id?: string | null;
    membership_id?: string | null;
    saved?: Record<string, unknown>;
    visibility?: MemberVisibility;
  };
}

class DuplicateInbound extends Error {}

export class Engine {
  private pending = new Map<string, MessageRow>();

  constructor(
    private ctx: AppContext,
    private services: MessagingDeps,
    private flows: FlowService,
    private outbound: Outbound,
    private optout: OptOutService,
    private registry: ContextRegistry,
  ) {}

  async receive(channel: ChannelRow, received: InboundMessage): Promise<ReceiveResult> {
    const db = this.ctx.database.db;
    // Text beyond what SMS or WhatsApp can carry is cut, not refused (see MAX_INBOUND_TEXT).
    const msg = boundInbound(received);
    if (msg !== received && received.text.length > MAX_INBOUND_TEXT) {
      const sizes = { channel_id: channel.id, length: received.text.length, kept: msg.text.length };
      this.ctx.log.warn(sizes, 'inbound text cut to the maximum length');
    }
    const now = this.ctx.clock.nowIso();
    const id = newId('msg');
    const inboundKey = `${channel.id}:${msg.providerMessageId}`;
    // A provider retry of a message already stored stops here. Two copies racing past this check
    // are settled by the unique index when the inbound row is written with the replies.
    const [seen] = await hot(db, 'msg.inboundSeen', [inboundKey], () =>
      db.selectFrom('msg_messages').select('id').where('inbound_key', '=', inboundKey),
    );
    if (seen) return { duplicate: true, messageId: null, replies: [], replyIds: [] };
    const row: MessageRow = {
      id,
      channel_id: channel.id,
      direction: 'in',
      inbound_key: inboundKey,
      provider_message_id: msg.providerMessageId,
      from_number: msg.from,
      to_number: msg.to || channel.sender,
      text: msg.text,
      status: 'received',
      error: null,
      attempts: 0,
      next_attempt_at: null,
      locked_until: null,
      flow_id: null,
      flow_version: null,
      keyword: null,
      conversation_id: null,
      broadcast_id: null,
      in_reply_to: null,
      program_id: null,
      customer_id: null,
      membership_id: null,
      system: 0,
      created_at: now,
      updated_at: now,
      sent_at: null,
      delivered_at: null,
      template: null,
    };
    this.pending.set(id, row);
    try {
      const replies = await this.process(channel, msg, id);
      return { duplicate: false, messageId: id, replies, replyIds: replies.map((r) => r.id) };
    } catch (err) {
      if (err instanceof DuplicateInbound) return { duplicate: true, messageId: null, replies: [], replyIds: [] };
      this.ctx.log.error({ err, message_id: id, channel_id: channel.id }, 'inbound message processing failed');
      await db
        .insertInto('msg_messages')
        .values({
          ...row,
          status: 'error',
          error: String((err as Error).message).slice(0, 500),
          updated_at: this.ctx.clock.nowIso(),
        })
        .onConflict((oc) => oc.column('inbound_key').doNothing())
        .execute();
      return { duplicate: false, messageId: id, replies: [], replyIds: [] };
    } finally {
      this.pending.delete(id);
    }
  }

  /**
   * Stores the inbound message with its outcome, in the transaction that stores the replies (one
   * commit per message). Throws DuplicateInbound (rolling the transaction back) when a copy of the
   * same provider message got there first.
   */
  private async markInbound(id: string, patch: Partial<MessageRow>, trx: Executor = this.ctx.database.db) {
    const row: MessageRow = { ...this.pending.get(id)!, ...patch, updated_at: this.ctx.clock.nowIso() };
    try {
      await hot(trx, 'msg.insertInbound', Object.values(row), () => trx.insertInto('msg_messages').values(row));
    } catch (err) {
      // The unique inbound_key: a copy of this provider message was stored first. (Not ON CONFLICT
      // DO NOTHING RETURNING: on SQLite, RETURNING triples the cost of the insert.)
      if (isUniqueViolation(err)) throw new DuplicateInbound();
      throw err;
    }
    // A message to a flow counts in its day's running figures (live-days.ts). Only a message that
    // matched a flow has flow_id, and those are stored in the transaction of their replies.
    if (row.flow_id) await queueFigures(trx, [row.id]);
  }

  private async process(channel: ChannelRow, msg: InboundMessage, inboundId: string): Promise<MessageRow[]> {
    const db = this.ctx.database.db;
    const settings = channelSettings(channel);
    const phone = msg.from;

    const intent = consentIntent(msg.text);
    if (intent) {
      return this.ctx.transaction(async (trx) => {
        await this.optout.record(trx, {
          phone,
          action: intent.action,
          channelId: channel.id,
          keyword: intent.word,
          messageId: inboundId,
        });
        const text = intent.action === 'opt_out' ? settings.opt_out_reply : settings.opt_in_reply;
        const out = await this.outbound.queue(trx, {
          channel,
          to: phone,
          text,
          system: true,
          in_reply_to: inboundId,
          claimed: true,
        });
        await this.markInbound(inboundId, { status: 'processed', keyword: intent.word.toUpperCase() }, trx);
        return [out];
      });
    }
    if (await this.optout.isOptedOut(db, phone)) {
      await this.markInbound(inboundId, { status: 'ignored', error: 'opted_out' });
      return [];
    }

    const tokens = tokenize(msg.text);
    const raw = rawTokens(msg.text);
    const now = this.ctx.clock.nowIso();

    // A conversation waiting for a follow-up keyword?
    let session: Session | null = null;
    let version: FlowVersion | null = null;
    let startStep: string | null = null;
    let alias: string | null = null;
    const [open] = await hot(db, 'msg.openConversation', [channel.id, phone, 'waiting', now], () =>
      db
        .selectFrom('msg_conversations as c')
        .leftJoin('msg_flows as f', (j) => j.onRef('f.id', '=', 'c.flow_id').on('f.deleted_at', 'is', null))
        .selectAll('c')
        .select('f.id as live_flow_id')
        .where('c.channel_id', '=', channel.id)
        .where('c.phone', '=', phone)
        .where('c.state', '=', 'waiting')
        .where('c.expires_at', '>', now)
        // No LIMIT: a number has one waiting conversation per channel (a new one ends the others),
        // and SQLite runs this several times slower with a bound LIMIT.
        .orderBy('c.created_at', 'desc'),
    );
    // A conversation of a flow deleted since is not continued.
    if (open?.live_flow_id) {
      const v = await this.flows.version(db, open.flow_id, open.flow_version);
      const wait = v.definition.steps.find((s) => s.id === open.step_id);
      if (wait && wait.type === 'wait') {
        const hit = wait.replies.find((r) => r.keywords.some((k) => normalizeKeyword(k) === tokens[0]));
        const next = hit?.next ?? null;
        if (hit) alias = hit.keywords.find((k) => normalizeKeyword(k) === tokens[0]) ?? null;
        const target = next ?? (wait.otherwise && !(await this.hasTrigger(tokens, channel.id)) ? wait.otherwise : null);
        if (target) {
          session = {
            id: open.id,
            flow_id: open.flow_id,
            flow_version: open.flow_version,
            step_id: open.step_id,
            vars: fromJson(open.vars, {}),
          };
          version = v;
          startStep = target;
        }
      }
    }

    if (!version) {
      const candidates = await this.flows.candidates(db, tokens[0] ?? null, channel.id);
      const best = pickTriggers(tokens, candidates, channel.id);
      const trigger = best.length > 1 ? await this.forSender(best, phone) : (best[0] ?? null);
      const chosen =
        trigger ??
        candidates
          .filter((c) => c.keyword === '*')
          .sort((a, b) =>
            a.channel_id === b.channel_id
              ? a.created_at < b.created_at
                ? -1
                : 1
              : a.channel_id === channel.id
                ? -1
                : 1,
          )[0] ??
        null;
      if (chosen) {
        version = await this.flows.version(db, chosen.flow_id, chosen.current_version);
        startStep = version.definition.start ?? version.definition.steps[0].id;
        alias = chosen.keyword === '*' ? null : chosen.alias;
      }
    }

    if (!version || !startStep) {
      // Nothing answers: the channel's own catch-all text, if any.
      if (settings.catch_all_reply) {
        const text = await render(settings.catch_all_reply, { sender: phone, message: { text: msg.text } });
        return this.ctx.transaction(async (trx) => {
          const out = await this.outbound.queue(trx, {
            channel,
            to: phone,
            text,
            in_reply_to: inboundId,
            claimed: true,
          });
          await this.markInbound(inboundId, { status: 'unmatched' }, trx);
          return [out];
        });
      }
      await this.markInbound(inboundId, { status: 'unmatched' });
      return [];
    }

    const def = version.definition;
    const program = (await this.services.programs.withDefault(db, def.program_id))?.program;
    if (!program) {
      await this.markInbound(inboundId, { status: 'error', error: `program ${def.program_id} no longer exists` });
      return [];
    }
    let customer: CustomerRow | null = null;
    let membership: MembershipRow | null = null;
    if (session?.vars.membership_id)
      membership = (await this.services.members.find(db, session.vars.membership_id)) ?? null;
    if (session?.vars.customer_id)
      customer = (await this.services.customers.find(db, session.vars.customer_id)) ?? null;

    const run = new FlowRun({
      ctx: this.ctx,
      services: this.services,
      registry: this.registry,
      def,
      channel,
      program,
      phone,
      text: msg.text,
      tokens,
      rawTokens: raw,
      keyword: alias,
      contactName: msg.contactName ?? null,
      customer,
      membership,
      saved: session?.vars.saved ?? {},
      visibility: session?.vars.visibility ?? 'all',
      defaultUnknownReply: settings.unknown_sender_reply ?? null,
      // The dedup key of the message: a redeem step redeems once however often it is delivered.
      inboundKey: `${channel.id}:${msg.providerMessageId}`,
    });
    const result = await run.run(startStep);

    return this.ctx.transaction(async (trx) => {
      const t = this.ctx.clock.nowIso();
      // The conversation continued here (and any other of this number on this channel) ends:
      // one conversation at a time; a wait step opens a new one below.
      if (session || open || result.waitAt) {
        await hot(trx, 'msg.endConversations', ['ended', t, channel.id, phone, 'waiting'], () =>
          trx
            .updateTable('msg_conversations')
            .set({ state: 'ended', updated_at: t })
            .where('channel_id', '=', channel.id)
            .where('phone', '=', phone)
            .where('state', '=', 'waiting'),
        );
      }
      let conversationId = session?.id ?? null;
      if (result.waitAt) {
        conversationId = newId('cnv');
        const timeout = result.waitAt.timeout_seconds ?? def.session_timeout_seconds ?? 900;
        const conversation = {
          id: conversationId,
          channel_id: channel.id,
          phone,
          flow_id: version!.flow_id,
          flow_version: version!.version,
          step_id: result.waitAt.id,
          state: 'waiting',
          vars: toJson({
            customer_id: result.customer?.id ?? null,
            membership_id: result.membership?.id ?? null,
            saved: result.saved,
            visibility: result.visibility,
          }),
          expires_at: new Date(this.ctx.clock.nowMs() + timeout * 1000).toISOString(),
          created_at: t,
          updated_at: t,
        };
        await hot(trx, 'msg.insertConversation', Object.values(conversation), () =>
          trx.insertInto('msg_conversations').values(conversation),
        );
      }
      const rows: MessageRow[] = [];
      for (const text of result.replies) {
        const out = await this.outbound.queue(trx, {
          channel,
          to: phone,
          text,
          flow_id: version!.flow_id,
          flow_version: version!.version,
          conversation_id: conversationId,
          in_reply_to: inboundId,
          program_id: program.id,
          customer_id: result.customer?.id ?? null,
          membership_id: result.membership?.id ?? null,
          claimed: true,
        });
        rows.push(out);
      }
      await this.markInbound(
        inboundId,
        {
          status: 'processed',
          flow_id: version!.flow_id,
          flow_version: version!.version,
          keyword: alias,
          conversation_id: conversationId,
          program_id: program.id,
          customer_id: result.customer?.id ?? null,
          membership_id: result.membership?.id ?? null,
        },
        trx,
      );
      return rows;
    });
  }

  /**
   * Of equally specific triggers of different programs (programs sharing a number), the oldest
   * whose program the sender is an active member of; else the oldest.
   */
  private async forSender(tied: Candidate[], phone: string): Promise<Candidate> {
    const db = this.ctx.database.db;
    const programs = new Set(tied.map((c) => c.program_id));
    const memberOf = new Set<string>();
    for (const customer of await this.services.customers.findByPhone(db, phone)) {
      const shared = (await this.services.households?.sharedCards(db, customer.id)) ?? [];
      for (const m of [...(await this.services.members.ofCustomer(db, customer.id)), ...shared]) {
        if (m.status === 'ACTIVE' && programs.has(m.program_id)) memberOf.add(m.program_id);
      }
    }
    return tied.find((c) => memberOf.has(c.program_id)) ?? tied[0];
  }

  private async hasTrigger(tokens: string[], channelId: string): Promise<boolean> {
    if (!tokens[0]) return false;
    const c = await this.flows.candidates(this.ctx.database.db, tokens[0], channelId);
    return pickTrigger(tokens, c, channelId) !== null;
  }
}
