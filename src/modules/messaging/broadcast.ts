import type { AppContext } from '../../context.ts';
import { badRequest, unprocessable } from '../../http/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson, toJson } from '../../lib/json.ts';
import type { Services } from '../../services.ts';
import { channelSettings, type ChannelService } from './channels.ts';
import { extendScope, type ContextRegistry } from './context-providers.ts';
import type { FlowRow, FlowService } from './flows/service.ts';
import type { OptOutService } from './optout.ts';
import type { Outbound } from './outbound.ts';
import type { WhatsAppTemplate } from './providers/types.ts';
import { render, templateError } from './templates.ts';

// Proactive prompts: a flow's opening message to the program's members (optionally filtered by
// tier or a customer metadata attribute), skipping opted-out numbers, throttled per channel by
// spacing the messages' send times at the channel's rate. Every recipient is a recorded message
// (status `skipped` with error `opted_out` for the ones left out). On WhatsApp a proactive message
// must be an approved template: the broadcast names it and renders its placeholders per member.

export interface BroadcastInput {
  channel_id: string;
  text?: string | null;
  /** A WhatsApp template (required on WhatsApp channels); each placeholder is a Liquid template. */
  template?: { name: string; language?: string; placeholders?: string[] } | null;
  filters?: { tier?: string | null; metadata?: Record<string, unknown> | null } | null;
  limit?: number;
}

export class BroadcastService {
  constructor(
    private ctx: AppContext,
    private services: Services,
    private channels: ChannelService,
    private flows: FlowService,
    private outbound: Outbound,
    private optout: OptOutService,
    private registry: ContextRegistry,
  ) {}

