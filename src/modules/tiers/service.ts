import { SharedTtlCache } from '../../lib/ttl-cache.ts';
import { DateTime } from 'luxon';
import type { AppContext } from '../../context.ts';
import { conflict, invalid, notFound } from '../../lib/errors.ts';
import { newId, randomString } from '../../lib/ids.ts';
import { fromJson, toJson } from '../../lib/json.ts';
import type { Executor } from '../../storage/database.ts';
import { hot } from '../../storage/hot.ts';
import type { EarningService } from '../earning/service.ts';
import type { BalanceChange, BalanceChangeListener, ChangeResult, LedgerService } from '../ledger/service.ts';
import { programRef, type ProgramRow, type ProgramService } from '../loyalties/service.ts';
import type { MemberService, MembershipRow } from '../members/service.ts';
import { DEFAULT_POLICY, extend, periodBounds, validatePolicy, type TierPolicy } from './policy.ts';
import type { TierGroupInput, TierInput, TierMapping } from './schemas.ts';
import type { MemberTiersTable, TierGroupsTable, TierStrategy, TiersTable } from './tables.ts';
import './tables.ts';

// Tier groups and tiers, and the member's tier in each group. A member moves up in the very
// transaction that crosses a threshold: `onBalanceChange` is a ledger listener. Downgrades follow
// the policy (`loyalty_tiers_expiration`): at once on a balance drop, or at the end of a period by a
// scheduled `tiers.evaluate` job.

export type TierRow = TiersTable;
export type TierGroupRow = TierGroupsTable;
export type MemberTierRow = MemberTiersTable;
export type { TierGroupInput, TierInput, TierMapping };

export interface GroupTiers {
  group: TierGroupRow;
  /** Sorted by points.from ascending: the index is the rank. */
  tiers: TierRow[];
}

export interface ProgramTiers {
  groups: GroupTiers[];
  tierById: Map<string, { tier: TierRow; group: TierGroupRow; mapping: Record<string, TierMapping> }>;
  hasTiers: boolean;
}

export const tierRef = (t: TierRow | null | undefined) => (t ? { id: t.id, name: t.name } : null);
export const groupRef = (g: TierGroupRow) => ({ id: g.id, name: g.name });

export function presentTier(t: TierRow, group?: TierGroupRow, expiration?: Record<string, unknown> | null) {
  const points = { from: Number(t.points_from), to: t.points_to === null ? null : Number(t.points_to) };
  return {
    id: t.id,
    name: t.name,
    campaign_id: t.program_id,
    metadata: fromJson(t.metadata, {}),
    earning_rules: fromJson(t.earning_rules, {}),
    rewards: fromJson(t.rewards, {}),
    points,
    config: { points },
    tier_group: group ? groupRef(group) : { id: t.tier_group_id },
    ...(expiration !== undefined ? { expiration } : {}),
    created_at: t.created_at,
    updated_at: t.updated_at,
    object: 'loyalty_tier' as const,
  };
}

export function presentGroup(g: TierGroupRow, tiers: TierRow[] = []) {
  return {
    id: g.id,
    campaign_id: g.program_id,
    name: g.name,
    default: g.is_default === 1,
    balance_definition_id: g.balance_definition_id,
    loyalty_tiers_expiration: fromJson(g.qualification, null),
    metadata: fromJson(g.metadata, {}),
    reminders: fromJson(g.reminders ?? null, []),
    upgrade_strategy: g.upgrade_strategy ?? 'real_time',
    downgrade_strategy: g.downgrade_strategy ?? 'real_time',
    tiers: tiers.map((t) => ({
      id: t.id,
      name: t.name,
      points: { from: Number(t.points_from), to: t.points_to === null ? null : Number(t.points_to) },
    })),
    created_at: g.created_at,
    updated_at: g.updated_at,
    object: 'tier_group' as const,
  };
}

