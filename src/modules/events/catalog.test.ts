import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { assertLedgerInvariants } from '../../../test/helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type TestServer } from '../../../test/helpers/server.ts';
import type { ManualClock } from '../../lib/clock.ts';
import { EVENT_CATALOG, LOYALTY_EVENT_TYPES, POINTS_ADDED, POINTS_EXPIRED } from './catalog.ts';
import { RETENTION_JOB } from '../scheduler/retention.ts';

const addFormats = (addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule;

function validators() {
  const ajv = new Ajv({ allErrors: true, strict: false });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  return new Map(EVENT_CATALOG.map((e) => [e.type, ajv.compile(e.schema)]));
}

describe('event catalog', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ manualClock: true });
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  it('lists every type of the issue with a schema, and each documented example validates', async () => {
    const res = await t.api('GET', '/v1/event-types');
    assert.equal(res.status, 200);
    const types = res.body.data.map((e: any) => e.type);
    for (const type of LOYALTY_EVENT_TYPES) assert.ok(types.includes(type), `catalog lists ${type}`);
    assert.ok(types.includes('webhook_endpoint_disabled'));
    const v = validators();
    for (const e of res.body.data) {
      assert.equal(e.schema.type, 'object', `${e.type} has an object schema`);
      assert.ok(v.get(e.type)!(e.example), `${e.type} example: ${JSON.stringify(v.get(e.type)!.errors)}`);
    }
    // Documented types map onto JSON types; every documented attribute is required.
    const updated = res.body.data.find((e: any) => e.type === 'balance_value_updated').schema;
    assert.deepEqual(updated.required.sort(), [
      'balance_definition',
      'created',
      'expiration_date',
      'initial_value',
      'loyalty_program',
      'source_event_id',
      'transaction',
      'value',
    ]);
    assert.equal(updated.properties.created.type, 'boolean');
    assert.equal(updated.properties.value.type, 'number');
    assert.deepEqual(updated.properties.expiration_date.type, ['string', 'null']);
    assert.equal(updated.properties.balance_definition.properties.metadata.type, 'object');
    const one = await t.api('GET', '/v1/event-types/subscription_member_added');
    assert.equal(one.status, 200);
    assert.equal(one.body.schema.properties.member_id.type, 'number');
    assert.equal((await t.api('GET', '/v1/event-types/nope')).status, 404);
  });

  it('every event of credits, debits, limits, refusals, expiry, membership changes matches its schema', async () => {
    const clock = t.clock as ManualClock;
    const program = await createProgram(t, { voucher: { type: 'LOYALTY_CARD', loyalty_card: { points: 0 } } });
    const def = await t.api('POST', `/v1/loyalties/${program.id}/balance-definitions`, {
      name: 'stars',
      unit: 'stars',
      max: 100,
      metadata: { kind: 'bonus' },
    });
    assert.equal(def.status, 200, JSON.stringify(def.body));
    const tiers = await t.api('POST', `/v1/loyalties/${program.id}/tiers`, [
      { name: 'Bronze', points: { from: 10, to: 99 } },
      { name: 'Silver', points: { from: 100 } },
    ]);
    assert.equal(tiers.status, 200, JSON.stringify(tiers.body));
    const member = await createMember(t, program.id);
    const card = member.code;
    const ok = async (body: Record<string, unknown>) => {
      const r = await t.api('POST', `/v1/loyalties/members/${card}/balance`, body);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body;
    };
    await ok({ points: 50, reason: 'welcome', source_id: 'src-1' }); // credit, non-expiring by default rules
    await ok({ points: -50 }); // debit, lands on the minimum (0)
    await ok({
      points: 30,
      expiration_type: 'CUSTOM_DATE',
      expiration_date: new Date(clock.nowMs() + 86400_000).toISOString(),
    }); // expiring credit
    await ok({ points: 100, balance_definition_id: 'stars' }); // lands exactly on the maximum
    const refused = await t.api('POST', `/v1/loyalties/members/${card}/balance`, {
      points: 1,
      balance_definition_id: 'stars',
    });
    assert.equal(refused.status, 422);
    const refusedMin = await t.api('POST', `/v1/loyalties/members/${card}/balance`, { points: -1000 });
    assert.equal(refusedMin.status, 422);
    await ok({ points: -100, balance_definition_id: 'stars' }); // lands on the minimum
    clock.advance(86400_000 + 1000);
    await t.server.ctx.scheduler.runDue(); // the 30 expiring points lapse
    const del = await t.api('DELETE', `/v1/loyalties/${program.id}/members/${card}`);
    assert.equal(del.status, 200);

    const all: any[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await t.api('GET', `/v1/events?limit=100${cursor ? `&starting_after_id=${cursor}` : ''}`);
      assert.equal(page.status, 200);
      all.push(...page.body.data);
      if (!page.body.has_more) break;
      cursor = page.body.more_starting_after;
    }
    const v = validators();
    const seen = new Set<string>();
    for (const e of all) {
      const validate = v.get(e.type);
      assert.ok(validate, `${e.type} is in the catalog`);
      assert.ok(validate(e.data), `${e.type} ${JSON.stringify(e.data)}: ${JSON.stringify(validate.errors)}`);
      seen.add(e.type);
    }
    for (const type of [
      'balance_value_updated',
      POINTS_ADDED,
      POINTS_EXPIRED,
      'balance_value_expired',
      'balance_minimum_value_reached',
      'balance_maximum_value_reached',
      'balance_transaction_unauthorized',
      'subscription_created',
      'subscription_revoked',
      'tier_association_updated',
    ]) {
      assert.ok(seen.has(type), `the scenario emitted ${type}`);
    }
    const memberEvents = all.filter((e) => e.resource_id === member.id);
    const updates = memberEvents.filter((e) => e.type === 'balance_value_updated').reverse();
    assert.deepEqual(
      updates.map((e) => [e.data.transaction.type, e.data.transaction.value, e.data.initial_value, e.data.value]),
      [
        ['credit', 50, 0, 50],
        ['debit', 50, 50, 0],
        ['credit', 30, 0, 30],
        ['credit', 100, 0, 100],
        ['debit', 100, 100, 0],
        ['debit', 30, 30, 0],
      ],
    );
    assert.deepEqual(
      updates.map((e) => e.data.created),
      [true, false, false, true, false, false],
      'created marks the first movement of a balance',
    );
    assert.equal(updates[0].data.expiration_date, null, 'a non-expiring credit has a null expiration_date');
    assert.ok(Date.parse(updates[2].data.expiration_date) > clock.nowMs() - 86400_000);
    assert.equal(updates[3].data.balance_definition.name, 'stars');
    assert.deepEqual(updates[3].data.balance_definition.metadata, { kind: 'bonus' });
    const expired = memberEvents.find((e) => e.type === POINTS_EXPIRED);
    assert.equal(expired.data.transaction.type, 'POINTS_EXPIRATION');
    assert.equal(expired.data.balance.points, -30);
    const tierMoves = memberEvents.filter((e) => e.type === 'tier_association_updated').reverse();
    assert.deepEqual(
      tierMoves.map((e) => [e.data.from_tier?.name ?? null, e.data.to_tier?.name ?? null]),
      [
        [null, 'Bronze'],
        ['Bronze', null],
        [null, 'Bronze'],
        ['Bronze', null],
      ],
      'into Bronze at 50, out at 0, in at 30, out when the 30 expire',
    );
    const refusals = memberEvents
      .filter((e) => e.type === 'balance_transaction_unauthorized')
      .map((e) => e.data.reason)
      .sort();
    assert.deepEqual(refusals, [
      'Amount falls above maximum balance amount limit',
      'Amount falls below minimum balance amount limit',
    ]);

    // Filters: type, resource, time range.
    const byType = await t.api(
      'GET',
      `/v1/events?type=subscription_created,subscription_revoked&resource_id=${member.id}`,
    );
    assert.deepEqual(
      byType.body.data.map((e: any) => e.type),
      ['subscription_revoked', 'subscription_created'],
    );
    const since = new Date(clock.nowMs() - 1000).toISOString();
    const later = await t.api(
      'GET',
      `/v1/events?resource_id=${member.id}&created_after=${encodeURIComponent(since)}&limit=100`,
    );
    assert.ok(
      later.body.data.length > 0 &&
        later.body.data.every((e: any) => e.created_at >= new Date(clock.nowMs() - 1000).toISOString()),
    );
    assert.ok(later.body.data.length < memberEvents.length);
    const one = await t.api('GET', `/v1/events/${expired.id}`);
    assert.equal(one.status, 200);
    assert.deepEqual(one.body.data, expired.data);
    assert.equal((await t.api('GET', '/v1/events/evt_nope')).status, 404);
  });

  it('purges events older than the retention once dispatched', async () => {
    const clock = t.clock as ManualClock;
    const { ctx, services } = t.server;
    const before = await ctx.database.db.selectFrom('outbox_events').select('id').execute();
    assert.ok(before.length > 0);
    await services.webhooks.dispatcher.runOnce(); // marks them dispatched (no endpoints)
    clock.advance((ctx.config.eventRetentionDays + 1) * 86400_000);
    const program = await createProgram(t);
    await createMember(t, program.id); // a fresh event, kept
    await services.webhooks.dispatcher.runOnce();
    await ctx.scheduler.schedule(ctx.database.db, { kind: RETENTION_JOB, runAt: clock.now() });
    await ctx.scheduler.runDue();
    const left = await ctx.database.db.selectFrom('outbox_events').select('type').execute();
    assert.deepEqual(
      left.map((e) => e.type),
      ['subscription_created'],
    );
  });
});
