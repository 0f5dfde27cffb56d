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
 */

export type RefillInterval = "day" | "month";

/** The largest credit balance and amount (well inside exact integer arithmetic). */
export const MAX_CREDITS = 1_000_000_000_000;

export interface RateLimitRule {
  readonly name: string;
  readonly limit: number;
  readonly duration_ms: number;
}

export interface CreditsRule {
  /** The starting balance (the live balance lives in the counter). */
  readonly remaining: number;
  readonly refill: { readonly amount: number; readonly interval: RefillInterval } | null;
}

export interface KeyLimits {
  readonly ratelimits: readonly RateLimitRule[];
  readonly credits: CreditsRule | null;
}

/** One key chain's counters, as its Durable Object stores them. */
export interface CounterState {
  credits: { remaining: number; refilledAt: number } | null;
  buckets: Record<string, { tokens: number; at: number }>;
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
}

export type CreditsOp = "set" | "increment" | "decrement";

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

/** The credit balance at `now`, created from the rule on first use and refilled if a boundary passed. */
function currentCredits(
  state: CounterState,
  rule: CreditsRule,
  now: number,
): { remaining: number; refilledAt: number } {
  const interval = rule.refill?.interval;
  const credits = state.credits ?? {
    remaining: rule.remaining,
    refilledAt: interval ? periodStart(now, interval) : now,
  };
  if (rule.refill && periodStart(now, rule.refill.interval) > credits.refilledAt) {
    credits.remaining = Math.max(credits.remaining, rule.refill.amount);
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
  const bucket = { tokens, at: now };
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
  // Buckets of limits the key no longer has are dropped, so the state stays as small as the rules.
  const buckets = limits.ratelimits.map((rule) => ({ rule, bucket: currentBucket(state, rule, now) }));
  for (const name of Object.keys(state.buckets)) {
    if (!limits.ratelimits.some((rule) => rule.name === name)) delete state.buckets[name];
  }
  const credits = limits.credits ? currentCredits(state, limits.credits, now) : null;
  if (!limits.credits) state.credits = null;

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
  return {
    code,
    credits: credits ? { remaining: credits.remaining } : null,
    ratelimits: buckets.map(({ rule, bucket }) => bucketView(rule, bucket.tokens, now)),
    retryAfterMs,
    at: now,
  };
}

/** Sets, raises or lowers the credit balance (a decrement stops at 0, an increment at MAX_CREDITS); the balance afterwards. */
export function adjustCredits(
  state: CounterState,
  rule: CreditsRule,
  op: CreditsOp,
  amount: number,
  now: number,
): number {
  const credits = currentCredits(state, rule, now);
  credits.remaining =
    op === "set"
      ? amount
      : op === "increment"
        ? Math.min(MAX_CREDITS, credits.remaining + amount)
        : Math.max(0, credits.remaining - amount);
  return credits.remaining;
}