function rankOf(g: GroupTiers, tierId: string | null | undefined): number {
  if (!tierId) return -1;
  return g.tiers.findIndex((t) => t.id === tierId);
}

/** The highest tier whose threshold the value reaches (tiers sorted ascending). */
export function tierFor(tiers: TierRow[], value: number): TierRow | null {
  for (let i = tiers.length - 1; i >= 0; i--) if (value >= Number(tiers[i].points_from)) return tiers[i];
  return null;
}

const CREDIT_TYPES = ['POINTS_ACCRUAL', 'POINTS_ADDITION'];

/** The services tiers call: programs and cards, the ledger's balances, the earning rules tiers map. */
export interface TierDeps {
  programs: ProgramService;
  members: MemberService;
  ledger: LedgerService;
  earning: EarningService;
  /** Called in the transaction of every tier change (the time engine restarts tier anniversaries). */
  onTierChange?: (trx: Executor, change: TierChangeNotice) => Promise<void>;
  /** A tier group's reminders changed (the time engine re-plans the program's cards). */
  onRemindersChanged?: (trx: Executor, programId: string) => Promise<void>;
}

/** A member's new tier in a group (null: none), from `attributedAt`. */
export interface TierChangeNotice {
  program: ProgramRow;
  membership: MembershipRow;
  group: TierGroupRow;
  tier: TierRow | null;
  attributedAt: string;
}

/** The anniversaries at which a strategy other than real_time applies tier changes. */
export type TierOccasion = Exclude<TierStrategy, 'real_time'>;

export class TierService {
  /** Tier configurations per program; a change clears them in every process (cache-bus.ts). */
  private cache: SharedTtlCache<ProgramTiers>;
  constructor(
    private ctx: AppContext,
    private deps: TierDeps,
  ) {
    this.cache = new SharedTtlCache(ctx.caches, 'tiers', 5000);
  }

  /** The ledger's listener (services.ts passes it to LedgerService): members move up in the change's transaction. */
  readonly balanceListener: BalanceChangeListener = (trx, change, result) => this.onBalanceChange(trx, change, result);

  registerJobs(): void {
    this.ctx.scheduler.register('tiers.evaluate', async (job, trx) => {
      const membership = await this.deps.members.find(trx, String(job.payload.membership_id));
      if (!membership) return;
      const program = await this.deps.programs.findAny(trx, membership.program_id);
      if (!program) return;
      const pt = await this.programTiers(trx, program.id);
      const g = pt.groups.find((x) => x.group.id === job.payload.tier_group_id);
      if (g) await this.evaluate(trx, program, membership, g, { sourceEventId: job.id });
    });
  }

  /** `db`: the transaction of the change (the other processes hear of it when it commits). */
  async invalidate(programId: string, db?: Executor): Promise<void> {
    await this.cache.invalidate(programId, db);
  }

  async programTiers(db: Executor, programId: string): Promise<ProgramTiers> {
    const hit = this.cache.get(programId);
    if (hit) return hit;
    const version = this.cache.version;
    const groups = await db
      .selectFrom('tier_groups')
      .selectAll()
      .where('program_id', '=', programId)
      .orderBy('is_default', 'desc')
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    const tiers = groups.length
      ? await db
          .selectFrom('tiers')
          .selectAll()
          .where('program_id', '=', programId)
          .orderBy('points_from')
          .orderBy('id')
          .execute()
      : [];
    const out: ProgramTiers = { groups: [], tierById: new Map(), hasTiers: tiers.length > 0 };
    for (const group of groups) {
      const mine = tiers.filter((t) => t.tier_group_id === group.id);
      out.groups.push({ group, tiers: mine });
      for (const tier of mine)
        out.tierById.set(tier.id, {
          tier,
          group,
          mapping: fromJson<Record<string, TierMapping>>(tier.earning_rules, {}),
        });
    }
    return this.cache.setIfUnchanged(programId, out, version);
  }

