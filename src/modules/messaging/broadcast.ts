import type { AppContext } from '../../context.ts';
import { invalid, notFound, refused } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson, toJson } from '../../lib/json.ts';
import type { MessagingDeps } from './deps.ts';
import type { Executor } from '../../storage/database.ts';
import { channelSettings, type ChannelRow, type ChannelService } from './channels.ts';
import { extendScope, type ContextRegistry } from './context-providers.ts';
import type { FlowRow, FlowService } from './flows/service.ts';
import type { OptOutService } from './optout.ts';
import type { Outbound } from './outbound.ts';
import type { WhatsAppTemplate } from './providers/types.ts';
import type { BroadcastInput } from './schemas.ts';
import type { MsgBroadcastsTable } from './tables.ts';
import { render, templateError } from './templates.ts';

// Proactive prompts: a flow's opening message to the program's members (optionally filtered by
// tier or a customer metadata attribute), skipping opted-out numbers, throttled per channel by
// spacing the messages' send times at the channel's rate. Every recipient is a recorded message
// (status `skipped` with error `opted_out` for the ones left out). On WhatsApp a proactive message
// must be an approved template: the broadcast names it and renders its placeholders per member.
//
// Prepared in chunks: the members are walked in (created_at, id) order, CHUNK at a time; each
// chunk is read and rendered outside any transaction, then written in one short transaction that
// also moves the broadcast's cursor, guarded by the cursor it started from, so a chunk is written
// once even with several processes, and the writer is never held for the rendering. The request
// prepares the chunks of its first `inlineRecipients` members itself (a small broadcast answers
// complete, 200); a larger one answers 202 with status `preparing`, and the messaging worker goes
// on (`tick`).

type BroadcastRow = MsgBroadcastsTable;

/** Another process wrote the chunk first: this one's transaction rolls back. */
class ChunkTaken extends Error {}

export class BroadcastService {
  /** Members read, rendered and written per chunk. */
  chunkSize = 200;
  /** Members the request reads itself (in chunks) before answering 202 and leaving the rest to `tick`. */
  inlineRecipients = 1000;

  constructor(
    private ctx: AppContext,
    private services: MessagingDeps,
    private channels: ChannelService,
    private flows: FlowService,
    private outbound: Outbound,
    private optout: OptOutService,
    private registry: ContextRegistry,
  ) {}

  /**
   * Checks a broadcast and writes its row (status `preparing`) with `db`, the route's transaction:
   * from its commit the broadcast exists and the background preparation will finish it, so that
   * transaction is where its Idempotency-Key answer belongs. Then `prepareInline`, after the commit.
   */
  async create(db: Executor, flow: FlowRow, input: BroadcastInput) {
    const version = await this.flows.version(db, flow.id, flow.current_version);
    const def = version.definition;
    const channel = await this.channels.get(db, input.channel_id);
    if (def.channels && def.channels.length > 0 && !def.channels.includes(channel.id)) {
      throw invalid('invalid_channel', 'Invalid channel', `Flow ${flow.id} does not listen on channel ${channel.id}`, [
        { field: 'channel_id', message: 'the flow does not listen on this channel' },
      ]);
    }
    const wa = input.template
      ? {
          name: input.template.name,
          language: input.template.language ?? 'en',
          placeholders: input.template.placeholders ?? [],
        }
      : null;
    if (wa && channel.type !== 'whatsapp') {
      throw invalid(
        'invalid_template',
        'Invalid template',
        `Templates are for WhatsApp channels; channel ${channel.id} is ${channel.type}`,
        [{ field: 'template', message: 'only on a WhatsApp channel' }],
      );
    }
    if (!wa && channel.type === 'whatsapp') {
      // WhatsApp refuses free text that does not answer the member's own message of the last 24 h.
      throw refused(
        'whatsapp_template_required',
        'A WhatsApp broadcast needs a template',
        "WhatsApp allows free text only within 24 hours of the member's last message; " +
          'a proactive message must be an approved template: pass template {name, language, placeholders}',
      );
    }
    for (const [i, p] of (wa?.placeholders ?? []).entries()) {
      const error = templateError(p);
      if (error)
        throw invalid('invalid_template', 'Invalid template', `template.placeholders[${i}]: ${error}`, [
          { field: `template.placeholders[${i}]`, message: error },
        ]);
    }
    const text = wa ? wa.name : (input.text ?? def.opening_message);
    if (!text)
      throw invalid('invalid_payload', 'Invalid payload', 'text is required when the flow has no opening_message', [
        { field: 'text', message: 'is required' },
      ]);
    if (!wa) {
      const error = templateError(text);
      if (error)
        throw invalid('invalid_template', 'Invalid template', `text: ${error}`, [{ field: 'text', message: error }]);
    }
    if (input.filters?.tier && !this.registry.has('tier')) {
      throw refused(
        'tiers_unavailable',
        'Tiers are not available',
        'No module provides member tiers yet, so a broadcast cannot filter by tier',
      );
    }
    const program = await this.services.programs.get(db, def.program_id);
    const now = this.ctx.clock.nowIso();
    const row: BroadcastRow = {
      id: newId('bc'),
      flow_id: flow.id,
      flow_version: version.version,
      program_id: program.id,
      channel_id: channel.id,
      filters: toJson(input.filters ?? null),
      text,
      template: wa ? JSON.stringify(wa) : null,
      total: 0,
      queued: 0,
      skipped: 0,
      created_at: now,
      status: 'preparing',
      max_recipients: input.limit ?? null,
      cursor_created_at: null,
      cursor_id: null,
      first_send_at: null,
      last_send_at: null,
      updated_at: now,
    };
    await db.insertInto('msg_broadcasts').values(row).execute();
    return this.present(row, channel);
  }

