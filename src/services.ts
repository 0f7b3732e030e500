import type { AppContext } from './context.ts';
import { ApiKeyService } from './modules/api-keys/service.ts';
import { CustomerService } from './modules/customers/service.ts';
import { EventService } from './modules/events/service.ts';
import { LedgerService } from './modules/ledger/service.ts';
import { ProgramService } from './modules/loyalties/service.ts';
import { MemberService } from './modules/members/service.ts';
import { WebhookService } from './modules/webhooks/service.ts';

/** One service per domain module; workflows and routes reach other modules only through these. */
export interface Services {
  apiKeys: ApiKeyService;
  customers: CustomerService;
  programs: ProgramService;
  members: MemberService;
  ledger: LedgerService;
  events: EventService;
  webhooks: WebhookService;
}

export function createServices(ctx: AppContext): Services {
  return {
    apiKeys: new ApiKeyService(ctx.database.db, ctx.clock),
    customers: new CustomerService(ctx),
    programs: new ProgramService(ctx),
    members: new MemberService(ctx),
    ledger: new LedgerService(ctx),
    events: new EventService(ctx),
    webhooks: new WebhookService(ctx),
  };
}
