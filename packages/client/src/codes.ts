/**
 * One vocabulary for refusals. A verdict's `code` (VerifyCode) is UPPER_CASE, as POST /v1/verify and the
 * KeyVerifier binding answer it; a problem's `code` is snake_case, as every latchkey route answers it.
 * This table maps each refusing verdict to the problem latchkey's own routes answer for it (a revoked
 * key on GET /v1/whoami is `key_revoked`), and the route guard answers with the same problem, so a
 * client of your API and a client of latchkey branch on the same codes. The verdict itself is kept
 * in the guard's problem as `verdict`.
 */
import type { VerifyCode } from "./types.js";

/** A latchkey problem: its `code`, its HTTP status and its title (the `type` URI is derived from the code). */
export interface ProblemKind {
  readonly code: string;
  readonly status: number;
  readonly title: string;
}

/** The base of every problem `type` URI: `key_revoked` -> `https://latchkey.dev/problems/key-revoked`. */
export const PROBLEM_TYPE_BASE = "https://latchkey.dev/problems/";

/** The `type` URI of a problem code, as latchkey's own problems carry it. */
export function problemType(code: string): string {
  return PROBLEM_TYPE_BASE + code.replaceAll("_", "-");
}

/** The problem for each refusing verdict: 401 when the key is no good, 403 when it is not enough, 429 when it is spent. */
export const VERDICT_PROBLEMS = {
  MALFORMED: { code: "key_malformed", status: 401, title: "Malformed API key" },
  NOT_FOUND: { code: "key_not_found", status: 401, title: "Unknown API key" },
  REVOKED: { code: "key_revoked", status: 401, title: "API key revoked" },
  EXPIRED: { code: "key_expired", status: 401, title: "API key expired" },
  DISABLED: { code: "key_disabled", status: 401, title: "API key disabled" },
  IP_NOT_ALLOWED: { code: "key_ip_not_allowed", status: 401, title: "Address not allowed" },
  INSUFFICIENT_SCOPE: { code: "insufficient_scope", status: 403, title: "Insufficient scope" },
  // latchkey's own routes name no resource: a resource beyond a key's is `forbidden`, with `exceeded: "resources"`.
  RESOURCE_NOT_ALLOWED: { code: "forbidden", status: 403, title: "Forbidden" },
  RATE_LIMITED: { code: "key_rate_limited", status: 429, title: "API key rate limited" },
  USAGE_EXCEEDED: { code: "key_usage_exceeded", status: 429, title: "API key out of credits" },
} as const satisfies Record<Exclude<VerifyCode, "VALID">, ProblemKind>;

/** The problem for a request that sent no key at all. */
export const NO_KEY_PROBLEM = {
  code: "authentication_required",
  status: 401,
  title: "Authentication required",
} as const;
