import type { DomainError } from '../../lib/errors.ts';
import { newId } from '../../lib/ids.ts';
import type { RedemptionsTable } from './tables.ts';

// Redemption rows that are not a voucher's or a reward's own redemption: a refused redemption's
// record and a stacked redemption's parent (stacks.ts) each fill in what they know and leave
// every other part empty, from this one list.

/** Every part of a redemption row that may be empty (each row kind sets what it knows over it). */
export const NO_REDEMPTION_PARTS = {
  voucher_id: null,
  voucher_code: null,
  campaign_id: null,
  program_id: null,
  customer_id: null,
  reward_id: null,
  assignment_id: null,
  membership_id: null,
  points: null,
  amount: null,
  order: null,
  metadata: null,
  tracking_id: null,
  details: null,
  rollback_id: null,
  rollback_reason: null,
  rolled_back_at: null,
  parent_redemption_id: null,
} as const;

/**
 * The record of a refused redemption (Voucherify's `result: FAILURE`, `status: FAILED`, the refusal's
 * key and message): what is known of the attempt (`known`), every other part empty. Refused voucher
 * and reward redemptions both keep one, written after the refused transaction rolled back.
 */
export function failedRedemption(
  err: DomainError,
  createdAt: string,
  known: Pick<RedemptionsTable, 'kind'> & Partial<RedemptionsTable>,
): RedemptionsTable {
  return {
    id: newId('r'),
    ...NO_REDEMPTION_PARTS,
    ...known,
    result: 'FAILURE',
    status: 'FAILED',
    failure_code: err.key,
    failure_message: err.details ?? err.message,
    created_at: createdAt,
  };
}
