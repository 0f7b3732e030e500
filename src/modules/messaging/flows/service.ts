import { pageByNumber } from '../../../storage/paging.ts';
import type { AppContext } from '../../../context.ts';
import { conflict, invalid, notFound } from '../../../lib/errors.ts';
import { newId } from '../../../lib/ids.ts';
import { fromJson } from '../../../lib/json.ts';
import type { MessagingDeps } from '../deps.ts';
import type { Executor } from '../../../storage/database.ts';
import { normalizeKeyword } from '../keywords.ts';
import type { MsgFlowsTable } from '../tables.ts';
import type { FlowInput, FlowPatch } from '../schemas.ts';
import { validateDefinition, type FlowDefinition } from './definition.ts';
import { TtlCache } from '../../../lib/ttl-cache.ts';

// Flows and their versions. Saving (create, update, clone) writes a new immutable version and
// re-indexes the triggers of the current one; conversations keep the version they started on.

export type FlowRow = MsgFlowsTable;

export interface FlowVersion {
  flow_id: string;
  version: number;
  definition: FlowDefinition;
  created_at: string;
}

export class FlowService {
  private versionCache = new Map<string, FlowVersion>();
  /** Trigger candidates per (keyword, channel): cached 2 s, cleared by flow writes in any process. */
  private candidateCache = new TtlCache<Candidate[]>(2000);

  private triggersChanged = false;

  constructor(
    private ctx: AppContext,
    private services: MessagingDeps,
  ) {
    // Cleared again once the change is committed, so no concurrent read re-caches the old triggers;
    // then the other processes are told (cache-bus.ts).
    ctx.signals.on('committed', () => {
      if (this.triggersChanged) {
        this.triggersChanged = false;
        this.candidateCache.clear();
        void ctx.caches.changed('flow-triggers', undefined);
      }
    });
    ctx.caches.on('flow-triggers', () => this.candidateCache.clear());
  }

  present(row: FlowRow, v: FlowVersion) {
    return {
      id: row.id,
      object: 'flow' as const,
      version: v.version,
      ...v.definition,
      active: row.active === 1,
      created_at: row.created_at,
      updated_at: row.updated_at,
      version_created_at: v.created_at,
    };
  }

  async find(db: Executor, id: string): Promise<FlowRow | undefined> {
    return db
      .selectFrom('msg_flows')
      .selectAll()
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
  }

  async get(db: Executor, id: string): Promise<FlowRow> {
    const row = await this.find(db, id);
    if (!row) throw notFound('flow', id);
    return row;
  }

  /** A version's definition (immutable, so cached). */
  async version(db: Executor, flowId: string, version: number): Promise<FlowVersion> {
    const key = `${flowId}@${version}`;
    const hit = this.versionCache.get(key);
    if (hit) return hit;
    const row = await db
      .selectFrom('msg_flow_versions')
      .selectAll()
      .where('flow_id', '=', flowId)
      .where('version', '=', version)
      .executeTakeFirst();
    if (!row) throw notFound('flow version', key);
    const v = {
      flow_id: flowId,
      version,
      definition: fromJson<FlowDefinition>(row.definition, null as never),
      created_at: row.created_at,
    };
    if (this.versionCache.size > 2000) this.versionCache.clear();
    this.versionCache.set(key, v);
    return v;
  }

  async versions(db: Executor, flowId: string) {
    return db
      .selectFrom('msg_flow_versions')
      .select(['version', 'created_at'])
      .where('flow_id', '=', flowId)
      .orderBy('version', 'desc')
      .execute();
  }

  private async checkReferences(db: Executor, def: FlowDefinition): Promise<void> {
    await this.services.programs.get(db, def.program_id);
    for (const [i, id] of (def.channels ?? []).entries()) {
      const ch = await db
        .selectFrom('msg_channels')
        .select('id')
        .where('id', '=', id)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      if (!ch)
        throw invalid('invalid_flow', 'Invalid flow', `channels[${i}] names no channel (${id})`, [
          { field: `channels[${i}]`, message: 'unknown channel' },
        ]);
    }
  }

  /**
   * Replaces the flow's trigger index; refuses a keyword another active flow of the same program
   * already answers the same way on the same channel binding, and a second catch-all per binding.
   * Flows of different programs may share a keyword: on a number both listen on, the sender's
   * membership decides (engine.ts).
   */
  private async indexTriggers(trx: Executor, flowId: string, def: FlowDefinition): Promise<void> {
    this.candidateCache.clear();
    this.triggersChanged = true;
    await trx.deleteFrom('msg_triggers').where('flow_id', '=', flowId).execute();
    if (def.active === false) return;
    const now = this.ctx.clock.nowIso();
    const channels = def.channels && def.channels.length > 0 ? def.channels : [''];
    const rows: { keyword: string; alias: string; match: string; channel_id: string }[] = [];
    for (const t of def.triggers) {
      for (const alias of t.keywords) {
        for (const channel_id of channels)
          rows.push({ keyword: normalizeKeyword(alias)!, alias, match: t.match ?? 'first_word', channel_id });
      }
    }
    if (def.catch_all)
      for (const channel_id of channels) rows.push({ keyword: '*', alias: '*', match: 'catch_all', channel_id });
    const seen = new Set<string>();
    for (const r of rows) {
      const k = `${r.keyword}|${r.match}|${r.channel_id}`;
      if (seen.has(k)) continue;
      seen.add(k);
      let clashes = trx
        .selectFrom('msg_triggers')
        .select(['flow_id'])
        .where('keyword', '=', r.keyword)
        .where('match', '=', r.match)
        .where('channel_id', '=', r.channel_id)
        .where('flow_id', '!=', flowId);
      if (r.keyword !== '*') clashes = clashes.where('program_id', '=', def.program_id);
      const clash = await clashes.executeTakeFirst();
      if (clash) {
        const what = r.keyword === '*' ? 'a catch-all' : `keyword "${r.alias}" (${r.match}) in this program`;
        const where = r.channel_id ? `on channel ${r.channel_id}` : 'on all channels';
        throw conflict(
          'trigger_in_use',
          'Trigger already in use',
          `Flow ${clash.flow_id} already answers ${what} ${where}. Deactivate or change that flow, choose another ` +
            'keyword, or bind each flow to its own channels (channels: [channel ids]).',
        );
      }
      await trx
        .insertInto('msg_triggers')
        .values({ id: newId('flw', 20), flow_id: flowId, program_id: def.program_id, ...r, created_at: now })
        .execute();
    }
  }

