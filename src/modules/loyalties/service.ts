import { pageByNumber } from '../../storage/paging.ts';
import { IANAZone } from 'luxon';
import type { AppContext } from '../../context.ts';
import { conflict, invalid, notFound, refused } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import { fromJson, toJson } from '../../lib/json.ts';
import { SharedTtlCache } from '../../lib/ttl-cache.ts';
import type { Executor } from '../../storage/database.ts';
import { hot } from '../../storage/hot.ts';
import type { BalanceDefinitionInput, ProgramInput } from './schemas.ts';
import type { BalanceDefinitionsTable, ProgramsTable } from '../../storage/schema.ts';
import { validateCodeConfig, DEFAULT_CODE_CONFIG, type CodeConfig } from '../../lib/codes.ts';
import { validateExpirationRules, type ExpirationRules } from './expiration.ts';

export type ProgramRow = ProgramsTable;
export type BalanceDefinitionRow = BalanceDefinitionsTable;

export interface ProgramVoucher {
  type: 'LOYALTY_CARD';
  loyalty_card: { points: number; expiration_rules?: ExpirationRules | null };
  code_config: CodeConfig;
  redemption?: { quantity: number | null };
}

export type { BalanceDefinitionInput, ProgramInput };

/** Fields of Voucherify's campaign object that are stored and echoed back as given. */
const EXTRA_FIELDS = [
  'category',
  'category_id',
  'loyalty_tiers_expiration',
  'use_voucher_metadata_schema',
  'validity_timeframe',
  'validity_day_of_week',
  'validity_hours',
  'activity_duration_after_publishing',
  // Membership anniversary reminders: the time engine reads them (docs/time.md).
  'reminders',
];

export function programVoucher(row: ProgramRow): ProgramVoucher {
  return fromJson<ProgramVoucher>(row.voucher, {
    type: 'LOYALTY_CARD',
    loyalty_card: { points: 0 },
    code_config: DEFAULT_CODE_CONFIG,
  });
}

/** Voucherify's loyalty campaign object (seed 001's `campaign`), plus Tally's `timezone`. */
export function presentProgram(row: ProgramRow, extras: { members?: number } = {}) {
  const voucher = programVoucher(row);
  const extra = fromJson<Record<string, unknown>>(row.extra, {});
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    campaign_type: 'LOYALTY_PROGRAM' as const,
    type: row.type,
    is_referral_code: false,
    voucher: {
      type: 'LOYALTY_CARD' as const,
      loyalty_card: voucher.loyalty_card,
      redemption: { quantity: voucher.redemption?.quantity ?? null, redeemed_quantity: 0 },
      code_config: voucher.code_config,
    },
    auto_join: row.auto_join === 1,
    join_once: row.join_once === 1,
    active: row.active === 1,
    category_id: (extra.category_id as string | undefined) ?? null,
    category: (extra.category as string | undefined) ?? null,
    metadata: fromJson(row.metadata, {}),
    start_date: row.start_date,
    expiration_date: row.expiration_date,
    timezone: row.timezone,
    ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'category' && k !== 'category_id')),
    ...(extras.members !== undefined ? { vouchers_count: extras.members } : {}),
    created_at: row.created_at,
    updated_at: row.updated_at,
    object: 'campaign' as const,
  };
}

/** The short `loyalty_program` object of the seed-002 events. */
export const programRef = (row: ProgramRow) => ({ id: row.id, name: row.name });

export function presentBalanceDefinition(row: BalanceDefinitionRow) {
  return {
    id: row.id,
    campaign_id: row.program_id,
    name: row.name,
    unit: row.unit,
    min: row.min_value,
    max: row.max_value,
    default: row.is_default === 1,
    expiration_rules: fromJson(row.expiration, null),
    metadata: fromJson(row.metadata, {}),
    reminders: fromJson(row.reminders ?? null, []),
    created_at: row.created_at,
    updated_at: row.updated_at,
    object: 'balance_definition' as const,
  };
}

/** The `balance_definition` object of the seed-002 events. */
export const balanceDefinitionRef = (row: BalanceDefinitionRow) => ({
  id: row.id,
  metadata: fromJson<Record<string, unknown>>(row.metadata, {}),
  name: row.name,
  unit: row.unit,
});

function checkDates(start: string | null | undefined, end: string | null | undefined) {
  if (start && end && Date.parse(start) >= Date.parse(end)) {
    throw invalid('invalid_dates', 'Invalid dates', 'start_date must be before expiration_date', [
      { field: 'expiration_date', message: 'must be after start_date' },
    ]);
  }
}

/** A live (not deleted) program with its default balance definition. */
export interface ProgramWithDefault {
  program: ProgramRow;
  definition: BalanceDefinitionRow;
}

