import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.ts';

// The console's sessions over plain HTTP (no browser): cookie flags, the stored token hash, CSRF,
// sign out, a revoked key, the security headers. The browser tests (console.test.ts) cover the pages.

describe('console sessions', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  const signIn = async (appId: string, token: string) =>
    fetch(`${t.url}/console/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ app_id: appId, app_token: token }),
    });
  const cookieOf = (res: Response) => (res.headers.get('set-cookie') ?? '').split(';')[0] as string;
  const get = (path: string, cookie?: string) =>
    fetch(`${t.url}${path}`, { redirect: 'manual', headers: cookie ? { cookie } : {} });
  const csrfOf = async (cookie: string) => {
    const page = await (await get('/console/members', cookie)).text();
    return /name="_csrf" value="([^"]+)"/.exec(page)?.[1] as string;
  };

  test('pages need a session; sign-in sets an httpOnly SameSite=Strict cookie, its token stored hashed', async () => {
    assert.equal((await get('/console/members')).status, 303);
    assert.equal((await get('/console/members')).headers.get('location'), '/console/sign-in');
    const refused = await signIn(t.appId, 'tly_sk_wrong');
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('set-cookie'), null);
    const res = await signIn(t.appId, t.token);
    assert.equal(res.status, 303);
    const setCookie = res.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /HttpOnly/i);
    assert.match(setCookie, /SameSite=Strict/i);
    assert.match(setCookie, /Path=\/console/);
    const token = cookieOf(res).split('=')[1] as string;
    const rows = await t.server.ctx.database.db.selectFrom('console_sessions').selectAll().execute();
    assert.equal(rows.length, 1);
    assert.ok(!JSON.stringify(rows).includes(token), 'the session token is not stored');
    assert.ok(!JSON.stringify(rows).includes(t.token), 'the API token is not stored in clear');
    const page = await get('/console/members', cookieOf(res));
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
  });

  test('a state-changing request without the CSRF token is refused and changes nothing', async () => {
    const cookie = cookieOf(await signIn(t.appId, t.token));
    const post = (body: Record<string, string>, headers: Record<string, string> = {}) =>
      fetch(`${t.url}/console/api-keys`, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams(body),
      });
    const before = (await t.server.services.apiKeys.list()).length;
    assert.equal((await post({ name: 'no token' })).status, 403);
    assert.equal((await post({ name: 'wrong token', _csrf: 'x' })).status, 403);
    assert.equal((await t.server.services.apiKeys.list()).length, before);
    const csrf = await csrfOf(cookie);
    assert.equal((await post({ name: 'with token', _csrf: csrf })).status, 200);
    assert.equal((await post({ name: 'with header' }, { 'x-csrf-token': csrf })).status, 200);
    assert.equal((await t.server.services.apiKeys.list()).length, before + 2);
  });

  test('sign out ends the session; revoking the key ends its sessions', async () => {
    const cookie = cookieOf(await signIn(t.appId, t.token));
    const out = await fetch(`${t.url}/console/sign-out`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: await csrfOf(cookie) }),
    });
    assert.equal(out.status, 303);
    assert.equal((await get('/console/members', cookie)).status, 303);

    const key = await t.server.services.apiKeys.create('short-lived');
    const other = cookieOf(await signIn(key.app_id, key.token));
    assert.equal((await get('/console/members', other)).status, 200);
    await t.server.services.apiKeys.revoke(key.id);
    assert.equal((await get('/console/members', other)).status, 303);
  });

  test('assets are served from the project and npm packages', async () => {
    for (const name of ['htmx.min.js', 'chart.umd.min.js', 'console.js', 'console.css']) {
      const res = await get(`/console/assets/${name}`);
      assert.equal(res.status, 200, name);
      assert.ok((await res.text()).length > 100, name);
    }
    assert.equal((await get('/console/assets/../../package.json')).status, 404);
  });
});
