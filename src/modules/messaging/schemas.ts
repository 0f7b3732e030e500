import {
  AnyObject,
  IdParam,
  Nullable,
  PagedQuery,
  PathParams,
  type Static,
  StartingAfterId,
  StringEnum,
  Type,
} from '../../http/schema.ts';
import type { Step } from './flows/definition.ts';
import { MAX_INBOUND_TEXT } from './providers/types.ts';

// The messaging module's route schemas, and the request types derived from them. Flow steps are
// checked in full by hand (flows/definition.ts: conditions, templates, step references); their
// schema here only checks the outline, and their type is the hand-written `Step`.

export const TAG_CH = 'messaging: channels';
export const TAG_FLOW = 'messaging: flows';

/** The answers (channel, flow, broadcast...) are documented in the API docs, not here. */
export const Obj = AnyObject();

// ---------- channels ----------

export const ChannelCredentials = Type.Object(
  {
    base_url: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
    api_key: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
    account_sid: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    auth_token: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    messaging_service_sid: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  },
  { additionalProperties: false, description: 'Write-only: stored and used, never returned' },
);
export type ChannelCredentials = Static<typeof ChannelCredentials>;

/** Which fields a type needs (basic: username and password; token: token) is checked in channels.ts. */
export const InboundAuth = Type.Object(
  {
    type: StringEnum(['basic', 'token', 'twilio_signature', 'none']),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    token: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  {
    description:
      'How provider callbacks authenticate (write-only). Infobip: basic or token; ' +
      'Twilio: always X-Twilio-Signature.',
  },
);
export type InboundAuth = Static<typeof InboundAuth>;

export const ChannelSettings = Type.Object(
  {
    /** Broadcast throttle: messages per second on this channel. */
    rate_per_second: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1000 })),
    /** Twilio: reply through the REST API (default) or as TwiML in the webhook answer. */
    twilio_reply: Type.Optional(StringEnum(['api', 'twiml'])),
    opt_out_reply: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
    opt_in_reply: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
    /** Answer to a number no flow knows (no member, no step of its own). */
    unknown_sender_reply: Type.Optional(Nullable(Type.String({ maxLength: 1000 }))),
    /** Answer to text no trigger matches, when no catch-all flow listens on the channel. */
    catch_all_reply: Type.Optional(Nullable(Type.String({ maxLength: 1000 }))),
    /** Provider call timeout, in milliseconds. */
    timeout_ms: Type.Optional(Type.Integer({ minimum: 100, maximum: 60000 })),
  },
  { additionalProperties: false },
);
export type ChannelSettings = Static<typeof ChannelSettings>;

const channelProps = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  provider: StringEnum(['infobip', 'twilio', 'simulator']),
  type: StringEnum(['sms', 'whatsapp']),
  sender: Type.String({ minLength: 1, maxLength: 100 }),
  credentials: ChannelCredentials,
  inbound_auth: InboundAuth,
  public_url: Nullable(
    Type.String({
      maxLength: 500,
      description: "This server's public base URL as the provider sees it (behind a proxy)",
    }),
  ),
  settings: ChannelSettings,
};

export const ChannelCreateBody = Type.Object(
  {
    name: channelProps.name,
    provider: channelProps.provider,
    type: Type.Optional(channelProps.type),
    sender: channelProps.sender,
    credentials: Type.Optional(channelProps.credentials),
    inbound_auth: Type.Optional(channelProps.inbound_auth),
    public_url: Type.Optional(channelProps.public_url),
    settings: Type.Optional(channelProps.settings),
  },
  { additionalProperties: false },
);
export const ChannelUpdateBody = Type.Partial(ChannelCreateBody, { additionalProperties: false });
/** A channel as given to create (every required field present) or update (any of them). */
export type ChannelInput = Static<typeof ChannelUpdateBody>;

export const ChannelListQuery = PagedQuery({});
export const ChannelParams = IdParam('channelId', 'Channel id (chn_...)');

// ---------- simulator, messages, consents ----------

export const SimulatorMessageBody = Type.Object(
  {
    from: Type.String({ minLength: 3, maxLength: 40 }),
    text: Type.Optional(Type.String({ maxLength: MAX_INBOUND_TEXT })),
    button: Type.Optional(
      Type.Object(
        {
          title: Type.Optional(Type.String({ maxLength: 200 })),
          id: Type.Optional(Type.String({ maxLength: 200 })),
        },
        { additionalProperties: false },
      ),
    ),
    profile_name: Type.Optional(Type.String({ maxLength: 200 })),
    channel_id: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

const SimulatorConversation = Type.Object({
  phone: Type.String({ minLength: 3, maxLength: 40 }),
  channel_id: Type.Optional(Type.String()),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50 })),
});
/** `limit` is optional on the wire and always set (its default) in the handler, as with `PagedQuery`. */
export const SimulatorConversationQuery = Type.Unsafe<Static<typeof SimulatorConversation> & { limit: number }>(
  SimulatorConversation,
);

