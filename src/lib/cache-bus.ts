import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { sql } from 'kysely';
import type { Database, Executor } from '../storage/db.ts';

// Cache invalidation across the processes of one deployment.
//
// Services cache what every request reads and few requests change (API keys, programs, earning
// rules, tiers, channels, flow triggers). A change through this process drops its own entries at
// once; the other processes on the same PostgreSQL database hear of it through NOTIFY on one
// channel, sent in the changing transaction (`pg_notify` is delivered when that transaction
// commits, and never if it rolls back), so a revoked API key or a disabled earning rule stops
// working everywhere within milliseconds instead of when the other processes' entries expire.
// Should the listening connection drop, every cache that listens is cleared when it is back (what
// was sent meanwhile is lost); until then the entries' TTL (5 s) still bounds staleness. SQLite
// deployments are one process: there is nobody to tell.

const CHANNEL = 'tally_cache';

interface Message {
  /** The sending process (it ignores its own messages: it has dropped its entries already). */
  o: string;
  t: string;
  k?: string;
}

export class CacheBus {
  private readonly origin = randomUUID();
  private handlers = new Map<string, ((key: string | undefined) => void)[]>();
  private stopListening: (() => Promise<void>) | undefined;

  constructor(
    private database: Database,
    private log?: FastifyBaseLogger,
  ) {}

  /** Starts listening (PostgreSQL); a failure is logged and leaves the TTLs in charge. */
  async start(): Promise<void> {
    if (!this.database.listen || this.stopListening) return;
    try {
      this.stopListening = await this.database.listen(CHANNEL, (payload) => this.receive(payload), () => this.dropAll());
    } catch (err) {
      this.log?.warn({ err }, 'cache invalidation from other processes is off (LISTEN failed); cached entries expire after their TTL');
    }
  }

  async close(): Promise<void> {
    const stop = this.stopListening;
    this.stopListening = undefined;
    await stop?.();
  }

  /** Runs `fn` when another process changed what `topic` caches (`key`: one entry; undefined: all). */
  on(topic: string, fn: (key: string | undefined) => void): void {
    const list = this.handlers.get(topic) ?? [];
    list.push(fn);
    this.handlers.set(topic, list);
  }

  /**
   * Tells the other processes that `topic` (`key`, or all of it) changed: with `executor` a
   * PostgreSQL transaction, when it commits; otherwise now (the change is committed already).
   */
  async changed(topic: string, key: string | undefined, executor?: Executor): Promise<void> {
    if (!this.database.listen) return;
    const payload = JSON.stringify({ o: this.origin, t: topic, ...(key === undefined ? {} : { k: key }) } satisfies Message);
    const inTransaction = executor?.isTransaction === true;
    try {
      await sql`select pg_notify(${CHANNEL}, ${payload})`.execute(inTransaction ? executor! : this.database.db);
    } catch (err) {
      if (inTransaction) throw err;
      this.log?.warn({ err, topic }, 'could not tell the other processes about a change; their cached entries expire after their TTL');
    }
  }

  private receive(payload: string): void {
    let m: Message;
    try {
      m = JSON.parse(payload) as Message;
    } catch {
      return;
    }
    if (m.o === this.origin) return;
    for (const fn of this.handlers.get(m.t) ?? []) fn(m.k);
  }

  private dropAll(): void {
    for (const list of this.handlers.values()) for (const fn of list) fn(undefined);
  }
}
