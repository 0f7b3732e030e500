import { request } from 'undici';
import type { AppContext } from '../../../context.ts';
import { DomainError } from '../../../lib/errors.ts';
import { readCapped } from '../../../lib/egress.ts';
import { parseHttpUrl } from '../../../lib/url-guard.ts';
import type { MessagingDeps } from '../deps.ts';
import type { CustomerRow } from '../../customers/service.ts';
import type { ProgramRow } from '../../loyalties/service.ts';
import type { MembershipRow } from '../../members/service.ts';
import { LostRace, retryOnLostRace } from '../../../storage/race.ts';
import type { ChannelRow } from '../channels.ts';
import { extendScope, resolvePath, type ContextRegistry } from '../context-providers.ts';
import { render } from '../templates.ts';
import { BALANCE_VARIABLES, type Condition, type FlowDefinition, type Step } from './definition.ts';

// Runs a flow's steps for one inbound message, from a start step until the flow ends or waits.
// Reads go straight to the database; the only writes are enrolments (the join step) and reward
// redemptions (the redeem step), each in a transaction of its own. The caller stores the replies
// and the session in one transaction afterwards.

export interface RunInput {
  ctx: AppContext;
  services: MessagingDeps;
  registry: ContextRegistry;
  def: FlowDefinition;
  channel: ChannelRow;
  program: ProgramRow;
  phone: string;
  text: string;
  tokens: string[];
  rawTokens: string[];
  keyword: string | null;
  contactName: string | null;
  customer: CustomerRow | null;
  membership: MembershipRow | null;
  /** Variables saved by earlier steps (http results), carried across a session. */
  saved: Record<string, unknown>;
  /** What the membership carried across a session may show (MemberVisibility). */
  visibility?: MemberVisibility;
  defaultUnknownReply?: string | null;
  /** `channel:provider message id` of the inbound message: a redeem step redeems once per message. */
  inboundKey?: string;
}

/**
 * What templates and conditions see of the current member: `all`, or `balance` only (the member was
 * found by the card code of a number that is not the member's own, and the flow's find_member step
 * says `card_code_reveals: "balance"`): BALANCE_VARIABLES, no customer.
 */
export type MemberVisibility = 'all' | 'balance';

export interface RunResult {
  replies: string[];
  /** The wait step the conversation now waits at, if any. */
  waitAt: Extract<Step, { type: 'wait' }> | null;
  customer: CustomerRow | null;
  membership: MembershipRow | null;
  saved: Record<string, unknown>;
  visibility: MemberVisibility;
}

const MAX_STEPS = 50;
/**
 * Largest answer an http step reads, in bytes: the JSON its `map` picks values from. A larger answer
 * is aborted while it streams and the step takes its error path.
 */
export const HTTP_STEP_RESPONSE_LIMIT = 1024 * 1024;

/** Reads `a.b[0].c` (optionally `$.`-prefixed) from a JSON value. */
export function getPath(value: unknown, path: string): unknown {
  const parts = path
    .replace(/^\$\.?/, '')
    .split(/\.|\[(\d+)\]/)
    .filter((p) => p !== undefined && p !== '');
  let cur: unknown = value;
  for (const p of parts) {
    if (cur === null || cur === undefined) return undefined;
    if (Array.isArray(cur) && /^\d+$/.test(p)) cur = cur[Number(p)];
    else if (typeof cur === 'object' && Object.hasOwn(cur, p)) cur = (cur as Record<string, unknown>)[p];
    else return undefined;
  }
  return cur;
}

export class FlowRun {
  private context: Record<string, unknown> | null = null;
  private replies: string[] = [];
  private customer: CustomerRow | null;
  private membership: MembershipRow | null;
  private saved: Record<string, unknown>;
  private visibility: MemberVisibility;
  private senderCustomers: CustomerRow[] | null = null;

  constructor(private input: RunInput) {
    this.customer = input.customer;
    this.membership = input.membership;
    this.saved = { ...input.saved };
    this.visibility = input.visibility ?? 'all';
  }

  private get db() {
    return this.input.ctx.database.db;
  }

  async vars(): Promise<Record<string, unknown>> {
    if (!this.context) {
      const { registry, services, program, channel, phone, text, tokens, keyword } = this.input;
      const limited = this.visibility === 'balance';
      const input = {
        db: this.db,
        services,
        program,
        customer: limited ? null : this.customer,
        membership: this.membership,
      };
      const scope = registry.lazy(input, limited ? BALANCE_VARIABLES : undefined);
      this.context = extendScope(scope, {
        sender: phone,
        channel: { id: channel.id, type: channel.type, provider: channel.provider, sender: channel.sender },
        message: { text, keyword, words: tokens, rest: this.input.rawTokens.slice(1).join(' ') },
        ...this.saved,
      });
    }
    return this.context;
  }

