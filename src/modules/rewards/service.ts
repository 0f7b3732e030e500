import { pageByNumber } from '../../storage/paging.ts';
import type { AppContext } from '../../context.ts';
import { conflict, DomainError, invalid, notFound } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson, toJson } from '../../lib/json.ts';
import { isUniqueViolation, type Executor } from '../../storage/database.ts';
import { hot } from '../../storage/hot.ts';
import { SharedTtlCache } from '../../lib/ttl-cache.ts';
import type { ProgramRow } from '../loyalties/service.ts';
import { toRatioNumber, type CoinRatio } from './coin.ts';
import type { RewardAssignmentsTable, RewardsTable } from './tables.ts';
import type { AssignmentInput, AssignmentUpdate, RewardInput } from './schemas.ts';
import './tables.ts';

// The rewards catalogue: rewards (what points buy), their assignments to loyalty programs (at a
// points cost, per tier when a tier maps the reward), and the stock of each reward.
// What a redemption spends, issues and records (ledger, vouchers, cards, the vouchers module's
// `redemptions` table) is the workflow's (src/workflows/redeem-reward.ts); this module knows only its
// own tables.

export type RewardRow = RewardsTable;
export type AssignmentRow = RewardAssignmentsTable;

export type CampaignRewardType = 'DISCOUNT_COUPONS' | 'GIFT_VOUCHERS' | 'LOYALTY_PROGRAM';
export type RewardParameters =
  | { campaign: { id: string; type: CampaignRewardType; balance?: number } }
  | { coin: CoinRatio }
  | { product: { id: string; sku_id: string | null } };

/** A tier's cost override for a reward (Voucherify's MappingPoints). */
export type RewardMapping = { type: 'MULTIPLY'; multiplier: number } | { type: 'CUSTOM'; points: number };

/** The campaign a CAMPAIGN reward names, as the module that owns it describes it. */
export interface CampaignInfo {
  id: string;
  name: string;
  type: CampaignRewardType;
}

/** What the rewards module asks of others, passed at construction (services.ts). */
export interface RewardDeps {
  /** A loyalty program by id (undefined when unknown or deleted). */
  findProgram(db: Executor, id: string): Promise<ProgramRow | undefined>;
  /** A voucher campaign (DISCOUNT_COUPONS, GIFT_VOUCHERS) by id: the vouchers module, when present. */
  findVoucherCampaign?(db: Executor, id: string): Promise<CampaignInfo | undefined>;
}

export const rewardParameters = (r: RewardRow) => fromJson<RewardParameters>(r.parameters, {} as RewardParameters);

export function presentReward(r: RewardRow) {
  const attributes = fromJson<Record<string, unknown>>(r.attributes, {});
  return {
    id: r.id,
    name: r.name,
    stock: r.stock === null ? null : Number(r.stock),
    redeemed: r.stock === null ? null : Number(r.redeemed),
    attributes: { image_url: attributes.image_url ?? null, description: attributes.description ?? null },
    type: r.type,
    parameters: rewardParameters(r),
    metadata: fromJson(r.metadata, {}),
    created_at: r.created_at,
    updated_at: r.updated_at,
    object: 'reward' as const,
  };
}

/** `points`: the cost to show (a tier's cost in the member's and tier's views). */
export function presentAssignment(
  a: AssignmentRow,
  points: number | null = a.points === null ? null : Number(a.points),
) {
  return {
    id: a.id,
    reward_id: a.reward_id,
    related_object_id: a.program_id,
    related_object_type: 'campaign' as const,
    ...(a.points === null
      ? a.validation_rules
        ? { validation_rules: fromJson<string[]>(a.validation_rules, []) }
        : {}
      : { parameters: { loyalty: { points, auto_redeem: a.auto_redeem === null ? null : a.auto_redeem === 1 } } }),
    created_at: a.created_at,
    updated_at: a.updated_at,
    object: 'reward_assignment' as const,
  };
}

