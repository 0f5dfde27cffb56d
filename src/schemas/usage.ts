/** Usage control: rate limits, credits, cost, the credits operation and the usage report. */
import * as z from "zod/mini";
import { MAX_CREDITS } from "../keys/limit-arithmetic";
import { KeyId, Timestamp, described, meta } from "./common";
import type { VerifyCode } from "./verify";

const MAX_RATE_LIMITS = 10;
const DAY_MS = 86_400_000;

/** One named rate limit (a token bucket: keys/limit-arithmetic.ts). */
export const RateLimit = z
  .strictObject({
    name: z
      .string()
      .check(
        z.minLength(1, "Must not be empty"),
        z.maxLength(64, "Must be at most 64 characters"),
        z.regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, "Must be letters, digits and . _ : -"),
      )
      .apply(meta({ example: "requests" })),
    limit: z.int("Must be a whole number").check(z.gte(1, "Must be at least 1"), z.lte(1_000_000_000)),
    duration_ms: z
      .int("Must be a whole number")
      .check(z.gte(1000, "Must be at least 1000 (1 s)"), z.lte(DAY_MS, `Must be at most ${DAY_MS} (1 day)`))
      .apply(meta({ example: 1000 })),
  })
  .apply(
    meta({
      id: "RateLimit",
      description: "At most `limit` requests in a burst, refilled continuously at `limit` per `duration_ms`.",
    }),
  );

/** A key's rate limits: create, PATCH and RPC take this field as is. */
export const RateLimits = z
  .array(RateLimit)
  .check(
    z.maxLength(MAX_RATE_LIMITS, `Must hold at most ${MAX_RATE_LIMITS} rate limits`),
    z.superRefine((limits, ctx) => {
      const seen = new Set<string>();
      limits.forEach((limit, i) => {
        if (seen.has(limit.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: "Must be unique" });
        seen.add(limit.name);
      });
    }),
  )
  .apply(meta({ description: "Named rate limits, all applied to every verification (at most 10, unique names)." }));

const CreditAmount = z
  .int("Must be a whole number")
  .check(z.gte(0, "Must be at least 0"), z.lte(MAX_CREDITS, `Must be at most ${MAX_CREDITS}`));

const CreditsRefill = z.strictObject({
  amount: CreditAmount.check(z.gte(1, "Must be at least 1")),
  interval: z.enum(["day", "month"]),
});

/** A key's credits: create, PATCH and RPC take this field as is (null: no credits). */
export const Credits = z
  .strictObject({
    remaining: CreditAmount.apply(
      meta({
        description: "The balance; each verification spends its `cost`. On PATCH: the balance is set to it.",
      }),
    ),
    refill: z._default(z.nullable(CreditsRefill), null).apply(
      meta({
        description:
          "Tops the balance up to `amount` (never down) at each UTC midnight (`day`) or 1st of the month (`month`).",
      }),
    ),
    low_threshold: z._default(z.nullable(CreditAmount), null).apply(
      meta({
        description:
          "Below this balance the credits are low: a `credits_low` audit event (once, until a set, add or refill takes the balance to it or above). null (the default): 10 % of the last set or refill amount.",
      }),
    ),
  })
  .apply(meta({ id: "Credits" }));

/** Credits as a key's view shows them: `remaining` is the live balance. */
export const CreditsView = z.object({
  remaining: z.int().apply(meta({ description: "The balance now (at creation: the starting balance)." })),
  refill: z.nullable(z.object({ amount: z.int(), interval: z.enum(["day", "month"]) })),
  low_threshold: z
    .nullable(z.int())
    .apply(meta({ description: "Below this balance the credits are low; null: 10 % of the last set or refill." })),
});

const RateLimitState = z.object({
  name: z.string(),
  limit: z.int(),
  remaining: z.int().apply(meta({ description: "Whole requests left now." })),
  reset: z.int().apply(meta({ description: "When the limit is full again (epoch ms)." })),
});

