import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { sql } from 'kysely';
import type { Database, Executor } from '../storage/database.ts';

// Cache invalidation across the processes of one deployment.
//
// Services cache what every request reads and few requests change (API keys, programs, earning
// rules, tiers, channels, flow triggers). A change through this process drops its own entries at
// once; the other processes on the same PostgreSQL database hear of it through NOTIFY on one
// channel, sent in the changing transaction (`pg_notify` is delivered when that transaction
// commits, and never if it rolls back), so a revoked API key or a disabled earning rule stops
// working everywhere within milliseconds instead of when the other processes' entries expire.
// Should the listening connection drop, every cache that listens is cleared when it is back (what
// was sent meanwhile is lost); until then the entries' TTL (5 s) still bounds staleness.
//
// On SQLite there is no NOTIFY, yet other processes can share the file: the CLI (`tally keys
// revoke`), or a second server. A change is a row of `cache_changes`, added in the changing
// transaction (gone with it if it rolls back); every process reads the rows added since its last
// read every 250 ms (one indexed read of an almost empty table), and drops rows older than an
// hour once a minute. A process that missed rows (asleep for an hour) is covered by the TTL.

const CHANNEL = 'tally_cache';
const POLL_MS = 250;
const KEEP_MS = 3600_000;

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

  /**
   * Starts hearing the other processes (PostgreSQL: LISTEN; SQLite: reading `cache_changes`); a
   * failure is logged and leaves the TTLs in charge.
   */
  async start(): Promise<void> {
    if (this.stopListening) return;
    if (this.database.dialect === 'sqlite') {
      this.stopListening = await this.pollChanges();
      return;
    }
    if (!this.database.listen) return;
    try {
      this.stopListening = await this.database.listen(
        CHANNEL,
        (payload) => this.receive(payload),
        () => this.dropAll(),
      );
    } catch (err) {
      this.log?.warn(
        { err },
        'cache invalidation from other processes is off (LISTEN failed); cached entries expire after their TTL',
      );
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
   * Tells the other processes that `topic` (`key`, or all of it) changed: with `executor` the
   * changing transaction, when it commits; otherwise now (the change is committed already).
   */
  async changed(topic: string, key: string | undefined, executor?: Executor): Promise<void> {
    const sqlite = this.database.dialect === 'sqlite';
    if (!sqlite && !this.database.listen) return;
    // Sent in the changing transaction, the message is part of the change: its failure is the
    // change's. (SQLite's group-commit transactions are not Kysely transactions: any executor given
    // is the caller's.)
    const inTransaction = sqlite ? executor !== undefined : executor?.isTransaction === true;
    const on = inTransaction ? executor! : this.database.db;
    try {
      if (sqlite) {
        await on
          .insertInto('cache_changes')
          .values({ origin: this.origin, topic, key: key ?? null, created_at: new Date().toISOString() })
          .execute();
      } else {
        const payload = JSON.stringify({
          o: this.origin,
          t: topic,
          ...(key === undefined ? {} : { k: key }),
        } satisfies Message);
        await sql`select pg_notify(${CHANNEL}, ${payload})`.execute(on);
      }
    } catch (err) {
      if (inTransaction) throw err;
      this.log?.warn(
        { err, topic },
        'could not tell the other processes about a change; their cached entries expire after their TTL',
      );
    }
  }

  private receive(payload: string): void {
    let m: Message;
    try {
      m = JSON.parse(payload) as Message;
    } catch {
      return;
    }
    this.deliver(m);
  }

  private deliver(m: Message): void {
    if (m.o === this.origin) return;
    for (const fn of this.handlers.get(m.t) ?? []) fn(m.k);
  }

  /** SQLite: reads the changes other processes logged, from now on; answers the function that stops. */
  private async pollChanges(): Promise<() => Promise<void>> {
    const db = this.database.db;
    let last = Number(
      (
        await db
          .selectFrom('cache_changes')
          .select((eb) => eb.fn.max('seq').as('seq'))
          .executeTakeFirst()
      )?.seq ?? 0,
    );
    let polls = 0;
    let running: Promise<void> | undefined;
    const poll = async () => {
      const rows = await db
        .selectFrom('cache_changes')
        .select(['seq', 'origin', 'topic', 'key'])
        .where('seq', '>', last)
        .orderBy('seq')
        .limit(1000)
        .execute();
      for (const r of rows) {
        last = Number(r.seq);
        this.deliver({ o: r.origin, t: r.topic, ...(r.key === null ? {} : { k: r.key }) });
      }
      if (++polls % (60_000 / POLL_MS) === 0) {
        await db
          .deleteFrom('cache_changes')
          .where('created_at', '<', new Date(Date.now() - KEEP_MS).toISOString())
          .execute();
      }
    };
    const timer = setInterval(() => {
      if (running) return;
      running = poll()
        .catch((err: unknown) =>
          this.log?.warn(
            { err },
            'could not read the cache changes of other processes; cached entries expire after their TTL',
          ),
        )
        .finally(() => (running = undefined));
    }, POLL_MS);
    timer.unref();
    return async () => {
      clearInterval(timer);
      await running;
    };
  }

  private dropAll(): void {
    for (const list of this.handlers.values()) for (const fn of list) fn(undefined);
  }
}