  policyFor(program: ProgramRow, group: TierGroupRow): TierPolicy {
    const own = fromJson<TierPolicy | null>(group.qualification, null);
    if (own) return own;
    const extra = fromJson<Record<string, unknown>>(program.extra, {});
    return (extra.loyalty_tiers_expiration as TierPolicy | undefined) ?? DEFAULT_POLICY;
  }

  // ---- groups ----

  /** The program's tier groups as stored now (not from the cache: the caller's transaction may have added one). */
  async groupsOf(db: Executor, programId: string): Promise<TierGroupRow[]> {
    return db.selectFrom('tier_groups').selectAll().where('program_id', '=', programId).execute();
  }

  async defaultGroup(db: Executor, program: ProgramRow): Promise<TierGroupRow> {
    const found = await db
      .selectFrom('tier_groups')
      .selectAll()
      .where('program_id', '=', program.id)
      .where('is_default', '=', 1)
      .executeTakeFirst();
    if (found) return found;
    const now = this.ctx.clock.nowIso();
    const row: TierGroupRow = {
      id: newId('tgrp'),
      program_id: program.id,
      name: 'Default',
      is_default: 1,
      balance_definition_id: null,
      qualification: null,
      metadata: toJson({}),
      created_at: now,
      updated_at: null,
    };
    await db
      .insertInto('tier_groups')
      .values(row)
      .onConflict((oc) => oc.doNothing())
      .execute();
    await this.invalidate(program.id, db);
    return (await db
      .selectFrom('tier_groups')
      .selectAll()
      .where('program_id', '=', program.id)
      .where('is_default', '=', 1)
      .executeTakeFirst())!;
  }

  private async checkGroupInput(db: Executor, program: ProgramRow, input: TierGroupInput) {
    if (input.loyalty_tiers_expiration) {
      const err = validatePolicy(input.loyalty_tiers_expiration);
      if (err)
        throw invalid('invalid_tier_policy', 'Invalid loyalty_tiers_expiration', err, [
          { field: 'loyalty_tiers_expiration', message: err },
        ]);
    }
    if (input.balance_definition_id) {
      const d = await this.deps.programs.definition(db, program.id, input.balance_definition_id);
      input.balance_definition_id = d.is_default === 1 ? null : d.id;
    }
  }

  async createGroup(db: Executor, program: ProgramRow, input: TierGroupInput): Promise<TierGroupRow> {
    await this.defaultGroup(db, program);
    await this.checkGroupInput(db, program, input);
    const taken = await db
      .selectFrom('tier_groups')
      .select('id')
      .where('program_id', '=', program.id)
      .where('name', '=', input.name!)
      .executeTakeFirst();
    if (taken)
      throw conflict(
        'duplicate_tier_group',
        'Duplicated tier group',
        `The program already has a tier group named "${input.name}"`,
      );
    const row: TierGroupRow = {
      id: newId('tgrp'),
      program_id: program.id,
      name: input.name!,
      is_default: 0,
      balance_definition_id: input.balance_definition_id ?? null,
      qualification: toJson(input.loyalty_tiers_expiration ?? null),
      metadata: toJson(input.metadata ?? {}),
      created_at: this.ctx.clock.nowIso(),
      updated_at: null,
      reminders: toJson(input.reminders ?? null),
      upgrade_strategy: input.upgrade_strategy ?? 'real_time',
      downgrade_strategy: input.downgrade_strategy ?? 'real_time',
    };
    await db.insertInto('tier_groups').values(row).execute();
    await this.invalidate(program.id, db);
    return row;
  }

