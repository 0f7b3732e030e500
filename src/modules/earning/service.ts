import { pageByNumber } from '../../storage/paging.ts';
import { DateTime } from 'luxon';
import { sql } from 'kysely';
import type { AppContext } from '../../context.ts';
import { invalid, notFound } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson } from '../../lib/json.ts';
import type { Executor } from '../../storage/database.ts';
import { hot } from '../../storage/hot.ts';
import { lostRaceOn } from '../../storage/race.ts';
import type { ChangeResult, LedgerService } from '../ledger/service.ts';
import { validateExpirationRules, type ExpirationRules } from '../loyalties/expiration.ts';
import type { BalanceDefinitionRow, ProgramRow, ProgramService } from '../loyalties/service.ts';
import type { BalanceRow, MemberService, MembershipRow } from '../members/service.ts';
import type { CustomerRow } from '../customers/service.ts';
import { tierRef, type ProgramTiers } from '../tiers/service.ts';
import {
  basePoints,
  compileConditions,
  periodKey,
  validateConditions,
  validateLoyalty,
  validateWindow,
  windowOpen,
  type ActivityFacts,
  type Calculation,
  type RuleDefinition,
} from './evaluate.ts';
import type { EarningRulesTable, OrdersTable, PendingPointsTable } from './tables.ts';
import './tables.ts';

// Earning rules (CRUD, cached compiled per event), the accrual of one activity for one card, and
// pending points. The ingestion workflow (src/workflows/ingest-activity.ts) calls `accrue`.

export type EarningRuleRow = EarningRulesTable;
export type OrderRow = OrdersTable;
export type PendingPointsRow = PendingPointsTable;

export interface CompiledRule {
  row: EarningRuleRow;
  def: RuleDefinition;
  check: (facts: ActivityFacts) => string | null;
}

export interface Accrual {
  campaign_id: string;
  voucher_id: string;
  code: string;
  earning_rule_id: string;
  points: number;
  status: 'ACCRUED' | 'PENDING';
  transaction_id?: string;
  pending_points_id?: string;
  activates_at?: string;
  explanation: string;
}

export interface Skip {
  campaign_id: string;
  earning_rule_id: string;
  reason: string;
}

/** What the activity was, for the ledger entry's details ("why did I get 30 points?"). */
export interface ActivityRef {
  id: string;
  source_event_id: string | null;
  event: Record<string, unknown>;
  order?: Record<string, unknown>;
  order_id?: string | null;
}

/**
 * How long a rule change made by another process can go unseen by this one: the compiled rules
 * are re-read after this. Changes made through this process are seen at once.
 */
export const RULE_CACHE_TTL_MS = 5000;

/** Enabled rules listening to one event, per program id (each list in creation order). */
export type RulesByProgram = ReadonlyMap<string, readonly CompiledRule[]>;

/** The card an activity is accrued to, with what the ledger needs of it. */
export interface AccrualCard {
  program: ProgramRow;
  membership: MembershipRow;
  definition: BalanceDefinitionRow;
  /** The card holder (carried by the ledger's card events). */
  holder: CustomerRow;
  /**
   * The program's tiers when the holder is in one (`facts.tierIds` not empty): their earning rule
   * mappings. The caller reads them from the tiers module; earning never calls it.
   */
  tiers?: ProgramTiers | null;
}

interface Credit {
  rule: CompiledRule;
  points: number;
  details: Record<string, unknown>;
  explanation: string;
  expiration: ExpirationRules | null;
}

const ruleDetail = (c: Credit) => ({
  earning_rule: c.details.earning_rule,
  points: c.points,
  loyalty_tier: c.details.loyalty_tier,
  multipliers: c.details.multipliers,
  calculation: c.details.calculation,
  explanation: c.explanation,
});