  async broadcast(flow: FlowRow, input: BroadcastInput) {
    const db = this.ctx.database.db;
    const version = await this.flows.version(db, flow.id, flow.current_version);
    const def = version.definition;
    const channel = await this.channels.get(db, input.channel_id);
    if (def.channels && def.channels.length > 0 && !def.channels.includes(channel.id)) {
      throw badRequest('invalid_channel', 'Invalid channel', `Flow ${flow.id} does not listen on channel ${channel.id}`, [{ field: 'channel_id', message: 'the flow does not listen on this channel' }]);
    }
    const wa = input.template ? { name: input.template.name, language: input.template.language ?? 'en', placeholders: input.template.placeholders ?? [] } : null;
    if (wa && channel.type !== 'whatsapp') {
      throw badRequest('invalid_template', 'Invalid template', `Templates are for WhatsApp channels; channel ${channel.id} is ${channel.type}`, [{ field: 'template', message: 'only on a WhatsApp channel' }]);
    }
    if (!wa && channel.type === 'whatsapp' && channel.provider !== 'simulator') {
      // WhatsApp refuses free text that does not answer the member's own message of the last 24 h.
      throw unprocessable(
        'whatsapp_template_required',
        'A WhatsApp broadcast needs a template',
        'WhatsApp allows free text only within 24 hours of the member\'s last message; a proactive message must be an approved template: pass template {name, language, placeholders}',
      );
    }
    for (const [i, p] of (wa?.placeholders ?? []).entries()) {
      const error = templateError(p);
      if (error) throw badRequest('invalid_template', 'Invalid template', `template.placeholders[${i}]: ${error}`, [{ field: `template.placeholders[${i}]`, message: error }]);
    }
    const template = wa ? wa.name : (input.text ?? def.opening_message);
    if (!template) throw badRequest('invalid_payload', 'Invalid payload', 'text is required when the flow has no opening_message', [{ field: 'text', message: 'is required' }]);
    const tierFilter = input.filters?.tier ?? null;
    if (tierFilter && !this.registry.has('tier')) {
      throw unprocessable('tiers_unavailable', 'Tiers are not available', 'No module provides member tiers yet, so a broadcast cannot filter by tier');
    }
    const program = await this.services.programs.get(db, def.program_id);
    const metaFilter = input.filters?.metadata ?? null;

    const rows = await db
      .selectFrom('memberships as m')
      .innerJoin('customers as c', 'c.id', 'm.customer_id')
      .select(['m.id as membership_id', 'c.id as customer_id', 'c.phone', 'c.metadata'])
      .where('m.program_id', '=', program.id)
      .where('m.status', '=', 'ACTIVE')
      .where('c.phone', 'is not', null)
      .orderBy('m.created_at')
      .orderBy('m.id')
      .execute();
    const seen = new Set<string>();
    const recipients: typeof rows = [];
    for (const r of rows) {
      if (!r.phone || seen.has(r.phone)) continue;
      if (metaFilter) {
        const meta = fromJson<Record<string, unknown>>(r.metadata, {});
        if (!Object.entries(metaFilter).every(([k, v]) => meta[k] === v)) continue;
      }
      seen.add(r.phone);
      recipients.push(r);
      if (input.limit && recipients.length >= input.limit) break;
    }
    const optedOut = await this.optout.optedOutAmong(db, recipients.map((r) => r.phone!));

    // Render each member's text (and its tier, for the tier filter) before the write transaction.
    const prepared: { r: (typeof rows)[number]; text: string; template: WhatsAppTemplate | null; skipped: boolean }[] = [];
    for (const r of recipients) {
      const skipped = optedOut.has(r.phone!);
      const membership = (await this.services.members.find(db, r.membership_id))!;
      const customer = (await this.services.customers.find(db, r.customer_id)) ?? null;
      const vars = this.registry.lazy({ db, dialect: this.ctx.database.dialect, services: this.services, program, customer, membership });
      if (tierFilter) {
        const tier = (await vars.tier) as { id?: string; name?: string } | null | undefined;
        const want = tierFilter.toLowerCase();
        if (!tier || (tier.name?.toLowerCase() !== want && tier.id?.toLowerCase() !== want)) continue;
      }
      const scope = extendScope(vars, { sender: r.phone, channel: { id: channel.id, type: channel.type, sender: channel.sender } });
      if (skipped) prepared.push({ r, text: '', template: null, skipped });
      else if (wa) {
        const placeholders: string[] = [];
        for (const p of wa.placeholders) placeholders.push(await render(p, scope));
        // What the message list and reports show for a template message.
        const preview = `[template ${wa.name} (${wa.language})]${placeholders.length ? ` ${placeholders.join(' | ')}` : ''}`;
        prepared.push({ r, text: preview, template: { ...wa, placeholders }, skipped });
      } else prepared.push({ r, text: await render(template, scope), template: null, skipped });
    }

    const interval = 1000 / Math.max(0.001, channelSettings(channel).rate_per_second);
    const now = this.ctx.clock.nowMs();
    const result = await this.ctx.transaction(async (trx) => {
      // Continue after whatever this channel already has scheduled, so two broadcasts share the rate.
      const last = await trx
        .selectFrom('msg_messages')
        .select((eb) => eb.fn.max('next_attempt_at').as('at'))
        .where('channel_id', '=', channel.id)
        .where('direction', '=', 'out')
        .where('broadcast_id', 'is not', null)
        .where('status', 'in', ['queued', 'retrying'])
        .executeTakeFirst();
      const lastMs = last?.at ? Date.parse(String(last.at)) : NaN;
      const start = Number.isFinite(lastMs) ? Math.max(now, lastMs + interval) : now;
      const id = newId('bc');
      let queued = 0;
      let skipped = 0;
      const due: string[] = [];
      let lastAt: string | null = null;
      for (const p of prepared) {
        if (p.skipped) {
          skipped++;
          await this.outbound.queue(trx, {
            channel,
            to: p.r.phone!,
            text: '',
            status: 'skipped',
            error: 'opted_out',
            broadcast_id: id,
            flow_id: flow.id,
            flow_version: version.version,
            program_id: program.id,
            customer_id: p.r.customer_id,
            membership_id: p.r.membership_id,
          });
          continue;
        }
        const at = Math.round(start + queued * interval);
        lastAt = new Date(at).toISOString();
        const m = await this.outbound.queue(trx, {
          channel,
          to: p.r.phone!,
          text: p.text,
          template: p.template,
          sendAt: lastAt,
          broadcast_id: id,
          flow_id: flow.id,
          flow_version: version.version,
          program_id: program.id,
          customer_id: p.r.customer_id,
          membership_id: p.r.membership_id,
        });
        if (at <= now) due.push(m.id);
        queued++;
      }
      const row = {
        id,
        flow_id: flow.id,
        flow_version: version.version,
        program_id: program.id,
        channel_id: channel.id,
        filters: toJson(input.filters ?? null),
        text: template,
        template: wa ? JSON.stringify(wa) : null,
        total: prepared.length,
        queued,
        skipped,
        created_at: this.ctx.clock.nowIso(),
      };
      await trx.insertInto('msg_broadcasts').values(row).execute();
      return { row, due, firstAt: new Date(start).toISOString(), lastAt };
    });
    this.outbound.kick(result.due);
    return {
      ...result.row,
      filters: input.filters ?? null,
      template: wa,
      rate_per_second: channelSettings(channel).rate_per_second,
      first_send_at: result.row.queued > 0 ? result.firstAt : null,
      last_send_at: result.lastAt,
      object: 'broadcast' as const,
    };
  }
}
