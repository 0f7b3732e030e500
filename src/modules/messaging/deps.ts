import type { Executor } from '../../storage/database.ts';
import type { CustomerRow, CustomerService } from '../customers/service.ts';
import type { LedgerService } from '../ledger/service.ts';
import type { ProgramRow, ProgramService } from '../loyalties/service.ts';
import type { MemberService, MembershipRow } from '../members/service.ts';
import type { HouseholdService } from '../members/households.ts';
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

/** What a redemption by message gave: the reward, the voucher issued (if any), the card after it. */
export interface RedeemedByMessage {
  /** The redemption's `r_` id (the same for every delivery of one inbound message). */
  id: string;
  /** A copy of the inbound message redeemed already: this is that redemption. */
  replayed: boolean;
  reward: { id: string; name: string | null; type: string | null };
  /** The voucher a CAMPAIGN reward issued (its code), or null (MATERIAL, points, gift value). */
  voucher: { code: string; campaign: string | null; discount: unknown; expiration_date: string | null } | null;
  points: number;
  /** The card's balance after the redemption. */
  balance: number | null;
}

/**
 * Redeems a reward for a member (the redeem-reward workflow, in its own transaction), passed in by
 * the container. `key` names the inbound message: every delivery of one message redeems once.
 * Refusals (points, stock, unknown reward) throw DomainError with nothing changed.
 */
export type RedeemReward = (input: {
  membershipId: string;
  rewardId: string;
  key: string;
}) => Promise<RedeemedByMessage>;

/** The successful, not rolled back redemptions of these customers in [from, to) (the vouchers module's). */
export type RedemptionsOf = (
  db: Executor,
  customerIds: string[],
  range: { from: string; to: string },
) => Promise<{ customer_id: string; points: number; created_at: string }[]>;

/** What messaging calls outside itself, given to MessagingService's constructor. */
export interface MessagingDeps {
  customers: CustomerService;
  programs: ProgramService;
  members: MemberService;
  /** Cards shared with a member contact: its phone number finds them in keyword flows. */
  households?: HouseholdService;
  ledger: LedgerService;
  /** Absent in a build without tiers: the `tier` and `tiers` template variables are then nil. */
  tiers?: TierService;
  joinProgram: JoinProgram;
  /** Absent in a build without rewards: a redeem step then refuses (`unavailable`). */
  redeemReward?: RedeemReward;
  /** Absent in a build without vouchers: the flow report counts no redemptions. */
  redemptionsOf?: RedemptionsOf;
}
