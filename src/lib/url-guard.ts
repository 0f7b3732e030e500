import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

// Outgoing HTTP targets chosen by API users (webhook endpoints, flow "call an API" steps, a
// channel's provider base_url) must be http(s) and must not reach private, loopback, link-local or
// otherwise internal addresses, unless the operator allows it (TALLY_ALLOW_PRIVATE_TARGETS, for
// local development and tests). Two checks use the rules below: `assertSafeTarget` when a URL is
// saved (a quick answer to the user), and the guarded connection pools of ./egress.ts on every
// connection (the check that holds: the address checked is the address connected to).

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
] as const)
  blocked.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const)
  blocked.addSubnet(net, prefix, 'ipv6');

/** The 16 bytes of a valid IPv6 address (hex groups, `::`, a trailing dotted IPv4, a `%zone`). */
function ipv6Bytes(address: string): Uint8Array {
  let text = address.toLowerCase().split('%')[0];
  const bytes = new Uint8Array(16);
  let dotted: number[] | null = null;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    dotted = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, null];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    bytes[2 * i] = v >> 8;
    bytes[2 * i + 1] = v & 0xff;
  });
  if (dotted) bytes.set(dotted, 12);
  return bytes;
}

const v4At = (b: Uint8Array, i: number) => `${b[i]}.${b[i + 1]}.${b[i + 2]}.${b[i + 3]}`;
const zeroUpTo = (b: Uint8Array, end: number) => b.subarray(0, end).every((x) => x === 0);

/**
 * True when `address` (an IP literal) must not be connected to: private, loopback, link-local,
 * multicast, reserved, or an IPv6 form that carries an IPv4 address inside, which the kernel or a
 * gateway may turn into a connection to that IPv4 address. Anything that is not an IP is refused.
 */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address.split('%')[0]);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family !== 6) return true;
  const b = ipv6Bytes(address);
  // ::ffff:a.b.c.d (IPv4-mapped, also written ::ffff:7f00:1): the IPv4 address itself.
  if (zeroUpTo(b, 10) && b[10] === 0xff && b[11] === 0xff) return blocked.check(v4At(b, 12), 'ipv4');
  // ::/96: unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d; none is a real target.
  if (zeroUpTo(b, 12)) return true;
  // ::ffff:0:a.b.c.d (IPv4-translated, SIIT).
  if (zeroUpTo(b, 8) && b[8] === 0xff && b[9] === 0xff && b[10] === 0 && b[11] === 0) {
    return blocked.check(v4At(b, 12), 'ipv4');
  }
  // 64:ff9b::/96, the well-known NAT64 prefix: the IPv4 address in the last 32 bits.
  if (b[0] === 0 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b) {
    if (b.subarray(4, 12).every((x) => x === 0)) return blocked.check(v4At(b, 12), 'ipv4');
    // 64:ff9b:1::/48, local-use NAT64 (RFC 8215): private by definition, wherever the IPv4 sits.
    if (b[4] === 0 && b[5] === 1) return true;
  }
  // 2002::/16, 6to4: the relay's IPv4 address in bits 16-47.
  if (b[0] === 0x20 && b[1] === 0x02) return blocked.check(v4At(b, 2), 'ipv4');
  // 2001:0::/32, Teredo: carries a server and an obfuscated client IPv4; tunnels, never a service.
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0 && b[3] === 0) return true;
  return blocked.check(address.split('%')[0], 'ipv6');
}

/** Host names that name this machine or a local network, whatever they resolve to. */
export function isLocalHostName(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost') || h.endsWith('.internal') || h.endsWith('.local');
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

/** A resolved address of a host name. */
export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to all its addresses (tests pass their own; the default asks the system). */
export type ResolveHost = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolveHost: ResolveHost = (hostname) => lookup(hostname, { all: true });

/** Where outgoing requests may go: the operator's choice and how host names are resolved. */
export interface TargetPolicy {
  allowPrivate: boolean;
  resolveHost?: ResolveHost;
}

/**
 * Throws UnsafeUrlError unless `raw` is an http(s) URL whose host resolves only to public addresses
 * (or `allowPrivate` is set). A check when a URL is saved; the connection is checked again.
 */
export async function assertSafeTarget(raw: string, policy: TargetPolicy): Promise<URL> {
  const url = parseHttpUrl(raw);
  if (policy.allowPrivate) return url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isLocalHostName(host)) throw new UnsafeUrlError(`${host} is a local host name`);
  const resolveHost = policy.resolveHost ?? systemResolveHost;
  const addresses = isIP(host) ? [host] : (await resolveHost(host).catch(() => [])).map((a) => a.address);
  if (addresses.length === 0) throw new UnsafeUrlError(`cannot resolve ${host}`);
  const bad = addresses.find(isPrivateAddress);
  if (bad) throw new UnsafeUrlError(`${host} resolves to a private or loopback address (${bad})`);
  return url;
}
