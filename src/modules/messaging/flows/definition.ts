import { invalid } from '../../../lib/errors.ts';
import { parseHttpUrl, UnsafeUrlError } from '../../../lib/url-guard.ts';
import { normalizeKeyword } from '../keywords.ts';
import type { FlowInput, Trigger } from '../schemas.ts';
import { templateError } from '../templates.ts';

// A flow is data: triggers (keywords), and steps that find the member, branch, reply with a Liquid
// template, call an HTTP API, wait for a follow-up keyword, enrol the sender, or redeem a reward. Saved definitions
// are validated here; every save makes a new immutable version.

export type Condition =
  | { has_membership: boolean }
  | { balance_gte: number; balance?: string }
  | { balance_gte_cheapest_reward: boolean }
  | { tier_is: string }
  | { var: string; equals?: unknown; exists?: boolean; gte?: number; lte?: number }
  | { all: Condition[] }
  | { any: Condition[] }
  | { not: Condition };

/**
 * What a member found by card code shows when the sender's number is not the member's own:
 * `none` (default) finds nobody (the code of someone else's card is treated as unknown), `balance`
 * the card's balances and tier without anything about the person (BALANCE_VARIABLES), `all`
 * everything the member's own number would see.
 */
export type CardCodeReveals = 'none' | 'balance' | 'all';
export const CARD_CODE_REVEALS: readonly CardCodeReveals[] = ['none', 'balance', 'all'];
/**
 * The member variables `card_code_reveals: "balance"` shows: the card and what its balance buys.
 * Every other variable (customer, vouchers, referral, any a module adds later) is nil.
 */
export const BALANCE_VARIABLES: ReadonlySet<string> = new Set([
  'program',
  'membership',
  'balances',
  'points',
  'card',
  'tier',
  'tiers',
  'rewards',
]);
const FIND_BY = ['phone', 'card_code', 'phone_or_card_code'];

export type Step =
  | {
      id: string;
      type: 'find_member';
      /** Default `phone`: a card code is looked up only when the flow asks for it. */
      by?: 'phone' | 'card_code' | 'phone_or_card_code';
      card_code_reveals?: CardCodeReveals;
      next?: string | null;
      not_found?: string | null;
    }
  | { id: string; type: 'branch'; cases: { when: Condition; next: string }[]; else?: string | null }
  | { id: string; type: 'reply'; template: string; next?: string | null }
  | {
      id: string;
      type: 'http';
      method?: 'GET' | 'POST' | 'PUT';
      url: string;
      headers?: Record<string, string>;
      body?: string | null;
      save_as?: string;
      map?: Record<string, string>;
      timeout_ms?: number;
      next?: string | null;
      on_error?: string | null;
    }
  | {
      id: string;
      type: 'wait';
      replies: { keywords: string[]; next: string }[];
      timeout_seconds?: number;
      otherwise?: string | null;
    }
  | { id: string; type: 'join'; next?: string | null; refused?: string | null }
  | {
      id: string;
      type: 'redeem';
      /**
       * Which reward (a Liquid template): a number is a position in `rewards.affordable` (1 = the
       * first, as a REWARDS reply lists them), anything else a reward id. Default: the word after
       * the keyword (`REDEEM 2`, `REDEEM rew_...`, a WhatsApp button's text or payload).
       */
      reward?: string;
      next?: string | null;
      refused?: string | null;
    };

/** A saved definition: a flow as given (FlowInput), with its defaults filled in by validateDefinition. */
export type FlowDefinition = FlowInput & { triggers: Trigger[] };

export const DEFAULT_SESSION_TIMEOUT = 900;
export const RESERVED_VARS = new Set([
  'customer',
  'membership',
  'program',
  'balances',
  'points',
  'card',
  'sender',
  'channel',
  'message',
  'tier',
  'rewards',
  'vouchers',
  'referral',
  'redemption',
]);

function fail(field: string, message: string): never {
  throw invalid('invalid_flow', 'Invalid flow', `${field} ${message}`, [{ field, message }]);
}

function checkTemplate(field: string, source: unknown) {
  if (typeof source !== 'string') fail(field, 'must be a string');
  const err = templateError(source as string);
  if (err) fail(field, `is not a valid Liquid template: ${err}`);
}

