/** Verification: its options and request, the verdict codes and the result. */
import * as z from "zod/mini";
import { parseAddress } from "../keys/ip";
import { KeyId, ResourceId, Scope, Timestamp, described, meta } from "./common";
import { VerifyCost, verdictUsageFields } from "./usage";

export const VerifyOptions = z.strictObject({
  scope: described(z.optional(Scope), "A scope the key must hold."),
  resource: described(z.optional(ResourceId), "A resource id the key must be allowed."),
  ip: described(
    z.optional(
      z.string().check(
        z.maxLength(64),
        z.refine((ip) => parseAddress(ip) !== null, "Must be an IPv4 or IPv6 address"),
      ),
    ),
    "The client's address. A key with an allow-list fails with IP_NOT_ALLOWED without it.",
  ),
  cost: VerifyCost,
});
export type VerifyChecks = z.output<typeof VerifyOptions>;

export const VerifyRequest = z
  .extend(VerifyOptions, { key: described(z.string(), "The API key to check.") })
  .apply(meta({ id: "VerifyRequest" }));

const VERIFY_CODES = [
  "VALID",
  "MALFORMED",
  "NOT_FOUND",
  "REVOKED",
  "EXPIRED",
  "INSUFFICIENT_SCOPE",
  "RESOURCE_NOT_ALLOWED",
  "DISABLED",
  "IP_NOT_ALLOWED",
  "RATE_LIMITED",
  "USAGE_EXCEEDED",
] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];
/**
 * Codes for a key that is dead, unknown or unusable (disabled, or used from an address outside its
 * allow-list): the answer says nothing else about it, so a stolen key used from elsewhere learns nothing.
 */
const DEAD_KEY_CODES = [
  "MALFORMED",
  "NOT_FOUND",
  "REVOKED",
  "EXPIRED",
  "DISABLED",
  "IP_NOT_ALLOWED",
] as const satisfies readonly VerifyCode[];
export type DeadKeyCode = (typeof DEAD_KEY_CODES)[number];
/** Codes for a live key (valid, or refused for this request only): the answer carries its details. */
const LIVE_KEY_CODES = [
  "VALID",
  "INSUFFICIENT_SCOPE",
  "RESOURCE_NOT_ALLOWED",
  "RATE_LIMITED",
  "USAGE_EXCEEDED",
] as const satisfies readonly VerifyCode[];
export type LiveKeyCode = (typeof LIVE_KEY_CODES)[number];

const VerifyRefusal = z
  .object({
    valid: z.literal(false),
    code: z.enum(DEAD_KEY_CODES),
    key_id: described(z.nullable(KeyId), "The key's id when it exists (REVOKED, EXPIRED, DISABLED, IP_NOT_ALLOWED)."),
  })
  .apply(meta({ id: "VerifyRefusal", description: "A dead or unknown key: nothing about it but its id." }));

const VerifyVerdict = z
  .object({
    valid: z.boolean(),
    code: z.enum(LIVE_KEY_CODES),
    key_id: KeyId,
    owner: z.object({ type: z.enum(["user", "workspace"]), id: z.string() }),
    scopes: z.array(z.string()),
    resources: z.nullable(z.array(z.string())),
    expires_at: z.nullable(Timestamp),
    enabled: described(z.boolean(), "Always true here: a disabled key is refused with DISABLED."),
    ...verdictUsageFields,
  })
  .apply(
    meta({
      id: "VerifyVerdict",
      description: "A live key: VALID, or refused for this request only, with the details the caller needs.",
    }),
  );
/** The verdict on a live key (its details included). */
export type VerifyVerdictView = z.infer<typeof VerifyVerdict>;

export const VerifyResult = z.union([VerifyRefusal, VerifyVerdict]).apply(meta({ id: "VerifyResult" }));
export type VerifyResultView = z.infer<typeof VerifyResult>;
