import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertLedgerInvariants } from './helpers/invariants.ts';
import { createMember, createProgram, startTestServer, type ApiResponse, type TestServer } from './helpers/server.ts';

// Bad input never reaches the ledger: every case answers a 4xx JSON error in the documented shape,
// none a 5xx, and balances, ledger entries, lots and outbox events are exactly as before.

async function snapshot(t: TestServer) {
  const db = t.server.ctx.database.db;
  const count = async (
    table:
      | 'ledger_entries'
      | 'point_lots'
      | 'balances'
      | 'customers'
      | 'programs'
      | 'memberships'
      | 'balance_definitions',
  ) =>
    Number(
      (
        await db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const balances = await db
    .selectFrom('balances')
    .select(['membership_id', 'balance_definition_id', 'balance', 'points'])
    .orderBy('membership_id')
    .orderBy('balance_definition_id')
    .execute();
  const lots = await db.selectFrom('point_lots').select(['id', 'remaining']).orderBy('id').execute();
  const outbox = await db
    .selectFrom('outbox_events')
    .select('type')
    .where('type', '!=', 'balance_transaction_unauthorized')
    .execute();
  return {
    ledger: await count('ledger_entries'),
    lots: lots.map((l) => `${l.id}:${Number(l.remaining)}`),
    balances: balances.map(
      (b) => `${b.membership_id}/${b.balance_definition_id}:${Number(b.balance)}/${Number(b.points)}`,
    ),
    customers: await count('customers'),
    programs: await count('programs'),
    memberships: await count('memberships'),
    definitions: await count('balance_definitions'),
    events: outbox.length,
  };
}

function assertError(res: ApiResponse, status: number | number[], label: string) {
  const allowed = Array.isArray(status) ? status : [status];
  assert.ok(
    allowed.includes(res.status),
    `${label}: expected ${allowed.join('/')}, got ${res.status} ${JSON.stringify(res.body)}`,
  );
  assert.ok(res.status >= 400 && res.status < 500, `${label}: a 4xx`);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/, `${label}: JSON answer`);
  const b = res.body;
  assert.equal(typeof b, 'object', `${label}: JSON body`);
  assert.equal(b.code, res.status, `${label}: code equals the status`);
  for (const f of ['key', 'message', 'details', 'request_id'])
    assert.equal(typeof b[f], 'string', `${label}: ${f} is a string`);
  assert.ok(b.key.length > 0 && b.message.length > 0, `${label}: key and message are not empty`);
  assert.equal(b.request_id, res.headers.get('x-request-id'), `${label}: request_id matches x-request-id`);
}

describe('bad input: 4xx JSON errors, no balance changes', () => {
  let t: TestServer;
  let program: any;
  let member: any;
  let bdef: any;
  before(async () => {
    t = await startTestServer({ config: { bodyLimit: 16 * 1024 } });
    program = await createProgram(t);
    member = await createMember(t, program.id);
    const add = await t.api('POST', `/v1/loyalties/members/${member.code}/balance`, { points: 100 });
    assert.equal(add.status, 200);
    const def = await t.api('POST', `/v1/loyalties/${program.id}/balance-definitions`, {
      name: 'stamps',
      unit: 'stamps',
      min: 0,
      max: 10,
    });
    assert.equal(def.status, 200);
    bdef = def.body;
    const stamp = await t.api('POST', `/v1/loyalties/members/${member.code}/balance`, {
      points: 8,
      balance_definition_id: bdef.id,
    });
    assert.equal(stamp.status, 200);
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  it('refuses bad balance changes on both balance paths', async () => {
    const before = await snapshot(t);
    const paths = [
      `/v1/loyalties/members/${member.code}/balance`,
      `/v1/loyalties/${program.id}/members/${member.code}/balance`,
    ];
    const cases: [string, unknown, number | number[], Record<string, string>?][] = [
      ['malformed JSON', '{"points": 10', 400, { 'content-type': 'application/json' }],
      ['trailing garbage', '{"points": 10} x', 400, { 'content-type': 'application/json' }],
      ['empty JSON body', '', 400, { 'content-type': 'application/json' }],
      ['JSON array', [10], 400],
      ['JSON string', '"10"', 400, { 'content-type': 'application/json' }],
      ['JSON null', 'null', 400, { 'content-type': 'application/json' }],
      ['points missing', { reason: 'x' }, 400],
      ['points as string', { points: '10' }, 400],
      ['points as boolean', { points: true }, 400],
      ['points null', { points: null }, 400],
      ['points object', { points: { $gt: 1 } }, 400],
      ['zero points', { points: 0 }, 400],
      ['negative zero', '{"points": -0}', 400, { 'content-type': 'application/json' }],
      ['fractional points', { points: 1.5 }, 400],
      ['tiny fraction', { points: 0.0000001 }, 400],
      ['1e20 points', '{"points": 1e20}', 400, { 'content-type': 'application/json' }],
      ['-1e20 points', '{"points": -1e20}', 400, { 'content-type': 'application/json' }],
      ['2^53+1 points', '{"points": 9007199254740993}', 400, { 'content-type': 'application/json' }],
      ['2^53 points', '{"points": 9007199254740992}', 400, { 'content-type': 'application/json' }],
      ['huge exponent', '{"points": 1e400}', 400, { 'content-type': 'application/json' }],
      ['reason as number', { points: 5, reason: 5 }, 400],
      ['source_id as object', { points: 5, source_id: {} }, 400],
      ['bad expiration_type', { points: 5, expiration_type: 'SOMETIMES' }, 400],
      ['CUSTOM_DATE without date', { points: 5, expiration_type: 'CUSTOM_DATE' }, 400],
      ['CUSTOM_DATE not a date', { points: 5, expiration_type: 'CUSTOM_DATE', expiration_date: 'tomorrow' }, 400],
      [
        'CUSTOM_DATE impossible date',
        { points: 5, expiration_type: 'CUSTOM_DATE', expiration_date: '2031-02-30T00:00:00Z' },
        400,
      ],
      [
        'CUSTOM_DATE bad zone',
        { points: 5, expiration_type: 'CUSTOM_DATE', expiration_date: '2031-01-01T00:00:00+25:00' },
        400,
      ],
      [
        'CUSTOM_DATE in the past',
        { points: 5, expiration_type: 'CUSTOM_DATE', expiration_date: '2001-01-01T00:00:00Z' },
        400,
      ],
      ['unknown balance definition', { points: 5, balance_definition_id: 'bdef_nope' }, 404],
      ['over the definition max', { points: 3, balance_definition_id: bdef.id }, 422],
      ['under the definition min', { points: -9, balance_definition_id: bdef.id }, 422],
      ['removal beyond the balance', { points: -101 }, 422],
      ['addition beyond the safe range', { points: Number.MAX_SAFE_INTEGER }, 422],
      ['removal of the whole safe range', { points: -Number.MAX_SAFE_INTEGER }, 422],
      ['form-encoded body', 'points=10', 400, { 'content-type': 'application/x-www-form-urlencoded' }],
      ['unsupported content type', 'points: 10', 415, { 'content-type': 'text/yaml' }],
      ['oversized body', { points: 5, reason: 'x'.repeat(20 * 1024) }, 413],
      ['oversized declared length', { points: 5, reason: 'y'.repeat(40 * 1024) }, 413],
      ['idempotency key too long', { points: 5 }, 400, { 'idempotency-key': 'k'.repeat(300) }],
    ];
    for (const path of paths) {
      for (const [label, body, status, headers] of cases) {
        const res = await t.api('POST', path, body, headers);
        assertError(res, status, `${label} (${path})`);
      }
    }
    // Unknown ids.
    assertError(await t.api('POST', '/v1/loyalties/members/NOPE-0000/balance', { points: 5 }), 404, 'unknown card');
    assertError(
      await t.api('POST', `/v1/loyalties/camp_nope/members/${member.code}/balance`, { points: 5 }),
      404,
      'unknown campaign',
    );
    const other = await createProgram(t);
    assertError(
      await t.api('POST', `/v1/loyalties/${other.id}/members/${member.code}/balance`, { points: 5 }),
      404,
      'card of another campaign',
    );
    assertError(await t.api('GET', '/v1/loyalties/members/NOPE-0000'), 404, 'get unknown card');
    assertError(
      await t.api('GET', '/v1/loyalties/members/NOPE-0000/transactions'),
      404,
      'transactions of unknown card',
    );
    assertError(
      await t.api('GET', `/v1/loyalties/members/${member.code}/transactions?starting_after_id=vtx_nope`),
      400,
      'unknown cursor',
    );
    assertError(await t.api('GET', `/v1/loyalties/members/${member.code}/transactions?limit=0`), 400, 'limit 0');
    assertError(
      await t.api('GET', `/v1/loyalties/members/${member.code}/transactions?limit=abc`),
      400,
      'limit not a number',
    );
    assertError(
      await t.api(
        'GET',
        `/v1/loyalties/${program.id}/members/${member.code}/points-expiration?balance_definition_id=nope`,
      ),
      404,
      'points-expiration of unknown definition',
    );
    assertError(await t.api('GET', '/v1/no-such-route'), 404, 'unknown route');

    const afterSnap = await snapshot(t);
    assert.deepEqual(afterSnap, { ...before, programs: before.programs + 1, definitions: before.definitions + 1 });
    const card = await t.api('GET', `/v1/loyalties/members/${member.code}`);
    assert.equal(card.body.loyalty_card.balance, 100);
    const balances = await t.api('GET', `/v1/loyalties/members/${member.code}/balances`);
    assert.deepEqual(
      balances.body.data.map((b: any) => [b.balance_definition.name, b.balance]),
      [
        ['points', 100],
        ['stamps', 8],
      ],
    );
  });

  it('refuses bad customers, programs, members and definitions', async () => {
    const before = await snapshot(t);
    const cases: [string, string, string, unknown, number][] = [
      ['bad phone', 'POST', '/v1/customers', { source_id: 'p1', phone: 'not a phone' }, 400],
      ['too short phone', 'POST', '/v1/customers', { source_id: 'p2', phone: '+1 12' }, 400],
      ['phone as number', 'POST', '/v1/customers', { source_id: 'p3', phone: 385916242493 }, 400],
      ['bad email', 'POST', '/v1/customers', { source_id: 'p4', email: 'nope' }, 400],
      ['bad birthdate', 'POST', '/v1/customers', { source_id: 'p5', birthdate: '1990-13-40' }, 400],
      ['metadata not an object', 'POST', '/v1/customers', { source_id: 'p6', metadata: [1, 2] }, 400],
      ['unknown customer', 'GET', '/v1/customers/cust_nope', undefined, 404],
      ['update unknown customer', 'PUT', '/v1/customers/cust_nope', { name: 'x' }, 404],
      ['delete unknown customer', 'DELETE', '/v1/customers/cust_nope', undefined, 404],
      ['program without name', 'POST', '/v1/loyalties', { description: 'x' }, 400],
      ['program bad timezone', 'POST', '/v1/loyalties', { name: 'tz', timezone: 'Mars/Olympus' }, 400],
      ['program bad start_date', 'POST', '/v1/loyalties', { name: 'sd', start_date: '2024-02-30' }, 400],
      [
        'program dates reversed',
        'POST',
        '/v1/loyalties',
        { name: 'dr', start_date: '2030-01-01T00:00:00Z', expiration_date: '2029-01-01T00:00:00Z' },
        400,
      ],
      ['program duplicate name', 'POST', '/v1/loyalties', { name: program.name }, 409],
      ['program join_once as string', 'POST', '/v1/loyalties', { name: 'jo', join_once: 'yes' }, 400],
      [
        'program fractional initial points',
        'POST',
        '/v1/loyalties',
        { name: 'fp', voucher: { loyalty_card: { points: 1.5 } } },
        400,
      ],
      [
        'program code charset of one',
        'POST',
        '/v1/loyalties',
        { name: 'cc', voucher: { code_config: { charset: 'aa', length: 4 } } },
        400,
      ],
      [
        'program code pattern without #',
        'POST',
        '/v1/loyalties',
        { name: 'cp', voucher: { code_config: { pattern: 'ABC' } } },
        400,
      ],
      [
        'program bad expiration rules',
        'POST',
        '/v1/loyalties',
        {
          name: 'er',
          voucher: {
            loyalty_card: { expiration_rules: { period_type: 'FIXED_DAY_OF_YEAR', fixed_month: 2, fixed_day: 31 } },
          },
        },
        400,
      ],
      ['unknown program', 'GET', '/v1/loyalties/camp_nope', undefined, 404],
      ['member of unknown program', 'POST', '/v1/loyalties/camp_nope/members', { customer: { source_id: 'x' } }, 404],
      ['member without customer', 'POST', `/v1/loyalties/${program.id}/members`, {}, 400],
      ['member unknown customer id', 'POST', `/v1/loyalties/${program.id}/members`, { customer: 'cust_nope' }, 404],
      ['member empty customer', 'POST', `/v1/loyalties/${program.id}/members`, { customer: {} }, 400],
      [
        'member customer bad phone',
        'POST',
        `/v1/loyalties/${program.id}/members`,
        { customer: { source_id: 'q', phone: '12' } },
        400,
      ],
      [
        'member code with spaces',
        'POST',
        `/v1/loyalties/${program.id}/members`,
        { customer: { source_id: 'q2' }, voucher: 'A B' },
        400,
      ],
      [
        'member duplicate code',
        'POST',
        `/v1/loyalties/${program.id}/members`,
        { customer: { source_id: 'q3' }, voucher: member.code },
        409,
      ],
      [
        'definition min above max',
        'POST',
        `/v1/loyalties/${program.id}/balance-definitions`,
        { name: 'bad', min: 10, max: 5 },
        400,
      ],
      [
        'definition negative min',
        'POST',
        `/v1/loyalties/${program.id}/balance-definitions`,
        { name: 'neg', min: -1 },
        400,
      ],
      ['definition duplicate name', 'POST', `/v1/loyalties/${program.id}/balance-definitions`, { name: 'stamps' }, 409],
      [
        'definition fractional max',
        'POST',
        `/v1/loyalties/${program.id}/balance-definitions`,
        { name: 'fm', max: 2.5 },
        400,
      ],
      ['list limit too big', 'GET', '/v1/customers?limit=1000', undefined, 400],
      ['list page 0', 'GET', '/v1/loyalties?page=0', undefined, 400],
    ];
    for (const [label, method, path, body, status] of cases) {
      assertError(await t.api(method, path, body), status, label);
    }
    assert.deepEqual(await snapshot(t), before);
  });

  it('says which field is wrong and what it allows', async () => {
    const before = await snapshot(t);
    const balance = `/v1/loyalties/members/${member.code}/balance`;
    const allowedHooks = 'target_url, events, active, description';
    const earningRules = { ern_1: { type: 'BOGUS' }, ern_2: { type: 'MULTIPLY', multiplier: 0 } };
    const tier = { name: 'T', points: { from: 0 }, earning_rules: earningRules };
    const cases: [string, string, string, unknown, [string, string][]][] = [
      ['zero points', 'POST', balance, { points: 0 }, [['points', 'must not be 0']]],
      [
        'zero pending points',
        'POST',
        `${balance.replace('/balance', '')}/pending-points/pp_x/balance`,
        { points: 0 },
        [['points', 'must not be 0']],
      ],
      ['points as string', 'POST', balance, { points: '10' }, [['points', 'must be an integer']]],
      ['points missing', 'POST', balance, { reason: 'x' }, [['points', 'is required']]],
      [
        'bad expiration_type',
        'POST',
        balance,
        { points: 5, expiration_type: 'SOMETIMES' },
        [['expiration_type', 'must be one of: PROGRAM_RULES, PROGRAM_DEFAULT, CUSTOM_DATE, NON_EXPIRING']],
      ],
      [
        'bad direction',
        'GET',
        '/v1/messages?direction=sideways',
        undefined,
        [['direction', 'must be one of: in, out']],
      ],
      ['limit too big', 'GET', '/v1/customers?limit=1000', undefined, [['limit', 'must be at most 100']]],
      [
        'unknown webhook field',
        'POST',
        '/v1/webhooks',
        { target_url: 'http://127.0.0.1:9', events: ['*'], bogus: 1 },
        [['bogus', `is not allowed (allowed: ${allowedHooks})`]],
      ],
      [
        'customer neither id nor object',
        'POST',
        `/v1/loyalties/${program.id}/members`,
        { customer: 5 },
        [['customer', 'must be a string or an object']],
      ],
      [
        'customer with bad source_id',
        'POST',
        `/v1/loyalties/${program.id}/members`,
        { customer: { source_id: 5 } },
        [['customer.source_id', 'must be a string or null']],
      ],
      [
        'bad email and birthdate',
        'POST',
        '/v1/customers',
        { email: 'nope', birthdate: '1990-13-40' },
        [
          ['email', 'must be an email address'],
          ['birthdate', 'must be a date (YYYY-MM-DD)'],
        ],
      ],
      [
        'tier earning-rule mappings',
        'POST',
        `/v1/loyalties/${program.id}/tiers`,
        [tier],
        [
          ['body[0].earning_rules.ern_1.type', 'must be one of: MULTIPLY, CUSTOM'],
          ['body[0].earning_rules.ern_2.multiplier', 'must be greater than 0'],
        ],
      ],
      ['no tiers', 'POST', `/v1/loyalties/${program.id}/tiers`, [], [['body', 'must have at least one item']]],
    ];
    for (const [label, method, path, body, expected] of cases) {
      const res = await t.api(method, path, body);
      assertError(res, 400, label);
      assert.deepEqual(
        res.body.errors.map((e: any) => [e.field, e.message]),
        expected,
        label,
      );
      const [field, message] = expected[0]!;
      assert.ok(res.body.details.includes(`${field} ${message}`), `${label}: details name it: ${res.body.details}`);
    }
    assert.deepEqual(await snapshot(t), before);
  });
});
