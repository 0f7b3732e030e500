import type { Executor } from '../../storage/database.ts';
import type { MessagingDeps } from './deps.ts';
import type { CustomerRow } from '../customers/service.ts';
import type { ProgramRow } from '../loyalties/service.ts';
import type { MembershipRow } from '../members/service.ts';
import { fromJson } from '../../lib/json.ts';

// Template variables come from "context providers": a name and a function returning that
// variable's value for one member. The core ones (customer, membership, program, balances, points)
// are registered here; feature modules add theirs with
// `services.messaging.registerContextProvider('tier', fn)` (likewise 'rewards', 'vouchers',
// 'referral'); a variable whose feature does not exist is simply absent (nil in Liquid).
//
// Conventions other modules should follow so flow conditions work:
// - tier:     { id, name, ... }                      (condition `tier_is` compares `name` or `id`)
// - rewards:  { cheapest_cost: number|null, affordable: [{id, name, cost}], all: [...] }
//             (condition `balance_gte_cheapest_reward` compares the default balance with cheapest_cost)
// - vouchers: [{ code, campaign, type, discount, gift, expiration_date, active, usable }]
//             (the vouchers module's, registered by the container in src/services.ts)
// - referral: { code, referred_customers, ... }

export interface ContextInput {
  db: Executor;
  services: MessagingDeps;
  program: ProgramRow;
  customer: CustomerRow | null;
  membership: MembershipRow | null;
}

export type ContextProvider = (input: ContextInput) => Promise<unknown> | unknown;

export class ContextRegistry {
  private providers = new Map<string, ContextProvider>();

  /** Adds (or replaces) a variable's provider; returns a function that puts the previous one back. */
  register(name: string, fn: ContextProvider): () => void {
    if (!/^[a-z_][a-z0-9_]*$/.test(name))
      throw new Error(`context provider name "${name}" must be a lower-case identifier`);
    const previous = this.providers.get(name);
    this.providers.set(name, fn);
    return () => {
      if (previous) this.providers.set(name, previous);
      else this.providers.delete(name);
    };
  }

  has(name: string): boolean {
    return this.providers.has(name);
  }

  names(): string[] {
    return [...this.providers.keys()];
  }

  /**
   * The variables of one member as lazy, memoised properties: a provider runs only when a template
   * or a condition reads its variable (Liquid awaits promise values), and at most once. With
   * `only`, the other variables are absent (nil in Liquid).
   */
  lazy(input: ContextInput, only?: ReadonlySet<string>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, fn] of this.providers) {
      if (only && !only.has(name)) continue;
      let memo: Promise<unknown> | undefined;
      Object.defineProperty(out, name, {
        enumerable: true,
        configurable: true,
        get: () =>
          (memo ??= Promise.resolve()
            .then(() => fn(input))
            .then((v) => (v === undefined ? null : v))),
      });
    }
    return out;
  }

  /** Every variable, resolved (for callers that want plain data). */
  async build(input: ContextInput): Promise<Record<string, unknown>> {
    const lazy = this.lazy(input);
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(lazy)) out[k] = await lazy[k];
    return out;
  }
}

/** Adds plain values to a lazy scope (shadowing a provider of the same name). */
export function extendScope(scope: Record<string, unknown>, values: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(values))
    Object.defineProperty(scope, k, { value: v, enumerable: true, configurable: true, writable: true });
  return scope;
}

/** Reads a dotted path whose first segment may be a lazy (promise) variable. */
export async function resolvePath(
  scope: Record<string, unknown>,
  path: string,
  get: (v: unknown, p: string) => unknown,
): Promise<unknown> {
  const m = path.replace(/^\$\.?/, '').match(/^([A-Za-z_]\w*)(.*)$/);
  if (!m) return undefined;
  if (!Object.hasOwn(scope, m[1])) return undefined;
  const head = await scope[m[1]];
  const rest = m[2].replace(/^\./, '');
  return rest ? get(head, rest) : head;
}