export function presentRule(row: EarningRuleRow) {
  const d = fromJson<RuleDefinition>(row.definition, {} as RuleDefinition);
  return {
    id: row.id,
    created_at: row.created_at,
    updated_at: row.updated_at,
    validation_rule_id: d.validation_rule_id ?? null,
    loyalty: d.loyalty,
    event: row.event,
    custom_event: d.custom_event ?? null,
    segment: null,
    loyalty_tier: d.loyalty_tier ?? null,
    pending_points: d.pending_points ?? null,
    source: { banner: d.source?.banner ?? null, object_id: row.program_id, object_type: 'campaign' as const },
    active: row.active === 1,
    start_date: d.start_date ?? null,
    expiration_date: d.expiration_date ?? null,
    validity_timeframe: d.validity_timeframe ?? null,
    validity_day_of_week: d.validity_day_of_week ?? null,
    validity_hours: d.validity_hours ?? null,
    expiration_rules: d.expiration_rules ?? null,
    conditions: d.conditions ?? null,
    multipliers: d.multipliers ?? null,
    limits: d.limits ?? null,
    metadata: d.metadata ?? {},
    automation_id: null,
    object: 'earning_rule' as const,
  };
}

export function presentPending(p: PendingPointsRow) {
  return {
    id: p.id,
    voucher_id: p.membership_id,
    campaign_id: p.program_id,
    customer_id: p.customer_id,
    order_id: p.order_id,
    points: Number(p.points),
    activates_at: p.activates_at,
    status: p.status,
    details: fromJson(p.details, {}),
    created_at: p.created_at,
    updated_at: p.updated_at,
    object: 'pending_points' as const,
  };
}

function bad(message: string, field: string) {
  return invalid('invalid_earning_rule', 'Invalid earning rule', message, [{ field, message }]);
}

const NO_RULES: RulesByProgram = new Map();

/** The services earning calls: the ledger for points, programs and cards for pending points. */
export interface EarningDeps {
  ledger: LedgerService;
  programs: ProgramService;
  members: MemberService;
}

/** A row that must exist (its owner keeps it while pending points refer to it). */
function must<T>(row: T | undefined, what: string, id: string): T {
  if (!row) throw new Error(`pending points refer to a missing ${what} ${id}`);
  return row;
}

export class EarningService {
  private cache: { byEvent: Map<string, Map<string, CompiledRule[]>>; loadedAt: number } | null = null;
  /** Bumped by every invalidation: a load that started before one is not kept. */
  private cacheVersion = 0;
  constructor(
    private ctx: AppContext,
    private deps: EarningDeps,
  ) {
    ctx.caches.on('earning-rules', () => this.dropCache());
  }

  registerJobs(): void {
    this.ctx.scheduler.register('earning.activate_pending', async (job, trx) => {
      await this.activatePending(trx, String(job.payload.pending_points_id), { manual: false });
    });
  }

  private dropCache(): void {
    this.cache = null;
    this.cacheVersion++;
  }

  /** The rules changed in `db`'s transaction: here now, in the other processes when it commits. */
  async invalidate(db?: Executor): Promise<void> {
    this.dropCache();
    await this.ctx.caches.changed('earning-rules', undefined, db);
  }

  /** Enabled rules listening to `event`, per program (compiled once, cached for RULE_CACHE_TTL_MS). */
  async rulesFor(db: Executor, event: string): Promise<RulesByProgram> {
    let cache = this.cache;
    if (!cache || performance.now() - cache.loadedAt >= RULE_CACHE_TTL_MS) {
      const version = this.cacheVersion;
      const rows = await db
        .selectFrom('earning_rules')
        .selectAll()
        .where('active', '=', 1)
        .orderBy('created_at')
        .orderBy('id')
        .execute();
      const byEvent = new Map<string, Map<string, CompiledRule[]>>();
      for (const row of rows) {
        const def = fromJson<RuleDefinition>(row.definition, {} as RuleDefinition);
        let byProgram = byEvent.get(row.event);
        if (!byProgram) {
          byProgram = new Map();
          byEvent.set(row.event, byProgram);
        }
        let list = byProgram.get(row.program_id);
        if (!list) {
          list = [];
          byProgram.set(row.program_id, list);
        }
        list.push({ row, def, check: compileConditions(def.conditions) });
      }
      cache = { byEvent, loadedAt: performance.now() };
      if (version === this.cacheVersion) this.cache = cache;
    }
    return cache.byEvent.get(event) ?? NO_RULES;
  }