  async updateGroup(
    db: Executor,
    program: ProgramRow,
    group: TierGroupRow,
    input: TierGroupInput,
  ): Promise<TierGroupRow> {
    await this.checkGroupInput(db, program, input);
    const patch: Partial<TierGroupRow> = { updated_at: this.ctx.clock.nowIso() };
    if (input.name !== undefined && input.name !== group.name) {
      const taken = await db
        .selectFrom('tier_groups')
        .select('id')
        .where('program_id', '=', program.id)
        .where('name', '=', input.name)
        .executeTakeFirst();
      if (taken)
        throw conflict(
          'duplicate_tier_group',
          'Duplicated tier group',
          `The program already has a tier group named "${input.name}"`,
        );
      patch.name = input.name;
    }
    if (input.balance_definition_id !== undefined) patch.balance_definition_id = input.balance_definition_id;
    if (input.loyalty_tiers_expiration !== undefined) patch.qualification = toJson(input.loyalty_tiers_expiration);
    if (input.metadata !== undefined) patch.metadata = toJson(input.metadata ?? {});
    if (input.reminders !== undefined) patch.reminders = toJson(input.reminders);
    if (input.upgrade_strategy !== undefined) patch.upgrade_strategy = input.upgrade_strategy;
    if (input.downgrade_strategy !== undefined) patch.downgrade_strategy = input.downgrade_strategy;
    await db.updateTable('tier_groups').set(patch).where('id', '=', group.id).execute();
    await this.invalidate(program.id, db);
    if (input.reminders !== undefined) await this.deps.onRemindersChanged?.(db, program.id);
    return { ...group, ...patch };
  }

  async getGroup(db: Executor, program: ProgramRow, id: string): Promise<TierGroupRow> {
    const row = await db
      .selectFrom('tier_groups')
      .selectAll()
      .where('program_id', '=', program.id)
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw notFound('tier group', id);
    return row;
  }

  // ---- tiers ----

  async createTiers(db: Executor, program: ProgramRow, inputs: TierInput[]): Promise<TierRow[]> {
    const dflt = await this.defaultGroup(db, program);
    const now = this.ctx.clock.nowIso();
    const rows: TierRow[] = [];
    const existing = await db.selectFrom('tiers').selectAll().where('program_id', '=', program.id).execute();
    for (const [i, input] of inputs.entries()) {
      const field = `[${i}]`;
      const group = input.tier_group_id ? await this.getGroup(db, program, input.tier_group_id) : dflt;
      const from = input.points.from;
      const to = input.points.to ?? null;
      if (to !== null && to < from)
        throw invalid('invalid_tier', 'Invalid tier', `${field}.points.to must be >= points.from`, [
          { field: `${field}.points.to`, message: 'must be >= points.from' },
        ]);
      const overlaps = [...existing, ...rows].find(
        (t) =>
          t.tier_group_id === group.id &&
          from <= (t.points_to === null ? Infinity : Number(t.points_to)) &&
          Number(t.points_from) <= (to ?? Infinity),
      );
      if (overlaps)
        throw conflict(
          'tier_overlap',
          'Tier ranges overlap',
          `${field} "${input.name}" (${from}-${to ?? '∞'}) overlaps tier "${overlaps.name}" of the same tier group`,
        );
      await this.checkMappings(db, program, input.earning_rules ?? {}, `${field}.earning_rules`);
      rows.push({
        id: newId('ltr'),
        program_id: program.id,
        tier_group_id: group.id,
        name: input.name,
        points_from: from,
        points_to: to,
        earning_rules: toJson(input.earning_rules ?? {}),
        rewards: toJson(input.rewards ?? {}),
        metadata: toJson(input.metadata ?? {}),
        created_at: now,
        updated_at: null,
      });
    }
    if (rows.length) await db.insertInto('tiers').values(rows).execute();
    await this.invalidate(program.id, db);
    return rows;
  }