export const MessageListQuery = PagedQuery({
  ...StartingAfterId,
  channel_id: Type.Optional(Type.String()),
  phone: Type.Optional(Type.String()),
  flow_id: Type.Optional(Type.String()),
  direction: Type.Optional(StringEnum(['in', 'out'])),
  status: Type.Optional(Type.String()),
});
export type MessageListQuery = Static<typeof MessageListQuery>;

export const ConsentParams = IdParam('phone', 'Phone number (E.164)');

// ---------- flows ----------

export const Trigger = Type.Object(
  {
    keywords: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 20 }),
    match: Type.Optional(StringEnum(['first_word', 'only_word'])),
  },
  { additionalProperties: false },
);
export type Trigger = Static<typeof Trigger>;

/** The outline of a step; the rest of it is checked by flows/definition.ts (hence its type). */
const StepOutline = Type.Unsafe<Step>(
  Type.Object(
    {
      id: Type.String({ minLength: 1, maxLength: 100 }),
      type: StringEnum(['find_member', 'branch', 'reply', 'http', 'wait', 'join', 'redeem']),
      next: Type.Optional(Nullable(Type.String())),
      template: Type.Optional(Type.String({ maxLength: 5000 })),
      cases: Type.Optional(Type.Array(Type.Object({ when: AnyObject(), next: Type.String() }), { maxItems: 50 })),
    },
    { additionalProperties: true },
  ),
);

export const FlowBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Nullable(Type.String({ maxLength: 2000 }))),
    program_id: Type.String({ minLength: 1, maxLength: 100 }),
    active: Type.Optional(Type.Boolean()),
    /** Channel ids the flow listens on; null or absent: every channel. */
    channels: Type.Optional(Nullable(Type.Array(Type.String(), { maxItems: 50 }))),
    triggers: Type.Optional(Type.Array(Trigger, { maxItems: 20 })),
    /** Answers text that matches no trigger (one catch-all per channel). */
    catch_all: Type.Optional(Type.Boolean()),
    /** Opening message of broadcasts ("Reply POINTS to check your balance"), a Liquid template. */
    opening_message: Type.Optional(Nullable(Type.String({ maxLength: 2000 }))),
    /** Answer for senders with no membership when find_member has no `not_found` step. */
    unknown_sender_reply: Type.Optional(Nullable(Type.String({ maxLength: 2000 }))),
    session_timeout_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 604800 })),
    start: Type.Optional(Type.String()),
    steps: Type.Array(StepOutline, { minItems: 1, maxItems: 100 }),
    metadata: Type.Optional(Nullable(AnyObject())),
  },
  { additionalProperties: false },
);
/** A flow as given to create (validateDefinition fills the defaults). */
export type FlowInput = Static<typeof FlowBody>;
/** A change to a flow, or the overrides of a clone: merged over its current definition. */
export const FlowPatch = Type.Partial(FlowBody, { additionalProperties: false });
export type FlowPatch = Static<typeof FlowPatch>;

export const FlowListQuery = PagedQuery({ program_id: Type.Optional(Type.String()) });
export const FlowParams = IdParam('flowId', 'Flow id (flw_...)');
export const FlowGetQuery = Type.Object({ version: Type.Optional(Type.Integer({ minimum: 1 })) });
export const BroadcastParams = PathParams({ flowId: 'Flow id (flw_...)', broadcastId: 'Broadcast id (bc_...)' });
export const FlowReportQuery = Type.Object({
  from: Type.Optional(
    Type.String({
      description: 'A date (2026-01-01) or date-time; default: the start of the UTC day 30 days before `to`',
    }),
  ),
  to: Type.Optional(Type.String({ description: 'A date (inclusive) or date-time; default: now' })),
});

export const BroadcastBody = Type.Object(
  {
    channel_id: Type.String({ minLength: 1 }),
    text: Type.Optional(Nullable(Type.String({ maxLength: 2000 }))),
    /** A WhatsApp template (required on WhatsApp channels); each placeholder is a Liquid template. */
    template: Type.Optional(
      Nullable(
        Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 512 }),
            language: Type.Optional(Type.String({ minLength: 2, maxLength: 20 })),
            placeholders: Type.Optional(Type.Array(Type.String({ maxLength: 1000 }), { maxItems: 20 })),
          },
          {
            description:
              'An approved WhatsApp template (required on WhatsApp channels): name (Infobip template name, ' +
              'Twilio Content SID), language, placeholders (Liquid, one per {{n}})',
            additionalProperties: false,
          },
        ),
      ),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000000 })),
    filters: Type.Optional(
      Nullable(
        Type.Object(
          { tier: Type.Optional(Nullable(Type.String())), metadata: Type.Optional(Nullable(AnyObject())) },
          { additionalProperties: false },
        ),
      ),
    ),
  },
  { additionalProperties: false },
);
export type BroadcastInput = Static<typeof BroadcastBody>;
