// A FIFO concurrency limiter. On SQLite every query goes through one connection guarded by a
// mutex whose waiters all wake on each release; with hundreds of messages in flight that costs
// more than the queries. Inbound messages therefore queue here first (one at a time on SQLite),
// which keeps the database mutex uncontended and latency flat under load.

export class Limiter {
  private active = 0;
  private queue: (() => void)[] = [];

  constructor(private max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }

  get pending(): number {
    return this.queue.length;
  }
}