  private async writeVersion(
    trx: Executor,
    flowId: string,
    version: number,
    def: FlowDefinition,
  ): Promise<FlowVersion> {
    const now = this.ctx.clock.nowIso();
    await trx
      .insertInto('msg_flow_versions')
      .values({ id: newId('flv'), flow_id: flowId, version, definition: JSON.stringify(def), created_at: now })
      .execute();
    await this.indexTriggers(trx, flowId, def);
    return { flow_id: flowId, version, definition: def, created_at: now };
  }

  async create(trx: Executor, input: FlowInput): Promise<{ row: FlowRow; version: FlowVersion }> {
    const def = validateDefinition(input);
    await this.checkReferences(trx, def);
    const now = this.ctx.clock.nowIso();
    const row: FlowRow = {
      id: newId('flw'),
      program_id: def.program_id,
      name: def.name,
      current_version: 1,
      active: def.active === false ? 0 : 1,
      created_at: now,
      updated_at: null,
      deleted_at: null,
    };
    await trx.insertInto('msg_flows').values(row).execute();
    const version = await this.writeVersion(trx, row.id, 1, def);
    return { row, version };
  }

  /** Saves a change: the full definition, or a partial one merged over the current version. */
  async update(trx: Executor, row: FlowRow, input: FlowPatch): Promise<{ row: FlowRow; version: FlowVersion }> {
    const current = await this.version(trx, row.id, row.current_version);
    const def = validateDefinition({ ...current.definition, ...input });
    await this.checkReferences(trx, def);
    const next = row.current_version + 1;
    const patch = {
      current_version: next,
      name: def.name,
      program_id: def.program_id,
      active: def.active === false ? 0 : 1,
      updated_at: this.ctx.clock.nowIso(),
    };
    await trx.updateTable('msg_flows').set(patch).where('id', '=', row.id).execute();
    const version = await this.writeVersion(trx, row.id, next, def);
    return { row: { ...row, ...patch }, version };
  }

  /** A new flow from this one's current definition, with overrides (name, triggers, steps...). */
  async clone(trx: Executor, row: FlowRow, overrides: FlowPatch) {
    const current = await this.version(trx, row.id, row.current_version);
    const def = { ...structuredClone(current.definition), ...overrides };
    if (!overrides.name) def.name = `${current.definition.name} (copy)`;
    // A clone answering the same keywords would clash: without new triggers it starts inactive.
    if (!overrides.triggers && overrides.active === undefined && !overrides.channels) def.active = false;
    if (!overrides.catch_all && def.catch_all && overrides.active === undefined) def.active = false;
    return this.create(trx, def);
  }

  async softDelete(trx: Executor, row: FlowRow): Promise<void> {
    await trx
      .updateTable('msg_flows')
      .set({ deleted_at: this.ctx.clock.nowIso(), active: 0 })
      .where('id', '=', row.id)
      .execute();
    await trx.deleteFrom('msg_triggers').where('flow_id', '=', row.id).execute();
    this.candidateCache.clear();
    this.triggersChanged = true;
  }

  async list(db: Executor, q: { limit: number; page: number; program_id?: string }) {
    let base = db.selectFrom('msg_flows').where('deleted_at', 'is', null);
    if (q.program_id) base = base.where('program_id', '=', q.program_id);
    return pageByNumber(base, q, (b) => b.selectAll().orderBy('created_at').orderBy('id'));
  }

  /** Triggers that could answer this first token on this channel (keyword or catch-all). */
  async candidates(db: Executor, keyword: string | null, channelId: string): Promise<Candidate[]> {
    return this.candidateCache.getOr(`${channelId}\u0000${keyword ?? ''}`, () => {
      const keywords = keyword ? [keyword, '*'] : ['*'];
      return db
        .selectFrom('msg_triggers as t')
        .innerJoin('msg_flows as f', 'f.id', 't.flow_id')
        .select(['t.flow_id', 't.program_id', 't.keyword', 't.alias', 't.match', 't.channel_id', 't.created_at'])
        .select('f.current_version')
        .where('t.keyword', 'in', keywords)
        .where('t.channel_id', 'in', [channelId, ''])
        .where('f.deleted_at', 'is', null)
        .where('f.active', '=', 1)
        .execute();
    });
  }
}

export interface Candidate {
  flow_id: string;
  program_id: string;
  keyword: string;
  alias: string;
  match: string;
  channel_id: string;
  created_at: string;
  current_version: number;
}