  /** Changes a tier (name, range, mappings, metadata). Members move on their next balance change or evaluation. */
  async updateTier(db: Executor, program: ProgramRow, tier: TierRow, input: Partial<TierInput>): Promise<TierRow> {
    const from = input.points?.from ?? Number(tier.points_from);
    const to = input.points ? (input.points.to ?? null) : tier.points_to === null ? null : Number(tier.points_to);
    if (to !== null && to < from)
      throw invalid('invalid_tier', 'Invalid tier', 'points.to must be >= points.from', [
        { field: 'points.to', message: 'must be >= points.from' },
      ]);
    const others = await db
      .selectFrom('tiers')
      .selectAll()
      .where('tier_group_id', '=', tier.tier_group_id)
      .where('id', '!=', tier.id)
      .execute();
    const overlaps = others.find(
      (t) =>
        from <= (t.points_to === null ? Infinity : Number(t.points_to)) && Number(t.points_from) <= (to ?? Infinity),
    );
    if (overlaps)
      throw conflict(
        'tier_overlap',
        'Tier ranges overlap',
        `${from}-${to ?? '∞'} overlaps tier "${overlaps.name}" of the same tier group`,
      );
    if (input.earning_rules) await this.checkMappings(db, program, input.earning_rules, 'earning_rules');
    const patch: Partial<TierRow> = { points_from: from, points_to: to, updated_at: this.ctx.clock.nowIso() };
    if (input.name !== undefined) patch.name = input.name;
    if (input.earning_rules !== undefined) patch.earning_rules = toJson(input.earning_rules);
    if (input.rewards !== undefined) patch.rewards = toJson(input.rewards);
    if (input.metadata !== undefined) patch.metadata = toJson(input.metadata ?? {});
    await db.updateTable('tiers').set(patch).where('id', '=', tier.id).execute();
    await this.invalidate(program.id, db);
    return { ...tier, ...patch };
  }

  private async checkMappings(db: Executor, program: ProgramRow, mappings: Record<string, TierMapping>, field: string) {
    const ids = Object.keys(mappings);
    if (ids.length === 0) return;
    const known = new Set((await this.deps.earning.byIds(db, ids, program.id)).map((r) => r.id));
    for (const [ruleId, m] of Object.entries(mappings)) {
      if (!known.has(ruleId))
        throw invalid('invalid_tier', 'Invalid tier', `${field}: ${ruleId} is not an earning rule of this program`, [
          { field: `${field}.${ruleId}`, message: 'unknown earning rule' },
        ]);
      const ok =
        m &&
        ((m.type === 'MULTIPLY' && typeof m.multiplier === 'number' && m.multiplier > 0) ||
          (m.type === 'CUSTOM' && Number.isSafeInteger(m.points) && m.points >= 0));
      if (!ok)
        throw invalid(
          'invalid_tier',
          'Invalid tier',
          `${field}.${ruleId} must be {type: MULTIPLY, multiplier > 0} or {type: CUSTOM, points >= 0}`,
          [{ field: `${field}.${ruleId}`, message: 'invalid mapping' }],
        );
    }
  }

  async getTier(db: Executor, program: ProgramRow, id: string): Promise<TierRow> {
    const row = await db
      .selectFrom('tiers')
      .selectAll()
      .where('program_id', '=', program.id)
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw notFound('loyalty tier', id);
    return row;
  }

  // ---- members ----

  /** Ids of the member's current tiers (every group); no query at all when the program has no tiers. */
  async memberTierIds(db: Executor, programId: string, membershipId: string): Promise<string[]> {
    const pt = await this.programTiers(db, programId);
    if (!pt.hasTiers) return [];
    const rows = await hot(db, 'tiers.memberTierIds', [membershipId], () =>
      db.selectFrom('member_tiers').select('tier_id').where('membership_id', '=', membershipId),
    );
    return rows.map((r) => r.tier_id).filter((x): x is string => !!x);
  }

  async memberTiers(db: Executor, membership: MembershipRow) {
    const pt = await this.programTiers(db, membership.program_id);
    const rows = await db.selectFrom('member_tiers').selectAll().where('membership_id', '=', membership.id).execute();
    const out: { tier: TierRow; group: TierGroupRow; row: MemberTierRow }[] = [];
    for (const r of rows) {
      const t = r.tier_id ? pt.tierById.get(r.tier_id) : undefined;
      if (t) out.push({ tier: t.tier, group: t.group, row: r });
    }
    return out;
  }

