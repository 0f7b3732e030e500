import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { guardedAgent, guardedLookup, PrivateAddressError, readCapped, ResponseTooLargeError } from './egress.ts';
import type { ResolveHost } from './url-guard.ts';

// The guarded pools against servers on 127.0.0.1, with a resolver the test controls: nothing here
// connects anywhere but loopback.

const resolveTo =
  (...addresses: string[]): ResolveHost =>
  async () =>
    addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

function lookupOnce(resolveHost: ResolveHost, allowPrivate: boolean, options: { all?: boolean; family?: number }) {
  return new Promise<{ err: Error | null; address: unknown; family?: number }>((resolve) => {
    const lookup = guardedLookup({ allowPrivate, resolveHost });
    lookup('svc.test', options, (err, address, family) => resolve({ err, address, family }));
  });
}

describe('guardedLookup', () => {
  it('answers the resolved addresses in both callback forms', async () => {
    const resolveHost = resolveTo('93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946');
    assert.deepEqual(await lookupOnce(resolveHost, false, {}), { err: null, address: '93.184.216.34', family: 4 });
    const all = await lookupOnce(resolveHost, false, { all: true });
    assert.equal(all.err, null);
    assert.deepEqual(all.address, await resolveHost('svc.test'));
    assert.deepEqual(await lookupOnce(resolveHost, false, { family: 6 }), {
      err: null,
      address: '2606:2800:220:1:248:1893:25c8:1946',
      family: 6,
    });
  });

  it('refuses a host with any private address, unless private targets are allowed', async () => {
    const { err } = await lookupOnce(resolveTo('93.184.216.34', '127.0.0.1'), false, { all: true });
    assert.ok(err instanceof PrivateAddressError);
    assert.match(err.message, /svc\.test resolves to a private or loopback address \(127\.0\.0\.1\)/);
    assert.ok((await lookupOnce(resolveTo('::ffff:7f00:1'), false, {})).err instanceof PrivateAddressError);
    const allowed = await lookupOnce(resolveTo('127.0.0.1'), true, {});
    assert.deepEqual(allowed, { err: null, address: '127.0.0.1', family: 4 });
  });

  it('passes resolver failures and empty answers on as errors', async () => {
    assert.equal((await lookupOnce(resolveTo(), false, {})).err?.message, 'getaddrinfo ENOTFOUND svc.test');
    const noIpv6 = await lookupOnce(resolveTo('93.184.216.34'), false, { family: 6 });
    assert.equal(noIpv6.err?.message, 'getaddrinfo ENOTFOUND svc.test');
    const failing: ResolveHost = async () => {
      throw Object.assign(new Error('boom'), { code: 'EAI_AGAIN' });
    };
    assert.equal((await lookupOnce(failing, false, {})).err?.message, 'boom');
  });
});

describe('guardedAgent', () => {
  let server: Server;
  let port: number;
  const seen: IncomingHttpHeaders[] = [];
  before(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers);
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(Buffer.alloc(512 * 1024, 'x'));
        return;
      }
      res.end('hello');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('connects to the address its resolver gave, with the host name in the Host header', async () => {
    const agent = guardedAgent({ allowPrivate: true, resolveHost: resolveTo('127.0.0.1') });
    try {
      const res = await request(`http://svc.test:${port}/`, { dispatcher: agent });
      assert.equal(await res.body.text(), 'hello');
      assert.equal(seen.at(-1)?.host, `svc.test:${port}`);
    } finally {
      await agent.close();
    }
  });

  it('refuses private addresses, by name or as IP literals (including IPv6 forms of IPv4)', async () => {
    const agent = guardedAgent({ allowPrivate: false, resolveHost: resolveTo('127.0.0.1') });
    const before = seen.length;
    try {
      for (const host of ['svc.test', '127.0.0.1', '[::ffff:127.0.0.1]', '[::1]']) {
        const url = `http://${host}:${port}/`;
        await assert.rejects(request(url, { dispatcher: agent }), PrivateAddressError, url);
      }
      assert.equal(seen.length, before);
    } finally {
      await agent.close();
    }
  });

  it('verifies TLS against the host name (SNI and certificate), not the address', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-egress-'));
    try {
      try {
        execFileSync(
          'openssl',
          [
            'req',
            '-x509',
            '-newkey',
            'ec',
            '-pkeyopt',
            'ec_paramgen_curve:prime256v1',
            '-nodes',
            '-keyout',
            join(dir, 'key.pem'),
            '-out',
            join(dir, 'cert.pem'),
            '-days',
            '2',
            '-subj',
            '/CN=svc.test',
            '-addext',
            'subjectAltName=DNS:svc.test',
          ],
          { stdio: 'ignore' },
        );
      } catch {
        t.skip('openssl is not available to make a test certificate');
        return;
      }
      const cert = readFileSync(join(dir, 'cert.pem'));
      const names: (string | false | null)[] = [];
      const key = readFileSync(join(dir, 'key.pem'));
      const tlsServer = createHttpsServer({ key, cert }, (_req, res) => res.end('secure'));
      tlsServer.on('secureConnection', (socket) => names.push(socket.servername));
      await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
      const tlsPort = (tlsServer.address() as AddressInfo).port;
      const agent = guardedAgent({ allowPrivate: true, resolveHost: resolveTo('127.0.0.1') }, { ca: cert });
      try {
        const res = await request(`https://svc.test:${tlsPort}/`, { dispatcher: agent });
        assert.equal(await res.body.text(), 'secure');
        assert.deepEqual(names, ['svc.test']);
        // The same address under another name fails the certificate check.
        const other = guardedAgent({ allowPrivate: true, resolveHost: resolveTo('127.0.0.1') }, { ca: cert });
        const misnamed = request(`https://other.test:${tlsPort}/`, { dispatcher: other });
        await assert.rejects(misnamed, /altnames|does not match/i);
        await other.close();
      } finally {
        await agent.close();
        tlsServer.closeAllConnections();
        await new Promise<void>((r) => tlsServer.close(() => r()));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('readCapped stops a body at its limit: throws, or answers the first bytes when truncating', async () => {
    const agent = guardedAgent({ allowPrivate: true, resolveHost: resolveTo('127.0.0.1') });
    try {
      const get = (path: string) => request(`http://svc.test:${port}${path}`, { dispatcher: agent });
      await assert.rejects(readCapped(await get('/big'), 64 * 1024), ResponseTooLargeError);
      assert.equal(await readCapped(await get('/big'), 1000, { truncate: true }), 'x'.repeat(1000));
      assert.equal(await readCapped(await get('/'), 5), 'hello');
    } finally {
      await agent.close();
    }
  });
});
