import { fromJson, toJson } from '../../lib/json.ts';
import { type OrderInput, orderAfter, orderAmount } from './discount.ts';
import { NO_REDEMPTION_PARTS } from './redemption-rows.ts';
import type { RedemptionsTable } from './tables.ts';

// The parent of a stacked redemption (Voucherify's `parent_redemption`): a `redemptions` row of
// `kind: 'stack'`, written in the transaction of its children (each names it in
// `parent_redemption_id`). It has no voucher and no amount of its own; its order is the whole
// order after all the children's discounts and credits, with Voucherify's
// `order.redemptions[parent id] = {related_object_type: 'redemption', stacked: [child ids]}`.
// A refused stack keeps a FAILURE parent beside the refused child's FAILURE record.

/** What the parent of a stack knows of the request. */
export interface StackRequest {
  customerId?: string | null;
  order?: OrderInput | null;
  metadata?: Record<string, unknown> | null;
  trackingId?: string | null;
}

/** What the parent row and a refused stack's FAILURE parent share. */
export function stackKnown(input: StackRequest) {
  return {
    kind: 'stack' as const,
    customer_id: input.customerId ?? null,
    order: toJson(input.order ?? null),
    metadata: toJson(input.metadata ?? {}),
    tracking_id: input.trackingId ?? input.customerId ?? null,
  };
}

/** The parent of the stack whose children (redeemed in this transaction) are `children`. */
export function stackParent(
  id: string,
  createdAt: string,
  input: StackRequest,
  children: RedemptionsTable[],
): RedemptionsTable {
  const given = children.reduce((n, c) => n + Number(c.amount ?? 0), 0);
  const order = {
    ...orderAfter(input.order, Math.min(given, orderAmount(input.order))),
    redemptions: {
      [id]: {
        date: createdAt,
        related_object_type: 'redemption',
        related_object_id: id,
        stacked: children.map((c) => c.id),
      },
    },
  };
  const known = stackKnown(input);
  return {
    id,
    ...NO_REDEMPTION_PARTS,
    ...known,
    customer_id: known.customer_id ?? children.find((c) => c.customer_id)?.customer_id ?? null,
    order: toJson(order),
    result: 'SUCCESS',
    status: 'SUCCEEDED',
    created_at: createdAt,
  };
}

/** A parent's order as answers show it: its `redemptions` entry carries the rollback once there is one. */
export function stackOrder(r: RedemptionsTable): Record<string, unknown> | null {
  const order = fromJson<{ redemptions?: Record<string, Record<string, unknown>> } | null>(r.order, null);
  const entry = order?.redemptions?.[r.id];
  if (!order || !entry || !r.rollback_id) return order;
  const rolled = { ...entry, rollback_id: r.rollback_id, rollback_date: r.rolled_back_at };
  return { ...order, redemptions: { ...order.redemptions, [r.id]: rolled } };
}
