import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { loadConfig, type Config } from '../../src/config.ts';
import { isSealed, matchesDigest, parseSecretKeys, SecretBox } from '../../src/lib/secret-box.ts';
import { buildServer, sealedColumns } from '../../src/server.ts';
import { modules } from '../../src/modules/index.ts';
import { openDatabase, parseDatabaseUrl, type Database } from '../../src/storage/database.ts';
import { migrateToLatest } from '../../src/storage/migrate.ts';
import { keyFilePath } from '../../src/storage/sealed.ts';
import { FakeInfobip, infobipSms } from '../fakes/infobip.ts';
import { FakeTwilio, postTwilio } from '../fakes/twilio.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { backend, freshDatabaseUrl, startTestServer, testSecretKey, type TestServer } from '../helpers/server.ts';
import { basicHeader, createChannel, createPointsFlow, MEMBER_PHONE, seedMember } from '../messaging/setup.ts';

// Secrets at rest: what Tally must use later (webhook signing secrets, provider API keys and auth
// tokens) is stored encrypted under TALLY_SECRET_KEY (or the key file beside an SQLite database),
// what it only compares (Infobip callback tokens, Basic passwords) as sealed digests, and nothing of
// an API token but its digest. Read from the raw database rows, no known secret may appear.

const API_KEY = 'ib-AT-REST-api-key-4f1e9c2b7a';
const TOKEN = 'AT-REST-inbound-token-8d3c1f';
const PASSWORD = 'AT-REST-basic-password-5b2';
const root = new URL('../..', import.meta.url).pathname;

/** Every text of every row of every table, one string per table. */
async function dumpAllTables(db: Kysely<any>): Promise<Map<string, string>> {
  const tables =
    backend === 'postgres'
      ? (
          await sql<{
            name: string;
          }>`select table_name as name from information_schema.tables where table_schema = 'public'`.execute(db)
        ).rows
      : (await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(db)).rows;
  const out = new Map<string, string>();
  for (const { name } of tables) out.set(name, JSON.stringify(await db.selectFrom(name).selectAll().execute()));
  return out;
}

function configFor(t: TestServer, secretKey: string | undefined): Config {
  return {
    ...loadConfig({}, {}),
    port: 0,
    host: '127.0.0.1',
    databaseUrl: t.databaseUrl,
    logLevel: 'warn',
    allowPrivateTargets: true,
    workers: false,
    secretKey,
  };
}

/** The key the test server seals with: TALLY_SECRET_KEY, or the key file beside the SQLite database. */
function currentKey(t: TestServer): string {
  if (testSecretKey) return testSecretKey;
  return readFileSync(keyFilePath(parseDatabaseUrl(t.databaseUrl).target), 'utf8').trim();
}

