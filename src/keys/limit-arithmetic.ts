/**
 * Usage limits as pure arithmetic: named rate limits (token buckets) and credits with a calendar
 * refill, applied to one key chain's counter state. No storage and no clock of its own: the Durable
 * Object (store/counter.ts) holds the state, passes `now`, and applies a whole verification in one
 * synchronous call, which is what makes the counts exact.
 *
 * Rate limits are token buckets: a bucket holds up to `limit` tokens, refills continuously at
 * `limit / duration_ms`, and a request takes one token. O(1) state per limit whatever its size, no
 * burst at a window edge (a fixed window admits 2 x limit across its boundary), and an exact
 * `reset` and Retry-After. Over any span of `duration_ms` a bucket admits at most 2 x limit (a full
 * bucket, then its refill), and at most `limit` in a burst.
 *
 * Credits are spent by `cost`. A refill tops the balance up to `amount` (it never takes credits
 * away) at the first access after each UTC calendar boundary (midnight, or the 1st of the month), so
 * no cron runs per key.
 *
 * Credit operations (POST /v1/keys/{id}/credits, and a PATCH of `credits`, which is a `set`) are
 * recorded in the rule itself, in D1, atomically with their audit event (`recordCreditsOp`): running
 * totals `added` / `removed` and the latest `set`. The counter applies what it has not seen yet on its
 * next call (`currentCredits`). The totals only grow, so a stale copy of the rule (an isolate that has
 * not synced yet) can never apply an operation twice nor undo one: each operation lands exactly once.
 */

import { type CreditWarning, type CreditWarningState, dueCreditWarnings, lowThreshold, rearmCredits } from "./warnings";

export type RefillInterval = "day" | "month";

/** The largest credit balance and amount (well inside exact integer arithmetic). */
export const MAX_CREDITS = 1_000_000_000_000;

export interface RateLimitRule {
  readonly name: string;
  readonly limit: number;
  readonly duration_ms: number;
}

export interface CreditsRule {
  /** The balance at creation or at the latest `set` (the live balance lives in the counter). */
  readonly remaining: number;
  readonly refill: { readonly amount: number; readonly interval: RefillInterval } | null;
  /** Running total of every increment (absent: 0). */
  readonly added?: number;
  /** Running total of every decrement (absent: 0). */
  readonly removed?: number;
  /** The latest `set`: when (a marker that only grows), to what, and the totals it superseded. */
  readonly set?: { readonly at: number; readonly amount: number; readonly added: number; readonly removed: number };
  /** Below this balance the chain's credits are low (a `credits_low` warning); absent or null: 10 % of the last set or refill. */
  readonly low_threshold?: number | null;
}

export interface KeyLimits {
  readonly ratelimits: readonly RateLimitRule[];
  readonly credits: CreditsRule | null;
}

/** One key chain's counters, as its Durable Object stores them. */
export interface CounterState {
  /** The balance, and the rule's operations already applied to it (`setAt`, `added`, `removed`). */
  credits:
    | ({ remaining: number; refilledAt: number; setAt: number; added: number; removed: number } & CreditWarningState)
    | null;
  /** Each rate limit's bucket; `ms`: its duration, so a bucket of a limit gone is dropped once it would be full. */
  buckets: Record<string, { tokens: number; at: number; ms?: number }>;
}

export type UsageCode = "VALID" | "RATE_LIMITED" | "USAGE_EXCEEDED";

export interface RateLimitView {
  readonly name: string;
  readonly limit: number;
  /** Whole requests left now. */
  readonly remaining: number;
  /** When the bucket is full again (epoch ms). */
  readonly reset: number;
}

export interface UsageVerdict {
  readonly code: UsageCode;
  readonly credits: { readonly remaining: number } | null;
  readonly ratelimits: readonly RateLimitView[];
  /** When refused: how long until a retry can succeed (ms), or null when waiting will not help. */
  readonly retryAfterMs: number | null;
  /** The counter's clock when it decided (epoch ms): `reset` is relative to it. */
  readonly at: number;
  /** Credit warnings this call found due (keys/warnings.ts); the counter keeps them until they are written. */
  readonly warnings?: readonly CreditWarning[];
  /** When refused: whose limit refused, the key's own or its owner's (keys/owner-usage.ts). */
  readonly limit?: LimitHolder;
  /** The owner's limits after this verification, when the key's owner has limits and was asked. */
  readonly owner?: UsageBalances;
}

/** Whose limits a verification spent from: the key chain's own, or its owner's (per-customer limits). */
export type LimitHolder = "key" | "owner";

/** The balances one set of counters shows after a verification. */
export interface UsageBalances {
  readonly credits: { readonly remaining: number } | null;
  readonly ratelimits: readonly RateLimitView[];
}