  // ---- CRUD ----

  validate(def: RuleDefinition, field: string): void {
    if (!def.event) throw bad('event is required', `${field}.event`);
    if (!def.loyalty) throw bad('loyalty is required', `${field}.loyalty`);
    const l = validateLoyalty(def.loyalty);
    if (l) throw bad(l, `${field}.loyalty`);
    const w = validateWindow(def, '');
    if (w) throw bad(w, field);
    for (const [i, m] of (def.multipliers ?? []).entries()) {
      const e = validateWindow(m, `multipliers[${i}].`);
      if (e) throw bad(e, `${field}.multipliers[${i}]`);
    }
    if (def.conditions) {
      const c = validateConditions(def.conditions);
      if (c) throw bad(c, `${field}.conditions`);
    }
    if (def.expiration_rules) {
      const e = validateExpirationRules(def.expiration_rules as unknown as ExpirationRules);
      if (e) throw bad(e, `${field}.expiration_rules`);
    }
    const periods = new Set<string>();
    for (const l of def.limits ?? []) {
      if (periods.has(l.period)) throw bad(`limits: one limit per period (${l.period} given twice)`, `${field}.limits`);
      periods.add(l.period);
    }
  }

  async create(db: Executor, program: ProgramRow, inputs: RuleDefinition[]): Promise<EarningRuleRow[]> {
    const now = this.ctx.clock.nowIso();
    const rows = inputs.map((input, i) => {
      this.validate(input, `[${i}]`);
      const { active, event, ...rest } = input;
      return {
        id: newId('ern'),
        program_id: program.id,
        event,
        active: active === false ? 0 : 1,
        definition: JSON.stringify({ ...rest, event }),
        created_at: now,
        updated_at: null,
      } satisfies EarningRuleRow;
    });
    if (rows.length) await db.insertInto('earning_rules').values(rows).execute();
    await this.invalidate(db);
    return rows;
  }

  async get(db: Executor, program: ProgramRow, id: string): Promise<EarningRuleRow> {
    const row = await db
      .selectFrom('earning_rules')
      .selectAll()
      .where('program_id', '=', program.id)
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw notFound('earning rule', id);
    return row;
  }

  /** The rules with these ids (of one program when `programId` is given); unknown ids are left out. */
  async byIds(db: Executor, ids: readonly string[], programId?: string): Promise<EarningRuleRow[]> {
    if (ids.length === 0) return [];
    let q = db
      .selectFrom('earning_rules')
      .selectAll()
      .where('id', 'in', [...ids]);
    if (programId) q = q.where('program_id', '=', programId);
    return q.execute();
  }

  async list(db: Executor, program: ProgramRow, q: { limit: number; page: number; order?: string }) {
    const base = db.selectFrom('earning_rules').where('program_id', '=', program.id);
    const desc = q.order?.startsWith('-') ?? false;
    const col = q.order?.replace(/^-/, '') === 'updated_at' ? 'updated_at' : 'created_at';
    return pageByNumber(base, q, (b) =>
      b
        .selectAll()
        .orderBy(col, desc ? 'desc' : 'asc')
        .orderBy('id', desc ? 'desc' : 'asc'),
    );
  }

  async update(db: Executor, row: EarningRuleRow, input: Partial<RuleDefinition>): Promise<EarningRuleRow> {
    const current = fromJson<RuleDefinition>(row.definition, {} as RuleDefinition);
    const { active, ...rest } = input;
    const merged: RuleDefinition = { ...current, ...rest, event: rest.event ?? row.event };
    for (const [k, v] of Object.entries(merged))
      if (v === null) delete (merged as unknown as Record<string, unknown>)[k];
    this.validate(merged, 'body');
    const patch = {
      event: merged.event,
      definition: JSON.stringify(merged),
      active: active === undefined ? row.active : active ? 1 : 0,
      updated_at: this.ctx.clock.nowIso(),
    };
    await db.updateTable('earning_rules').set(patch).where('id', '=', row.id).execute();
    await this.invalidate(db);
    return { ...row, ...patch };
  }