/** The reward as the `offer` of voucher events (seed 002). */
export function offerOf(r: RewardRow) {
  const attributes = fromJson<Record<string, unknown>>(r.attributes, {});
  const metadata = fromJson<Record<string, unknown>>(r.metadata, {});
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  return {
    id: r.id,
    name: r.name,
    public_description: str(attributes.description),
    public_image: str(attributes.image_url),
    public_name: str(metadata.public_name) ?? r.name,
  };
}

export const inStock = (r: RewardRow) => r.stock === null || Number(r.redeemed) < Number(r.stock);

/**
 * The points an assignment costs under a tier's mapping of the reward (keyed by reward id, or by
 * assignment id): MULTIPLY rounds half up to whole points; CUSTOM replaces the cost.
 */
export function costOf(a: AssignmentRow, mapping?: RewardMapping | null): number | null {
  if (a.points === null) return null;
  const base = Number(a.points);
  if (!mapping) return base;
  if (mapping.type === 'CUSTOM' && Number.isSafeInteger(mapping.points) && mapping.points >= 0) return mapping.points;
  if (mapping.type === 'MULTIPLY' && typeof mapping.multiplier === 'number' && mapping.multiplier > 0)
    return Math.round(base * mapping.multiplier);
  return base;
}

const unitOf = (type: CampaignRewardType) => (type === 'GIFT_VOUCHERS' ? 'cents' : 'points');

const invalidReward = (details: string, field: string) =>
  invalid('invalid_reward', 'Invalid reward', details, [{ field, message: details }]);

export class RewardService {
  /**
   * `rewardIn` answers for rewards without stock that are assigned: what every redemption reads
   * first, and what changes only through this service (which drops the entries, here and through
   * the cache bus in the other processes). A reward with stock is always read afresh (its `redeemed`).
   */
  private offers: SharedTtlCache<{ reward: RewardRow; assignment: AssignmentRow }>;

  constructor(
    private ctx: AppContext,
    private deps: RewardDeps,
  ) {
    this.offers = new SharedTtlCache(ctx.caches, 'reward_offers', 5000);
  }

  // ---- rewards ----

  private async campaignInfo(db: Executor, id: string, given?: string): Promise<CampaignInfo> {
    const program = await this.deps.findProgram(db, id);
    if (program) return { id: program.id, name: program.name, type: 'LOYALTY_PROGRAM' };
    const voucherCampaign = await this.deps.findVoucherCampaign?.(db, id);
    if (voucherCampaign) return voucherCampaign;
    // Until a module owns voucher campaigns, a reward may name one with its type.
    if (!this.deps.findVoucherCampaign && (given === 'DISCOUNT_COUPONS' || given === 'GIFT_VOUCHERS'))
      return { id, name: id, type: given };
    throw notFound('campaign', id);
  }

