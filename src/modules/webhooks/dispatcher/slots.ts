import type { EndpointRow } from './types.ts';

/**
 * Sending slots: each endpoint has its own concurrency limit (fewer slots while it is failing),
 * under a global bound, so a slow or dead endpoint only ever occupies its own slots. A slot is
 * reserved when a delivery is claimed and released when its send settles.
 */
export class Slots {
  private inflight = new Map<string, number>();
  private total = 0;

  constructor(
    /** Concurrent requests per healthy endpoint. */
    readonly perEndpoint: number,
    /** Concurrent requests per endpoint while it is failing. */
    private readonly perFailingEndpoint: number,
    /** Concurrent requests in all. */
    private readonly global: number,
  ) {}

  /** How many more requests `endpoint` may have in flight now. */
  free(endpoint: EndpointRow): number {
    const limit = endpoint.failing_since ? this.perFailingEndpoint : this.perEndpoint;
    return Math.max(0, Math.min(limit - (this.inflight.get(endpoint.id) ?? 0), this.global - this.total));
  }

  reserve(endpointId: string, n = 1): void {
    this.inflight.set(endpointId, (this.inflight.get(endpointId) ?? 0) + n);
    this.total += n;
  }

  release(endpointId: string, n = 1): void {
    if (n <= 0) return;
    const left = (this.inflight.get(endpointId) ?? n) - n;
    if (left <= 0) this.inflight.delete(endpointId);
    else this.inflight.set(endpointId, left);
    this.total -= n;
  }
}
