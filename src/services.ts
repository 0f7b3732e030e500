import type { AppContext } from './context.ts';
import { ApiKeyService } from './modules/api-keys/service.ts';
import { ConsoleSessionService } from './modules/console/sessions.ts';
import { CustomerService } from './modules/customers/service.ts';
import { EarningService } from './modules/earning/service.ts';
import { EventService } from './modules/events/service.ts';
import { LedgerService } from './modules/ledger/service.ts';
import { MemberService } from './modules/members/service.ts';
import { HouseholdService } from './modules/members/households.ts';
import { MessagingService } from './modules/messaging/service.ts';
import { ProgramService, programRef } from './modules/loyalties/service.ts';
import { ReferralService } from './modules/referrals/service.ts';
import { RewardService } from './modules/rewards/service.ts';
import { TierService } from './modules/tiers/service.ts';
import { TimeService } from './modules/time/service.ts';
import { VoucherService } from './modules/vouchers/service.ts';
import { WebhookService } from './modules/webhooks/service.ts';
import { Workflows } from './workflows/index.ts';
import { redeemByMessage } from './workflows/redeem-by-message.ts';
import { referralHooks, referralTemplateContext } from './workflows/referrals.ts';
import { rewardsTemplateContext } from './workflows/redeem-reward.ts';

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
  time: TimeService;
  /** Member contacts of cards (households). */
  households: HouseholdService;
  consoleSessions: ConsoleSessionService;
  referrals: ReferralService;
}

/** Everything the server wires: the services, and the workflows bound to them. */
export interface Container {
  services: Services;
  workflows: Workflows;
}

/**
 * The container: builds every service once, each given what it calls in its constructor, in
 * dependency order (nothing is attached later). The one cycle, ledger → tiers (a balance change
 * moves the member's tier, and tiers read balances), goes through the listener the ledger is built
 * with: a function that calls `tiers`, which exists by the time any balance changes.
 */
export function createContainer(ctx: AppContext): Container {
  const apiKeys = new ApiKeyService(ctx.database.db, ctx.clock, ctx.caches);
  const customers = new CustomerService(ctx);
  // The time engine (anniversaries, reminders) hears of reminder changes, tier changes and credits
  // that expire through these callbacks; `time` exists by the time any of them runs.
  const programs = new ProgramService(ctx, { onRemindersChanged: (trx, id) => time.replanProgram(trx, id) });
  const members = new MemberService(ctx);
  const ledger = new LedgerService(ctx, async (trx, change, result) => {
    await tiers.balanceListener(trx, change, result);
    await time.balanceChanged(trx, change, result);
  });
  const earning = new EarningService(ctx, { ledger, programs, members });
  const tiers = new TierService(ctx, {
    programs,
    members,
    ledger,
    earning,
    onTierChange: (trx, change) => time.tierChanged(trx, change),
    onRemindersChanged: (trx, id) => time.replanProgram(trx, id),
  });
  const households = new HouseholdService(ctx);
  const vouchers = new VoucherService(ctx, {
    programRef: async (db, id) => {
      const p = await programs.find(db, id);
      return p ? programRef(p) : null;
    },
    onPublished: (trx, voucher) => time.voucherPublished(trx, voucher),
    // `services` is complete by the time a referral campaign is saved or a code redeemed.
    referrals: referralHooks(ctx, () => services),
    // The flow report credits redemptions to the flows that brought them; `messaging` exists by
    // the time anything is redeemed.
    redemptions: {
      recorded: (trx, r) => messaging.reports.live.redemptionRecorded(trx, r),
      rolledBack: (trx, id) => messaging.reports.live.redemptionRolledBack(trx, id),
    },
  });
  const time = new TimeService(ctx, { programs, members, ledger, tiers, vouchers });
  const workflows = new Workflows(ctx, { customers, programs, members, ledger, earning, tiers, time, households });
  const rewards = new RewardService(ctx, {
    findProgram: (db, id) => programs.find(db, id),
    findVoucherCampaign: async (db, id) => {
      const c = await vouchers.findCampaign(db, id);
      // A referral campaign's codes are not a reward (they go to referrers by publication).
      return c && c.campaign_type !== 'REFERRAL_PROGRAM'
        ? { id: c.id, name: c.name, type: c.campaign_type }
        : undefined;
    },
  });
  const messaging = new MessagingService(ctx, {
    customers,
    programs,
    members,
    households,
    ledger,
    tiers,
    joinProgram: workflows.joinProgram,
    // `services` is complete by the time a message is received (it is assigned below).
    redeemReward: (input) => redeemByMessage(ctx, services, input),
    redemptionsOf: (db, customerIds, range) => vouchers.redemptionsOf(db, customerIds, range),
  });
  const services: Services = {
    apiKeys,
    customers,
    programs,
    members,
    ledger,
    earning,
    tiers,
    messaging,
    events: new EventService(),
    webhooks: new WebhookService(ctx),
    vouchers,
    rewards,
    time,
    households,
    consoleSessions: new ConsoleSessionService(ctx.database.db, ctx.clock, ctx.secrets, apiKeys),
    referrals: new ReferralService(ctx),
  };
  // The `rewards` template variable of messages and flow conditions (balance_gte_cheapest_reward).
  messaging.registerContextProvider('rewards', rewardsTemplateContext(services));
  // The `vouchers` variable: the member's vouchers (a flow answering "which vouchers do I have").
  messaging.registerContextProvider('vouchers', ({ db, customer }) => vouchers.templateVariable(db, customer?.id));
  // The `referral` variable: the member's referral code, referred count and next referral tier.
  messaging.registerContextProvider('referral', referralTemplateContext(services));
  return { services, workflows };
}