  private async normalise(
    db: Executor,
    input: Partial<RewardInput>,
    current?: RewardRow,
  ): Promise<{ type: string; parameters: RewardParameters }> {
    const params = (input.parameters ?? {}) as Record<string, Record<string, unknown> | undefined>;
    const kinds = (['campaign', 'coin', 'product'] as const).filter((k) => params[k]);
    if (kinds.length > 1)
      throw invalidReward('parameters must hold exactly one of campaign, coin, product', 'parameters');
    const typeOfKind = { campaign: 'CAMPAIGN', coin: 'COIN', product: 'MATERIAL' } as const;
    const type = input.type ?? (kinds[0] ? typeOfKind[kinds[0]] : current?.type);
    if (!type) throw invalidReward('type or parameters (campaign, coin or product) is required', 'type');
    if (current && type !== current.type) throw invalidReward(`a ${current.type} reward cannot become ${type}`, 'type');
    if (kinds[0] && typeOfKind[kinds[0]] !== type)
      throw invalidReward(
        `a ${type} reward takes parameters.${kinds[0] === 'campaign' ? 'coin or product' : kinds[0]}`,
        'parameters',
      );
    if (!kinds[0]) {
      if (current) return { type, parameters: rewardParameters(current) };
      const key = type === 'CAMPAIGN' ? 'campaign' : type === 'COIN' ? 'coin' : 'product';
      throw invalidReward(`a ${type} reward needs parameters.${key}`, `parameters.${key}`);
    }
    if (type === 'CAMPAIGN') {
      const c = params.campaign!;
      if (typeof c.id !== 'string' || !c.id)
        throw invalidReward('parameters.campaign.id is required', 'parameters.campaign.id');
      const info = await this.campaignInfo(db, c.id, typeof c.type === 'string' ? c.type : undefined);
      if (c.type !== undefined && c.type !== info.type)
        throw invalidReward(
          `campaign ${c.id} is a ${info.type} campaign, not ${String(c.type)}`,
          'parameters.campaign.type',
        );
      const balance = c.balance;
      if (info.type !== 'DISCOUNT_COUPONS') {
        if (!Number.isSafeInteger(balance) || (balance as number) <= 0)
          throw invalidReward(
            `parameters.campaign.balance (a positive integer: ${unitOf(info.type)}) is required`,
            'parameters.campaign.balance',
          );
        return { type, parameters: { campaign: { id: info.id, type: info.type, balance: balance as number } } };
      }
      return { type, parameters: { campaign: { id: info.id, type: info.type } } };
    }
    if (type === 'COIN') {
      const c = params.coin!;
      const exchange = toRatioNumber(c.exchange_ratio);
      const pointsRatio = c.points_ratio === undefined ? 1 : toRatioNumber(c.points_ratio);
      if (exchange === undefined || exchange <= 0 || exchange > 1e9)
        throw invalidReward(
          'parameters.coin.exchange_ratio must be a positive number',
          'parameters.coin.exchange_ratio',
        );
      if (pointsRatio === undefined || !Number.isSafeInteger(pointsRatio) || pointsRatio <= 0)
        throw invalidReward('parameters.coin.points_ratio must be a positive integer', 'parameters.coin.points_ratio');
      return { type, parameters: { coin: { exchange_ratio: exchange, points_ratio: pointsRatio } } };
    }
    const p = params.product!;
    if (typeof p.id !== 'string' || !p.id)
      throw invalidReward('parameters.product.id is required', 'parameters.product.id');
    const sku = p.sku_id ?? p.sku ?? null;
    if (sku !== null && typeof sku !== 'string')
      throw invalidReward('parameters.product.sku_id must be a string', 'parameters.product.sku_id');
    return { type, parameters: { product: { id: p.id, sku_id: sku } } };
  }

  async create(db: Executor, input: RewardInput): Promise<RewardRow> {
    const { type, parameters } = await this.normalise(db, input);
    const row: RewardRow = {
      id: newId('rew'),
      name: input.name,
      type,
      parameters: JSON.stringify(parameters),
      stock: input.stock ?? null,
      redeemed: 0,
      attributes: toJson(input.attributes ?? null),
      metadata: toJson(input.metadata ?? {}),
      created_at: this.ctx.clock.nowIso(),
      updated_at: null,
    };
    await db.insertInto('rewards').values(row).execute();
    return row;
  }

  async update(db: Executor, row: RewardRow, input: Partial<RewardInput>): Promise<RewardRow> {
    const { parameters } = await this.normalise(db, input, row);
    const patch: Partial<RewardRow> = { parameters: JSON.stringify(parameters), updated_at: this.ctx.clock.nowIso() };
    if (input.name !== undefined) patch.name = input.name;
    if (input.stock !== undefined) patch.stock = input.stock;
    if (input.attributes !== undefined)
      patch.attributes = toJson({ ...fromJson<object>(row.attributes, {}), ...(input.attributes ?? {}) });
    if (input.metadata !== undefined) patch.metadata = toJson(input.metadata ?? {});
    await db.updateTable('rewards').set(patch).where('id', '=', row.id).execute();
    await this.offers.invalidate(undefined, db);
    return { ...row, ...patch };
  }

