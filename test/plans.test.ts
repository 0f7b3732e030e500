import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CompiledQuery, type Kysely, type KyselyPlugin, type RootOperationNode, sql } from 'kysely';
import { liveDaysRetention } from '../src/modules/messaging/retention.ts';
import { hotStatements } from '../src/storage/hot.ts';
import type { DB } from '../src/storage/schema.ts';
import { createChannel, createPointsFlow, simulate } from './messaging/setup.ts';
import { backend, createMember, createProgram, startTestServer, type TestServer } from './helpers/server.ts';
import { ok } from './vouchers/helpers.ts';

// Issue #18: no list or report query of the API reads rows in proportion to a large table. Each
// route below is called over HTTP with a spy on the database handle the routes and services read
// (`ctx.database.db`): the SELECTs they really run are captured as Kysely compiles them, then
// explained on the same database — EXPLAIN QUERY PLAN on SQLite, EXPLAIN (FORMAT JSON) on
// PostgreSQL with sequential scans disabled (on a table of a few rows the planner would rightly
// prefer one; disabled, it still picks one when no index can serve the query). The data is small:
// the test checks the plan's shape, not its time. A full scan of a table below fails the test.

/** Tables that grow with members, activity or time (the others grow with configuration). */
const LARGE = new Set([
  'customers',
  'memberships',
  'membership_contacts',
  'balances',
  'ledger_entries',
  'point_lots',
  'pending_points',
  'member_tiers',
  'tier_associations',
  'earning_rule_usage',
  'orders',
  'processed_activities',
  'outbox_events',
  'idempotency_keys',
  'scheduled_jobs',
  'vouchers',
  'publications',
  'redemptions',
  'msg_messages',
  'msg_flow_days',
  'msg_flow_live_days',
  'msg_flow_redemptions',
  'msg_flow_member_days',
  'msg_flow_message_figures',
  // Not msg_flow_report_queue: it holds the writes since the last fold (half a second), read in
  // its key's order up to a batch; on SQLite that key is the rowid, which a plan shows as SCAN.
  'msg_conversations',
  'msg_consents',
  'msg_consent_events',
  'webhook_deliveries',
  'webhook_attempts',
  // A program's member counter: COUNTER_SLOTS rows per program, read by its key. (customer_counts
  // is not here: it holds COUNTER_SLOTS rows in all, read whole by design.)
  'program_member_counts',
]);

interface Captured {
  route: string;
  query: CompiledQuery;
}

/**
 * Full scans of large tables in a SQLite plan (`SCAN t`, without an index), and a page (LIMIT) of a
 * large table sorted from every matching row (`USE TEMP B-TREE FOR ORDER BY`: no index gives the order).
 */
function sqliteFullScans(details: string[], sqlText: string): string[] {
  // Kysely writes `"table" as "alias"`: the plan names the alias.
  const aliases = new Map<string, string>();
  for (const m of sqlText.matchAll(/"(\w+)" as "(\w+)"/g)) aliases.set(m[2], m[1]);
  const out: string[] = [];
  for (const d of details) {
    const from = /\bfrom "(\w+)"/i.exec(sqlText)?.[1] ?? '';
    if (/USE TEMP B-TREE FOR (RIGHT PART OF )?ORDER BY/.test(d) && /\blimit\b/i.test(sqlText) && LARGE.has(from)) {
      out.push(`a page sorted from every matching row of ${from}`);
    }
    const m = /^SCAN (\w+)$/.exec(d.trim());
    if (!m) continue;
    const table = aliases.get(m[1]) ?? m[1];
    if (LARGE.has(table)) out.push(`${d} (${table})`);
  }
  return out;
}

interface PgPlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Cond'?: string;
  Filter?: string;
  Plans?: PgPlanNode[];
}

/**
 * Full reads of large tables in a PostgreSQL plan: a Seq Scan (with seqscan disabled, there was no
 * index to use), or an index walked whole to filter its rows (no Index Cond, a Filter).
 */