  private invalidate() {
    this.context = null;
  }

  async run(startId: string): Promise<RunResult> {
    const steps = new Map(this.input.def.steps.map((s) => [s.id, s]));
    let current: string | null | undefined = startId;
    let waitAt: RunResult['waitAt'] = null;
    for (let n = 0; current && n < MAX_STEPS; n++) {
      const step = steps.get(current);
      if (!step) break;
      if (step.type === 'wait') {
        waitAt = step;
        break;
      }
      current = await this.exec(step);
    }
    const { replies, customer, membership, saved, visibility } = this;
    return { replies, waitAt, customer, membership, saved, visibility };
  }

  private async reply(template: string) {
    const text = await render(template, await this.vars());
    if (text) this.replies.push(text);
  }

  private async exec(step: Exclude<Step, { type: 'wait' }>): Promise<string | null | undefined> {
    switch (step.type) {
      case 'find_member':
        return this.findMember(step);
      case 'branch': {
        for (const c of step.cases) if (await this.test(c.when)) return c.next;
        return step.else;
      }
      case 'reply':
        await this.reply(step.template);
        return step.next;
      case 'http':
        return this.http(step);
      case 'join':
        return this.join(step);
      case 'redeem':
        return this.redeem(step);
    }
  }

  /** The customers with the sender's number (looked up once per run). */
  private async ownCustomers(): Promise<CustomerRow[]> {
    this.senderCustomers ??= await this.input.services.customers.findByPhone(this.db, this.input.phone);
    return this.senderCustomers;
  }

  /** The sender's customer that is a member contact of the card, if any. */
  private async contactOf(m: MembershipRow): Promise<CustomerRow | undefined> {
    const households = this.input.services.households;
    if (!households) return undefined;
    for (const c of await this.ownCustomers()) if (await households.isContact(this.db, m.id, c.id)) return c;
    return undefined;
  }

  private async findMember(step: Extract<Step, { type: 'find_member' }>) {
    const { services, program } = this.input;
    const by = step.by ?? 'phone';
    const reveals = step.card_code_reveals ?? 'none';
    let found: MembershipRow | null = null;
    let owner: CustomerRow | null = null;
    let visibility: MemberVisibility = 'all';
    if (by !== 'phone') {
      // Card codes may hold punctuation (LC-AB12): words are split on spaces only, trimmed of
      // surrounding punctuation; codes are matched as written, then upper-cased.
      const words = this.input.text
        .trim()
        .split(/\s+/)
        .slice(1, 4)
        .map((w) => w.replace(/^[\p{P}]+|[\p{P}]+$/gu, ''));
      for (const token of words) {
        if (token.length < 4 || token.length > 100) continue;
        const m =
          (await services.members.find(this.db, token, program.id)) ??
          (await services.members.find(this.db, token.toUpperCase(), program.id));
        if (m?.status !== 'ACTIVE') continue;
        // Someone else's card answers only as far as the flow allows; with `none` it is as if the
        // code were unknown (so a stranger cannot tell a valid code from a wrong one either).
        // The sender holds the card, or shares it as a member contact (a household's).
        owner = (await this.ownCustomers()).find((c) => c.id === m.customer_id) ?? (await this.contactOf(m)) ?? null;
        if (!owner && reveals === 'none') continue;
        found = m;
        visibility = owner || reveals === 'all' ? 'all' : 'balance';
        break;
      }
    }
    if (!found && by !== 'card_code') {
      for (const c of await this.ownCustomers()) {
        // Its own card, else the household card it shares as a member contact.
        const m =
          (await services.members.ofCustomer(this.db, c.id, program.id)).find((x) => x.status === 'ACTIVE') ??
          (await services.households?.sharedCards(this.db, c.id, program.id))?.find((x) => x.status === 'ACTIVE');
        if (m) {
          found = m;
          owner = c;
          visibility = 'all';
          break;
        }
      }
    }
    if (found) {
      this.membership = found;
      this.visibility = visibility;
      // With `balance`, the person behind the card stays unknown to the run (and to the messages'
      // attribution): the replies go to a number that is not theirs.
      if (visibility === 'balance') this.customer = null;
      else if (owner) this.customer = owner;
      else if (this.customer?.id !== found.customer_id) {
        this.customer = (await services.customers.find(this.db, found.customer_id)) ?? null;
      }
      this.invalidate();
      return step.next;
    }
    this.membership = null;
    this.visibility = 'all';
    if (!this.customer) this.customer = (await this.ownCustomers())[0] ?? null;
    this.invalidate();
    if (step.not_found) return step.not_found;
    const answer =
      this.input.def.unknown_sender_reply ??
      this.input.defaultUnknownReply ??
      'Sorry, we could not find a {{ program.name }} membership for this number.';
    await this.reply(answer);
    return null;
  }

