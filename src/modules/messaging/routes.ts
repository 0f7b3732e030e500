import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AppContext } from '../../context.ts';
import { invalid, notFound } from '../../lib/errors.ts';
import { isReplay, reviseIdempotentAnswer, runIdempotentWrite } from '../../http/idempotency.ts';
import { listOf, listPage, listSchema } from '../../http/lists.ts';
import { typed } from '../../http/schema.ts';
import { newId } from '../../lib/ids.ts';
import { toE164 } from '../../lib/phone.ts';
import type { Services } from '../../services.ts';
import { channelSettings, presentChannel, type ChannelRow } from './channels.ts';
import { parseInfobipInbound, parseInfobipReports } from './providers/infobip.ts';
import { parseTwilioInbound, parseTwilioReport, twiml } from './providers/twilio.ts';
import {
  BroadcastBody,
  BroadcastParams,
  ChannelCreateBody,
  ChannelListQuery,
  ChannelParams,
  ChannelUpdateBody,
  ConsentParams,
  FlowBody,
  FlowGetQuery,
  FlowListQuery,
  FlowParams,
  FlowPatch,
  FlowReportQuery,
  MessageListQuery,
  Obj,
  SimulatorConversationQuery,
  SimulatorMessageBody,
  TAG_CH,
  TAG_FLOW,
} from './schemas.ts';

function providerBody(req: FastifyRequest): unknown {
  return req.body ?? {};
}

