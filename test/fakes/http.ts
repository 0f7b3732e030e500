import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

// A tiny recording HTTP server on loopback for fake providers.

export interface Recorded {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  raw: string;
  at: number;
}

export type Handler = (req: Recorded, res: ServerResponse) => void | Promise<void>;

export class FakeHttp {
  readonly requests: Recorded[] = [];
  private server: Server;
  url = '';
  private waiters: { n: number; resolve: () => void }[] = [];

  constructor(private handler: Handler) {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const rec: Recorded = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          raw: Buffer.concat(chunks).toString('utf8'),
          at: performance.now(),
        };
        this.requests.push(rec);
        for (const w of [...this.waiters]) {
          if (this.requests.length >= w.n) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve();
          }
        }
        Promise.resolve(this.handler(rec, res)).catch(() => {
          res.statusCode = 500;
          res.end();
        });
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    return this.url;
  }

  /** Resolves once `n` requests in total have arrived (or rejects after `ms`). */
  waitFor(n: number, ms = 5000): Promise<void> {
    if (this.requests.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`expected ${n} requests, got ${this.requests.length}`)), ms);
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      });
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Base of the fake providers: a recording loopback server whose requests go to `handle`. */
export abstract class FakeProvider {
  readonly http: FakeHttp = new FakeHttp((req, res) => this.handle(req, res));

  start(): Promise<string> {
    return this.http.start();
  }
  close(): Promise<void> {
    return this.http.close();
  }
  get url(): string {
    return this.http.url;
  }

  protected abstract handle(req: Recorded, res: ServerResponse): void | Promise<void>;
}
