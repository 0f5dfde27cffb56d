/**
 * Per-customer limits, the pure part: which counters a verification spends from, and how the two
 * verdicts (the key chain's own counters, then its owner's) become the one the caller reads.
 *
 * A key of an owner with limits spends from both sets of counters, all or nothing: the key's own are
 * asked first (so the owner's shared balance only ever sees verifications the key itself allows, and
 * one exhausted key cannot starve its siblings), and when the owner's then refuse, what the key's took
 * is given back (`refundUsage`). Neither balance is ever over-spent; the verdict names whose limit
 * refused (`limit: "key" | "owner"`).
 */
import type { Owner } from "../model";
import {
  type CreditsRule,
  type KeyLimits,
  type RateLimitRule,
  type UsageBalances,
  type UsageVerdict,
  hasLimits,
  recordCreditsOp,
} from "./limit-arithmetic";

/** The name of an owner's Durable Object counters (a key chain's is its usage id, a UUID: never this shape). */
export function ownerCounterName(owner: Owner): string {
  return `owner:${owner.type}:${owner.id}`;
}

/** The owner whose counters `name` names (ownerCounterName's inverse), or null for a key chain's. */
export function ownerOfCounterName(name: string): Owner | null {
  const match = /^owner:(user|workspace):(.+)$/s.exec(name);
  return match ? { type: match[1] as Owner["type"], id: match[2]! } : null;
}

/** The owner's counters, as the key's counters are asked to consult them. */
export interface OwnerCounter {
  readonly name: string;
  readonly limits: KeyLimits;
}

/** The verdict of the key's own counters alone (its owner has no limits, or was not asked). */
export function keyVerdict(own: UsageVerdict): UsageVerdict {
  return own.code === "VALID" ? own : { ...own, limit: "key" };
}

/** The verdict of a key without limits of its own whose owner has some: only the owner's counters. */
export function ownerOnlyVerdict(owner: UsageVerdict): UsageVerdict {
  return {
    code: owner.code,
    credits: null,
    ratelimits: [],
    retryAfterMs: owner.retryAfterMs,
    at: owner.at,
    owner: balances(owner),
    ...(owner.code === "VALID" ? {} : { limit: "owner" as const }),
  };
}

/**
 * Both counters said their piece: `own` is the key's verdict (VALID, or its balances after the refund
 * when the owner refused), `owner` the owner's.
 */
export function combinedVerdict(own: UsageBalances, owner: UsageVerdict): UsageVerdict {
  return {
    code: owner.code,
    credits: own.credits,
    ratelimits: own.ratelimits,
    retryAfterMs: owner.retryAfterMs,
    at: owner.at,
    owner: balances(owner),
    ...(owner.code === "VALID" ? {} : { limit: "owner" as const }),
  };
}

function balances(verdict: UsageVerdict): UsageBalances {
  return { credits: verdict.credits, ratelimits: verdict.ratelimits };
}

/** A PUT of an owner's limits: a field left out is unchanged, null clears it. */
export interface OwnerLimitsChange {
  readonly ratelimits?: readonly RateLimitRule[] | null | undefined;
  readonly credits?: Pick<CreditsRule, "remaining" | "refill" | "low_threshold"> | null | undefined;
}

/**
 * The owner's limits after a PUT, or null when none are left. Rate limits given replace the list;
 * credits given replace the rule and `set` the balance to `remaining` (the running totals carry on, so
 * the counter applies the set exactly once, as for a key's PATCH).
 */
export function ownerLimitsAfter(current: KeyLimits | null, change: OwnerLimitsChange, at: number): KeyLimits | null {
  const before = current?.credits ?? null;
  const credits =
    change.credits === undefined
      ? before
      : change.credits === null
        ? null
        : recordCreditsOp({ ...(before ?? {}), ...change.credits }, "set", change.credits.remaining, at);
  const ratelimits = change.ratelimits === undefined ? (current?.ratelimits ?? []) : (change.ratelimits ?? []);
  const limits: KeyLimits = { ratelimits, credits };
  return hasLimits(limits) ? limits : null;
}