export type CreditsOp = "set" | "increment" | "decrement";

/**
 * What a verdict (and a 429 problem) shows of a verification's usage: `credits` only for a key with
 * credits, `ratelimits` only for a key with rate limits.
 */
export function usageFields(usage: UsageVerdict | undefined): {
  credits?: { remaining: number };
  ratelimits?: RateLimitView[];
  limited_by?: LimitHolder;
  owner_limits?: { credits?: { remaining: number }; ratelimits?: RateLimitView[] };
} {
  return {
    ...balanceFields(usage),
    ...(usage?.limit && usage.code !== "VALID" ? { limited_by: usage.limit } : {}),
    ...(usage?.owner ? { owner_limits: balanceFields(usage.owner) } : {}),
  };
}

function balanceFields(balances: UsageBalances | undefined): {
  credits?: { remaining: number };
  ratelimits?: RateLimitView[];
} {
  return {
    ...(balances?.credits ? { credits: { remaining: balances.credits.remaining } } : {}),
    ...(balances && balances.ratelimits.length > 0
      ? { ratelimits: balances.ratelimits.map((limit) => ({ ...limit })) }
      : {}),
  };
}

/** Does the key have any limit, i.e. does its verification need the counter at all? */
export function hasLimits(limits: KeyLimits | null | undefined): limits is KeyLimits {
  return !!limits && (limits.ratelimits.length > 0 || limits.credits !== null);
}

/** The start (epoch ms) of the UTC day or month holding `now`. */
export function periodStart(now: number, interval: RefillInterval): number {
  const d = new Date(now);
  return interval === "day"
    ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate())
    : Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** The start of the next UTC day or month after `now`. */