  private async pointsIn(
    trx: Executor,
    membershipId: string,
    definitionId: string,
    from: DateTime,
    to: DateTime,
  ): Promise<number> {
    return this.deps.ledger.creditedBetween(trx, {
      membershipId,
      definitionId,
      types: CREDIT_TYPES,
      from: from.toUTC().toISO()!,
      to: to.toUTC().toISO()!,
    });
  }

  /** Evaluates every tier group of the program for one member (a new member gets its base tier at once). */
  async evaluateMember(
    trx: Executor,
    program: ProgramRow,
    membership: MembershipRow,
    sourceEventId: string,
  ): Promise<void> {
    const pt = await this.programTiers(trx, program.id);
    if (!pt.hasTiers) return;
    for (const g of pt.groups)
      if (g.tiers.length > 0) await this.evaluate(trx, program, membership, g, { sourceEventId });
  }

  private async onBalanceChange(trx: Executor, change: BalanceChange, result: ChangeResult): Promise<void> {
    const pt = await this.programTiers(trx, change.program.id);
    if (!pt.hasTiers) return;
    for (const g of pt.groups) {
      if (g.tiers.length === 0) continue;
      const matches = g.group.balance_definition_id
        ? g.group.balance_definition_id === change.definition.id
        : change.definition.is_default === 1;
      if (!matches) continue;
      await this.evaluate(trx, change.program, change.membership, g, {
        balance: Number(result.balance.balance),
        definitionId: change.definition.id,
        sourceEventId: change.source_event_id ?? change.source_id ?? result.entry.id,
      });
    }
  }