  /**
   * Prepares the first recipients of a broadcast just created, within the request (at most as many
   * members read as `inlineRecipients`, however many the filters keep); the rest, if any, in the
   * background. Answers the broadcast as it then is.
   */
  async prepareInline(id: string) {
    for (let chunks = Math.ceil(this.inlineRecipients / this.chunkSize); chunks > 0; chunks--) {
      if (!(await this.prepareChunk(id))) break;
    }
    const row = (await this.find(id))!;
    return this.present(row, await this.channels.find(this.ctx.database.db, row.channel_id));
  }

  /** Prepares the next chunk of every broadcast still preparing; answers how many chunks it wrote. */
  async tick(): Promise<number> {
    const preparing = await this.ctx.database.db
      .selectFrom('msg_broadcasts')
      .select('id')
      .where('status', '=', 'preparing')
      .orderBy('created_at')
      .limit(10)
      .execute();
    let chunks = 0;
    for (const { id } of preparing) {
      try {
        await this.prepareChunk(id);
        chunks++;
      } catch (err) {
        this.ctx.log.error({ err, broadcast_id: id }, 'broadcast preparation failed');
      }
    }
    return chunks;
  }

  async get(flowId: string, id: string) {
    const row = await this.find(id);
    if (!row || row.flow_id !== flowId) throw notFound('broadcast', id);
    return this.present(row, await this.channels.find(this.ctx.database.db, row.channel_id));
  }

