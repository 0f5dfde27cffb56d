/**
 * Which usage counters a verification of a live key spends from, in one call from this isolate:
 * its chain's own (keys/limit-arithmetic.ts), its owner's (per-customer limits, keys/owner-usage.ts),
 * or its chain's, which then asks its owner's. A key with neither is never metered (no call at all).
 */
import { type KeyLimits, type UsageVerdict, hasLimits } from "../keys/limit-arithmetic";
import { ownerCounterName, ownerOnlyVerdict } from "../keys/owner-usage";
import type { CompactRecord } from "../model";
import type { UsageCounters } from "../store/counter";

/** Does verifying this key spend from any counter? */
export function isMetered(record: CompactRecord): boolean {
  return hasLimits(record.limits) || hasLimits(record.ownerLimits);
}

/** Spends one verification of `cost` from every counter the key answers to, all or nothing. */
export async function spend(counters: UsageCounters, record: CompactRecord, cost: number): Promise<UsageVerdict> {
  const owner = hasLimits(record.ownerLimits)
    ? { name: ownerCounterName(record.owner), limits: record.ownerLimits }
    : undefined;
  if (!hasLimits(record.limits)) {
    if (!owner) throw new Error("spend: the key has no limits");
    return ownerOnlyVerdict(await counters.take(owner.name, owner.limits, cost));
  }
  return counters.take(record.usageId ?? record.id, record.limits, cost, owner);
}

/** The approximate bytes a record's owner limits add in memory (none for an owner without limits). */
export function ownerLimitsBytes(limits: KeyLimits | undefined): number {
  if (!limits) return 0;
  return 200 + limits.ratelimits.reduce((bytes, limit) => bytes + 100 + limit.name.length, 0);
}
