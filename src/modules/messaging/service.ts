import type { AppContext } from '../../context.ts';
import type { MessagingDeps } from './deps.ts';
import { BroadcastService } from './broadcast.ts';
import { ChannelService, type ChannelRow } from './channels.ts';
import {
  ContextRegistry,
  registerCoreProviders,
  registerTierProviders,
  type ContextProvider,
} from './context-providers.ts';
import { Engine, type ReceiveResult } from './flows/engine.ts';
import { FlowService } from './flows/service.ts';
import { OptOutService } from './optout.ts';
import { Outbound } from './outbound.ts';
import type { InboundMessage } from './providers/types.ts';
import { ReportService } from './reports.ts';
import { Limiter } from './limiter.ts';

/** The messaging module's service: channels, flows, the inbound engine, outbound queue, reports. */
export class MessagingService {
  readonly channels: ChannelService;
  readonly flows: FlowService;
  readonly optout: OptOutService;
  readonly outbound: Outbound;
  readonly engine: Engine;
  readonly broadcasts: BroadcastService;
  readonly reports: ReportService;
  readonly context = new ContextRegistry();
  /** Inbound messages in processing at once: 1 on SQLite (one writer anyway), 16 on PostgreSQL. */
  private inbound: Limiter;

  constructor(
    private ctx: AppContext,
    services: MessagingDeps,
  ) {
    registerCoreProviders(this.context);
    // Feature modules present in this build provide their variables (tiers today; rewards,
    // vouchers and referral register theirs with registerContextProvider when they exist).
    if (services.tiers) registerTierProviders(this.context);
    this.inbound = new Limiter(ctx.database.writeConcurrency);
    this.channels = new ChannelService(ctx);
    this.flows = new FlowService(ctx, services);
    this.optout = new OptOutService(ctx);
    this.outbound = new Outbound(ctx, this.channels, this.optout);
    this.engine = new Engine(ctx, services, this.flows, this.outbound, this.optout, this.context);
    this.broadcasts = new BroadcastService(
      ctx,
      services,
      this.channels,
      this.flows,
      this.outbound,
      this.optout,
      this.context,
    );
    this.reports = new ReportService(ctx, services);
  }

  /**
   * Lets another module add template variables (and the data behind flow conditions):
   * `registerContextProvider('tier', async ({ db, membership }) => ({ id, name }))`.
   */
  registerContextProvider(name: string, fn: ContextProvider): () => void {
    return this.context.register(name, fn);
  }

  /** Handles a batch of inbound messages of one channel. */
  async receive(channel: ChannelRow, messages: InboundMessage[]): Promise<ReceiveResult[]> {
    const out: ReceiveResult[] = [];
    for (const m of messages) out.push(await this.inbound.run(() => this.engine.receive(channel, m)));
    return out;
  }

  /**
   * Background sender (retries, throttled broadcasts), broadcast preparation and the flow
   * report's fold (only when workers run).
   */
  start(intervalMs = 500): () => Promise<void> {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      Promise.all([this.outbound.tick(), this.broadcasts.tick(), this.reports.live.fold({ skipLocked: true })])
        .catch((err) => this.ctx.log.error({ err }, 'outbound tick failed'))
        .finally(() => {
          running = false;
        });
    }, intervalMs);
    timer.unref();
    return async () => {
      clearInterval(timer);
      await this.outbound.drain();
    };
  }
}