export function nextPeriodStart(now: number, interval: RefillInterval): number {
  const d = new Date(now);
  return interval === "day"
    ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
    : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/**
 * The credit balance at `now`: created from the rule on first use, with the rule's operations not yet
 * applied (a newer `set`, then growth of the `added` / `removed` totals), and refilled if a boundary passed.
 */
function currentCredits(state: CounterState, rule: CreditsRule, now: number): NonNullable<CounterState["credits"]> {
  const set = rule.set;
  const credits = state.credits ?? {
    remaining: rule.remaining,
    refilledAt: rule.refill ? periodStart(now, rule.refill.interval) : now,
    setAt: set?.at ?? 0,
    added: set?.added ?? 0,
    removed: set?.removed ?? 0,
    base: rule.remaining,
  };
  if (set && set.at > credits.setAt) {
    credits.remaining = set.amount;
    credits.base = set.amount;
    credits.setAt = set.at;
    credits.added = set.added;
    credits.removed = set.removed;
  }
  const added = rule.added ?? 0;
  if (added > credits.added) {
    credits.remaining = Math.min(MAX_CREDITS, credits.remaining + (added - credits.added));
    credits.added = added;
  }
  const removed = rule.removed ?? 0;
  if (removed > credits.removed) {
    credits.remaining = Math.max(0, credits.remaining - (removed - credits.removed));
    credits.removed = removed;
  }
  if (rule.refill && periodStart(now, rule.refill.interval) > credits.refilledAt) {
    credits.remaining = Math.max(credits.remaining, rule.refill.amount);
    credits.base = rule.refill.amount;
    credits.refilledAt = periodStart(now, rule.refill.interval);
  }
  state.credits = credits;
  return credits;
}

/** A bucket's tokens at `now` (a new bucket starts full; a lowered limit caps the stored tokens). */
function currentBucket(state: CounterState, rule: RateLimitRule, now: number): { tokens: number; at: number } {
  const stored = state.buckets[rule.name];
  const rate = rule.limit / rule.duration_ms;
  const tokens = stored ? Math.min(rule.limit, stored.tokens + Math.max(0, now - stored.at) * rate) : rule.limit;
  const bucket = { tokens, at: now, ms: rule.duration_ms };
  state.buckets[rule.name] = bucket;
  return bucket;
}

function bucketView(rule: RateLimitRule, tokens: number, now: number): RateLimitView {
  const rate = rule.limit / rule.duration_ms;
  return {
    name: rule.name,
    limit: rule.limit,
    remaining: Math.floor(tokens),
    reset: now + Math.ceil((rule.limit - tokens) / rate),
  };
}

/**
 * Applies one verification of `cost` (0: a peek) to `state` in place, all or nothing: every rate
 * limit must have a token and the credits must cover `cost`, else nothing is taken. Rate limits count
 * requests (a peek takes no token); credits count `cost`. USAGE_EXCEEDED wins over RATE_LIMITED when
 * both apply, as waiting for the rate limit would not help.
 */
export function applyUsage(state: CounterState, limits: KeyLimits, cost: number, now: number): UsageVerdict {
  const buckets = limits.ratelimits.map((rule) => ({ rule, bucket: currentBucket(state, rule, now) }));
  // A bucket of a limit this rule lacks is dropped only once a full duration has passed (it is full
  // then, as a new one would be), so a caller with a stale rule cannot reset another's bucket; the
  // balance of a rule without credits is kept for the same reason.
  for (const [name, bucket] of Object.entries(state.buckets)) {
    const idle = now - bucket.at >= (bucket.ms ?? 0);
    if (idle && !limits.ratelimits.some((rule) => rule.name === name)) delete state.buckets[name];
  }
  const before = state.credits?.remaining;
  const credits = limits.credits ? currentCredits(state, limits.credits, now) : null;
  // The low threshold, and the re-arming of warnings by a set, add or refill (keys/warnings.ts).
  const threshold =
    credits && limits.credits ? lowThreshold(limits.credits.low_threshold, creditsBase(credits, limits.credits)) : 0;
  if (credits) rearmCredits(credits, credits.remaining, threshold, now);

  const requests = cost > 0 ? 1 : 0;
  let code: UsageCode = "VALID";
  let retryAfterMs: number | null = null;
  if (credits && credits.remaining < cost) {
    code = "USAGE_EXCEEDED";
    const refill = limits.credits?.refill;
    retryAfterMs = refill && refill.amount >= cost ? nextPeriodStart(now, refill.interval) - now : null;
  } else {
    for (const { rule, bucket } of buckets) {
      if (bucket.tokens >= requests) continue;
      code = "RATE_LIMITED";
      const wait = Math.ceil((requests - bucket.tokens) / (rule.limit / rule.duration_ms));
      retryAfterMs = Math.max(retryAfterMs ?? 0, wait);
    }
  }
  if (code === "VALID") {
    for (const { bucket } of buckets) bucket.tokens -= requests;
    if (credits) credits.remaining -= cost;
  }
  const warnings = credits
    ? dueCreditWarnings(
        credits,
        { old: before ?? credits.remaining + (code === "VALID" ? cost : 0), new: credits.remaining },
        threshold,
        now,
      )
    : [];
  return {
    code,
    credits: credits ? { remaining: credits.remaining } : null,
    ratelimits: buckets.map(({ rule, bucket }) => bucketView(rule, bucket.tokens, now)),
    retryAfterMs,
    at: now,
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}

/** The amount the default low threshold is 10 % of: the last set or refill (a counter from before warnings: the rule's). */
function creditsBase(credits: CreditWarningState, rule: CreditsRule): number {
  return credits.base ?? rule.refill?.amount ?? rule.set?.amount ?? rule.remaining;
}

/**
 * Gives back what a VALID verification of `cost` took (`applyUsage`), when a second set of counters
 * (the owner's) refused it after this one had said yes: every rate limit's token (never above its
 * limit) and the credits (never above MAX_CREDITS). Returns the balances afterwards.
 */
export function refundUsage(state: CounterState, limits: KeyLimits, cost: number, now: number): UsageBalances {
  const requests = cost > 0 ? 1 : 0;
  for (const rule of limits.ratelimits) {
    const bucket = currentBucket(state, rule, now);
    bucket.tokens = Math.min(rule.limit, bucket.tokens + requests);
  }
  const credits = limits.credits ? currentCredits(state, limits.credits, now) : null;
  if (credits) credits.remaining = Math.min(MAX_CREDITS, credits.remaining + cost);
  return {
    credits: credits ? { remaining: credits.remaining } : null,
    ratelimits: limits.ratelimits.map((rule) => bucketView(rule, state.buckets[rule.name]?.tokens ?? rule.limit, now)),
  };
}

/**
 * A credit operation recorded in the rule (the counter applies it on its next call): `set` replaces
 * the balance, `increment` / `decrement` grow the running totals. A decrement never takes the balance
 * below 0 (it stops at 0), an increment never above MAX_CREDITS. `at`: now, for a `set`'s marker.
 */
export function recordCreditsOp(rule: CreditsRule, op: CreditsOp, amount: number, at: number): CreditsRule {
  const added = rule.added ?? 0;
  const removed = rule.removed ?? 0;
  switch (op) {
    case "set":
      // The marker only grows, even if this clock is behind the one that wrote the last set.
      return { ...rule, remaining: amount, set: { at: Math.max(at, (rule.set?.at ?? 0) + 1), amount, added, removed } };
    case "increment":
      return { ...rule, added: added + amount };
    case "decrement":
      return { ...rule, removed: removed + amount };
  }
}
