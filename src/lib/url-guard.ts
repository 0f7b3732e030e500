import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

// Outgoing HTTP targets chosen by API users (webhook endpoints, flow "call an API" steps) must be
// http(s) and must not reach private, loopback, link-local or otherwise internal addresses, unless
// the operator allows it (TALLY_ALLOW_PRIVATE_TARGETS, for local development and tests). The host
// is resolved and every address checked, so a public name pointing inside is refused too.

const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) blocked.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) blocked.addSubnet(net, prefix, 'ipv6');

export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family === 6) {
    const mapped = address.toLowerCase().match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/);
    if (mapped) return blocked.check(mapped[1], 'ipv4');
    return blocked.check(address, 'ipv6');
  }
  return true;
}

export class UnsafeUrlError extends Error {}

/** Syntax and scheme only (no DNS): for validating input quickly. Returns the parsed URL. */
export function parseHttpUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UnsafeUrlError(`"${raw}" is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UnsafeUrlError('URL must use http or https');
  if (url.username || url.password) throw new UnsafeUrlError('URL must not carry credentials');
  return url;
}

/**
 * Throws UnsafeUrlError unless `raw` is an http(s) URL whose host resolves only to public addresses
 * (or `allowPrivate` is set).
 */
export async function assertSafeTarget(raw: string, opts: { allowPrivate: boolean }): Promise<URL> {
  const url = parseHttpUrl(raw);
  if (opts.allowPrivate) return url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.internal') || host.endsWith('.local')) {
    throw new UnsafeUrlError(`${host} is a local host name`);
  }
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
  if (addresses.length === 0) throw new UnsafeUrlError(`cannot resolve ${host}`);
  const bad = addresses.find(isPrivateAddress);
  if (bad) throw new UnsafeUrlError(`${host} resolves to a private or loopback address (${bad})`);
  return url;
}