  private async test(c: Condition): Promise<boolean> {
    if ('all' in c) {
      for (const x of c.all) if (!(await this.test(x))) return false;
      return true;
    }
    if ('any' in c) {
      for (const x of c.any) if (await this.test(x)) return true;
      return false;
    }
    if ('not' in c) return !(await this.test(c.not));
    if ('has_membership' in c) return (this.membership !== null) === c.has_membership;
    const vars = await this.vars();
    if ('balance_gte' in c) {
      const balances = ((await vars.balances) ?? {}) as Record<string, { balance: number; default: boolean }>;
      const b = c.balance ? balances[c.balance] : Object.values(balances).find((x) => x.default);
      return !!b && b.balance >= c.balance_gte;
    }
    if ('balance_gte_cheapest_reward' in c) {
      const cheapest = getPath(await vars.rewards, 'cheapest_cost');
      const points = await vars.points;
      const ok = typeof cheapest === 'number' && typeof points === 'number' && points >= cheapest;
      return ok === c.balance_gte_cheapest_reward;
    }
    if ('tier_is' in c) {
      const tier = (await vars.tier) as { id?: string; name?: string } | null | undefined;
      if (!tier) return false;
      const want = c.tier_is.toLowerCase();
      return tier.name?.toLowerCase() === want || tier.id?.toLowerCase() === want;
    }
    if ('var' in c) {
      const v = await resolvePath(vars, c.var, getPath);
      if (c.exists !== undefined && (v !== undefined && v !== null) !== c.exists) return false;
      if (c.equals !== undefined && v !== c.equals) return false;
      if (c.gte !== undefined && !(typeof v === 'number' && v >= c.gte)) return false;
      if (c.lte !== undefined && !(typeof v === 'number' && v <= c.lte)) return false;
      return true;
    }
    return false;
  }