export function messagingRoutes(fastify: FastifyInstance, ctx: AppContext, services: Services): void {
  const app = typed(fastify);
  const m = services.messaging;
  const db = ctx.database.db;

  // ---------- channels ----------
  app.post(
    '/v1/channels',
    {
      schema: {
        tags: [TAG_CH],
        summary: 'Create a channel (provider account and number); credentials are write-only',
        body: ChannelCreateBody,
        response: { 200: Obj },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) =>
        presentChannel(ctx, await m.channels.create(trx, req.body), req),
      ),
  );
  app.get(
    '/v1/channels',
    {
      schema: {
        tags: [TAG_CH],
        summary: 'List channels',
        querystring: ChannelListQuery,
        response: { 200: listSchema('channels') },
      },
    },
    async (req) => {
      const { rows, total } = await m.channels.list(db, req.query);
      return listOf(
        'channels',
        rows.map((r) => presentChannel(ctx, r, req)),
        total,
      );
    },
  );
  app.get(
    '/v1/channels/:channelId',
    {
      schema: {
        tags: [TAG_CH],
        summary: 'Get a channel (with its inbound and reports URLs)',
        params: ChannelParams,
        response: { 200: Obj },
      },
    },
    async (req) => presentChannel(ctx, await m.channels.get(db, req.params.channelId), req),
  );
  app.put(
    '/v1/channels/:channelId',
    {
      schema: {
        tags: [TAG_CH],
        summary: 'Update a channel (credentials given are replaced, others kept)',
        params: ChannelParams,
        body: ChannelUpdateBody,
        response: { 200: Obj },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) =>
        presentChannel(
          ctx,
          await m.channels.update(trx, await m.channels.get(trx, req.params.channelId), req.body),
          req,
        ),
      ),
  );
  app.delete(
    '/v1/channels/:channelId',
    { schema: { tags: [TAG_CH], summary: 'Delete a channel', params: ChannelParams } },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        await m.channels.softDelete(trx, await m.channels.get(trx, req.params.channelId));
      }),
  );

  // ---------- provider callbacks (public: each verifies the provider) ----------
  const loadForCallback = async (req: FastifyRequest, channelId: string): Promise<ChannelRow> => {
    const channel = await m.channels.findCached(db, channelId);
    // Unknown channel and bad credentials look alike to a caller without credentials.
    if (!channel || channel.provider === 'simulator') throw notFound('channel', channelId);
    m.channels.verifyCallback(channel, req);
    return channel;
  };

  app.post(
    '/v1/channels/:channelId/inbound',
    {
      config: { public: true, idempotency: 'none' },
      schema: {
        tags: [TAG_CH],
        summary:
          'Provider webhook for inbound messages (Infobip JSON batches, Twilio form posts); ' +
          "verified by the channel's inbound auth",
        params: ChannelParams,
        security: [],
      },
    },
    async (req, reply) => {
      const channel = await loadForCallback(req, req.params.channelId);
      const parsed =
        channel.provider === 'twilio' ? parseTwilioInbound(providerBody(req)) : parseInfobipInbound(providerBody(req));
      const results = await m.receive(channel, parsed);
      const replies = results.flatMap((r) => r.replies);
      const replyIds = replies.map((r) => r.id);
      if (channel.provider === 'twilio') {
        const mode = channelSettings(channel).twilio_reply;
        let texts: string[] = [];
        if (mode === 'twiml' && replyIds.length > 0) {
          texts = (await m.outbound.summaries(db, replyIds)).map((r) => r.text).filter(Boolean);
          await m.outbound.markSentInline(replyIds);
        } else {
          m.outbound.dispatch(replies, channel);
        }
        reply.header('content-type', 'text/xml; charset=utf-8').status(200).send(twiml(texts));
        return reply;
      }
      m.outbound.dispatch(replies, channel);
      return { received: parsed.length, duplicates: results.filter((r) => r.duplicate).length };
    },
  );

  app.post(
    '/v1/channels/:channelId/reports',
    {
      config: { public: true, idempotency: 'none' },
      schema: {
        tags: [TAG_CH],
        summary: 'Provider delivery reports (Infobip results batch, Twilio status callback)',
        params: ChannelParams,
        security: [],
      },
    },
    async (req, reply) => {
      const channel = await loadForCallback(req, req.params.channelId);
      const reports =
        channel.provider === 'twilio' ? parseTwilioReport(providerBody(req)) : parseInfobipReports(providerBody(req));
      let matched = 0;
      for (const r of reports)
        if (await m.outbound.applyReport(channel.id, r.providerMessageId, r.status, r.error)) matched++;
      if (channel.provider === 'twilio') {
        reply.status(204).send();
        return reply;
      }
      return { received: reports.length, matched };
    },
  );

  // ---------- simulator ----------
  // A simulator channel of type whatsapp behaves as WhatsApp does here: a tapped button or list
  // item arrives as its title (else its id), the sender's profile name is used by a join step,
  // and broadcasts must be templates (shown in the conversation with their fields).
  const simulatorChannel = async (channelId: string | undefined) => {
    const channel = channelId ? await m.channels.get(db, channelId) : await m.channels.firstSimulator(db);
    if (channel?.provider !== 'simulator') throw notFound('simulator channel', channelId ?? '(any)');
    return channel;
  };
  const phoneOf = (field: string, raw: string) => {
    const phone = toE164(raw);
    if (!phone) {
      const details = `"${raw}" is not a valid phone number; use E.164 (+385916242493)`;
      throw invalid('invalid_phone', 'Invalid phone number', details, [{ field, message: 'must be a phone number' }]);
    }
    return phone;
  };
  const invalidField = (field: string, details: string, message: string) =>
    invalid('invalid_payload', 'Invalid payload', details, [{ field, message }]);
  type Simulated = { id: string; text: string; status: string; template: string | null };
  const presentSimulated = <T extends Simulated>(r: T) => ({
    ...r,
    template: r.template ? (JSON.parse(r.template) as unknown) : null,
  });

  app.post(
    '/v1/simulator/messages',
    {
      // The flow it runs may call HTTP (no transaction is held across that): see 'claim' in
      // src/http/idempotency.ts. A retry after a crash may run the exchange again (a simulator's).
      config: { idempotency: 'claim' },
      schema: {
        tags: [TAG_CH],
        summary: 'Send a message as a member through a simulator channel; answers with the replies the member gets',
        description:
          'text: what the member typed. On a simulator channel of type whatsapp, button {title, id} is a tapped ' +
          'reply button or list item (its title is the text, else its id) and profile_name the WhatsApp profile name.',
        body: SimulatorMessageBody,
        response: { 200: Obj },
      },
    },
    async (req) => {
      const from = phoneOf('from', req.body.from);
      const channel = await simulatorChannel(req.body.channel_id);
      const { button } = req.body;
      if (button && channel.type !== 'whatsapp') {
        const details = `button is for WhatsApp channels; channel ${channel.id} is ${channel.type}`;
        throw invalidField('button', details, 'only on a simulator channel of type whatsapp');
      }
      if (button && req.body.text !== undefined) {
        throw invalidField('button', 'send either text (typed) or button (tapped), not both', 'not with text');
      }
      const text = button ? button.title || button.id || '' : req.body.text;
      if (button && !text) throw invalidField('button', 'button needs a title or an id', 'is required');
      if (text === undefined) throw invalidField('text', 'text is required (or a button on WhatsApp)', 'is required');
      const kind = button ? 'INTERACTIVE_BUTTON_REPLY' : channel.type === 'whatsapp' ? 'TEXT' : 'SMS';
      const contactName = channel.type === 'whatsapp' ? (req.body.profile_name ?? null) : null;
      const inbound = { providerMessageId: newId('sm'), from, to: channel.sender, text, kind, contactName };
      const [result] = await m.receive(channel, [inbound]);
      await m.outbound.dispatchNow(result.replies, channel);
      const replies = await m.outbound.summaries(db, result.replyIds);
      return {
        object: 'simulator_exchange',
        channel_id: channel.id,
        channel_type: channel.type,
        message_id: result.messageId,
        from,
        text,
        replies: replies.map(presentSimulated),
      };
    },
  );

  app.get(
    '/v1/simulator/messages',
    {
      schema: {
        tags: [TAG_CH],
        summary:
          'The conversation of a number on a simulator channel, oldest first: what it sent and what it got ' +
          '(replies, broadcasts with their template fields)',
        querystring: SimulatorConversationQuery,
        response: { 200: Obj },
      },
    },
    async (req) => {
      const phone = phoneOf('phone', req.query.phone);
      const channel = await simulatorChannel(req.query.channel_id);
      const rows = await m.outbound.conversation(db, channel.id, phone, req.query.limit);
      const messages = rows.map(presentSimulated);
      return { object: 'simulator_conversation', channel_id: channel.id, channel_type: channel.type, phone, messages };
    },
  );

  // ---------- messages & consent ----------
  app.get(
    '/v1/messages',
    {
      schema: {
        tags: [TAG_CH],
        summary: 'List stored messages (inbound and outbound, with status), newest first',
        querystring: MessageListQuery,
        response: { 200: listSchema('messages') },
      },
    },
    async (req) => {
      const page = await m.outbound.list(db, req.query);
      return listPage(
        'messages',
        page.rows.map(({ inbound_key: _k, locked_until: _l, system, ...r }) => ({
          ...r,
          system: system === 1,
          object: 'message',
        })),
        page,
      );
    },
  );

  app.get(
    '/v1/consents/:phone',
    {
      schema: {
        tags: [TAG_CH],
        summary: 'Messaging consent of a phone number, with its history',
        params: ConsentParams,
        response: { 200: Obj },
      },
    },
    async (req) => {
      const phone = toE164(req.params.phone) ?? req.params.phone;
      const status = await m.optout.status(db, phone);
      const history = await m.optout.history(db, phone);
      return {
        object: 'consent',
        phone,
        status: status?.status ?? 'opted_in',
        updated_at: status?.updated_at ?? null,
        channel_id: status?.channel_id ?? null,
        history,
      };
    },
  );

  // ---------- flows ----------
  const presentFlow = async (id: string, version?: number) => {
    const row = await m.flows.get(db, id);
    return m.flows.present(row, await m.flows.version(db, id, version ?? row.current_version));
  };
  app.post(
    '/v1/flows',
    { schema: { tags: [TAG_FLOW], summary: 'Create a flow (version 1)', body: FlowBody, response: { 200: Obj } } },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const { row, version } = await m.flows.create(trx, req.body);
        return m.flows.present(row, version);
      }),
  );
  app.get(
    '/v1/flows',
    {
      schema: {
        tags: [TAG_FLOW],
        summary: 'List flows (current versions)',
        querystring: FlowListQuery,
        response: { 200: listSchema('flows') },
      },
    },
    async (req) => {
      const { rows, total } = await m.flows.list(db, req.query);
      const items = [];
      for (const r of rows) items.push(m.flows.present(r, await m.flows.version(db, r.id, r.current_version)));
      return listOf('flows', items, total);
    },
  );
  app.get(
    '/v1/flows/:flowId',
    {
      schema: {
        tags: [TAG_FLOW],
        summary: 'Get a flow (its current version, or ?version=N)',
        params: FlowParams,
        querystring: FlowGetQuery,
        response: { 200: Obj },
      },
    },
    async (req) => presentFlow(req.params.flowId, req.query.version),
  );
  app.get(
    '/v1/flows/:flowId/versions',
    {
      schema: {
        tags: [TAG_FLOW],
        summary: "List a flow's versions, newest first",
        params: FlowParams,
        response: { 200: listSchema('versions') },
      },
    },
    async (req) => {
      await m.flows.get(db, req.params.flowId);
      const rows = await m.flows.versions(db, req.params.flowId);
      return listOf('versions', rows, rows.length);
    },
  );
  app.put(
    '/v1/flows/:flowId',
    {
      schema: {
        tags: [TAG_FLOW],
        summary: 'Save a change: makes a new version (conversations in progress finish on theirs)',
        params: FlowParams,
        body: FlowPatch,
        response: { 200: Obj },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const { row, version } = await m.flows.update(trx, await m.flows.get(trx, req.params.flowId), req.body);
        return m.flows.present(row, version);
      }),
  );
  app.delete(
    '/v1/flows/:flowId',
    { schema: { tags: [TAG_FLOW], summary: 'Delete a flow', params: FlowParams } },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 204, async (trx) => {
        await m.flows.softDelete(trx, await m.flows.get(trx, req.params.flowId));
      }),
  );
  app.post(
    '/v1/flows/:flowId/clone',
    {
      schema: {
        tags: [TAG_FLOW],
        summary:
          'Clone a flow, with overrides (name, triggers, steps...). Without new triggers the clone starts inactive.',
        params: FlowParams,
        body: FlowPatch,
        response: { 200: Obj },
      },
    },
    async (req, reply) =>
      runIdempotentWrite(ctx, req, reply, 200, async (trx) => {
        const { row, version } = await m.flows.clone(trx, await m.flows.get(trx, req.params.flowId), req.body ?? {});
        return m.flows.present(row, version);
      }),
  );
  app.post(
    '/v1/flows/:flowId/broadcast',
    {
      schema: {
        tags: [TAG_FLOW],
        summary:
          "Send the flow's opening message to the program's members (filters: tier, customer metadata), " +
          'throttled per channel',
        params: FlowParams,
        body: BroadcastBody,
        response: { 200: Obj, 202: Obj },
      },
    },
    async (req, reply) => {
      // The Idempotency-Key answer is stored with the broadcast's row (202, preparing): from that
      // commit the broadcast exists and will be prepared, by this request or in the background. It
      // is replaced by the final answer once the request has prepared what it prepares itself.
      const created = await runIdempotentWrite(ctx, req, reply, 202, async (trx) =>
        m.broadcasts.create(trx, await m.flows.get(trx, req.params.flowId), req.body),
      );
      if (isReplay(created, reply)) return reply;
      const b = await m.broadcasts.prepareInline(created.id);
      // A large broadcast goes on preparing in the background: accepted, not yet complete.
      const status = b.status === 'preparing' ? 202 : 200;
      await reviseIdempotentAnswer(ctx, req, status, b);
      reply.code(status);
      return b;
    },
  );
  app.get(
    '/v1/flows/:flowId/broadcasts',
    {
      schema: {
        tags: [TAG_FLOW],
        summary: "The flow's broadcasts, newest first (the last 100)",
        params: FlowParams,
        response: { 200: Obj },
      },
    },
    async (req) => {
      await m.flows.get(db, req.params.flowId);
      const data = await m.broadcasts.list(req.params.flowId);
      return { object: 'list', data_ref: 'data', data, total: data.length };
    },
  );
  app.get(
    '/v1/flows/:flowId/broadcasts/:broadcastId',
    {
      schema: {
        tags: [TAG_FLOW],
        summary: 'A broadcast: status (preparing, queued, cancelled), recipients prepared so far, send window',
        params: BroadcastParams,
        response: { 200: Obj },
      },
    },
    async (req) => m.broadcasts.get(req.params.flowId, req.params.broadcastId),
  );
  app.get(
    '/v1/flows/:flowId/report',
    {
      schema: {
        tags: [TAG_FLOW],
        summary:
          'Flow report: sent, delivered, failed, inbound, keyword matches, interaction rate, ' +
          'redemptions within 7 days; per day',
        params: FlowParams,
        querystring: FlowReportQuery,
        response: { 200: Obj },
      },
    },
    async (req) => {
      await m.flows.get(db, req.params.flowId);
      return m.reports.flowReport(req.params.flowId, req.query.from, req.query.to);
    },
  );
}
