/** Per-customer limits: an owner's rate limits and credits, its credits operation, usage and audit log. */
import * as z from "zod/mini";
import { Timestamp, WELL_FORMED_ID, described, meta } from "./common";
import { Credits, CreditsView, RateLimits, UsageBucket } from "./usage";

export const OWNER_TYPES = ["user", "workspace"] as const;

/** An owner named in a path: `/v1/owners/{owner_type}/{owner_id}/...`. */
export const OwnerParams = z.strictObject({
  owner_type: z.enum(OWNER_TYPES).apply(meta({ description: "`user` or `workspace`." })),
  owner_id: z
    .string()
    .check(z.minLength(1), z.maxLength(255), z.regex(WELL_FORMED_ID, "Must have no control characters"))
    .apply(meta({ description: "The user's subject or the workspace's id (URL-encoded)." })),
});
export type OwnerParamsInput = z.output<typeof OwnerParams>;

export const OwnerLimitsRequest = z
  .strictObject({
    ratelimits: described(
      z.optional(z.nullable(RateLimits)),
      "Replaces the owner's rate limits; null or [] removes them; left out: unchanged.",
    ),
    credits: described(
      z.optional(z.nullable(Credits)),
      "Replaces the owner's credits rule and sets the balance to `remaining`; null removes credits; left out: unchanged.",
    ),
  })
  .apply(meta({ id: "OwnerLimitsRequest" }));
export type OwnerLimitsInput = z.output<typeof OwnerLimitsRequest>;

export const OwnerLimits = z
  .object({
    owner_type: z.enum(OWNER_TYPES),
    owner_id: z.string(),
    ratelimits: described(RateLimits, "The owner's rate limits, shared by all its keys (empty: none)."),
    credits: described(
      z.nullable(CreditsView),
      "The owner's credits, shared by all its keys, with the live balance (null: none).",
    ),
    updated_at: described(z.nullable(Timestamp), "The last change of the owner's limits (null: never set)."),
  })
  .apply(meta({ id: "OwnerLimits" }));
export type OwnerLimitsView = z.infer<typeof OwnerLimits>;

export const OwnerUsageReport = z
  .object({
    owner_type: z.enum(OWNER_TYPES),
    owner_id: z.string(),
    granularity: z.enum(["hour", "day"]),
    buckets: z
      .array(UsageBucket)
      .apply(meta({ description: "Every bucket of the range, oldest first: the sum over all the owner's keys." })),
    pending_from: described(
      z.nullable(Timestamp),
      "Verifications from this instant on may not be counted yet (as in a key's usage report).",
    ),
  })
  .apply(meta({ id: "OwnerUsageReport" }));
export type OwnerUsageReportView = z.infer<typeof OwnerUsageReport>;

export const OWNER_AUDIT_ACTIONS = ["limits_updated", "credits_updated", "credits_low", "credits_exhausted"] as const;

export const OwnerEvent = z
  .object({
    id: z.string(),
    owner_type: z.enum(OWNER_TYPES),
    owner_id: z.string(),
    action: z.enum(OWNER_AUDIT_ACTIONS),
    actor: described(
      z.string(),
      "`user:<sub>`, `service`, or the root key that made the change; `latchkey` for a credit warning (`credits_low`, `credits_exhausted`).",
    ),
    at: Timestamp,
    changes: z.record(z.string(), z.object({ old: z.unknown(), new: z.unknown() })),
    ip: z.nullable(z.string()),
    user_agent: z.nullable(z.string()),
  })
  .apply(meta({ id: "OwnerEvent" }));
export type OwnerEventView = z.infer<typeof OwnerEvent>;

export const OwnerEventList = z.object({ data: z.array(OwnerEvent) }).apply(meta({ id: "OwnerEventList" }));
export type OwnerEventListView = z.infer<typeof OwnerEventList>;