  private async http(step: Extract<Step, { type: 'http' }>) {
    const { ctx } = this.input;
    const vars = await this.vars();
    const saveAs = step.save_as ?? 'api';
    const result: Record<string, unknown> = {};
    try {
      // Syntax and scheme here (the URL is rendered from a template); the address is checked by the
      // guarded pool on connecting, so a name resolving inside is refused however it resolved before.
      const url = parseHttpUrl(await render(step.url, vars));
      const headers: Record<string, string> = { accept: 'application/json' };
      for (const [k, v] of Object.entries(step.headers ?? {})) headers[k.toLowerCase()] = await render(v, vars);
      const method = step.method ?? 'GET';
      let body: string | undefined;
      if (method !== 'GET' && step.body) {
        body = await render(step.body, vars);
        headers['content-type'] ??= 'application/json';
      }
      const timeoutMs = step.timeout_ms ?? 5000;
      const res = await request(url, {
        method,
        headers,
        body,
        dispatcher: ctx.egress.pool(),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      const text = await readCapped(res, HTTP_STEP_RESPONSE_LIMIT);
      let json: unknown = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch {
        json = null;
      }
      result.status = res.statusCode;
      result.ok = ok;
      for (const [name, path] of Object.entries(step.map ?? {})) result[name] = getPath(json, path);
      this.saved[saveAs] = result;
      this.invalidate();
      if (!ok && step.on_error) return step.on_error;
      return step.next;
    } catch (err) {
      result.ok = false;
      result.error = (err as Error).message;
      this.saved[saveAs] = result;
      this.invalidate();
      ctx.log.warn({ step: step.id, error: (err as Error).message }, 'flow http step failed');
      return step.on_error ?? step.next;
    }
  }

  private async join(step: Extract<Step, { type: 'join' }>) {
    const { ctx, services, program, phone, contactName } = this.input;
    if (program.auto_join !== 1 || program.active !== 1) {
      if (step.refused) return step.refused;
      await this.reply('Sorry, {{ program.name }} cannot be joined by message.');
      return null;
    }
    let result: { customer: CustomerRow; membership: MembershipRow };
    try {
      // A concurrent join of the same customer loses its race (LostRace): the next run finds the card.
      result = await retryOnLostRace(
        () =>
          ctx.transaction(async (trx) => {
            let customer = (await services.customers.findByPhone(trx, phone))[0];
            if (!customer) customer = (await services.customers.upsert(trx, { phone, name: contactName ?? null })).row;
            // A member contact of a household card of the program is a member already.
            const existing =
              (await services.members.ofCustomer(trx, customer.id, program.id)).find((m) => m.status === 'ACTIVE') ??
              (await services.households?.sharedCards(trx, customer.id, program.id))?.find(
                (m) => m.status === 'ACTIVE',
              );
            const membership =
              existing ?? (await services.joinProgram(trx, program, customer, { source: 'messaging' }));
            return { customer, membership };
          }),
        3,
      );
    } catch (err) {
      if (err instanceof LostRace) return step.refused ?? null;
      if (err instanceof DomainError) {
        ctx.log.info({ key: err.key }, 'join by message refused');
        if (step.refused) return step.refused;
        await this.reply('Sorry, {{ program.name }} cannot be joined by message.');
        return null;
      }
      throw err;
    }
    this.customer = result.customer;
    this.membership = result.membership;
    this.visibility = 'all';
    this.senderCustomers = null;
    this.invalidate();
    return step.next;
  }

  /**
   * Redeems the reward the message names for the member found earlier, once per inbound message;
   * saves `redemption` ({ok, code, reward, voucher, points, balance}, or {ok: false, reason, message}
   * on a refusal) and goes to `next` (default: a reply with the code) or `refused` (default: a reply
   * with the reason).
   */
  private async redeem(step: Extract<Step, { type: 'redeem' }>) {
    const { ctx, services, inboundKey } = this.input;
    const vars = await this.vars();
    const refuse = async (reason: RedeemRefusal, detail?: string) => {
      this.saved.redemption = { ok: false, reason, message: REFUSAL_TEXT[reason], detail: detail ?? null };
      this.invalidate();
      if (step.refused) return step.refused;
      await this.reply('{{ redemption.message }}');
      return null;
    };
    if (!this.membership || this.visibility !== 'all') return refuse('no_member');
    if (!services.redeemReward || !inboundKey) return refuse('unavailable');
    const asked = (
      step.reward !== undefined ? await render(step.reward, vars) : (this.input.rawTokens[1] ?? '')
    ).trim();
    if (!asked) return refuse('missing');
    let rewardId = asked;
    if (/^\d+$/.test(asked)) {
      const affordable = getPath(await vars.rewards, 'affordable');
      const picked = Array.isArray(affordable) ? (affordable[Number(asked) - 1] as { id?: string }) : undefined;
      if (!picked?.id) return refuse('unknown_reward');
      rewardId = picked.id;
    }
    try {
      const r = await services.redeemReward({ membershipId: this.membership.id, rewardId, key: inboundKey });
      this.saved.redemption = { ok: true, code: r.voucher?.code ?? null, ...r };
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      ctx.log.info({ key: err.key, step: step.id }, 'redemption by message refused');
      return refuse(REFUSAL_OF[err.key] ?? (err.kind === 'not_found' ? 'unknown_reward' : 'unavailable'), err.key);
    }
    this.invalidate();
    if (step.next) return step.next;
    await this.reply(REDEEMED_REPLY);
    return null;
  }
}

/** Why a redeem step refused (`redemption.reason`). */
export type RedeemRefusal =
  | 'no_member'
  | 'missing'
  | 'unknown_reward'
  | 'not_enough_points'
  | 'out_of_stock'
  | 'unavailable';

const REFUSAL_OF: Record<string, RedeemRefusal> = {
  loyalty_card_points_exceeded: 'not_enough_points',
  reward_out_of_stock: 'out_of_stock',
  // A coupon reward whose campaign has no code left to give.
  no_voucher_suitable_for_publication: 'out_of_stock',
  reward_not_assigned: 'unknown_reward',
  invalid_reward: 'unknown_reward',
};

/** `redemption.message`: what a member is told when a redemption is refused. */
const REFUSAL_TEXT: Record<RedeemRefusal, string> = {
  no_member: 'Sorry, we could not find your card, so nothing was redeemed.',
  missing: 'Reply REDEEM followed by the number of the reward (reply REWARDS to see them).',
  unknown_reward: 'Sorry, there is no such reward on your list. Reply REWARDS to see what you can redeem.',
  not_enough_points: 'Sorry, you do not have enough points for that reward yet. Nothing was redeemed.',
  out_of_stock: 'Sorry, that reward is out of stock. Reply REWARDS to see what else you can redeem.',
  unavailable: 'Sorry, that reward cannot be redeemed by message.',
};

/** A redeem step's reply when it has no `next`. */
export const REDEEMED_REPLY =
  'You redeemed {{ redemption.reward.name }} for {{ redemption.points }} points.' +
  '{% if redemption.code %} Your code: {{ redemption.code }}.{% endif %}' +
  '{% if redemption.balance != nil %} Points left: {{ redemption.balance }}.{% endif %}';