describe('secrets at rest', () => {
  let t: TestServer;
  let infobip: FakeInfobip;
  let twilio: FakeTwilio;
  let receiver: Receiver;
  let webhook: { id: string; secret: string };
  const ids: Record<'token' | 'basic' | 'twilio', string> = { token: '', basic: '', twilio: '' };
  let apiToken: string;

  before(async () => {
    t = await startTestServer();
    infobip = new FakeInfobip(API_KEY);
    twilio = new FakeTwilio();
    await infobip.start();
    await twilio.start();
    receiver = await startReceiver();
    const { program } = await seedMember(t, { points: 120 });
    await createPointsFlow(t, program.id);
    // With an Idempotency-Key: its stored answer carries the secret, so it is stored sealed too.
    const create = () =>
      t.api('POST', '/v1/webhooks', { target_url: receiver.url, events: ['*'] }, { 'idempotency-key': 'wh-create' });
    const created = await create();
    assert.equal(created.status, 200);
    webhook = created.body;
    const replayed = await create();
    assert.equal(replayed.headers.get('idempotent-replayed'), 'true');
    assert.equal(replayed.body.secret, webhook.secret, 'the replay answers the secret from the sealed answer');
    assert.match(webhook.secret, /^whsec_/, 'the secret is shown at creation');
    ids.token = (
      await createChannel(t, {
        provider: 'infobip',
        sender: 'Tally',
        credentials: { base_url: infobip.url, api_key: API_KEY },
        inbound_auth: { type: 'token', token: TOKEN },
      })
    ).id;
    ids.basic = (
      await createChannel(t, {
        provider: 'infobip',
        sender: 'Tally',
        credentials: { base_url: infobip.url, api_key: API_KEY },
        inbound_auth: { type: 'basic', username: 'ib', password: PASSWORD },
      })
    ).id;
    ids.twilio = (
      await createChannel(t, {
        provider: 'twilio',
        sender: '+14155550100',
        credentials: { account_sid: twilio.accountSid, auth_token: twilio.authToken, base_url: twilio.url },
      })
    ).id;
    apiToken = (await t.server.services.apiKeys.create('at-rest')).token;
  });
  after(async () => {
    await t.server.services.messaging.outbound.drain();
    await receiver.close();
    await infobip.close();
    await twilio.close();
    await t.close();
  });

  const secrets = () => {
    const whsec = webhook.secret;
    return {
      'webhook secret': whsec,
      'webhook secret key bytes (base64)': whsec.slice('whsec_'.length),
      'infobip api key': API_KEY,
      'infobip inbound token': TOKEN,
      'basic password': PASSWORD,
      'twilio auth token': twilio.authToken,
      'API token': apiToken,
      'API token prefix (11 characters)': apiToken.slice(0, 11),
    };
  };

  const assertNoSecretInDatabase = async (known: Record<string, string>) => {
    const dump = await dumpAllTables(t.server.ctx.database.db as Kysely<any>);
    for (const [table, text] of dump) {
      for (const [what, secret] of Object.entries(known))
        assert.ok(!text.includes(secret), `${what} stored in clear in ${table}`);
    }
    return dump;
  };

  it('no known secret is stored in clear; secrets are sealed under the key', async () => {
    const dump = await assertNoSecretInDatabase(secrets());
    const endpoint = await t.server.ctx.database.db
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('id', '=', webhook.id)
      .executeTakeFirstOrThrow();
    assert.ok(isSealed(endpoint.secret));
    const channel = await t.server.ctx.database.db
      .selectFrom('msg_channels')
      .selectAll()
      .where('id', '=', ids.basic)
      .executeTakeFirstOrThrow();
    const auth = JSON.parse(channel.inbound_auth!);
    assert.deepEqual(Object.keys(auth).sort(), ['password_digest', 'type', 'username']);
    assert.ok(isSealed(JSON.parse(channel.credentials!).api_key));
    assert.ok(dump.get('api_keys')!.includes('token_hash'), 'api keys were dumped');
  });

  it('a value that looks sealed, given through the API, is sealed like any other (no planted ciphertext)', async () => {
    const planted = `enc:v1:zzzzzzzz:${'A'.repeat(16)}:${'A'.repeat(24)}`;
    const ch = await createChannel(t, {
      provider: 'infobip',
      sender: 'Tally',
      credentials: { base_url: infobip.url, api_key: planted },
      inbound_auth: { type: 'token', token: 'planted-token-0123456789', token_digest: planted },
    });
    const row = await t.server.ctx.database.db
      .selectFrom('msg_channels')
      .selectAll()
      .where('id', '=', ch.id)
      .executeTakeFirstOrThrow();
    assert.ok(!row.credentials!.includes(planted) && !row.inbound_auth!.includes(planted));
    assert.equal(
      t.server.ctx.secrets.open(JSON.parse(row.credentials!).api_key, `msg_channels:${ch.id}:credentials.api_key`),
      planted,
    );
    assert.equal((await t.api('DELETE', `/v1/channels/${ch.id}`)).status, 204);
  });

  it('webhooks still verify with the secret shown at creation, and after a rotation with the new one', async () => {
    const check = async (secret: string) => {
      const res = await t.api('POST', `/v1/webhooks/${webhook.id}/test`, {});
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.attempt.status, 'succeeded');
      const got = receiver.received.at(-1)!;
      assert.doesNotThrow(
        () => new Webhook(secret.slice('whsec_'.length)).verify(got.body, got.headers),
        'Standard Webhooks signature checks out',
      );
    };
    await check(webhook.secret);
    const rotated = await t.api('POST', `/v1/webhooks/${webhook.id}/rotate-secret`, undefined, {
      'idempotency-key': 'wh-rotate',
    });
    assert.equal(rotated.status, 200);
    assert.match(rotated.body.secret, /^whsec_/, 'the new secret is shown once, in the answer');
    assert.notEqual(rotated.body.secret, webhook.secret);
    await check(rotated.body.secret);
    await check(webhook.secret); // the previous secret still signs beside it for a day
    for (const path of ['/v1/webhooks', `/v1/webhooks/${webhook.id}`]) {
      const text = JSON.stringify((await t.api('GET', path)).body);
      assert.ok(!text.includes('whsec_'), `${path} never shows a secret`);
    }
    await assertNoSecretInDatabase({ ...secrets(), 'rotated secret': rotated.body.secret });
    webhook = { ...webhook, secret: rotated.body.secret };
  });

  it('provider callbacks and sends still work with sealed credentials and digests', async () => {
    const inbound = (id: string, query: string, headers: Record<string, string>) =>
      fetch(`${t.url}/v1/channels/${id}/inbound${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(infobipSms(MEMBER_PHONE, '385921004026', 'points')),
      });
    assert.equal((await inbound(ids.token, `?token=${TOKEN}`, {})).status, 200);
    assert.equal((await inbound(ids.token, `?token=${TOKEN}x`, {})).status, 403);
    assert.equal((await inbound(ids.basic, '', { authorization: basicHeader('ib', PASSWORD) })).status, 200);
    assert.equal((await inbound(ids.basic, '', { authorization: basicHeader('ib', `${PASSWORD}x`) })).status, 403);
    const twUrl = `${t.url}/v1/channels/${ids.twilio}/inbound`;
    const params = twilio.inboundParams(MEMBER_PHONE, '+14155550100', 'points');
    assert.equal((await postTwilio(twUrl, params, twilio.sign(twUrl, params))).status, 200);
    assert.equal((await postTwilio(twUrl, params, twilio.sign(`${twUrl}x`, params))).status, 403);
    await t.server.services.messaging.outbound.drain();
    // The fakes accept a send only with the right API key / auth token.
    await infobip.waitForSent(2, 10_000);
    await twilio.waitForSent(1, 10_000);
    assert.match(infobip.sent[0].text, /120/);
    // A changed inbound token replaces the digest; the old token stops working.
    const put = await t.api('PUT', `/v1/channels/${ids.token}`, {
      inbound_auth: { type: 'token', token: `${TOKEN}-new` },
    });
    assert.equal(put.status, 200);
    assert.equal((await inbound(ids.token, `?token=${TOKEN}`, {})).status, 403);
    assert.equal((await inbound(ids.token, `?token=${TOKEN}-new`, {})).status, 200);
    await assertNoSecretInDatabase({ ...secrets(), 'new inbound token': `${TOKEN}-new` });
  });

  it('a server with the wrong key refuses to start with a clear error; so does a malformed key', async () => {
    const wrong = randomBytes(32).toString('base64');
    await assert.rejects(buildServer(configFor(t, wrong), { logger: false }), (err: Error) => {
      assert.match(err.message, /cannot decrypt this database's secrets/);
      assert.match(err.message, /TALLY_SECRET_KEY/);
      return true;
    });
    assert.throws(() => loadConfig({}, { TALLY_SECRET_KEY: 'not-a-key' }), /TALLY_SECRET_KEY is not a 32-byte key/);
    assert.throws(() => loadConfig({}, { TALLY_SECRET_KEY: randomBytes(16).toString('base64') }), /32-byte key/);
  });

  it('without a key: refused on PostgreSQL; on SQLite a missing key file with sealed secrets is refused', async () => {
    if (backend === 'postgres') {
      await assert.rejects(buildServer(configFor(t, undefined), { logger: false }), /TALLY_SECRET_KEY is not set/);
      return;
    }
    const file = keyFilePath(parseDatabaseUrl(t.databaseUrl).target);
    const key = readFileSync(file, 'utf8');
    assert.equal(
      (await import('node:fs')).statSync(file).mode & 0o777,
      0o600,
      'the key file is readable by its owner only',
    );
    rmSync(file);
    try {
      await assert.rejects(
        buildServer(configFor(t, undefined), { logger: false }),
        /key file .* is missing, but the database holds \d+ encrypted secret/,
      );
      assert.throws(() => readFileSync(file), 'no new key file was made over the lost one');
    } finally {
      (await import('node:fs')).writeFileSync(file, key, { mode: 0o600 });
    }
  });

  const rotation =
    'rotation: `tally secrets rotate` re-encrypts every secret under the new key; then the old key can go';
  it(rotation, async () => {
    const oldKey = currentKey(t);
    const newKey = randomBytes(32).toString('base64');
    const oldId = new SecretBox(parseSecretKeys(oldKey)).currentKeyId;
    const newId = new SecretBox(parseSecretKeys(newKey)).currentKeyId;
    const cli = spawnSync(process.execPath, ['bin/tally.mjs', 'secrets', 'rotate'], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: t.databaseUrl, TALLY_SECRET_KEY: `${newKey},${oldKey}` },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(cli.status, 0, `${cli.stdout}\n${cli.stderr}`);
    assert.match(cli.stdout, /webhook_endpoints\.secret: 1 re-encrypted/);
    assert.match(cli.stdout, /msg_channels\.credentials: 4 re-encrypted/);
    assert.match(
      cli.stdout,
      new RegExp(`Every stored secret now uses key ${newId}\\. The other key\\(s\\) \\(${oldId}\\) can be removed`),
    );
    const dump = await assertNoSecretInDatabase(secrets());
    assert.ok(!dump.get('webhook_endpoints')!.includes(`enc:v1:${oldId}:`), 'nothing left under the old key');
    assert.ok(!dump.get('msg_channels')!.includes(`enc:v1:${oldId}:`), 'nothing left under the old key');

    // The old key dropped: a server with the new key alone opens everything.
    const server = await buildServer(configFor(t, newKey), { logger: false });
    try {
      const url = await server.listen();
      const headers = { 'x-app-id': t.appId, 'x-app-token': t.token, 'content-type': 'application/json' };
      const res = await fetch(`${url}/v1/webhooks/${webhook.id}/test`, { method: 'POST', headers, body: '{}' });
      assert.equal(res.status, 200);
      const got = receiver.received.at(-1)!;
      assert.doesNotThrow(() => new Webhook(webhook.secret.slice('whsec_'.length)).verify(got.body, got.headers));
      const twUrl = `${url}/v1/channels/${ids.twilio}/inbound`;
      const params = twilio.inboundParams(MEMBER_PHONE, '+14155550100', 'points');
      assert.equal(
        (await postTwilio(twUrl, params, twilio.sign(twUrl, params))).status,
        200,
        'Twilio signature checked with the re-encrypted auth token',
      );
      const ok = await fetch(`${url}/v1/channels/${ids.basic}/inbound`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: basicHeader('ib', PASSWORD) },
        body: JSON.stringify(infobipSms(MEMBER_PHONE, '385921004026', 'points')),
      });
      assert.equal(ok.status, 200, 'the Basic password digest moved to the new key');
      const sent = infobip.sent.length;
      await server.services.messaging.outbound.drain();
      assert.equal(infobip.sent.length, sent + 1, 'the Infobip API key opens under the new key');
    } finally {
      await server.close();
    }
    // The original server (old key only) would now be refused at start: its key opens nothing.
    await assert.rejects(buildServer(configFor(t, oldKey), { logger: false }), /cannot decrypt/);
  });

  it('TALLY_APP_TOKEN shorter than 24 characters is refused at start', () => {
    assert.throws(
      () => loadConfig({}, { TALLY_APP_ID: 'app_x', TALLY_APP_TOKEN: 'tly_sk_short_12345' }),
      /TALLY_APP_TOKEN must be at least 24 characters \(got 18\)/,
    );
    assert.throws(() => loadConfig({ 'app-token': 'x'.repeat(23) }, {}), /at least 24/);
    assert.equal(loadConfig({}, { TALLY_APP_TOKEN: 'x'.repeat(24) }).appToken, 'x'.repeat(24));
    const cli = spawnSync(process.execPath, ['bin/tally.mjs', 'serve'], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: t.databaseUrl, TALLY_APP_ID: 'app_short', TALLY_APP_TOKEN: 'tly_sk_short' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(cli.status, 2);
    assert.match(cli.stderr, /TALLY_APP_TOKEN must be at least 24 characters/);
    assert.doesNotMatch(cli.stderr, /\n\s+at /, 'a message, not a stack trace');
  });
});

describe('secrets at rest: the migration seals what an older version stored in clear', () => {
  let database: Database;
  let drop: () => Promise<void>;
  const box = new SecretBox([randomBytes(32)]);

  before(async () => {
    const fresh = await freshDatabaseUrl();
    drop = fresh.drop;
    database = openDatabase(fresh.url);
  });
  after(async () => {
    await database.close();
    await drop();
  });

  it('webhook secrets and provider credentials encrypted, inbound token and password digested', async () => {
    const all = modules.flatMap((m) => m.migrations ?? []);
    const sealing = [
      '0102_webhooks_sealed_secrets',
      '0203_messaging_sealed_secrets',
      '0004_core_api_keys_no_token_prefix',
    ];
    await migrateToLatest(
      database.db,
      database.dialect,
      all.filter((m) => !sealing.includes(m.name)),
    );
    const db = database.db as Kysely<any>;
    const now = new Date().toISOString();
    await db
      .insertInto('api_keys')
      .values({
        id: 'key_1',
        name: 'old',
        app_id: 'app_old',
        token_hash: 'h',
        token_prefix: 'tly_sk_AbCd',
        created_at: now,
      })
      .execute();
    await db
      .insertInto('webhook_endpoints')
      .values({
        id: 'whep_old',
        target_url: 'https://example.com/h',
        events: '["*"]',
        active: 1,
        secret: 'whsec_CLEARcurrent',
        previous_secret: 'whsec_CLEARprevious',
        created_at: now,
        updated_at: now,
      })
      .execute();
    const channel = (id: string, credentials: object, inbound: object) => ({
      id,
      name: id,
      provider: 'infobip',
      type: 'sms',
      sender: 'Tally',
      credentials: JSON.stringify(credentials),
      inbound_auth: JSON.stringify(inbound),
      settings: '{}',
      created_at: now,
    });
    await db
      .insertInto('msg_channels')
      .values([
        channel(
          'chn_token',
          { base_url: 'https://x.api.infobip.com', api_key: 'CLEAR-api-key' },
          { type: 'token', token: 'CLEAR-inbound-token' },
        ),
        channel(
          'chn_basic',
          { account_sid: 'AC1', auth_token: 'CLEAR-auth-token' },
          { type: 'basic', username: 'u', password: 'CLEAR-password' },
        ),
      ])
      .execute();

    await migrateToLatest(database.db, database.dialect, all, { secrets: async () => box });

    const dump = JSON.stringify(await dumpAllTables(db).then((m) => [...m.values()]));
    assert.ok(!dump.includes('CLEAR'), `a clear secret is left: ${dump.match(/.{40}CLEAR.{20}/)?.[0]}`);
    assert.ok(!dump.includes('tly_sk_AbCd'), 'the token prefix is gone');
    const ep = await db.selectFrom('webhook_endpoints').selectAll().executeTakeFirstOrThrow();
    assert.equal(box.open(ep.secret, 'webhook_endpoints:whep_old:secret'), 'whsec_CLEARcurrent');
    assert.equal(box.open(ep.previous_secret, 'webhook_endpoints:whep_old:secret'), 'whsec_CLEARprevious');
    const rows = Object.fromEntries((await db.selectFrom('msg_channels').selectAll().execute()).map((r) => [r.id, r]));
    assert.equal(
      box.open(JSON.parse(rows.chn_token.credentials).api_key, 'msg_channels:chn_token:credentials.api_key'),
      'CLEAR-api-key',
    );
    assert.equal(
      JSON.parse(rows.chn_token.credentials).base_url,
      'https://x.api.infobip.com',
      'what is no secret stays readable',
    );
    assert.equal(
      box.open(JSON.parse(rows.chn_basic.credentials).auth_token, 'msg_channels:chn_basic:credentials.auth_token'),
      'CLEAR-auth-token',
    );
    const token = box.openDigest(
      JSON.parse(rows.chn_token.inbound_auth).token_digest,
      'msg_channels:chn_token:inbound_auth.token',
    );
    assert.ok(matchesDigest('CLEAR-inbound-token', token) && !matchesDigest('CLEAR-inbound-tokeN', token));
    const basic = JSON.parse(rows.chn_basic.inbound_auth);
    assert.equal(basic.username, 'u');
    assert.ok(
      matchesDigest(
        'CLEAR-password',
        box.openDigest(basic.password_digest, 'msg_channels:chn_basic:inbound_auth.password'),
      ),
    );
    assert.equal(sealedColumns().length, 4, 'the sealed columns rotate covers');
  });
});
