import type { AppContext } from './context.ts';
import { ApiKeyService } from './modules/api-keys/service.ts';
import { CustomerService } from './modules/customers/service.ts';
import { EarningService } from './modules/earning/service.ts';
import { EventService } from './modules/events/service.ts';
import { LedgerService } from './modules/ledger/service.ts';
import { MemberService } from './modules/members/service.ts';
import { MessagingService } from './modules/messaging/service.ts';
import { ProgramService, programRef } from './modules/loyalties/service.ts';
import { RewardService } from './modules/rewards/service.ts';
import { TierService } from './modules/tiers/service.ts';
import { VoucherService } from './modules/vouchers/service.ts';
import { WebhookService } from './modules/webhooks/service.ts';

/** One service per domain module; workflows and routes reach other modules only through these. */
export interface Services {
  apiKeys: ApiKeyService;
  customers: CustomerService;
  programs: ProgramService;
  members: MemberService;
  ledger: LedgerService;
  earning: EarningService;
  tiers: TierService;
  rewards: RewardService;
  messaging: MessagingService;
  events: EventService;
  webhooks: WebhookService;
  vouchers: VoucherService;
}

export function createServices(ctx: AppContext): Services {
  const services = {
    apiKeys: new ApiKeyService(ctx.database.db, ctx.clock, ctx.caches),
    customers: new CustomerService(ctx),
    programs: new ProgramService(ctx),
    members: new MemberService(ctx),
    ledger: new LedgerService(ctx),
    earning: new EarningService(ctx),
    tiers: new TierService(ctx),
    events: new EventService(ctx),
    webhooks: new WebhookService(ctx),
  } as Services;
  // Messaging reaches the other services (customers, members, ledger, tiers) through this same object.
  services.messaging = new MessagingService(ctx, services);
  services.vouchers = new VoucherService(ctx, {
    programRef: async (db, id) => {
      const p = await services.programs.find(db, id);
      return p ? programRef(p) : null;
    },
  });
  services.rewards = new RewardService(ctx, {
    findProgram: (db, id) => services.programs.find(db, id),
    findVoucherCampaign: async (db, id) => {
      const c = await services.vouchers.findCampaign(db, id);
      return c ? { id: c.id, name: c.name, type: c.campaign_type } : undefined;
    },
  });
  return services;
}