function checkCondition(field: string, c: Condition, depth = 0): void {
  if (depth > 8) fail(field, 'is nested too deeply');
  if (!c || typeof c !== 'object') fail(field, 'must be an object');
  const keys = Object.keys(c);
  if ('all' in c || 'any' in c) {
    const list = (c as { all?: Condition[]; any?: Condition[] }).all ?? (c as { any?: Condition[] }).any;
    if (!Array.isArray(list) || list.length === 0) fail(field, 'all/any must be a non-empty array');
    for (const [i, x] of list.entries()) checkCondition(`${field}.${'all' in c ? 'all' : 'any'}[${i}]`, x, depth + 1);
    return;
  }
  if ('not' in c) {
    checkCondition(`${field}.not`, c.not, depth + 1);
    return;
  }
  if ('has_membership' in c || 'balance_gte_cheapest_reward' in c) return;
  if ('balance_gte' in c) {
    if (typeof c.balance_gte !== 'number') fail(`${field}.balance_gte`, 'must be a number');
    return;
  }
  if ('tier_is' in c) {
    if (typeof c.tier_is !== 'string') fail(`${field}.tier_is`, 'must be a string');
    return;
  }
  if ('var' in c) {
    if (typeof c.var !== 'string' || !/^[A-Za-z_][\w.]*$/.test(c.var))
      fail(`${field}.var`, 'must be a dotted variable path');
    return;
  }
  fail(field, `has no known condition (${keys.join(', ') || 'empty'})`);
}