/**
 * `tier` from the tiers module: the member's tier in the program's default tier group (nil when
 * the program has no tiers), with the next tier up: `{{ tier.name }}`, `{{ tier.next.name }}`,
 * `{{ tier.next.points_needed }}`; `tiers` lists the member's tier in every group.
 */
export function registerTierProviders(reg: ContextRegistry): void {
  const load = async ({ db, services, program, membership }: ContextInput) => {
    if (!membership || !services.tiers) return null;
    const pt = await services.tiers.programTiers(db, program.id);
    if (!pt.hasTiers) return null;
    return { pt, current: await services.tiers.memberTiers(db, membership) };
  };
  reg.register('tier', async (input) => {
    const got = await load(input);
    if (!got) return null;
    const group = got.pt.groups[0];
    const mine = got.current.find((c) => c.group.id === group?.group.id) ?? got.current[0];
    if (!mine) return null;
    const ladder = got.pt.groups.find((g) => g.group.id === mine.group.id)?.tiers ?? [];
    const next = ladder.find((t) => t.points_from > mine.tier.points_from) ?? null;
    const definitionId =
      mine.group.balance_definition_id ??
      (await input.services.programs.defaultDefinition(input.db, input.program.id)).id;
    const balance = input.membership
      ? ((await input.services.ledger.balanceValue(input.db, input.membership.id, definitionId)) ?? NaN)
      : NaN;
    return {
      id: mine.tier.id,
      name: mine.tier.name,
      group: mine.group.name,
      points_from: mine.tier.points_from,
      points_to: mine.tier.points_to,
      expires_at: (mine.row as { expires_at?: string | null }).expires_at ?? null,
      next: next
        ? {
            id: next.id,
            name: next.name,
            points_from: next.points_from,
            points_needed: Number.isFinite(balance) ? Math.max(0, next.points_from - balance) : null,
          }
        : null,
    };
  });
  reg.register('tiers', async (input) => {
    const got = await load(input);
    if (!got) return null;
    return got.current.map((c) => ({ id: c.tier.id, name: c.tier.name, group: c.group.name }));
  });
}

export function registerCoreProviders(reg: ContextRegistry): void {
  reg.register('program', ({ program }) => ({
    id: program.id,
    name: program.name,
    metadata: fromJson(program.metadata, {}),
  }));
  reg.register('customer', ({ customer }) =>
    customer
      ? {
          id: customer.id,
          source_id: customer.source_id,
          name: customer.name,
          email: customer.email,
          phone: customer.phone,
          metadata: fromJson(customer.metadata, {}),
        }
      : null,
  );
  reg.register('membership', ({ membership }) =>
    membership
      ? {
          id: membership.id,
          code: membership.code,
          card_code: membership.code,
          status: membership.status,
          created_at: membership.created_at,
        }
      : null,
  );
  reg.register('balances', async ({ db, services, program, membership }) => {
    if (!membership) return null;
    const [defs, rows] = await Promise.all([
      services.programs.definitions(db, program.id),
      services.ledger.balancesOf(db, membership.id),
    ]);
    const out: Record<string, unknown> = {};
    for (const d of defs) {
      const b = rows.find((r) => r.balance_definition_id === d.id);
      out[d.name] = {
        name: d.name,
        unit: d.unit,
        balance: Number(b?.balance ?? 0),
        points: Number(b?.points ?? 0),
        pending_points: Number(b?.pending_points ?? 0),
        default: d.is_default === 1,
      };
    }
    return out;
  });
  // The default balance as a plain number: {{ points }}.
  reg.register('points', async ({ db, services, program, membership }) => {
    if (!membership) return null;
    return services.ledger.defaultBalance(db, membership.id, program.id);
  });
  // The card summary of the default balance (Voucherify's loyalty_card), with the code.
  reg.register('card', async ({ db, services, program, membership }) => {
    if (!membership) return null;
    const cards = await services.members.cards(db, [membership], new Map([[program.id, program]]));
    return { code: membership.code, ...cards.get(membership.id)! };
  });
}
