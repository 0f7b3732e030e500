import { createHash } from 'node:crypto';
import type { AppContext } from '../context.ts';
import { DomainError } from '../lib/errors.ts';
import { fromJson } from '../lib/json.ts';
import type { RedeemedByMessage } from '../modules/messaging/deps.ts';
import type { RedemptionRow } from '../modules/vouchers/service.ts';
import type { Services } from '../services.ts';
import { recordRedeemRefusal, redeemReward } from './redeem-reward.ts';

// Workflow "redeem a reward by message" (a flow's redeem step): the redeem-reward workflow in a
// transaction of its own, once per inbound message. The redemption's id is derived from the message
// (channel and provider message id), so a provider delivering the message again, even at the same
// time, finds the redemption already recorded (or loses on its primary key and rolls back) and gets
// the same answer: one debit, one voucher.

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `r_` + 24 base62 characters of the key's SHA-256: the redemption id of one inbound message. */
export function messageRedemptionId(key: string): string {
  const hash = createHash('sha256').update(`redeem-by-message:${key}`).digest();
  let out = '';
  for (let i = 0; i < 24; i++) out += ALPHABET[hash[i] % ALPHABET.length];
  return `r_${out}`;
}

function outcome(row: RedemptionRow, replayed: boolean): RedeemedByMessage {
  interface Details {
    reward?: {
      id?: string;
      name?: string | null;
      type?: string | null;
      voucher?: { code?: string; campaign?: string | null; discount?: unknown; expiration_date?: string | null };
    };
    voucher?: { loyalty_card?: { balance?: number } };
  }
  const d = fromJson<Details>(row.details, {});
  const v = d.reward?.voucher;
  // A LOYALTY_PROGRAM reward's "voucher" is a loyalty card: no code to hand out.
  const issued = v?.code && d.reward?.type === 'CAMPAIGN' && !('loyalty_card' in v && v.loyalty_card) ? v : null;
  return {
    id: row.id,
    replayed,
    reward: { id: row.reward_id ?? d.reward?.id ?? '', name: d.reward?.name ?? null, type: d.reward?.type ?? null },
    voucher: issued
      ? {
          code: issued.code as string,
          campaign: issued.campaign ?? null,
          discount: issued.discount ?? null,
          expiration_date: issued.expiration_date ?? null,
        }
      : null,
    points: Number(row.points ?? 0),
    balance: d.voucher?.loyalty_card?.balance ?? null,
  };
}

export async function redeemByMessage(
  ctx: AppContext,
  services: Services,
  input: { membershipId: string; rewardId: string; key: string },
): Promise<RedeemedByMessage> {
  const id = messageRedemptionId(input.key);
  const db = ctx.database.db;
  const done = await services.vouchers.findRedemption(db, id);
  if (done) return outcome(done, true);
  try {
    await ctx.transaction((trx) =>
      redeemReward(trx, services, {
        memberId: input.membershipId,
        body: { reward: { id: input.rewardId } },
        now: ctx.clock.nowIso(),
        id,
      }),
    );
  } catch (err) {
    // A copy of the message that got there first (this run lost on the primary key, or was then
    // refused for the points the first one spent): its redemption is the answer.
    const first = await services.vouchers.findRedemption(db, id);
    if (first) return outcome(first, true);
    if (err instanceof DomainError) await ctx.transaction((trx) => recordRedeemRefusal(services)(trx, err));
    throw err;
  }
  return outcome(await services.vouchers.getRedemption(db, id), false);
}