/**
 * How long another process's change to a program or its default balance definition can go unseen
 * by the ingestion hot path of this one (changes made through this process are seen at once).
 */
export const PROGRAM_CACHE_TTL_MS = 5000;

/** What the program service tells others (services.ts wires them). */
export interface ProgramHooks {
  /**
   * The reminders of the program or of one of its balance definitions changed, in `trx`: the time
   * engine re-plans the program's cards.
   */
  onRemindersChanged?: (trx: Executor, programId: string) => Promise<void>;
}

export class ProgramService {
  /** Read by every event that earns; see `withDefault`. */
  private withDefaultCache: SharedTtlCache<ProgramWithDefault | null>;
  constructor(
    private ctx: AppContext,
    private hooks: ProgramHooks = {},
  ) {
    this.withDefaultCache = new SharedTtlCache(ctx.caches, 'programs', PROGRAM_CACHE_TTL_MS);
  }

  /**
   * The program (null when deleted or unknown) with its default balance definition, cached per
   * process for the hot paths that read them on every event or inbound message (ingestion, keyword
   * flows): they change rarely.
   * Writes through this service clear the entry, here at once and in the other processes when they
   * commit (cache-bus.ts; within PROGRAM_CACHE_TTL_MS should that message be lost).
   */
  async withDefault(db: Executor, id: string): Promise<ProgramWithDefault | null> {
    return this.withDefaultCache.getOr(id, async () => {
      const program = await this.find(db, id);
      return program ? { program, definition: await this.defaultDefinition(db, id) } : null;
    });
  }

  async find(db: Executor, id: string): Promise<ProgramRow | undefined> {
    const [row] = await hot(db, 'programs.find', [id], () =>
      db.selectFrom('programs').selectAll().where('id', '=', id).where('deleted_at', 'is', null),
    );
    return row;
  }