  async find(db: Executor, id: string): Promise<RewardRow | undefined> {
    return db.selectFrom('rewards').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async get(db: Executor, id: string): Promise<RewardRow> {
    const row = await this.find(db, id);
    if (!row) throw notFound('reward', id);
    return row;
  }

  async byIds(db: Executor, ids: string[]): Promise<Map<string, RewardRow>> {
    if (ids.length === 0) return new Map();
    const rows = await db
      .selectFrom('rewards')
      .selectAll()
      .where('id', 'in', [...new Set(ids)])
      .execute();
    return new Map(rows.map((r) => [r.id, r]));
  }

  async list(db: Executor, q: { limit: number; page: number; assignment_id?: string }) {
    let base = db.selectFrom('rewards');
    if (q.assignment_id) {
      const a = await db
        .selectFrom('reward_assignments')
        .select('reward_id')
        .where('id', '=', q.assignment_id)
        .executeTakeFirst();
      base = base.where('id', '=', a?.reward_id ?? '');
    }
    return pageByNumber(base, q, (b) => b.selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc'));
  }

  /** Refused while the reward is assigned (Voucherify's ResourceInUseError). */
  async delete(db: Executor, row: RewardRow): Promise<void> {
    const assigned = await db
      .selectFrom('reward_assignments')
      .select('id')
      .where('reward_id', '=', row.id)
      .orderBy('created_at')
      .execute();
    if (assigned.length > 0)
      throw new DomainError(
        'invalid',
        'resource_in_use',
        'Resource in use',
        `Reward ${row.id} is assigned to ${assigned.length} loyalty campaign(s); delete its assignments first`,
        undefined,
        {
          related_object_ids: assigned.map((a) => a.id),
          related_object_type: 'reward_assignment',
          related_object_total: assigned.length,
        },
      );
    await db.deleteFrom('rewards').where('id', '=', row.id).execute();
    await this.offers.invalidate(undefined, db);
  }

  /**
   * Takes one unit of stock: a conditional update, so concurrent redemptions never take more than
   * the stock (the row lock orders them on PostgreSQL; SQLite has one writer). False when none is left.
   */
  async takeStock(trx: Executor, reward: RewardRow): Promise<boolean> {
    // Unlimited stock is not counted: every redemption of the reward would otherwise wait on this
    // one row's lock (`redeemed` is null in the answer, as Voucherify's for rewards without stock).
    if (reward.stock === null) return true;
    const r = await trx
      .updateTable('rewards')
      .set((eb) => ({ redeemed: eb('redeemed', '+', 1) }))
      .where('id', '=', reward.id)
      .where((eb) => eb.or([eb('stock', 'is', null), eb('redeemed', '<', eb.ref('stock'))]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async returnStock(trx: Executor, rewardId: string): Promise<void> {
    await trx
      .updateTable('rewards')
      .set((eb) => ({ redeemed: eb('redeemed', '-', 1) }))
      .where('id', '=', rewardId)
      .where('redeemed', '>', 0)
      .execute();
  }

  // ---- assignments ----

  /** The loyalty program an assignment route names (404 when unknown). */
  async program(db: Executor, id: string): Promise<ProgramRow> {
    const p = await this.deps.findProgram(db, id);
    if (!p) throw notFound('campaign', id);
    return p;
  }

  private checkPoints(reward: RewardRow, points: unknown, field: string): number | null {
    if (reward.type === 'COIN') {
      if (points !== undefined && points !== null)
        throw invalid('invalid_reward_assignment', 'Invalid reward assignment', 'a COIN reward costs no fixed points', [
          { field, message: 'must be absent for a COIN reward' },
        ]);
      return null;
    }
    if (!Number.isSafeInteger(points) || (points as number) <= 0)
      throw invalid(
        'invalid_reward_assignment',
        'Invalid reward assignment',
        `${field} (a positive integer) is required`,
        [{ field, message: 'must be a positive integer' }],
      );
    return points as number;
  }

  /** Assigns rewards to a program; each input names its reward (`reward`) or the caller gives it (`rewardId`). */
  async createAssignments(
    db: Executor,
    inputs: (AssignmentInput & { rewardId?: string; programId?: string })[],
  ): Promise<AssignmentRow[]> {
    const out: AssignmentRow[] = [];
    for (const [i, input] of inputs.entries()) {
      const rewardId = input.rewardId ?? input.reward;
      const programId = input.programId ?? input.campaign;
      const at = inputs.length > 1 ? `[${i}].` : '';
      if (!rewardId)
        throw invalid('invalid_reward_assignment', 'Invalid reward assignment', `${at}reward is required`, [
          { field: `${at}reward`, message: 'is required' },
        ]);
      if (!programId)
        throw invalid('invalid_reward_assignment', 'Invalid reward assignment', `${at}campaign is required`, [
          { field: `${at}campaign`, message: 'is required' },
        ]);
      const reward = await this.get(db, rewardId);
      const program = await this.program(db, programId);
      const points = this.checkPoints(reward, input.parameters?.loyalty?.points, `${at}parameters.loyalty.points`);
      const autoRedeem = input.parameters?.loyalty?.auto_redeem;
      const row: AssignmentRow = {
        id: newId('rewa'),
        reward_id: reward.id,
        program_id: program.id,
        points,
        auto_redeem: autoRedeem === undefined || autoRedeem === null ? null : autoRedeem ? 1 : 0,
        validation_rules: toJson(input.validation_rules ?? null),
        created_at: this.ctx.clock.nowIso(),
        updated_at: null,
      };
      if (row.auto_redeem === 1) await this.assertSingleAutoRedeem(db, program.id);
      try {
        await db.insertInto('reward_assignments').values(row).execute();
      } catch (err) {
        if (isUniqueViolation(err))
          throw conflict(
            'duplicate_found',
            'Duplicated resource found',
            `Reward ${reward.id} is already assigned to campaign ${program.id}`,
          );
        throw err;
      }
      out.push(row);
    }
    return out;
  }

  private async assertSingleAutoRedeem(db: Executor, programId: string, exceptId?: string) {
    let q = db
      .selectFrom('reward_assignments')
      .select('id')
      .where('program_id', '=', programId)
      .where('auto_redeem', '=', 1);
    if (exceptId) q = q.where('id', '!=', exceptId);
    const other = await q.executeTakeFirst();
    if (other)
      throw conflict(
        'auto_redeem_taken',
        'Only one reward can be redeemed automatically',
        `Assignment ${other.id} of campaign ${programId} is already redeemed automatically`,
      );
  }

  async updateAssignment(db: Executor, row: AssignmentRow, input: AssignmentUpdate): Promise<AssignmentRow> {
    const reward = await this.get(db, row.reward_id);
    const loyalty = input.parameters?.loyalty;
    const patch: Partial<AssignmentRow> = { updated_at: this.ctx.clock.nowIso() };
    if (loyalty?.points !== undefined)
      patch.points = this.checkPoints(reward, loyalty.points, 'parameters.loyalty.points');
    if (loyalty?.auto_redeem !== undefined) {
      patch.auto_redeem = loyalty.auto_redeem === null ? null : loyalty.auto_redeem ? 1 : 0;
      if (patch.auto_redeem === 1) await this.assertSingleAutoRedeem(db, row.program_id, row.id);
    }
    if (input.validation_rules !== undefined) patch.validation_rules = toJson(input.validation_rules);
    await db.updateTable('reward_assignments').set(patch).where('id', '=', row.id).execute();
    await this.offers.invalidate(undefined, db);
    return { ...row, ...patch };
  }

  async deleteAssignment(db: Executor, row: AssignmentRow): Promise<void> {
    await db.deleteFrom('reward_assignments').where('id', '=', row.id).execute();
    await this.offers.invalidate(undefined, db);
  }

  /** An assignment by id, within a reward or a program when given (else 404). */
  async getAssignment(db: Executor, id: string, within: { rewardId?: string; programId?: string } = {}) {
    let q = db.selectFrom('reward_assignments').selectAll().where('id', '=', id);
    if (within.rewardId) q = q.where('reward_id', '=', within.rewardId);
    if (within.programId) q = q.where('program_id', '=', within.programId);
    const row = await q.executeTakeFirst();
    if (!row) throw notFound('reward assignment', id);
    return row;
  }

  /**
   * The reward and its assignment to the program (undefined when not assigned) in one statement,
   * compiled once (every redemption runs it); undefined when the reward does not exist.
   */
  async rewardIn(
    db: Executor,
    rewardId: string,
    programId: string,
  ): Promise<{ reward: RewardRow; assignment?: AssignmentRow } | undefined> {
    const key = `${programId}:${rewardId}`;
    const cached = this.offers.get(key);
    if (cached) return cached;
    const version = this.offers.version;
    const found = await this.readRewardIn(db, rewardId, programId);
    if (found?.assignment && found.reward.stock === null)
      this.offers.setIfUnchanged(key, { reward: found.reward, assignment: found.assignment }, version);
    return found;
  }

  private async readRewardIn(
    db: Executor,
    rewardId: string,
    programId: string,
  ): Promise<{ reward: RewardRow; assignment?: AssignmentRow } | undefined> {
    const rows = await hot(db, 'rewards.rewardIn', [programId, rewardId], () =>
      db
        .selectFrom('rewards as r')
        .leftJoin('reward_assignments as a', (j) =>
          j.onRef('a.reward_id', '=', 'r.id').on('a.program_id', '=', programId),
        )
        .selectAll('r')
        .select([
          'a.id as a_id',
          'a.points as a_points',
          'a.auto_redeem as a_auto_redeem',
          'a.validation_rules as a_validation_rules',
          'a.created_at as a_created_at',
          'a.updated_at as a_updated_at',
        ])
        .where('r.id', '=', rewardId),
    );
    const row = rows[0];
    if (!row) return undefined;
    const { a_id, a_points, a_auto_redeem, a_validation_rules, a_created_at, a_updated_at, ...reward } = row;
    const assignment: AssignmentRow | undefined = a_id
      ? {
          id: a_id,
          reward_id: reward.id,
          program_id: programId,
          points: a_points,
          auto_redeem: a_auto_redeem,
          validation_rules: a_validation_rules,
          created_at: a_created_at!,
          updated_at: a_updated_at,
        }
      : undefined;
    return { reward, assignment };
  }

  /** The assignment of a reward to a program, if any. */
  async assignmentOf(db: Executor, rewardId: string, programId: string): Promise<AssignmentRow | undefined> {
    return db
      .selectFrom('reward_assignments')
      .selectAll()
      .where('reward_id', '=', rewardId)
      .where('program_id', '=', programId)
      .executeTakeFirst();
  }

  async listAssignments(
    db: Executor,
    filter: { rewardId?: string; programId?: string },
    page?: { limit: number; page: number },
  ) {
    let base = db.selectFrom('reward_assignments');
    if (filter.rewardId) base = base.where('reward_id', '=', filter.rewardId);
    if (filter.programId) base = base.where('program_id', '=', filter.programId);
    const total = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    let q = base.selectAll().orderBy('created_at').orderBy('id');
    if (page) q = q.limit(page.limit).offset((page.page - 1) * page.limit);
    return { rows: await q.execute(), total: Number(total.n) };
  }

  /** The program's assignments with their rewards (for member and tier views). */
  async offered(db: Executor, programId: string): Promise<{ assignment: AssignmentRow; reward: RewardRow }[]> {
    const { rows } = await this.listAssignments(db, { programId });
    const rewards = await this.byIds(
      db,
      rows.map((a) => a.reward_id),
    );
    return rows.flatMap((assignment) => {
      const reward = rewards.get(assignment.reward_id);
      return reward ? [{ assignment, reward }] : [];
    });
  }
}
