/** The RFC 9457 problem document (with the table of codes) and the readiness answer. */
import * as z from "zod/mini";
import { PROBLEMS, PROBLEM_CODES, problemType } from "../problems";
import { described, meta } from "./common";
import { verdictUsageFields } from "./usage";

const problemTable = PROBLEM_CODES.map(
  (code) => `| \`${code}\` | ${PROBLEMS[code].status} | ${PROBLEMS[code].description} |`,
).join("\n");

export const Problem = z
  .object({
    type: z.string().apply(
      meta({
        format: "uri",
        description: "A stable URI for the kind of problem: `https://latchkey.dev/problems/<code with dashes>`.",
        example: problemType("key_revoked"),
      }),
    ),
    title: described(z.string(), "A short summary of the kind, for people."),
    status: described(z.number().check(z.int()), "The HTTP status, as on the response."),
    detail: described(z.string(), "What went wrong with this request, for people."),
    code: described(
      z.enum(PROBLEM_CODES),
      `The kind of problem, for programs:\n\n| code | status | meaning |\n| --- | --- | --- |\n${problemTable}`,
    ),
    errors: described(
      z.optional(z.record(z.string(), z.array(z.string()))),
      "Each invalid field, by path, with its messages.",
    ),
    exceeded: described(
      z.optional(z.string()),
      "403 only: what the request asked beyond the caller's powers (`scopes`, `resources`, ...).",
    ),
    key_id: described(z.optional(z.uuid()), "`idempotent_replay` only: the key the first request created."),
    key_ids: described(
      z.optional(z.array(z.uuid())),
      "`conflict` of a key's lineage only: the keys in the way (stronger keys of its lineage, or a rotated-away key's replacement).",
    ),
    limit: described(
      z.optional(z.enum(["MAX_KEYS_PER_OWNER", "KEY_CREATION_LIMITER"])),
      "`quota_exceeded` and `creation_rate_limited`: the limit that refused the request.",
    ),
    checks: described(
      z.optional(z.record(z.string(), z.enum(["ok", "behind", "unreachable"]))),
      "`not_ready` only: each dependency checked: `ok`, `behind` (D1's migrations are behind this build; which ones, the log says) or `unreachable`.",
    ),
    // `key_rate_limited` and `key_usage_exceeded`: the key's limits as a verdict would show them.
    ...verdictUsageFields,
  })
  .apply(meta({ id: "Problem", description: "An RFC 9457 problem document." }));

export const Readiness = z
  .object({
    status: z.literal("ready"),
    checks: described(z.record(z.string(), z.literal("ok")), "Each dependency checked."),
  })
  .apply(meta({ id: "Readiness" }));
