import type { CustomerService } from '../modules/customers/service.ts';
import type { EarningService } from '../modules/earning/service.ts';
import type { LedgerService } from '../modules/ledger/service.ts';
import type { ProgramService } from '../modules/loyalties/service.ts';
import type { MemberService } from '../modules/members/service.ts';
import type { HouseholdService } from '../modules/members/households.ts';
import type { TierService } from '../modules/tiers/service.ts';
import type { TimeService } from '../modules/time/service.ts';

/**
 * The services the workflows call. Named here, not taken from `src/services.ts`, so the container
 * can build the workflows before the services that use one (messaging joins members by message).
 */
export interface WorkflowServices {
  customers: CustomerService;
  programs: ProgramService;
  members: MemberService;
  ledger: LedgerService;
  earning: EarningService;
  tiers: TierService;
  time: TimeService;
  households: HouseholdService;
}
