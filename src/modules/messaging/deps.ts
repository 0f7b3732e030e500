import type { Executor } from '../../storage/database.ts';
import type { CustomerRow, CustomerService } from '../customers/service.ts';
import type { LedgerService } from '../ledger/service.ts';
import type { ProgramRow, ProgramService } from '../loyalties/service.ts';
import type { MemberService, MembershipRow } from '../members/service.ts';
import type { TierService } from '../tiers/service.ts';

/**
 * Joins a customer to a program (card, balance row, initial points) in `trx`: the join-program
 * workflow, passed in by the container (`src/services.ts`); messaging never imports workflows.
 */
export type JoinProgram = (
  trx: Executor,
  program: ProgramRow,
  customer: CustomerRow,
  opts?: { source?: string },
) => Promise<MembershipRow>;

/** What messaging calls outside itself, given to MessagingService's constructor. */
export interface MessagingDeps {
  customers: CustomerService;
  programs: ProgramService;
  members: MemberService;
  ledger: LedgerService;
  /** Absent in a build without tiers: the `tier` and `tiers` template variables are then nil. */
  tiers?: TierService;
  joinProgram: JoinProgram;
}
