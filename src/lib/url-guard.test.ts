import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertSafeTarget, isLocalHostName, isPrivateAddress, UnsafeUrlError, type ResolveHost } from './url-guard.ts';

describe('isPrivateAddress', () => {
  it('refuses private, loopback, link-local, shared, multicast and reserved IPv4', () => {
    const refused = ['0.0.0.0', '10.1.2.3', '100.64.0.1', '127.0.0.1', '127.255.255.254', '169.254.169.254'];
    refused.push('172.16.0.1', '172.31.255.255', '192.0.0.8', '192.168.1.1', '198.18.0.1', '224.0.0.1');
    refused.push('255.255.255.255');
    for (const a of refused) assert.equal(isPrivateAddress(a), true, a);
  });

  it('lets public IPv4 through', () => {
    for (const a of ['1.1.1.1', '8.8.8.8', '93.184.216.34', '172.32.0.1', '100.128.0.1', '198.51.100.7']) {
      assert.equal(isPrivateAddress(a), false, a);
    }
  });

  it('refuses loopback, unspecified, unique-local, link-local, site-local and multicast IPv6', () => {
    const refused = ['::', '::1', '0:0:0:0:0:0:0:1', 'fc00::1', 'fd12:3456::1', 'fe80::1', 'fe80::1%eth0', 'fec0::1'];
    for (const a of [...refused, 'ff02::1']) assert.equal(isPrivateAddress(a), true, a);
  });

  it('lets public IPv6 through', () => {
    for (const a of ['2606:4700:4700::1111', '2001:4860:4860::8888', '2a00:1450:4001:80b::200e', '2001:db8::1']) {
      assert.equal(isPrivateAddress(a), false, a);
    }
  });

  it('refuses IPv4-mapped addresses of private IPv4, dotted or in hex', () => {
    const refused = ['::ffff:127.0.0.1', '::FFFF:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:ffff:7f00:0001'];
    for (const a of [...refused, '::ffff:a00:1', '::ffff:c0a8:101', '::ffff:169.254.169.254']) {
      assert.equal(isPrivateAddress(a), true, a);
    }
    assert.equal(isPrivateAddress('::ffff:8.8.8.8'), false);
    assert.equal(isPrivateAddress('::ffff:808:808'), false);
  });

  it('refuses every IPv4-compatible ::a.b.c.d (deprecated; no real target)', () => {
    for (const a of ['::127.0.0.1', '::7f00:1', '::10.0.0.1', '::8.8.8.8']) assert.equal(isPrivateAddress(a), true, a);
  });

  it('refuses IPv4-translated ::ffff:0:a.b.c.d of private IPv4', () => {
    assert.equal(isPrivateAddress('::ffff:0:127.0.0.1'), true);
    assert.equal(isPrivateAddress('::ffff:0:7f00:1'), true);
    assert.equal(isPrivateAddress('::ffff:0:8.8.8.8'), false);
  });

  it('refuses NAT64 64:ff9b::/96 of private IPv4, and all of local-use 64:ff9b:1::/48', () => {
    const refused = ['64:ff9b::127.0.0.1', '64:ff9b::7f00:1', '64:ff9b::a9fe:a9fe', '64:ff9b::192.168.0.1'];
    for (const a of [...refused, '64:ff9b:1::1', '64:ff9b:1:ffff::8.8.8.8']) assert.equal(isPrivateAddress(a), true, a);
    assert.equal(isPrivateAddress('64:ff9b::8.8.8.8'), false);
    assert.equal(isPrivateAddress('64:ff9b::808:808'), false);
  });

  it('refuses 6to4 2002::/16 whose IPv4 is private', () => {
    for (const a of ['2002:7f00:1::', '2002:7f00:0001::1', '2002:a00:1::5', '2002:c0a8:101::1', '2002:a9fe:a9fe::']) {
      assert.equal(isPrivateAddress(a), true, a);
    }
    assert.equal(isPrivateAddress('2002:808:808::1'), false);
  });

  it('refuses Teredo 2001:0::/32, not the rest of 2001::/16', () => {
    assert.equal(isPrivateAddress('2001:0:4136:e378:8000:63bf:3fff:fdd2'), true);
    assert.equal(isPrivateAddress('2001::1'), true);
    assert.equal(isPrivateAddress('2001:1::1'), false);
  });

  it('refuses what is not an IP address', () => {
    for (const a of ['', 'localhost', 'example.com', '127.1', '::g', '1.2.3.4.5']) {
      assert.equal(isPrivateAddress(a), true, a);
    }
  });
});

describe('isLocalHostName', () => {
  it('names this machine and local networks', () => {
    for (const h of ['localhost', 'LOCALHOST', 'a.localhost', 'db.internal', 'printer.local', 'localhost.']) {
      assert.equal(isLocalHostName(h), true, h);
    }
    for (const h of ['example.com', 'localhost.example.com', 'internal.example']) {
      assert.equal(isLocalHostName(h), false, h);
    }
  });
});

describe('assertSafeTarget', () => {
  const resolveTo =
    (...addresses: string[]): ResolveHost =>
    async () =>
      addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

  it('resolves with the given resolver and refuses when any address is private', async () => {
    const policy = { allowPrivate: false };
    const url = 'https://hooks.example.com/x';
    const check = (raw: string, ...answers: string[]) =>
      assertSafeTarget(raw, { ...policy, resolveHost: resolveTo(...answers) });
    assert.equal((await check(url, '93.184.216.34')).hostname, 'hooks.example.com');
    await assert.rejects(check(url, '93.184.216.34', '10.0.0.1'), UnsafeUrlError);
    await assert.rejects(check(url, '::ffff:7f00:1'), /private or loopback/);
    await assert.rejects(check(url), /cannot resolve/);
    await assert.rejects(assertSafeTarget('http://[::127.0.0.1]/x', policy), /private or loopback/);
    await assert.rejects(assertSafeTarget('http://[64:ff9b::7f00:1]/x', policy), /private or loopback/);
    await assert.rejects(assertSafeTarget('http://0x7f.1/x', policy), /private or loopback/);
    await assert.rejects(check('http://svc.internal/x', '93.184.216.34'), /local host name/);
  });

  it('checks syntax only when private targets are allowed', async () => {
    assert.equal((await assertSafeTarget('http://127.0.0.1:9/x', { allowPrivate: true })).port, '9');
    await assert.rejects(assertSafeTarget('ftp://example.com/', { allowPrivate: true }), /http or https/);
    await assert.rejects(assertSafeTarget('http://u:p@example.com/', { allowPrivate: true }), /credentials/);
  });
});