  /** The program even when deleted (for records that outlive it: its cards, their timed work). */
  async findAny(db: Executor, id: string): Promise<ProgramRow | undefined> {
    return db.selectFrom('programs').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async get(db: Executor, id: string): Promise<ProgramRow> {
    const row = await this.find(db, id);
    if (!row) throw notFound('campaign', id);
    return row;
  }

  private buildVoucher(input: ProgramInput['voucher'], current?: ProgramVoucher): ProgramVoucher {
    const base = current ?? {
      type: 'LOYALTY_CARD' as const,
      loyalty_card: { points: 0 },
      code_config: DEFAULT_CODE_CONFIG,
    };
    if (input?.type && input.type !== 'LOYALTY_CARD') {
      throw invalid('invalid_voucher_type', 'Invalid voucher type', 'voucher.type must be LOYALTY_CARD', [
        { field: 'voucher.type', message: 'must be LOYALTY_CARD' },
      ]);
    }
    const loyaltyCard = { ...base.loyalty_card, ...(input?.loyalty_card ?? {}) };
    if (loyaltyCard.expiration_rules) {
      const err = validateExpirationRules(loyaltyCard.expiration_rules);
      if (err)
        throw invalid('invalid_expiration_rules', 'Invalid expiration rules', err, [
          { field: 'voucher.loyalty_card.expiration_rules', message: err },
        ]);
    }
    const codeConfig = { ...base.code_config, ...(input?.code_config ?? {}) };
    const codeErr = validateCodeConfig(codeConfig);
    if (codeErr)
      throw invalid('invalid_code_config', 'Invalid code_config', codeErr, [
        { field: 'voucher.code_config', message: codeErr },
      ]);
    return {
      type: 'LOYALTY_CARD',
      loyalty_card: loyaltyCard,
      code_config: codeConfig,
      redemption: { quantity: input?.redemption?.quantity ?? base.redemption?.quantity ?? null },
    };
  }

  private async assertNameFree(db: Executor, name: string, exceptId?: string) {
    let q = db.selectFrom('programs').select('id').where('name', '=', name).where('deleted_at', 'is', null);
    if (exceptId) q = q.where('id', '!=', exceptId);
    if (await q.executeTakeFirst())
      throw conflict(
        'duplicate_campaign_name',
        'Duplicated campaign name',
        `A campaign named "${name}" already exists`,
      );
  }

  async create(db: Executor, input: ProgramInput): Promise<ProgramRow> {
    if (!input.name)
      throw invalid('invalid_payload', 'Invalid payload', 'name is required', [
        { field: 'name', message: 'is required' },
      ]);
    const timezone = input.timezone ?? 'UTC';
    if (!IANAZone.isValidZone(timezone)) {
      throw invalid('invalid_timezone', 'Invalid timezone', `"${timezone}" is not an IANA time zone`, [
        { field: 'timezone', message: 'must be an IANA time zone such as Europe/Zagreb' },
      ]);
    }
    checkDates(input.start_date, input.expiration_date);
    await this.assertNameFree(db, input.name);
    const now = this.ctx.clock.nowIso();
    const row: ProgramRow = {
      id: newId('camp'),
      name: input.name,
      description: input.description ?? null,
      type: input.type ?? 'AUTO_UPDATE',
      auto_join: input.auto_join === false ? 0 : 1,
      join_once: input.join_once === false ? 0 : 1,
      active: input.active === false ? 0 : 1,
      start_date: input.start_date ?? null,
      expiration_date: input.expiration_date ?? null,
      timezone,
      metadata: toJson(input.metadata ?? {}),
      voucher: JSON.stringify(this.buildVoucher(input.voucher)),
      extra: toJson(Object.fromEntries(EXTRA_FIELDS.filter((k) => input[k] !== undefined).map((k) => [k, input[k]]))),
      created_at: now,
      updated_at: null,
      deleted_at: null,
    };
    await db.insertInto('programs').values(row).execute();
    // Every program has its default `points` balance: what Voucherify's loyalty_card shows.
    await db
      .insertInto('balance_definitions')
      .values({
        id: newId('bdef'),
        program_id: row.id,
        name: 'points',
        unit: 'points',
        min_value: 0,
        max_value: null,
        is_default: 1,
        expiration: null,
        metadata: toJson({}),
        created_at: now,
        updated_at: null,
      })
      .execute();
    return row;
  }

  async update(db: Executor, row: ProgramRow, input: ProgramInput): Promise<ProgramRow> {
    const patch: Partial<ProgramRow> = { updated_at: this.ctx.clock.nowIso() };
    if (input.name !== undefined && input.name !== row.name) {
      await this.assertNameFree(db, input.name, row.id);
      patch.name = input.name;
    }
    if (input.description !== undefined) patch.description = input.description;
    if (input.type !== undefined) patch.type = input.type;
    if (input.auto_join !== undefined) patch.auto_join = input.auto_join ? 1 : 0;
    if (input.join_once !== undefined) patch.join_once = input.join_once ? 1 : 0;
    if (input.active !== undefined) patch.active = input.active ? 1 : 0;
    if (input.start_date !== undefined) patch.start_date = input.start_date;
    if (input.expiration_date !== undefined) patch.expiration_date = input.expiration_date;
    checkDates(patch.start_date ?? row.start_date, patch.expiration_date ?? row.expiration_date);
    if (input.timezone !== undefined) {
      if (!IANAZone.isValidZone(input.timezone)) {
        throw invalid('invalid_timezone', 'Invalid timezone', `"${input.timezone}" is not an IANA time zone`, [
          { field: 'timezone', message: 'must be an IANA time zone' },
        ]);
      }
      patch.timezone = input.timezone;
    }
    if (input.metadata !== undefined) patch.metadata = toJson(input.metadata ?? {});
    if (input.voucher !== undefined)
      patch.voucher = JSON.stringify(this.buildVoucher(input.voucher, programVoucher(row)));
    const extra = fromJson<Record<string, unknown>>(row.extra, {});
    let extraChanged = false;
    for (const k of EXTRA_FIELDS) {
      if (input[k] !== undefined) {
        extra[k] = input[k];
        extraChanged = true;
      }
    }
    if (extraChanged) patch.extra = toJson(extra);
    await db.updateTable('programs').set(patch).where('id', '=', row.id).execute();
    await this.withDefaultCache.invalidate(row.id, db);
    if (input.reminders !== undefined || input.timezone !== undefined)
      await this.hooks.onRemindersChanged?.(db, row.id);
    return { ...row, ...patch };
  }

  async softDelete(db: Executor, row: ProgramRow): Promise<void> {
    await db
      .updateTable('programs')
      .set({ deleted_at: this.ctx.clock.nowIso(), active: 0 })
      .where('id', '=', row.id)
      .execute();
    await this.withDefaultCache.invalidate(row.id, db);
  }

  async list(q: { limit: number; page: number; order?: string }) {
    const db = this.ctx.database.db;
    const base = db.selectFrom('programs').where('deleted_at', 'is', null);
    const desc = q.order ? q.order.startsWith('-') : false;
    return pageByNumber(base, q, (b) =>
      b
        .selectAll()
        .orderBy('created_at', desc ? 'desc' : 'asc')
        .orderBy('id', desc ? 'desc' : 'asc'),
    );
  }

  // ---- balance definitions ----

  async defaultDefinition(db: Executor, programId: string): Promise<BalanceDefinitionRow> {
    return db
      .selectFrom('balance_definitions')
      .selectAll()
      .where('program_id', '=', programId)
      .where('is_default', '=', 1)
      .executeTakeFirstOrThrow();
  }

  async definitions(db: Executor, programId: string): Promise<BalanceDefinitionRow[]> {
    return db
      .selectFrom('balance_definitions')
      .selectAll()
      .where('program_id', '=', programId)
      .orderBy('is_default', 'desc')
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  /** The named definition of the program, or its default when `id` is absent. */
  async definition(db: Executor, programId: string, id?: string | null): Promise<BalanceDefinitionRow> {
    if (!id) return this.defaultDefinition(db, programId);
    const row = await db
      .selectFrom('balance_definitions')
      .selectAll()
      .where('program_id', '=', programId)
      .where((eb) => eb.or([eb('id', '=', id), eb('name', '=', id)]))
      .executeTakeFirst();
    if (!row) throw notFound('balance definition', id);
    return row;
  }

  private checkLimits(min: number | null, max: number | null) {
    if (min !== null && min < 0) {
      throw invalid(
        'invalid_limits',
        'Invalid limits',
        'min must be 0 or more: balances are backed by point lots and cannot go negative',
        [{ field: 'min', message: 'must be >= 0' }],
      );
    }
    if (min !== null && max !== null && min > max)
      throw invalid('invalid_limits', 'Invalid limits', 'min must not exceed max', [
        { field: 'max', message: 'must be >= min' },
      ]);
  }

  async createDefinition(
    db: Executor,
    program: ProgramRow,
    input: BalanceDefinitionInput,
  ): Promise<BalanceDefinitionRow> {
    const min = input.min ?? 0;
    const max = input.max ?? null;
    this.checkLimits(min, max);
    if (input.expiration_rules) {
      const err = validateExpirationRules(input.expiration_rules);
      if (err)
        throw invalid('invalid_expiration_rules', 'Invalid expiration rules', err, [
          { field: 'expiration_rules', message: err },
        ]);
    }
    const exists = await db
      .selectFrom('balance_definitions')
      .select('id')
      .where('program_id', '=', program.id)
      .where('name', '=', input.name!)
      .executeTakeFirst();
    if (exists)
      throw conflict(
        'duplicate_balance_definition',
        'Duplicated balance definition',
        `The program already has a balance definition named "${input.name}"`,
      );
    const row: BalanceDefinitionRow = {
      id: newId('bdef'),
      program_id: program.id,
      name: input.name!,
      unit: input.unit ?? 'points',
      min_value: min,
      max_value: max,
      is_default: 0,
      expiration: toJson(input.expiration_rules ?? null),
      metadata: toJson(input.metadata ?? {}),
      created_at: this.ctx.clock.nowIso(),
      updated_at: null,
      reminders: toJson(input.reminders ?? null),
    };
    await db.insertInto('balance_definitions').values(row).execute();
    return row;
  }

  async updateDefinition(
    db: Executor,
    row: BalanceDefinitionRow,
    input: BalanceDefinitionInput,
  ): Promise<BalanceDefinitionRow> {
    const patch: Partial<BalanceDefinitionRow> = { updated_at: this.ctx.clock.nowIso() };
    if (input.name !== undefined && input.name !== row.name) {
      if (row.is_default)
        throw refused(
          'default_definition_rename',
          'The default balance definition cannot be renamed',
          'The default definition is always named "points"',
        );
      patch.name = input.name;
    }
    if (input.unit !== undefined) patch.unit = input.unit;
    if (input.min !== undefined) patch.min_value = input.min ?? 0;
    if (input.max !== undefined) patch.max_value = input.max;
    this.checkLimits(patch.min_value ?? row.min_value, patch.max_value !== undefined ? patch.max_value : row.max_value);
    if (input.expiration_rules !== undefined) {
      if (input.expiration_rules) {
        const err = validateExpirationRules(input.expiration_rules);
        if (err)
          throw invalid('invalid_expiration_rules', 'Invalid expiration rules', err, [
            { field: 'expiration_rules', message: err },
          ]);
      }
      patch.expiration = toJson(input.expiration_rules);
    }
    if (input.metadata !== undefined) patch.metadata = toJson(input.metadata ?? {});
    if (input.reminders !== undefined) patch.reminders = toJson(input.reminders);
    await db.updateTable('balance_definitions').set(patch).where('id', '=', row.id).execute();
    await this.withDefaultCache.invalidate(row.program_id, db);
    if (input.reminders !== undefined) await this.hooks.onRemindersChanged?.(db, row.program_id);
    return { ...row, ...patch };
  }
}
