import client from 'prom-client';
import type { FastifyInstance } from 'fastify';

export interface Metrics {
  registry: client.Registry;
  httpDuration: client.Histogram<'method' | 'route' | 'status'>;
  /** Requests answered, per route and status (the request rate: rate(tally_http_requests_total[1m])). */
  httpRequests: client.Counter<'method' | 'route' | 'status'>;
  ledgerWrites: client.Counter<'type'>;
  eventsEmitted: client.Counter<'type'>;
  counter(name: string, help: string, labelNames?: string[]): client.Counter<string>;
  histogram(name: string, help: string, labelNames?: string[], buckets?: number[]): client.Histogram<string>;
  /**
   * A gauge whose values `collect` reads when /metrics is scraped (backlogs counted in the
   * database), set through the `set` it is given. A failing read leaves the gauge empty.
   */
  gauge(
    name: string,
    help: string,
    labelNames: string[],
    collect: (set: (labels: Record<string, string>, value: number) => void) => Promise<void>,
  ): void;
}

/** One registry per server instance, so several servers in one test process do not collide. */
export function createMetrics(): Metrics {
  const registry = new client.Registry();
  // Process metrics as tally_process_cpu_seconds_total, tally_nodejs_eventloop_lag_seconds, ...
  client.collectDefaultMetrics({ register: registry, prefix: 'tally_' });
  const counters = new Map<string, client.Counter<string>>();
  const histograms = new Map<string, client.Histogram<string>>();
  const metrics: Metrics = {
    registry,
    httpDuration: new client.Histogram({
      name: 'tally_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    httpRequests: new client.Counter({
      name: 'tally_http_requests_total',
      help: 'HTTP requests answered, by route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    ledgerWrites: new client.Counter({
      name: 'tally_ledger_writes_total',
      help: 'Ledger entries written, by transaction type',
      labelNames: ['type'],
      registers: [registry],
    }),
    eventsEmitted: new client.Counter({
      name: 'tally_events_emitted_total',
      help: 'Events written to the outbox, by type',
      labelNames: ['type'],
      registers: [registry],
    }),
    counter(name, help, labelNames = []) {
      let c = counters.get(name);
      if (!c) {
        c = new client.Counter({ name, help, labelNames, registers: [registry] });
        counters.set(name, c);
      }
      return c;
    },
    gauge(name, help, labelNames, collect) {
      new client.Gauge({
        name,
        help,
        labelNames,
        registers: [registry],
        async collect() {
          this.reset();
          await collect((labels, value) => this.set(labels, value)).catch(() => undefined);
        },
      });
    },
    histogram(name, help, labelNames = [], buckets) {
      let h = histograms.get(name);
      if (!h) {
        h = new client.Histogram({ name, help, labelNames, registers: [registry], ...(buckets ? { buckets } : {}) });
        histograms.set(name, h);
      }
      return h;
    },
  };
  return metrics;
}

export function registerMetrics(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onResponse', async (req, reply) => {
    const labels = {
      method: req.method,
      route: req.routeOptions?.url ?? 'unmatched',
      status: String(reply.statusCode),
    };
    metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
    metrics.httpRequests.inc(labels);
  });
  app.get('/metrics', { schema: { hide: true }, config: { public: true } }, async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