  async setActive(db: Executor, row: EarningRuleRow, active: boolean): Promise<EarningRuleRow> {
    const patch = { active: active ? 1 : 0, updated_at: this.ctx.clock.nowIso() };
    await db.updateTable('earning_rules').set(patch).where('id', '=', row.id).execute();
    await this.invalidate(db);
    return { ...row, ...patch };
  }

  async remove(db: Executor, row: EarningRuleRow): Promise<void> {
    await db.deleteFrom('earning_rules').where('id', '=', row.id).execute();
    await db.deleteFrom('earning_rule_usage').where('earning_rule_id', '=', row.id).execute();
    await this.invalidate(db);
  }

  // ---- accrual ----

  /**
   * Applies the program's `rules` to one activity of one card, in the caller's transaction.
   * Order: window → tier condition → conditions → base points → tier mapping (CUSTOM, then
   * MULTIPLY) → time multipliers → floor → caps → pending or accrued.
   */
  async accrue(
    trx: Executor,
    card: AccrualCard,
    rules: readonly CompiledRule[],
    facts: ActivityFacts,
    activity: ActivityRef,
  ): Promise<{ accruals: Accrual[]; skipped: Skip[] }> {
    const { program, membership, definition } = card;
    const accruals: Accrual[] = [];
    const skipped: Skip[] = [];
    const at = this.ctx.clock.now();
    const zone = program.timezone;
    const pt = facts.tierIds.length ? (card.tiers ?? null) : null;
    const holderTier = pt
      ? (pt.tierById.get(facts.tierIds.find((id) => pt.tierById.get(id)?.group.is_default === 1) ?? facts.tierIds[0])
          ?.tier ?? null)
      : null;
    // PostgreSQL: the card's balance row is locked once, by the first rule with caps or pending
    // points; the ledger reuses the row read with that lock as long as nothing changed it since.
    let balanceLocked = false;
    let lockedBalance: BalanceRow | undefined;
    const credits: Credit[] = [];
    for (const rule of rules) {
      const def = rule.def;
      const skip = (reason: string) => skipped.push({ campaign_id: program.id, earning_rule_id: rule.row.id, reason });
      if (!windowOpen(def, at, zone)) {
        skip('outside the rule validity window');
        continue;
      }
      if (def.loyalty_tier?.id) {
        const ok =
          def.loyalty_tier.id === '__ANY__' ? facts.tierIds.length > 0 : facts.tierIds.includes(def.loyalty_tier.id);
        if (!ok) {
          skip(`member is not in tier ${def.loyalty_tier.id}`);
          continue;
        }
      }
      const failed = rule.check(facts);
      if (failed) {
        skip(`condition on ${failed} does not hold`);
        continue;
      }
      const calc: Calculation = basePoints(def.loyalty, facts);
      const steps: string[] = [];
      steps.push(
        calc.type === 'FIXED'
          ? `${calc.points} fixed points`
          : `${calc.points_per_every} points for every ${calc.every} of ${calc.calculation_type}` +
              `${calc.property ? ` (${calc.property})` : ''} = ${calc.value} → ${calc.points}`,
      );
      let points = calc.points;
      const multipliers: Record<string, unknown>[] = [];
      let mappedTier: { id: string; name: string } | null = null;
      if (pt) {
        // Tier benefits: CUSTOM replaces the points, MULTIPLY multiplies them.
        for (const kind of ['CUSTOM', 'MULTIPLY'] as const) {
          for (const tierId of facts.tierIds) {
            const t = pt.tierById.get(tierId);
            const m = t?.mapping[rule.row.id];
            if (!t || !m || m.type !== kind) continue;
            mappedTier = tierRef(t.tier);
            if (m.type === 'CUSTOM') {
              points = m.points;
              steps.push(`tier ${t.tier.name}: ${m.points} points instead`);
              multipliers.push({ type: 'TIER', loyalty_tier: tierRef(t.tier), mapping: m });
            } else {
              points *= m.multiplier;
              steps.push(`× ${m.multiplier} (tier ${t.tier.name})`);
              multipliers.push({ type: 'TIER', loyalty_tier: tierRef(t.tier), mapping: m });
            }
          }
        }
      }
      for (const m of def.multipliers ?? []) {
        if (!windowOpen(m, at, zone)) continue;
        points *= m.multiplier;
        steps.push(`× ${m.multiplier} (${m.name ?? 'time window'})`);
        multipliers.push({ type: 'TIME', name: m.name ?? null, multiplier: m.multiplier });
      }
      points = Math.floor(points);
      if (points <= 0) {
        skip(calc.points <= 0 ? 'the calculation gives no points' : 'no points after tier mapping');
        continue;
      }
      if (!balanceLocked && this.ctx.database.forUpdate && (def.limits?.length || def.pending_points)) {
        // Serialises this card's caps and pending counters across concurrent requests (PostgreSQL).
        lockedBalance = (await this.deps.ledger.lockBalance(trx, { program, membership, definition })).row;
        balanceLocked = true;
      }
      let capped: Record<string, unknown> | null = null;
      if (def.limits?.length) {
        // Optimistic: add the points to each period's usage and read the totals back (one statement
        // per limit); when a total passes its cap, take the excess back from every period.
        const wanted = points;
        const totals: { limit: (typeof def.limits)[number]; key: string; total: number }[] = [];
        for (const limit of def.limits) {
          const key = `${limit.period}:${periodKey(limit.period, at, zone)}`;
          const [row] = await hot(trx, 'earning.addUsage', [rule.row.id, membership.id, key, wanted, wanted], () =>
            trx
              .insertInto('earning_rule_usage')
              .values({ earning_rule_id: rule.row.id, membership_id: membership.id, period_key: key, points: wanted })
              .onConflict((oc) =>
                oc
                  .columns(['earning_rule_id', 'membership_id', 'period_key'])
                  .doUpdateSet({ points: sql`earning_rule_usage.points + ${wanted}` }),
              )
              .returning('points'),
          );
          totals.push({ limit, key, total: Number(row.points) });
        }
        let excess = 0;
        for (const { limit, key, total } of totals) {
          const over = Math.min(wanted, total - limit.max_points);
          if (over > excess) {
            excess = over;
            capped = { period: limit.period, max_points: limit.max_points, period_key: key, before_cap: wanted };
          }
        }
        if (excess > 0) {
          points = wanted - excess;
          for (const { key } of totals) {
            await trx
              .updateTable('earning_rule_usage')
              .set({ points: sql`points - ${excess}` })
              .where('earning_rule_id', '=', rule.row.id)
              .where('membership_id', '=', membership.id)
              .where('period_key', '=', key)
              .execute();
          }
        }
        if (points <= 0) {
          skip(`cap of ${capped!.max_points} points per ${String(capped!.period).toLowerCase()} reached`);
          continue;
        }
        if (capped) steps.push(`capped to ${points} (${capped.max_points} per ${String(capped.period).toLowerCase()})`);
      }
      const explanation = `${steps.join(' ')} = ${points} points`;
      const details: Record<string, unknown> = {
        earning_rule: { id: rule.row.id, source: { banner: def.source?.banner ?? null }, event: rule.row.event },
        event: activity.event,
        ...(activity.order ? { order: activity.order } : {}),
        loyalty_tier: mappedTier,
        holder_loyalty_tier: tierRef(holderTier),
        multipliers,
        calculation: { ...calc, base_points: calc.points, points, ...(capped ? { cap: capped } : {}) },
        explanation,
      };
      if (def.pending_points) {
        const activatesAt = DateTime.fromJSDate(at, { zone })
          .plus({ days: def.pending_points.period_value })
          .toUTC()
          .toISO()!;
        const pending = await this.addPending(
          trx,
          program,
          membership,
          definition,
          rule.row.id,
          activity.order_id ?? null,
          points,
          activatesAt,
          details,
        );
        lockedBalance = undefined;
        accruals.push({
          campaign_id: program.id,
          voucher_id: membership.id,
          code: membership.code,
          earning_rule_id: rule.row.id,
          points,
          status: 'PENDING',
          pending_points_id: pending.id,
          activates_at: activatesAt,
          explanation,
        });
        continue;
      }
      credits.push({
        rule,
        points,
        details,
        explanation,
        expiration: (def.expiration_rules as unknown as ExpirationRules | undefined) ?? null,
      });
    }
    // One ledger entry per card and activity (per distinct expiration rules): its details list every
    // rule that contributed, with its calculation, multipliers and tier mapping.
    const groups = new Map<string, typeof credits>();
    for (const c of credits) {
      const k = JSON.stringify(c.expiration);
      groups.set(k, [...(groups.get(k) ?? []), c]);
    }
    for (const group of groups.values()) {
      const total = group.reduce((s, c) => s + c.points, 0);
      const first = group[0];
      const details: Record<string, unknown> =
        group.length === 1
          ? { ...first.details, earning_rules: [ruleDetail(first)] }
          : {
              earning_rule: first.details.earning_rule,
              earning_rules: group.map(ruleDetail),
              event: activity.event,
              ...(activity.order ? { order: activity.order } : {}),
              loyalty_tier: group.map((c) => c.details.loyalty_tier).find(Boolean) ?? null,
              holder_loyalty_tier: tierRef(holderTier),
              multipliers: group.flatMap((c) =>
                (c.details.multipliers as Record<string, unknown>[]).map((m) => ({
                  ...m,
                  earning_rule_id: c.rule.row.id,
                })),
              ),
              calculation: { type: 'SUM', points: total },
              explanation: group
                .map((c) => `${c.rule.def.source?.banner ?? c.rule.row.id}: ${c.explanation}`)
                .join('; '),
            };
      const result = await this.deps.ledger.applyChange(trx, {
        program,
        membership,
        definition,
        points: total,
        type: 'POINTS_ACCRUAL',
        operation_type: 'AUTOMATIC',
        reason: group.map((c) => c.rule.def.source?.banner ?? `Earning rule ${c.rule.row.id}`).join(', '),
        source: 'earning_rule',
        source_id: activity.source_event_id,
        source_event_id: activity.source_event_id ?? activity.id,
        details,
        expiration_rules: first.expiration,
        customer: card.holder,
        locked_balance: lockedBalance,
      });
      lockedBalance = undefined;
      for (const c of group) {
        accruals.push({
          campaign_id: program.id,
          voucher_id: membership.id,
          code: membership.code,
          earning_rule_id: c.rule.row.id,
          points: c.points,
          status: 'ACCRUED',
          transaction_id: result.entry.id,
          explanation: c.explanation,
        });
      }
    }
    return { accruals, skipped };
  }