  async list(flowId: string) {
    const rows = await this.ctx.database.db
      .selectFrom('msg_broadcasts')
      .selectAll()
      .where('flow_id', '=', flowId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(100)
      .execute();
    const out = [];
    for (const r of rows) out.push(this.present(r, await this.channels.find(this.ctx.database.db, r.channel_id)));
    return out;
  }

  private find(id: string): Promise<BroadcastRow | undefined> {
    return this.ctx.database.db.selectFrom('msg_broadcasts').selectAll().where('id', '=', id).executeTakeFirst();
  }

  private present(row: BroadcastRow, channel: ChannelRow | undefined) {
    return {
      id: row.id,
      flow_id: row.flow_id,
      flow_version: row.flow_version,
      program_id: row.program_id,
      channel_id: row.channel_id,
      status: row.status,
      filters: fromJson(row.filters, null),
      text: row.text,
      template: fromJson(row.template, null),
      limit: row.max_recipients,
      total: row.total,
      queued: row.queued,
      skipped: row.skipped,
      rate_per_second: channel ? channelSettings(channel).rate_per_second : null,
      first_send_at: row.first_send_at,
      last_send_at: row.last_send_at,
      created_at: row.created_at,
      updated_at: row.updated_at,
      object: 'broadcast' as const,
    };
  }

  /**
   * Prepares and writes the next chunk of recipients of a broadcast still preparing. Answers true
   * when there may be more (the broadcast is still preparing).
   */
  async prepareChunk(id: string): Promise<boolean> {
    const db = this.ctx.database.db;
    const b = await this.find(id);
    if (b?.status !== 'preparing') return false;
    const channel = await this.channels.find(db, b.channel_id);
    const program = await this.services.programs.find(db, b.program_id);
    const version = await this.flows.version(db, b.flow_id, b.flow_version).catch(() => undefined);
    if (!channel || !program || !version) {
      await this.ctx.transaction((trx) =>
        trx
          .updateTable('msg_broadcasts')
          .set({ status: 'cancelled', updated_at: this.ctx.clock.nowIso() })
          .where('id', '=', id)
          .where('status', '=', 'preparing')
          .execute(),
      );
      return false;
    }
    const filters = fromJson<BroadcastInput['filters']>(b.filters, null);
    const wa = fromJson<WhatsAppTemplate | null>(b.template, null);
    const room = b.max_recipients === null ? Infinity : b.max_recipients - b.total;

    // The next members after the cursor, in (created_at, id) order.
    let q = db
      .selectFrom('memberships as m')
      .innerJoin('customers as c', 'c.id', 'm.customer_id')
      .select(['m.id as membership_id', 'm.created_at', 'c.id as customer_id', 'c.phone', 'c.metadata'])
      .where('m.program_id', '=', program.id)
      .where('m.status', '=', 'ACTIVE')
      .where('c.phone', 'is not', null);
    if (b.cursor_created_at !== null && b.cursor_id !== null) {
      const at = b.cursor_created_at;
      const after = b.cursor_id;
      q = q.where((eb) =>
        eb.or([eb('m.created_at', '>', at), eb.and([eb('m.created_at', '=', at), eb('m.id', '>', after)])]),
      );
    }
    const rows = await q.orderBy('m.created_at').orderBy('m.id').limit(this.chunkSize).execute();
    const last = rows.at(-1);

    // One message per number across the whole broadcast: numbers seen in this chunk or an earlier one.
    const phones = [...new Set(rows.map((r) => r.phone!))];
    const earlier = new Set<string>();
    for (let i = 0; i < phones.length; i += 500) {
      const found = await db
        .selectFrom('msg_messages')
        .select('to_number')
        .where('broadcast_id', '=', id)
        .where('to_number', 'in', phones.slice(i, i + 500))
        .execute();
      for (const f of found) earlier.add(f.to_number);
    }
    const optedOut = await this.optout.optedOutAmong(db, phones);
    const tierFilter = filters?.tier?.toLowerCase() ?? null;
    const prepared: { r: (typeof rows)[number]; text: string; template: WhatsAppTemplate | null; skipped: boolean }[] =
      [];
    let full = false;
    for (const r of rows) {
      if (prepared.length >= room) {
        full = true;
        break;
      }
      if (earlier.has(r.phone!)) continue;
      if (filters?.metadata) {
        const meta = fromJson<Record<string, unknown>>(r.metadata, {});
        if (!Object.entries(filters.metadata).every(([k, v]) => meta[k] === v)) continue;
      }
      const skipped = optedOut.has(r.phone!);
      const membership = (await this.services.members.find(db, r.membership_id))!;
      const customer = (await this.services.customers.find(db, r.customer_id)) ?? null;
      const vars = this.registry.lazy({
        db,
        services: this.services,
        program,
        customer,
        membership,
      });
      if (tierFilter) {
        const tier = (await vars.tier) as { id?: string; name?: string } | null | undefined;
        if (!tier || (tier.name?.toLowerCase() !== tierFilter && tier.id?.toLowerCase() !== tierFilter)) continue;
      }
      earlier.add(r.phone!);
      const scope = extendScope(vars, {
        sender: r.phone,
        channel: { id: channel.id, type: channel.type, sender: channel.sender },
      });
      if (skipped) prepared.push({ r, text: '', template: null, skipped });
      else if (wa) {
        const placeholders: string[] = [];
        for (const p of wa.placeholders) placeholders.push(await render(p, scope));
        // What the message list and reports show for a template message.
        const fields = placeholders.length ? ` ${placeholders.join(' | ')}` : '';
        const preview = `[template ${wa.name} (${wa.language})]${fields}`;
        prepared.push({ r, text: preview, template: { ...wa, placeholders }, skipped });
      } else prepared.push({ r, text: await render(b.text, scope), template: null, skipped });
    }
    const done = full || rows.length < this.chunkSize || prepared.length >= room;

    const interval = 1000 / Math.max(0.001, channelSettings(channel).rate_per_second);
    const nowMs = this.ctx.clock.nowMs();
    let due: string[] = [];
    try {
      due = await this.ctx.transaction(async (trx) => {
        const nowIso = this.ctx.clock.nowIso();
        let moved = trx
          .updateTable('msg_broadcasts')
          .set({
            cursor_created_at: last?.created_at ?? b.cursor_created_at,
            cursor_id: last?.membership_id ?? b.cursor_id,
            status: done ? 'queued' : 'preparing',
            updated_at: nowIso,
          })
          .where('id', '=', id)
          .where('status', '=', 'preparing');
        moved =
          b.cursor_id === null ? moved.where('cursor_id', 'is', null) : moved.where('cursor_id', '=', b.cursor_id);
        if (Number((await moved.executeTakeFirst()).numUpdatedRows ?? 0n) !== 1) throw new ChunkTaken();
        // Continue after whatever this channel already has scheduled, so broadcasts share the rate.
        const scheduled = await trx
          .selectFrom('msg_messages')
          .select((eb) => eb.fn.max('next_attempt_at').as('at'))
          .where('channel_id', '=', channel.id)
          .where('direction', '=', 'out')
          .where('broadcast_id', 'is not', null)
          .where('status', 'in', ['queued', 'retrying'])
          .executeTakeFirst();
        const lastMs = scheduled?.at ? Date.parse(String(scheduled.at)) : NaN;
        const start = Number.isFinite(lastMs) ? Math.max(nowMs, lastMs + interval) : nowMs;
        const ids: string[] = [];
        let queued = 0;
        let skipped = 0;
        let firstAt: string | null = null;
        let lastAt: string | null = null;
        for (const p of prepared) {
          const common = {
            channel,
            to: p.r.phone!,
            broadcast_id: id,
            flow_id: b.flow_id,
            flow_version: b.flow_version,
            program_id: program.id,
            customer_id: p.r.customer_id,
            membership_id: p.r.membership_id,
          };
          if (p.skipped) {
            skipped++;
            await this.outbound.queue(trx, { ...common, text: '', status: 'skipped', error: 'opted_out' });
            continue;
          }
          const at = Math.round(start + queued * interval);
          lastAt = new Date(at).toISOString();
          firstAt ??= lastAt;
          const m = await this.outbound.queue(trx, { ...common, text: p.text, template: p.template, sendAt: lastAt });
          if (at <= nowMs) ids.push(m.id);
          queued++;
        }
        await trx
          .updateTable('msg_broadcasts')
          .set((eb) => ({
            total: eb('total', '+', prepared.length),
            queued: eb('queued', '+', queued),
            skipped: eb('skipped', '+', skipped),
            ...(firstAt && !b.first_send_at ? { first_send_at: firstAt } : {}),
            ...(lastAt ? { last_send_at: lastAt } : {}),
          }))
          .where('id', '=', id)
          .execute();
        return ids;
      });
    } catch (err) {
      if (err instanceof ChunkTaken) return true;
      throw err;
    }
    this.outbound.kick(due);
    return !done;
  }
}