function pgFullScans(node: PgPlanNode, out: string[] = []): string[] {
  const table = node['Relation Name'];
  if (table && LARGE.has(table)) {
    if (node['Node Type'] === 'Seq Scan') out.push(`Seq Scan on ${table}${node.Filter ? ` (${node.Filter})` : ''}`);
    if (/^Index (Only )?Scan$/.test(node['Node Type']) && !node['Index Cond'] && node.Filter) {
      out.push(`${node['Node Type']} on ${table} filtering the whole index (${node.Filter})`);
    }
  }
  // A page (a Limit) taken from a Sort of rows of a large table: every matching row read and sorted
  // for each page. With sorts disabled, the planner keeps one only when no index gives the order.
  if (node['Node Type'] === 'Limit') {
    const sortBelow = (n: PgPlanNode): PgPlanNode | undefined =>
      n['Node Type'] === 'Sort' ? n : (n.Plans ?? []).map(sortBelow).find(Boolean);
    const tables = (n: PgPlanNode): string[] =>
      [n['Relation Name'] ?? '', ...(n.Plans ?? []).flatMap(tables)].filter((t) => LARGE.has(t));
    const sort = (node.Plans ?? []).map(sortBelow).find(Boolean);
    if (sort && tables(sort).length) out.push(`a page sorted from every matching row of ${tables(sort).join(', ')}`);
  }
  for (const child of node.Plans ?? []) pgFullScans(child, out);
  return out;
}