  // ---- pending points ----

  private async addPending(
    trx: Executor,
    program: ProgramRow,
    membership: MembershipRow,
    definition: BalanceDefinitionRow,
    ruleId: string,
    orderId: string | null,
    points: number,
    activatesAt: string,
    details: Record<string, unknown>,
  ): Promise<PendingPointsRow> {
    const now = this.ctx.clock.nowIso();
    await this.deps.ledger.lockBalance(trx, { program, membership, definition });
    const row: PendingPointsRow = {
      id: newId('pp'),
      program_id: program.id,
      membership_id: membership.id,
      customer_id: membership.customer_id,
      balance_definition_id: definition.id,
      earning_rule_id: ruleId,
      order_id: orderId,
      points,
      status: 'PENDING',
      activates_at: activatesAt,
      details: JSON.stringify(details),
      created_at: now,
      updated_at: null,
    };
    await trx.insertInto('pending_points').values(row).execute();
    await this.bumpPending(trx, membership.id, definition.id, points);
    await this.ctx.scheduler.schedule(trx, {
      kind: 'earning.activate_pending',
      runAt: activatesAt,
      payload: { pending_points_id: row.id },
      uniqueKey: `pending_points:${row.id}`,
    });
    return row;
  }

  private async bumpPending(trx: Executor, membershipId: string, definitionId: string, delta: number) {
    await this.deps.ledger.addPendingPoints(trx, membershipId, definitionId, delta);
  }

