// Pure rules of referral programs: which referrer tiers a conversion earns, what the next one
// needs, whether a referee matches a tier's conditions. No I/O: the service and the conversion
// workflow feed them rows.

export type TierKind = 'EACH_REFEREE' | 'MIN_REFEREES';

export interface TierRule {
  id: string;
  kind: TierKind;
  /** MIN_REFEREES: the referred count that earns the tier (once). EACH_REFEREE: 1. */
  referees: number;
  conditions: TierConditions | null;
}

/** Conditions on the referee: every listed metadata key must equal the given value. */
export interface TierConditions {
  referee?: { metadata?: Record<string, string | number | boolean | null> };
}

export interface Referee {
  metadata: Record<string, unknown>;
}

/** True when the referee satisfies the tier's conditions (no conditions: everyone). */
export function refereeMatches(conditions: TierConditions | null, referee: Referee): boolean {
  const wanted = conditions?.referee?.metadata;
  if (!wanted) return true;
  return Object.entries(wanted).every(([k, v]) => (referee.metadata[k] ?? null) === v);
}

/**
 * The tiers a conversion earns for the referrer, whose referred count in the campaign is `count`
 * with this referee included. EACH_REFEREE earns at every matching referee; MIN_REFEREES earns
 * once, at the conversion that brings the count to exactly its `referees` (counts only grow: a
 * referee is referred once per campaign, so "exactly" is reached once).
 */
export function tiersEarned<T extends TierRule>(tiers: T[], count: number, referee: Referee): T[] {
  return tiers.filter((t) => {
    if (!refereeMatches(t.conditions, referee)) return false;
    return t.kind === 'EACH_REFEREE' ? true : count === t.referees;
  });
}

/**
 * What the next referee brings the referrer, who has referred `count`: the tier earned soonest
 * (EACH_REFEREE: at the next referee; MIN_REFEREES: at its count, if not reached yet), every tier
 * earned at that same count (`tiers`, in list order), and how many referees are still needed. The
 * first of `tiers` is `tier`. Null when nothing is left to earn.
 */
export function nextTier<T extends TierRule>(
  tiers: T[],
  count: number,
): { tier: T; tiers: T[]; referees_needed: number } | null {
  let best: { tier: T; tiers: T[]; referees_needed: number } | null = null;
  for (const t of tiers) {
    const needed = t.kind === 'EACH_REFEREE' ? 1 : t.referees - count;
    if (needed < 1) continue;
    if (!best || needed < best.referees_needed) best = { tier: t, tiers: [t], referees_needed: needed };
    else if (needed === best.referees_needed) best.tiers.push(t);
  }
  return best;
}