  /**
   * Recomputes the member's tier in one group and records a change: upgrades at once (or at the
   * next period start under NEXT_PERIOD), downgrades per the expiration policy.
   */
  async evaluate(
    trx: Executor,
    program: ProgramRow,
    membership: MembershipRow,
    g: GroupTiers,
    opts: { balance?: number; definitionId?: string; sourceEventId: string; occasion?: TierOccasion },
  ): Promise<void> {
    const policy = this.policyFor(program, g.group);
    const upgradeAt = g.group.upgrade_strategy ?? 'real_time';
    const downgradeAt = g.group.downgrade_strategy ?? 'real_time';
    const now = this.ctx.clock.now();
    const nowIso = now.toISOString();
    const zone = program.timezone;
    const expType =
      policy.expiration_date?.type ?? (policy.qualification_type === 'BALANCE' ? 'BALANCE_DROP' : 'END_OF_PERIOD');
    const byPeriod = policy.qualification_type === 'POINTS_IN_PERIOD';
    const nextPeriodStart = byPeriod && policy.start_date?.type === 'NEXT_PERIOD';
    const b = periodBounds(policy.qualification_period ?? 'MONTH', now, zone);

    const definitionId =
      opts.definitionId ??
      g.group.balance_definition_id ??
      (await this.deps.programs.defaultDefinition(trx, program.id)).id;
    const [current] = await hot(trx, 'tiers.lockMemberTier', [membership.id, g.group.id], () => {
      const q = trx
        .selectFrom('member_tiers')
        .selectAll()
        .where('membership_id', '=', membership.id)
        .where('tier_group_id', '=', g.group.id);
      return this.ctx.database.forUpdate ? q.forUpdate() : q;
    });
    const currentRank = rankOf(g, current?.tier_id);

    // The tier the member qualifies for now, and until when it holds.
    let target: TierRow | null;
    let fromCurrentPeriod = true;
    let qualifiedNow: TierRow | null;
    if (!byPeriod) {
      const balance = opts.balance ?? (await this.deps.ledger.balanceValue(trx, membership.id, definitionId)) ?? 0;
      qualifiedNow = tierFor(g.tiers, balance);
      target = qualifiedNow;
    } else {
      const cur = await this.pointsIn(trx, membership.id, definitionId, b.start, b.end);
      qualifiedNow = tierFor(g.tiers, cur);
      const needPrev = nextPeriodStart || expType === 'END_OF_NEXT_PERIOD';
      const prevTier = needPrev
        ? tierFor(g.tiers, await this.pointsIn(trx, membership.id, definitionId, b.prevStart, b.start))
        : null;
      if (nextPeriodStart) {
        target = prevTier;
        fromCurrentPeriod = false;
        if (rankOf(g, qualifiedNow?.id) > Math.max(rankOf(g, target?.id), currentRank)) {
          // Qualified in this period: the tier starts with the next one.
          await this.scheduleEvaluation(trx, membership.id, g.group.id, b.end.toJSDate());
        }
      } else if (expType === 'END_OF_NEXT_PERIOD' && rankOf(g, prevTier?.id) > rankOf(g, qualifiedNow?.id)) {
        target = prevTier;
        fromCurrentPeriod = false;
      } else target = qualifiedNow;
    }
    const targetRank = rankOf(g, target?.id);
    let expiresAt: string | null = null;
    if (expType === 'END_OF_PERIOD') expiresAt = extend(b.end, policy).toUTC().toISO();
    else if (expType === 'END_OF_NEXT_PERIOD')
      expiresAt = extend(fromCurrentPeriod ? b.nextEnd : b.end, policy)
        .toUTC()
        .toISO();
    if (targetRank < 0) expiresAt = null;

    // A strategy other than real_time holds the change until its anniversary (a member without a
    // tier gets its entry tier at once).
    if (targetRank > currentRank && current?.tier_id && upgradeAt !== 'real_time') {
      if (opts.occasion === upgradeAt)
        await this.attribute(trx, program, membership, g, current, target, null, true, opts.sourceEventId);
      return;
    }
    if (targetRank < currentRank && current && downgradeAt !== 'real_time') {
      if (opts.occasion === downgradeAt)
        await this.attribute(trx, program, membership, g, current, target, null, false, opts.sourceEventId);
      return;
    }
    if (targetRank > currentRank) {
      await this.attribute(trx, program, membership, g, current, target, expiresAt, true, opts.sourceEventId);
      return;
    }
    if (!current) return;
    if (targetRank === currentRank) {
      if (expType === 'CUSTOM' && current.expires_at) {
        await trx
          .updateTable('member_tiers')
          .set({ expires_at: null, updated_at: nowIso })
          .where('membership_id', '=', membership.id)
          .where('tier_group_id', '=', g.group.id)
          .execute();
      } else if (expiresAt && (!current.expires_at || expiresAt > current.expires_at)) {
        // Qualifying again prolongs the tier.
        await trx
          .updateTable('member_tiers')
          .set({ expires_at: expiresAt, updated_at: nowIso })
          .where('membership_id', '=', membership.id)
          .where('tier_group_id', '=', g.group.id)
          .execute();
        await this.scheduleEvaluation(trx, membership.id, g.group.id, new Date(expiresAt));
      }
      return;
    }
    // Below the current tier.
    const held = current.expires_at;
    if (expType === 'BALANCE_DROP' || (held && held <= nowIso)) {
      await this.attribute(trx, program, membership, g, current, target, expiresAt, false, opts.sourceEventId);
      return;
    }
    if (!held) {
      const until = expType === 'CUSTOM' ? extend(DateTime.fromJSDate(now, { zone }), policy) : extend(b.end, policy);
      if (until.toMillis() <= now.getTime()) {
        await this.attribute(trx, program, membership, g, current, target, expiresAt, false, opts.sourceEventId);
        return;
      }
      const iso = until.toUTC().toISO()!;
      await trx
        .updateTable('member_tiers')
        .set({ expires_at: iso, updated_at: nowIso })
        .where('membership_id', '=', membership.id)
        .where('tier_group_id', '=', g.group.id)
        .execute();
      await this.scheduleEvaluation(trx, membership.id, g.group.id, until.toJSDate());
    }
  }