  async getPending(db: Executor, membership: MembershipRow, id: string): Promise<PendingPointsRow> {
    const row = await db
      .selectFrom('pending_points')
      .selectAll()
      .where('id', '=', id)
      .where('membership_id', '=', membership.id)
      .executeTakeFirst();
    if (!row) throw notFound('pending points', id);
    return row;
  }

  private async lockPending(trx: Executor, id: string) {
    let q = trx.selectFrom('pending_points').selectAll().where('id', '=', id);
    if (this.ctx.database.forUpdate) q = q.forUpdate();
    return q.executeTakeFirst();
  }

  private notPending(row: PendingPointsRow) {
    return invalid(
      'pending_points_not_pending',
      'Pending points are not pending',
      `Pending points ${row.id} are ${row.status.toLowerCase()}`,
    );
  }

  /** Moves pending points onto the balance (on time by the scheduler, or early by hand). */
  async activatePending(trx: Executor, id: string, opts: { manual: boolean }): Promise<ChangeResult | null> {
    const row = await this.lockPending(trx, id);
    if (!row) return null;
    if (row.status !== 'PENDING') {
      if (opts.manual) throw this.notPending(row);
      return null;
    }
    // The card, its program (even if deleted since) and the definition outlive pending points.
    const membership = must(await this.deps.members.find(trx, row.membership_id), 'card', row.membership_id);
    const program = must(await this.deps.programs.findAny(trx, row.program_id), 'program', row.program_id);
    const definition = await this.deps.programs.definition(trx, program.id, row.balance_definition_id);
    const now = this.ctx.clock.nowIso();
    await this.deps.ledger.lockBalance(trx, { program, membership, definition });
    await this.bumpPending(trx, membership.id, definition.id, -Number(row.points));
    if (membership.status !== 'ACTIVE' && !opts.manual) {
      // The card was revoked while the points were pending: they lapse.
      await trx
        .updateTable('pending_points')
        .set({ status: 'CANCELED', updated_at: now })
        .where('id', '=', row.id)
        .execute();
      return null;
    }
    await trx
      .updateTable('pending_points')
      .set({ status: 'ACTIVATED', updated_at: now })
      .where('id', '=', row.id)
      .execute();
    if (opts.manual) await this.ctx.scheduler.cancel(trx, `pending_points:${row.id}`);
    const rule = row.earning_rule_id
      ? await trx
          .selectFrom('earning_rules')
          .select('definition')
          .where('id', '=', row.earning_rule_id)
          .executeTakeFirst()
      : undefined;
    const def = rule ? fromJson<RuleDefinition>(rule.definition, {} as RuleDefinition) : null;
    const details = fromJson<Record<string, unknown>>(row.details, {});
    return this.deps.ledger.applyChange(trx, {
      program,
      membership,
      definition,
      points: Number(row.points),
      type: 'POINTS_ACCRUAL',
      operation_type: opts.manual ? 'MANUAL' : 'AUTOMATIC',
      reason: 'Pending points activated',
      source: 'pending_points',
      source_id: row.id,
      source_event_id: row.id,
      details: {
        ...details,
        pending_points: { id: row.id, created_at: row.created_at, activates_at: row.activates_at },
      },
      expiration_rules: (def?.expiration_rules as unknown as ExpirationRules | undefined) ?? null,
    });
  }