describe('query plans: no list or report reads a large table whole', () => {
  let t: TestServer;
  let real: Kysely<DB>;
  const captured: Captured[] = [];
  let route = '';
  const ids: Record<string, string> = {};
  let checks = 0;

  before(async () => {
    t = await startTestServer();
    real = t.server.ctx.database.db;

    // A little of everything the routes read.
    const program = await createProgram(t, { name: 'Plans', auto_join: true });
    ids.program = program.id;
    await ok(t, 'POST', `/v1/loyalties/${program.id}/earning-rules`, [
      {
        event: 'visit',
        loyalty: { type: 'FIXED', points: 5 },
        pending_points: { period_type: 'DAY', period_value: 2 },
      },
    ]);
    const member = await createMember(t, program.id, { source_id: 'plans-ana', name: 'Ana', phone: '+385911800001' });
    ids.card = member.code;
    ids.customer = member.holder_id;
    for (let i = 0; i < 3; i++) {
      await ok(t, 'POST', `/v1/loyalties/members/${member.code}/balance`, { points: 10 + i });
    }
    await ok(t, 'POST', '/v1/events', { event: 'visit', customer: { source_id: 'plans-ana' } });
    await ok(t, 'POST', `/v1/loyalties/members/${member.code}/holders`, { holders: [{ source_id: 'plans-kid' }] });
    for (let i = 0; i < 3; i++) await createMember(t, program.id);
    ids.kid = (await ok(t, 'GET', '/v1/customers/plans-kid')).id;
    ids.order = (await ok(t, 'POST', '/v1/orders', { customer: { source_id: 'plans-ana' }, amount: 500 })).id;
    const tx = await ok(t, 'GET', `/v1/loyalties/members/${member.code}/transactions?limit=2`);
    ids.txCursor = tx.more_starting_after ?? tx.data[tx.data.length - 1].id;
    const events = await ok(t, 'GET', '/v1/events?limit=1');
    ids.eventCursor = events.data[0].id;

    await ok(t, 'POST', '/v1/campaigns', {
      name: 'Plans off',
      voucher: { type: 'DISCOUNT_VOUCHER', discount: { type: 'AMOUNT', amount_off: 300 } },
    });
    const pub = await ok(t, 'POST', '/v1/publications', { campaign: 'Plans off', customer: ids.customer });
    ids.voucher = pub.voucher.code;
    ids.campaign = pub.voucher.campaign_id;
    await ok(t, 'POST', `/v1/vouchers/${ids.voucher}/redemption`, {
      customer: ids.customer,
      order: { amount: 1000 },
    });
    // A stacked redemption: its parent and two children (migration 0503).
    const second = await ok(t, 'POST', '/v1/publications', { campaign: 'Plans off', customer: ids.customer });
    const stacked = await ok(t, 'POST', '/v1/redemptions', {
      redeemables: [
        { object: 'voucher', id: ids.voucher },
        { object: 'voucher', id: second.voucher.code },
      ],
      customer: ids.customer,
      order: { amount: 1000 },
    });
    ids.parentRedemption = stacked.parent_redemption.id;

    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000000801' });
    ids.channel = ch.id;
    ids.flow = (await createPointsFlow(t, program.id, { channels: [ch.id] })).id;
    await simulate(t, '+385911800001', 'POINTS', ch.id);
    // A flow message 16 days ago followed by Ana's redemption 15 days ago: the 30-day report rolls
    // that final day up (msg_flow_days), attributing the redemption, so its statements run too.
    const DAY = 86_400_000;
    const ago = (days: number) => new Date(Date.now() - days * DAY).toISOString();
    await real
      .updateTable('msg_flows')
      .set({ created_at: ago(30) })
      .where('id', '=', ids.flow)
      .execute();
    const sent = await real
      .selectFrom('msg_messages')
      .selectAll()
      .where('flow_id', '=', ids.flow)
      .where('direction', '=', 'out')
      .executeTakeFirstOrThrow();
    await real
      .insertInto('msg_messages')
      .values({ ...sent, id: 'msg_plans_old', created_at: ago(16), updated_at: ago(16) })
      .execute();
    await real
      .updateTable('redemptions')
      .set({ created_at: ago(15) })
      .where('customer_id', '=', ids.customer)
      .execute();

    // From here on, every query the routes run goes through the spy.
    const spy: KyselyPlugin = {
      transformQuery({ node }) {
        if (node.kind === 'SelectQueryNode' && route) {
          const query = real.getExecutor().compileQuery(node as RootOperationNode, { queryId: 'plan' } as never);
          captured.push({ route, query });
        }
        return node;
      },
      async transformResult({ result }) {
        return result;
      },
    };
    t.server.ctx.database.db = real.withPlugin(spy);
  });

  after(async () => {
    // How many statements were explained (the test's reach, printed for the record).
    console.log(`query plans: ${checks} statements of ${routes.length} routes explained on ${backend}`);
    t.server.ctx.database.db = real;
    await t.close();
  });

  /**
   * Calls the route (a path: GET over HTTP; a function: the service method a route calls, given the
   * spy, for routes that keep the handle they were registered with) and explains every SELECT it
   * ran; answers the full scans found. On PostgreSQL, `planner`: 'indexes only' disables sequential
   * scans and sorts (on a few rows the planner would rightly choose them; disabled, it still does
   * when no index can serve the query), 'sorts allowed' disables sequential scans only (lists of one
   * phone's or customer's few rows, sorted: SORTED_FEW), 'as is' neither: the plan it would choose
   * on these statistics.
   */
  async function scansOf(
    name: string,
    target: Target,
    planner: 'indexes only' | 'sorts allowed' | 'as is' = 'indexes only',
  ): Promise<{ checked: number; scans: string[] }> {
    route = name;
    const from = captured.length;
    if (typeof target === 'string') {
      const res = await t.api('GET', target);
      assert.equal(res.status, 200, `${target}: ${JSON.stringify(res.body)}`);
    } else await target(t.server.ctx.database.db);
    route = '';
    const queries = captured.slice(from).filter((c) => /\bfrom\b/i.test(c.query.sql));
    assert.ok(queries.length > 0, `${name} ran no query through the spy`);
    const scans: string[] = [];
    if (backend === 'sqlite') {
      for (const { query } of queries) {
        const plan = await real.executeQuery<{ detail: string }>(
          CompiledQuery.raw(`EXPLAIN QUERY PLAN ${query.sql}`, [...query.parameters]),
        );
        for (const s of sqliteFullScans(
          plan.rows.map((r) => r.detail),
          query.sql,
        ))
          scans.push(`${s} in: ${query.sql}`);
      }
    } else {
      // One connection, so the setting holds for every EXPLAIN below.
      await real.connection().execute(async (conn) => {
        if (planner !== 'as is') await sql`SET enable_seqscan = off`.execute(conn);
        if (planner === 'indexes only') await sql`SET enable_sort = off`.execute(conn);
        try {
          for (const { query } of queries) {
            const plan = await conn.executeQuery<{ 'QUERY PLAN': { Plan: PgPlanNode }[] }>(
              CompiledQuery.raw(`EXPLAIN (FORMAT JSON) ${query.sql}`, [...query.parameters]),
            );
            for (const s of pgFullScans(plan.rows[0]['QUERY PLAN'][0].Plan)) scans.push(`${s} in: ${query.sql}`);
          }
        } finally {
          await sql`RESET enable_seqscan`.execute(conn);
          await sql`RESET enable_sort`.execute(conn);
        }
      });
    }
    checks += queries.length;
    return { checked: queries.length, scans };
  }

  it('the hot statements (compiled once, run by every ledger write and activity) read by index', async () => {
    // Compiled once per process and sent as text afterwards (storage/hot.ts), they never pass the
    // spy again: their cached texts are explained instead, with generic parameters (SQLite plans
    // ignore the values; PostgreSQL is asked for its generic plan).
    const selects = [...hotStatements(real)].filter(([, text]) => /^\s*select\b/i.test(text));
    assert.ok(selects.length >= 3, `hot SELECTs compiled by the set-up: ${selects.map(([k]) => k).join(', ')}`);
    // A redemption's lookup of the flow messages before it (the flow report's credit), among them.
    assert.ok(selects.some(([k]) => k === 'msg.flowMessagesBefore'));
    const scans: string[] = [];
    if (backend === 'sqlite') {
      for (const [key, text] of selects) {
        const params = (text.match(/\?/g) ?? []).map(() => null);
        const plan = await real.executeQuery<{ detail: string }>(
          CompiledQuery.raw(`EXPLAIN QUERY PLAN ${text}`, params),
        );
        for (const s of sqliteFullScans(
          plan.rows.map((r) => r.detail),
          text,
        ))
          scans.push(`${key}: ${s}`);
      }
    } else {
      await real.connection().execute(async (conn) => {
        await sql`SET enable_seqscan = off`.execute(conn);
        await sql`SET plan_cache_mode = force_generic_plan`.execute(conn);
        try {
          for (const [i, [key, text]] of selects.entries()) {
            const n = Math.max(0, ...[...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
            await conn.executeQuery(CompiledQuery.raw(`PREPARE plan_check_${i} AS ${text}`));
            const args = n > 0 ? `(${Array.from({ length: n }, () => 'NULL').join(', ')})` : '';
            const plan = await conn.executeQuery<{ 'QUERY PLAN': { Plan: PgPlanNode }[] }>(
              CompiledQuery.raw(`EXPLAIN (FORMAT JSON) EXECUTE plan_check_${i}${args}`),
            );
            await conn.executeQuery(CompiledQuery.raw(`DEALLOCATE plan_check_${i}`));
            for (const s of pgFullScans(plan.rows[0]['QUERY PLAN'][0].Plan)) scans.push(`${key}: ${s}`);
          }
        } finally {
          await sql`RESET plan_cache_mode`.execute(conn);
          await sql`RESET enable_seqscan`.execute(conn);
        }
      });
    }
    checks += selects.length;
    assert.deepEqual(scans, []);
  });

  type Target = string | ((db: Kysely<DB>) => Promise<unknown>);
  const messages = (q: Record<string, string>) => (db: Kysely<DB>) =>
    t.server.services.messaging.outbound.list(db, { limit: 10, page: 1, ...q });
  const routes: [string, () => Target][] = [
    ['a member', () => `/v1/loyalties/members/${ids.card}`],
    ["a member's transactions, first page", () => `/v1/loyalties/members/${ids.card}/transactions?limit=2`],
    [
      "a member's transactions, after a cursor",
      () => `/v1/loyalties/members/${ids.card}/transactions?limit=2&starting_after_id=${ids.txCursor}`,
    ],
    ["a program's transactions", () => `/v1/loyalties/${ids.program}/transactions?limit=10`],
    ["a member's balances", () => `/v1/loyalties/members/${ids.card}/balances`],
    ["a member's pending points", () => `/v1/loyalties/members/${ids.card}/pending-points`],
    ["a program's pending points", () => `/v1/loyalties/${ids.program}/pending-points`],
    ['points expiration', () => `/v1/loyalties/${ids.program}/members/${ids.card}/points-expiration`],
    [
      'events by type and program',
      () => `/v1/events?type=customer.voucher.loyalty_card.points_added&program_id=${ids.program}&limit=10`,
    ],
    [
      'events by type and program, after a cursor',
      () => `/v1/events?type=balance_value_updated&program_id=${ids.program}&starting_after_id=${ids.eventCursor}`,
    ],
    ['events of a resource', () => `/v1/events?resource_id=${ids.card}`],
    ['a customer by phone', () => '/v1/customers?phone=%2B385911800001'],
    ["customers by name (the console's search)", () => '/v1/customers?name=Ana'],
    ["a customer's redeemables", () => `/v1/customers/${ids.customer}/redeemables`],
    ['the members of a program, page 1', () => `/v1/loyalties/${ids.program}/members?limit=2`],
    ['the members of a program, page 2', () => `/v1/loyalties/${ids.program}/members?limit=2&page=2`],
    ["a customer's card in a program", () => `/v1/loyalties/${ids.program}/members?customer=${ids.customer}`],
    ['the holders of a card', () => `/v1/loyalties/members/${ids.card}/holders`],
    ['the flow report (30 days)', () => `/v1/flows/${ids.flow}/report`],
    ['messages of a phone', () => messages({ phone: '+385911800001' })],
    ['messages of a flow', () => messages({ flow_id: ids.flow })],
    ['messages of a channel', () => messages({ channel_id: ids.channel })],
    ['messages, newest first', () => messages({})],
    ['active members of a program', () => `/v1/loyalties/${ids.program}/members?status=ACTIVE`],
    ['customers, page 1', () => '/v1/customers?limit=2'],
    ['customers, oldest first, page 2', () => '/v1/customers?limit=2&page=2&order=created_at'],
    ['a program (its active members)', () => `/v1/loyalties/${ids.program}`],
    [
      "a member's transactions in its program",
      () => `/v1/loyalties/${ids.program}/members/${ids.card}/transactions?limit=2`,
    ],
    ["a member's rewards", () => `/v1/loyalties/members/${ids.card}/rewards`],
    ["a member's tiers", () => `/v1/loyalties/members/${ids.card}/tiers`],
    ['a customer', () => `/v1/customers/${ids.customer}`],
    ['events of a program', () => `/v1/events?program_id=${ids.program}`],
    ['events of a type', () => '/v1/events?type=subscription_created'],
    ["an event's delivery attempts", () => `/v1/events/${ids.eventCursor}/attempts`],
    [
      "a phone's consent",
      () => async (db) => {
        await t.server.services.messaging.optout.status(db, '+385911800001');
        await t.server.services.messaging.optout.history(db, '+385911800001');
      },
    ],
    ['an order', () => `/v1/orders/${ids.order}`],
    ['the cards a contact shares (households)', () => (db) => t.server.services.households.sharedCards(db, ids.kid)],
    ['vouchers of a campaign', () => `/v1/vouchers?campaign_id=${ids.campaign}`],
    ['vouchers of a customer', () => `/v1/vouchers?customer=${ids.customer}`],
    ['publications of a customer', () => `/v1/publications?customer=${ids.customer}`],
    ['redemptions of a customer', () => `/v1/redemptions?customer=${ids.customer}`],
    ['redemptions of a voucher', () => `/v1/redemptions?voucher=${ids.voucher}`],
    ['redemptions of a voucher code never issued', () => '/v1/redemptions?voucher=NO-SUCH-CODE'],
    ['redemptions of a campaign', () => `/v1/redemptions?campaign=${ids.campaign}`],
    ['vouchers of a campaign, after a cursor', () => `/v1/vouchers?campaign_id=${ids.campaign}&starting_after_id=`],
    ['the children of a stacked redemption', () => `/v1/redemptions?parent_redemption_id=${ids.parentRedemption}`],
    [
      "a stack's children, for its rollback",
      () => (db) => t.server.services.vouchers.stackChildren(db, ids.parentRedemption),
    ],
    [
      "the flow report's fold (queued messages and pending credits into their days' running figures)",
      () => async (db) => {
        // The flow's messages queued again and a credit pending: the batch reads them, what their
        // days hold of them, their day rows and the members' counts.
        await real
          .insertInto('msg_flow_report_queue')
          .columns(['message_id'])
          .expression(real.selectFrom('msg_messages').select('id').where('flow_id', '=', ids.flow))
          .execute();
        await real.deleteFrom('msg_flow_message_figures').execute();
        const day = new Date().toISOString().slice(0, 10);
        await real
          .insertInto('msg_flow_redemptions')
          .values({
            redemption_id: 'r_plans_credit',
            flow_id: ids.flow,
            day,
            points: 10,
            rolled_back: 0,
            report_pending: 1,
            report_counted: 0,
            created_at: new Date().toISOString(),
          })
          .onConflict((oc) => oc.columns(['redemption_id', 'flow_id']).doNothing())
          .execute();
        await t.server.services.messaging.reports.live.foldBatch(db, false);
      },
    ],
    [
      "retention of the running figures' rows",
      () => async (db) => {
        for (const p of liveDaysRetention()) await p.deleteBatch(db, new Date().toISOString(), 10);
      },
    ],
  ];

  it('sees a full scan where there is one (the check itself)', async () => {
    // customers.description has no index: reading customers by it is a full scan on both backends.
    const { scans } = await scansOf('a scan', (db) =>
      db.selectFrom('customers').selectAll().where('description', '=', 'Ana').execute(),
    );
    assert.equal(scans.length, 1, JSON.stringify(scans));
    checks -= 1;
  });

  // Page 1 of an unfiltered list answers its `total` from a counter kept with the rows
  // (src/storage/counters.ts), not by counting the list: no count(*) of the list's table runs.
  for (const [name, path, counter, table] of [
    [
      "the members of a program, page 1, total from the program's counter",
      `members?limit=2`,
      'program_member_counts',
      'memberships',
    ],
    ['customers, page 1, total from the counter', '/v1/customers?limit=2', 'customer_counts', 'customers'],
    ['a program, its members from the counter', '', 'program_member_counts', 'memberships'],
  ] as const) {
    it(name, async () => {
      const target =
        path === ''
          ? `/v1/loyalties/${ids.program}`
          : path.startsWith('/')
            ? path
            : `/v1/loyalties/${ids.program}/${path}`;
      const from = captured.length;
      const { scans } = await scansOf(name, target);
      assert.deepEqual(scans, []);
      const texts = captured.slice(from).map((c) => c.query.sql);
      assert.ok(
        texts.some((q) => q.includes(`"${counter}"`)),
        `reads ${counter}: ${texts.join('\n')}`,
      );
      const counts = texts.filter((q) => /count\(\*\)/i.test(q) && q.includes(`from "${table}"`));
      assert.deepEqual(counts, [], `counts ${table}`);
    });
  }

  /**
   * Lists of one phone's or one customer's rows: a page sorts those few rows (the phone's or the
   * customer's index finds them; none goes on in the list's order, and none needs to).
   */
  const SORTED_FEW = new Set([
    'a customer by phone',
    'messages of a phone',
    "a phone's consent",
    'publications of a customer',
  ]);

  for (const [name, path] of routes) {
    it(name, async () => {
      const { scans } = await scansOf(name, path(), SORTED_FEW.has(name) ? 'sorts allowed' : 'indexes only');
      // SQLite plans have no setting: its sorts of a few rows are told apart by name too.
      if (SORTED_FEW.has(name)) scans.splice(0, scans.length, ...scans.filter((s) => !s.startsWith('a page sorted')));
      assert.deepEqual(scans, [], `${name}: full scans of large tables`);
    });
  }

  // Last: it adds 30,000 ledger entries. A card holding much of the ledger, all of it older than the
  // rest: the statistics then make walking the ledger's key (seq) backwards and filtering on the card
  // look cheaper than the card's index, and that walk reads every newer entry of the table first
  // (storage/paging.ts, KeyWalk). The plan is the one the planner chooses, sequential scans allowed.
  it("a card with a large, old history: its transactions by its index, not the ledger's key walked back", async () => {
    const heavy = await createMember(t, ids.program, { source_id: 'plans-heavy' });
    await ok(t, 'POST', `/v1/loyalties/members/${heavy.code}/balance`, { points: 1 });
    const { seq: _seq, ...entry } = await real
      .selectFrom('ledger_entries')
      .selectAll()
      .where('membership_id', '=', heavy.id)
      .executeTakeFirstOrThrow();
    // The card's 3,000 entries first, then 27,000 of 50 other cards, interleaved (as a grown ledger has them).
    const rows = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, k) => {
        const i = from + k;
        return i < 3000
          ? { ...entry, id: `ltr_plans_heavy_${i}` }
          : { ...entry, id: `ltr_plans_other_${i}`, membership_id: `m_plans_${(i * 7919) % 50}` };
      });
    // Analysed after the card's entries, as a database is between two analyses: the statistics say the
    // card holds most of the ledger (SQLite's change only on ANALYZE; PostgreSQL's autovacuum may
    // analyse again meanwhile, and at a tenth its planner chooses the same walk).
    for (let i = 0; i < 30_000; i += 500) {
      await real
        .insertInto('ledger_entries')
        .values(rows(i, i + 500))
        .execute();
      if (i + 500 === 3000) await sql`ANALYZE`.execute(real);
    }
    const first = await ok(t, 'GET', `/v1/loyalties/members/${heavy.code}/transactions?limit=10`);
    assert.equal(first.data.length, 10);
    assert.equal(first.data[0].id, 'ltr_plans_heavy_2999', 'newest first');
    for (const [name, target] of [
      ['first page', `/v1/loyalties/members/${heavy.code}/transactions?limit=10`],
      [
        'after a cursor',
        `/v1/loyalties/members/${heavy.code}/transactions?limit=10&starting_after_id=ltr_plans_heavy_100`,
      ],
    ]) {
      // The other tables hold a few rows, which the planner rightly reads whole.
      const { scans } = await scansOf(`a heavy card's transactions, ${name}`, target, 'as is');
      assert.deepEqual(
        scans.filter((s) => s.split(' in: ')[0].includes('ledger_entries')),
        [],
        `${name}: the ledger read whole`,
      );
    }
  });
});
