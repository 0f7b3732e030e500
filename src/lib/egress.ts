import type { LookupAddress, LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import {
  assertSafeTarget,
  isPrivateAddress,
  systemResolveHost,
  UnsafeUrlError,
  type TargetPolicy,
} from './url-guard.ts';

// Outgoing HTTP to addresses that API users choose (webhook endpoints, flow http steps, a channel's
// provider base_url) goes through connection pools made here. Each new connection resolves its host
// once, checks every address it got, and connects to a checked one: a name that answers a public
// address when a URL is saved and a private one later (DNS rebinding) is refused at the connection.
// A pooled connection stays bound to the address it was checked with. Redirects are not followed
// (undici's request never follows them; a 3xx is an answer like any other).

/** A connection refused because its address is private, loopback or otherwise internal. */
export class PrivateAddressError extends UnsafeUrlError {
  readonly code = 'ERR_PRIVATE_ADDRESS';
  constructor(host: string, address: string) {
    super(
      host === address
        ? `${host} is a private or loopback address`
        : `${host} resolves to a private or loopback address (${address})`,
    );
    this.name = 'PrivateAddressError';
  }
}

/** A response body larger than its reader's limit; the stream was aborted, not read to the end. */
export class ResponseTooLargeError extends Error {
  readonly code = 'ERR_RESPONSE_TOO_LARGE';
  constructor(limit: number) {
    super(`response body larger than ${limit} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net/tls.connect: resolves with the policy's resolver, refuses the host when any
 * address is private (unless allowed), and hands the checked addresses to the socket.
 */
export function guardedLookup(policy: TargetPolicy): LookupFunction {
  const resolveHost = policy.resolveHost ?? systemResolveHost;
  const lookup = (hostname: string, options: LookupOptions, callback: LookupCallback) => {
    resolveHost(hostname).then(
      (all) => {
        const bad = policy.allowPrivate ? undefined : all.find((a) => isPrivateAddress(a.address));
        const family = options.family === 4 || options.family === 6 ? options.family : 0;
        const usable = family ? all.filter((a) => a.family === family) : all;
        if (bad) callback(new PrivateAddressError(hostname, bad.address), '');
        else if (usable.length === 0) {
          callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }), '');
        } else if (options.all) callback(null, usable);
        else callback(null, usable[0].address, usable[0].family);
      },
      (err: NodeJS.ErrnoException) => callback(err, ''),
    );
  };
  return lookup as LookupFunction;
}

export interface PoolOptions {
  /** Connections per origin (undici's default: no limit). */
  connections?: number;
  /** Time to establish a connection (TCP and TLS), in ms; undici's default 10 s. */
  connectTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  pipelining?: number;
  /** Certificates to trust instead of Node's bundled CAs (a private CA; tests). */
  ca?: string | Buffer;
}

/**
 * An undici Agent whose every connection is checked: a host name through `guardedLookup`, an IP
 * literal (which net.connect would not look up) before connecting. TLS keeps the host name for SNI
 * and certificate checks, since the connector is given the name and the lookup only the address.
 */
export function guardedAgent(policy: TargetPolicy, opts: PoolOptions = {}): Agent {
  const connectSocket = buildConnector({
    timeout: opts.connectTimeoutMs,
    lookup: guardedLookup(policy),
    ...(opts.ca ? { ca: opts.ca } : {}),
  });
  const connect: buildConnector.connector = (options, callback) => {
    const host = options.hostname.replace(/^\[|\]$/g, '');
    if (!policy.allowPrivate && isIP(host) && isPrivateAddress(host)) {
      callback(new PrivateAddressError(host, host), null);
      return;
    }
    connectSocket(options, callback);
  };
  return new Agent({
    connect,
    connections: opts.connections,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
    pipelining: opts.pipelining,
  });
}

/**
 * The outgoing-HTTP policy of one server: the check made when a URL is saved, and the guarded
 * pools the clients send through. Shared pools are closed with the server.
 */
export class Egress {
  private readonly pools = new Map<string, Agent>();

  constructor(readonly policy: TargetPolicy) {}

  /** Save-time check of a URL (the connection is checked again whenever one is made). */
  check(raw: string): Promise<URL> {
    return assertSafeTarget(raw, this.policy);
  }

  /** A new guarded pool; the caller closes it. */
  agent(opts: PoolOptions = {}): Agent {
    return guardedAgent(this.policy, opts);
  }

  /** The shared guarded pool for these options. */
  pool(opts: Omit<PoolOptions, 'ca'> = {}): Agent {
    const key = JSON.stringify([opts.connections, opts.connectTimeoutMs, opts.keepAliveTimeoutMs, opts.pipelining]);
    let agent = this.pools.get(key);
    if (!agent) {
      agent = guardedAgent(this.policy, opts);
      this.pools.set(key, agent);
    }
    return agent;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => undefined)));
  }
}

/**
 * Reads a response body as UTF-8 text, at most `limit` bytes. A larger body (by its content-length
 * or as it streams) aborts the request at once, so no more than about `limit` bytes are ever held;
 * then it throws ResponseTooLargeError, or with `truncate` answers the first `limit` bytes.
 */
export async function readCapped(
  res: Dispatcher.ResponseData,
  limit: number,
  opts: { truncate?: boolean } = {},
): Promise<string> {
  const declared = Number(res.headers['content-length']);
  if (!opts.truncate && Number.isFinite(declared) && declared > limit) {
    res.body.destroy();
    throw new ResponseTooLargeError(limit);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > limit) {
      res.body.destroy();
      if (!opts.truncate) throw new ResponseTooLargeError(limit);
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}