/** The usage part of a live key's verdict. */
export const verdictUsageFields = {
  credits: z
    .optional(z.object({ remaining: z.int() }))
    .apply(meta({ description: "Only for a key with credits: the balance after this verification." })),
  ratelimits: z
    .optional(z.array(RateLimitState))
    .apply(meta({ description: "Only for a key with rate limits: each limit after this verification." })),
  limited_by: z.optional(z.enum(["key", "owner"])).apply(
    meta({
      description:
        "Only on RATE_LIMITED and USAGE_EXCEEDED: whose limit refused, the key's own (`key`) or its owner's per-customer limits (`owner`).",
    }),
  ),
  owner_limits: z
    .optional(
      z.object({
        credits: z.optional(z.object({ remaining: z.int() })),
        ratelimits: z.optional(z.array(RateLimitState)),
      }),
    )
    .apply(
      meta({
        description:
          "Only for a key whose owner has per-customer limits, when they were consulted: the owner's balance and rate limits after this verification.",
      }),
    ),
};

export const VerifyCost = z.optional(CreditAmount).apply(
  meta({
    description:
      "Credits this verification spends (default 1). 0 peeks: it spends nothing and takes no rate-limit token.",
  }),
);

export const CreditsRequest = z
  .strictObject({
    op: z.enum(["set", "increment", "decrement"]).apply(
      meta({
        description:
          "`set` the balance, or `increment` / `decrement` it. A decrement never takes the balance below 0: it stops at 0 (see `remaining` in the answer).",
      }),
    ),
    amount: CreditAmount,
  })
  .apply(meta({ id: "CreditsRequest" }));
export type CreditsInput = z.output<typeof CreditsRequest>;

export const CreditsResult = z
  .object({
    remaining: z.nullable(z.int()).apply(
      meta({
        description:
          "The balance after the operation; null only when the counter could not be reached just now (the operation is recorded all the same and applies at its next call: do not repeat it).",
      }),
    ),
  })
  .apply(meta({ id: "CreditsResult" }));
export type CreditsResultView = z.infer<typeof CreditsResult>;

export const UsageQuery = z
  .strictObject({
    granularity: z._default(z.enum(["hour", "day"]), "hour").apply(meta({ description: "Bucket size, in UTC." })),
    from: z.optional(Timestamp).apply(
      meta({
        description:
          "Start (inclusive, rounded down to its bucket). Default: 24 hours (hour) or 30 days (day) before `to`.",
      }),
    ),
    to: z.optional(Timestamp).apply(meta({ description: "End (exclusive). Default: now." })),
  })
  .apply(meta({ id: "UsageQuery" }));
export type UsageQueryInput = z.output<typeof UsageQuery>;

/** The verdicts counted per key: every code a verification about a found key can give. */
export const USAGE_OUTCOMES = [
  "VALID",
  "RATE_LIMITED",
  "USAGE_EXCEEDED",
  "REVOKED",
  "EXPIRED",
  "DISABLED",
  "IP_NOT_ALLOWED",
  "INSUFFICIENT_SCOPE",
  "RESOURCE_NOT_ALLOWED",
] as const satisfies readonly VerifyCode[];

const UsageCount = z.int().check(z.gte(0));
export const UsageBucket = z
  .object({
    start: Timestamp,
    total: UsageCount,
    ...(Object.fromEntries(USAGE_OUTCOMES.map((code) => [code.toLowerCase(), UsageCount])) as Record<
      Lowercase<(typeof USAGE_OUTCOMES)[number]>,
      typeof UsageCount
    >),
  })
  .apply(meta({ id: "UsageBucket" }));

export const UsageReport = z
  .object({
    key_id: KeyId,
    granularity: z.enum(["hour", "day"]),
    buckets: z
      .array(UsageBucket)
      .apply(meta({ description: "Every bucket of the range, oldest first (empty ones as 0)." })),
    pending_from: described(
      z.nullable(Timestamp),
      "Verifications from this instant on may not be counted yet, so recent buckets may read low (or 0). Each isolate keeps its counts in memory and writes them in one batch 20 s after the first of them, so a count is stored within about 25 s: this is 30 s before the report (a failed write's counts wait longer). null when the range ends before it.",
    ),
  })
  .apply(meta({ id: "UsageReport" }));
export type UsageReportView = z.infer<typeof UsageReport>;