/** Validates a definition; returns it with defaults filled in. */
export function validateDefinition(input: FlowInput): FlowDefinition {
  const def: FlowDefinition = {
    ...input,
    active: input.active ?? true,
    channels: input.channels ?? null,
    catch_all: input.catch_all ?? false,
    opening_message: input.opening_message ?? null,
    unknown_sender_reply: input.unknown_sender_reply ?? null,
    session_timeout_seconds: input.session_timeout_seconds ?? DEFAULT_SESSION_TIMEOUT,
    triggers: (input.triggers ?? []).map((t) => ({ keywords: t.keywords, match: t.match ?? 'first_word' })),
    metadata: input.metadata ?? {},
  };
  if (!def.name) fail('name', 'is required');
  if (!def.program_id) fail('program_id', 'is required');
  if (def.triggers.length === 0 && !def.catch_all)
    fail('triggers', 'must have at least one trigger (or catch_all: true)');
  def.triggers.forEach((t, i) => {
    if (!Array.isArray(t.keywords) || t.keywords.length === 0)
      fail(`triggers[${i}].keywords`, 'must list at least one keyword');
    t.keywords.forEach((k, j) => {
      if (typeof k !== 'string' || !normalizeKeyword(k))
        fail(`triggers[${i}].keywords[${j}]`, 'must be one word of 1 to 16 letters or digits');
    });
  });
  if (!Array.isArray(def.steps) || def.steps.length === 0) fail('steps', 'must have at least one step');
  const ids = new Set<string>();
  def.steps.forEach((s, i) => {
    if (!s || typeof s.id !== 'string' || !s.id) fail(`steps[${i}].id`, 'is required');
    if (ids.has(s.id)) fail(`steps[${i}].id`, `"${s.id}" is used twice`);
    ids.add(s.id);
  });
  def.start = def.start ?? def.steps[0].id;
  if (!ids.has(def.start)) fail('start', `names no step ("${def.start}")`);
  const ref = (field: string, v: unknown) => {
    if (v === undefined || v === null) return;
    if (typeof v !== 'string' || !ids.has(v)) fail(field, `names no step ("${String(v)}")`);
  };
  def.steps.forEach((s, i) => {
    const f = `steps[${i}]`;
    switch (s.type) {
      case 'find_member':
        if (s.by && !FIND_BY.includes(s.by)) fail(`${f}.by`, `must be one of: ${FIND_BY.join(', ')}`);
        if (s.card_code_reveals !== undefined) {
          if (!CARD_CODE_REVEALS.includes(s.card_code_reveals)) {
            fail(`${f}.card_code_reveals`, `must be one of: ${CARD_CODE_REVEALS.join(', ')}`);
          }
          if ((s.by ?? 'phone') === 'phone') {
            fail(`${f}.card_code_reveals`, 'applies only with by: card_code or phone_or_card_code');
          }
        }
        ref(`${f}.next`, s.next);
        ref(`${f}.not_found`, s.not_found);
        break;
      case 'branch':
        if (!Array.isArray(s.cases) || s.cases.length === 0) fail(`${f}.cases`, 'must have at least one case');
        s.cases.forEach((c, j) => {
          checkCondition(`${f}.cases[${j}].when`, c.when);
          ref(`${f}.cases[${j}].next`, c.next);
          if (!c.next) fail(`${f}.cases[${j}].next`, 'is required');
        });
        ref(`${f}.else`, s.else);
        break;
      case 'reply':
        checkTemplate(`${f}.template`, s.template);
        ref(`${f}.next`, s.next);
        break;
      case 'http': {
        checkTemplate(`${f}.url`, s.url);
        if (!/\{\{|\{%/.test(s.url)) {
          try {
            parseHttpUrl(s.url);
          } catch (err) {
            if (err instanceof UnsafeUrlError) fail(`${f}.url`, err.message);
            throw err;
          }
        }
        if (s.method && !['GET', 'POST', 'PUT'].includes(s.method)) fail(`${f}.method`, 'must be GET, POST or PUT');
        for (const [k, v] of Object.entries(s.headers ?? {})) checkTemplate(`${f}.headers.${k}`, v);
        if (s.body !== undefined && s.body !== null) checkTemplate(`${f}.body`, s.body);
        const saveAs = s.save_as ?? 'api';
        if (!/^[a-z_][a-z0-9_]*$/.test(saveAs) || RESERVED_VARS.has(saveAs))
          fail(`${f}.save_as`, 'must be a lower-case name that is not a built-in variable');
        for (const [k, v] of Object.entries(s.map ?? {})) {
          if (!/^[A-Za-z_]\w*$/.test(k)) fail(`${f}.map`, `key "${k}" must be a variable name`);
          if (typeof v !== 'string') fail(`${f}.map.${k}`, 'must be a JSON path such as data.balance or items[0].name');
        }
        if (
          s.timeout_ms !== undefined &&
          (typeof s.timeout_ms !== 'number' || s.timeout_ms < 100 || s.timeout_ms > 15_000)
        )
          fail(`${f}.timeout_ms`, 'must be 100 to 15000');
        ref(`${f}.next`, s.next);
        ref(`${f}.on_error`, s.on_error);
        break;
      }
      case 'wait':
        if (!Array.isArray(s.replies) || s.replies.length === 0)
          fail(`${f}.replies`, 'must list at least one expected reply');
        s.replies.forEach((r, j) => {
          if (!Array.isArray(r.keywords) || r.keywords.length === 0)
            fail(`${f}.replies[${j}].keywords`, 'must list keywords');
          r.keywords.forEach((k, n) => {
            if (typeof k !== 'string' || !normalizeKeyword(k))
              fail(`${f}.replies[${j}].keywords[${n}]`, 'must be one word of 1 to 16 letters or digits');
          });
          ref(`${f}.replies[${j}].next`, r.next);
          if (!r.next) fail(`${f}.replies[${j}].next`, 'is required');
        });
        if (
          s.timeout_seconds !== undefined &&
          (typeof s.timeout_seconds !== 'number' || s.timeout_seconds < 1 || s.timeout_seconds > 7 * 86400)
        ) {
          fail(`${f}.timeout_seconds`, 'must be 1 to 604800');
        }
        ref(`${f}.otherwise`, s.otherwise);
        break;
      case 'join':
        ref(`${f}.next`, s.next);
        ref(`${f}.refused`, s.refused);
        break;
      case 'redeem':
        if (s.reward !== undefined) checkTemplate(`${f}.reward`, s.reward);
        ref(`${f}.next`, s.next);
        ref(`${f}.refused`, s.refused);
        break;
      default:
        fail(
          `${f}.type`,
          `must be find_member, branch, reply, http, wait, join or redeem (got "${(s as { type?: string }).type}")`,
        );
    }
  });
  for (const [field, t] of [
    ['opening_message', def.opening_message],
    ['unknown_sender_reply', def.unknown_sender_reply],
  ] as const) {
    if (t) checkTemplate(field, t);
  }
  return def;
}
