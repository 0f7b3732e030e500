// Discount arithmetic of a voucher against an order (pure). Amounts are integers in cents.
//
// - AMOUNT: `amount_off`, at most the order amount.
// - PERCENT: `percent_off` % of the order amount, rounded half up to the cent, at most
//   `amount_limit` when set.
// - UNIT: `unit_off` units of `unit_type` free. Tally keeps no product catalogue, so a unit's price is
//   the price of the order item whose `product_id`, `sku_id` or `source_id` equals `unit_type`; at
//   most the item's quantity is free. No such item: the discount is 0 (the voucher stays valid).
// - Gift vouchers: `credits` asked (or else the order amount), at most the balance.

export type Discount =
  | { type: 'AMOUNT'; amount_off: number; effect?: string }
  | { type: 'PERCENT'; percent_off: number; amount_limit?: number | null; effect?: string }
  | { type: 'UNIT'; unit_off: number; unit_type: string; effect?: string };

export interface OrderItem {
  product_id?: string | null;
  sku_id?: string | null;
  source_id?: string | null;
  quantity?: number | null;
  price?: number | null;
  amount?: number | null;
}

export interface OrderInput {
  id?: string | null;
  source_id?: string | null;
  amount?: number | null;
  items?: OrderItem[] | null;
  metadata?: Record<string, unknown> | null;
}

/** The order amount: `amount`, else the sum of the items (`amount`, else `price × quantity`). */
export function orderAmount(order: OrderInput | undefined | null): number {
  if (!order) return 0;
  if (typeof order.amount === 'number') return order.amount;
  let sum = 0;
  for (const item of order.items ?? []) sum += itemAmount(item);
  return sum;
}

function itemAmount(item: OrderItem): number {
  if (typeof item.amount === 'number') return item.amount;
  return (item.price ?? 0) * (item.quantity ?? 1);
}

export function discountAmount(discount: Discount, order: OrderInput | undefined | null): number {
  const total = orderAmount(order);
  switch (discount.type) {
    case 'AMOUNT':
      return Math.max(0, Math.min(discount.amount_off, total));
    case 'PERCENT': {
      let off = Math.floor((total * discount.percent_off) / 100 + 0.5);
      if (discount.amount_limit != null) off = Math.min(off, discount.amount_limit);
      return Math.max(0, Math.min(off, total));
    }
    case 'UNIT': {
      const item = (order?.items ?? []).find((i) => [i.product_id, i.sku_id, i.source_id].includes(discount.unit_type));
      if (!item || item.price == null) return 0;
      const units = Math.min(discount.unit_off, item.quantity ?? 1);
      return Math.max(0, Math.min(units * item.price, total));
    }
  }
}

/** Gift credits a redemption spends: those asked for (else the order amount), at most the balance. */
export function giftCredits(balance: number, asked: number | undefined | null, order: OrderInput | undefined | null) {
  const want = asked ?? orderAmount(order);
  return Math.max(0, Math.min(want, balance));
}

/** The order as answers show it, with the discount applied. */
export function orderAfter(order: OrderInput | undefined | null, discount: number) {
  const amount = orderAmount(order);
  return {
    ...(order ?? {}),
    amount,
    discount_amount: discount,
    total_discount_amount: discount,
    total_amount: amount - discount,
    applied_discount_amount: discount,
    total_applied_discount_amount: discount,
    object: 'order' as const,
  };
}