  private async scheduleEvaluation(trx: Executor, membershipId: string, groupId: string, at: Date) {
    const runAt = at.toISOString();
    await this.ctx.scheduler.schedule(trx, {
      kind: 'tiers.evaluate',
      runAt,
      payload: { membership_id: membershipId, tier_group_id: groupId },
      uniqueKey: `tiers.evaluate:${membershipId}:${groupId}:${runAt}`,
    });
  }

  private async attribute(
    trx: Executor,
    program: ProgramRow,
    membership: MembershipRow,
    g: GroupTiers,
    current: MemberTierRow | undefined,
    to: TierRow | null,
    expiresAt: string | null,
    upgraded: boolean,
    sourceEventId: string,
  ) {
    const now = this.ctx.clock.nowIso();
    const from = current?.tier_id ? (g.tiers.find((t) => t.id === current.tier_id) ?? null) : null;
    if (current) {
      await trx
        .updateTable('member_tiers')
        .set({ tier_id: to?.id ?? null, attributed_at: now, expires_at: expiresAt, updated_at: now })
        .where('membership_id', '=', membership.id)
        .where('tier_group_id', '=', g.group.id)
        .execute();
    } else {
      await trx
        .insertInto('member_tiers')
        .values({
          membership_id: membership.id,
          tier_group_id: g.group.id,
          program_id: program.id,
          tier_id: to?.id ?? null,
          attributed_at: now,
          expires_at: expiresAt,
          updated_at: now,
        })
        .execute();
    }
    await trx
      .insertInto('tier_associations')
      .values({
        id: `tas_${randomString(24)}`,
        membership_id: membership.id,
        tier_group_id: g.group.id,
        program_id: program.id,
        from_tier_id: from?.id ?? null,
        tier_id: to?.id ?? null,
        upgraded: upgraded ? 1 : 0,
        attributed_at: now,
        source_event_id: sourceEventId,
      })
      .execute();
    if (expiresAt) await this.scheduleEvaluation(trx, membership.id, g.group.id, new Date(expiresAt));
    await this.ctx.outbox.emit(trx, {
      type: 'tier_association_updated',
      data: {
        from_tier: tierRef(from),
        loyalty_program: programRef(program),
        source_event_id: sourceEventId,
        tier_group: groupRef(g.group),
        to_tier: tierRef(to),
        upgraded,
      },
      resource_type: 'membership',
      resource_id: membership.id,
      program_id: program.id,
    });
    await this.deps.onTierChange?.(trx, { program, membership, group: g.group, tier: to, attributedAt: now });
  }

  /**
   * A year anniversary of the card (`membership_anniversary`) or of its tier in `groupId`
   * (`tier_anniversary`) came (the time engine calls this in the transaction that fires it): the
   * groups whose strategy waits for it re-evaluate the member, who keeps, gains or loses the tier.
   */
  async anniversaryReached(
    trx: Executor,
    program: ProgramRow,
    membership: MembershipRow,
    occasion: TierOccasion,
    groupId?: string,
  ): Promise<void> {
    const pt = await this.programTiers(trx, program.id);
    for (const g of pt.groups) {
      if (g.tiers.length === 0 || (groupId && g.group.id !== groupId)) continue;
      if (g.group.upgrade_strategy !== occasion && g.group.downgrade_strategy !== occasion) continue;
      await this.evaluate(trx, program, membership, g, { sourceEventId: `${occasion}:${membership.id}`, occasion });
    }
  }

  async associations(db: Executor, membershipId: string) {
    return db
      .selectFrom('tier_associations')
      .selectAll()
      .where('membership_id', '=', membershipId)
      .orderBy('attributed_at')
      .orderBy('id')
      .execute();
  }
}