  async cancelPending(trx: Executor, membership: MembershipRow, id: string): Promise<void> {
    await this.getPending(trx, membership, id);
    const row = (await this.lockPending(trx, id))!;
    if (row.status !== 'PENDING') throw this.notPending(row);
    await trx
      .updateTable('pending_points')
      .set({ status: 'CANCELED', updated_at: this.ctx.clock.nowIso() })
      .where('id', '=', id)
      .execute();
    await this.bumpPending(trx, row.membership_id, row.balance_definition_id, -Number(row.points));
    await this.ctx.scheduler.cancel(trx, `pending_points:${id}`);
  }

  /** Adds to (or, negative, takes from) pending points; the result must stay above zero. */
  async adjustPending(trx: Executor, membership: MembershipRow, id: string, delta: number) {
    await this.getPending(trx, membership, id);
    const row = (await this.lockPending(trx, id))!;
    if (row.status !== 'PENDING') throw this.notPending(row);
    const next = Number(row.points) + delta;
    if (next <= 0)
      throw invalid(
        'invalid_points',
        'Invalid points',
        `Pending points ${id} hold ${row.points}; the result of ${delta} would be ${next}, it must stay above 0`,
        [{ field: 'points', message: 'result must be > 0' }],
      );
    await trx
      .updateTable('pending_points')
      .set({ points: next, updated_at: this.ctx.clock.nowIso() })
      .where('id', '=', id)
      .execute();
    await this.bumpPending(trx, row.membership_id, row.balance_definition_id, delta);
    const total = await this.deps.ledger.pendingPoints(trx, row.membership_id, row.balance_definition_id);
    return {
      points: delta,
      total,
      object: 'balance' as const,
      related_object: { type: 'voucher' as const, id: row.membership_id },
      operation_type: 'MANUAL' as const,
    };
  }

  async listPending(
    db: Executor,
    filter: { programId?: string; membershipId?: string },
    q: { limit: number; order?: string; starting_after_id?: string },
  ) {
    let base = db.selectFrom('pending_points').selectAll();
    if (filter.programId) base = base.where('program_id', '=', filter.programId);
    if (filter.membershipId) base = base.where('membership_id', '=', filter.membershipId);
    const desc = q.order === '-id' || q.order === '-created_at';
    if (q.starting_after_id) {
      const cursor = await db
        .selectFrom('pending_points')
        .select(['created_at', 'id'])
        .where('id', '=', q.starting_after_id)
        .executeTakeFirst();
      if (!cursor)
        throw invalid(
          'invalid_cursor',
          'Invalid cursor',
          `starting_after_id ${q.starting_after_id} is not a pending points id`,
        );
      base = base.where((eb) =>
        desc
          ? eb.or([
              eb('created_at', '<', cursor.created_at),
              eb.and([eb('created_at', '=', cursor.created_at), eb('id', '<', cursor.id)]),
            ])
          : eb.or([
              eb('created_at', '>', cursor.created_at),
              eb.and([eb('created_at', '=', cursor.created_at), eb('id', '>', cursor.id)]),
            ]),
      );
    }
    const rows = await base
      .orderBy('created_at', desc ? 'desc' : 'asc')
      .orderBy('id', desc ? 'desc' : 'asc')
      .limit(q.limit + 1)
      .execute();
    const has_more = rows.length > q.limit;
    const data = rows.slice(0, q.limit);
    return { data, has_more, more_starting_after: has_more ? data[data.length - 1].id : null };
  }

  // ---- orders ----

  async findOrder(db: Executor, idOrSource: string): Promise<OrderRow | undefined> {
    return db
      .selectFrom('orders')
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', idOrSource), eb('source_id', '=', idOrSource)]))
      .executeTakeFirst();
  }

  /** Rewrites `prior` with `row`, or inserts a new order (the same new order posted twice at once: LostRace). */
  async saveOrder(db: Executor, row: OrderRow, prior?: OrderRow): Promise<void> {
    if (prior) {
      await db.updateTable('orders').set(row).where('id', '=', prior.id).execute();
      return;
    }
    try {
      await db.insertInto('orders').values(row).execute();
    } catch (err) {
      // Running again finds the first one.
      lostRaceOn(err);
    }
  }
}

/** What an activity earned: the answer of its ingestion, stored with its key. */
export interface EarnedSummary {
  points: number;
  pending_points: number;
  accruals: Accrual[];
  skipped: Skip[];
}

export function presentOrder(o: OrderRow, earned?: EarnedSummary | null) {
  return {
    id: o.id,
    source_id: o.source_id,
    status: o.status,
    amount: o.amount === null ? null : Number(o.amount),
    discount_amount: o.discount_amount === null ? null : Number(o.discount_amount),
    total_amount: o.total_amount === null ? null : Number(o.total_amount),
    items: fromJson(o.items, []),
    metadata: fromJson(o.metadata, {}),
    customer: o.customer_id ? { id: o.customer_id, object: 'customer' as const } : null,
    customer_id: o.customer_id,
    created_at: o.created_at,
    updated_at: o.updated_at,
    paid_at: o.paid_at,
    ...(earned ? { earned } : {}),
    object: 'order' as const,
  };
}
