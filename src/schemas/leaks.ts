/** Leaked-key reports: GitHub's secret scanning payload and feedback, and latchkey's own intake. */
import * as z from "zod/mini";
import { KeyId, described, meta } from "./common";

/** The most tokens one report may name (the body cap bounds it too). */
export const MAX_LEAK_REPORT_ITEMS = 5000;
/** The most keys one POST /v1/leaks may name. */
export const MAX_LEAK_KEYS = 1000;

const Token = z.string().check(z.minLength(1), z.maxLength(1024));
const Where = z.string().check(z.maxLength(2048));

/** One match GitHub found (fields GitHub may add later are ignored). */
const GithubLeak = z.looseObject({
  token: described(Token, "The string that matched the registered pattern."),
  type: described(z.string().check(z.maxLength(256)), "The token type's name, as registered with GitHub."),
  url: described(z.optional(Where), "Where it was found (a public URL)."),
  source: described(
    z.optional(z.string().check(z.maxLength(256))),
    "What kind of place: content, commit, issue_comment, npm, ...",
  ),
});

export const GithubLeakReport = z
  .array(GithubLeak)
  .check(z.maxLength(MAX_LEAK_REPORT_ITEMS))
  .apply(meta({ id: "GithubLeakReport", description: "GitHub's secret scanning report: one entry per match." }));
export type GithubLeakReportInput = z.output<typeof GithubLeakReport>;

const Label = z.enum(["true_positive", "false_positive"]);
const TokenHash = described(z.string().check(z.regex(/^[0-9a-f]{64}$/)), "Hex SHA-256 of the reported token.");

export const GithubLeakFeedback = z
  .array(z.object({ token_hash: TokenHash, token_type: z.string(), label: Label }))
  .apply(
    meta({
      id: "GithubLeakFeedback",
      description:
        "One entry per reported token, in order: `true_positive` for a key of this deployment (live or not), `false_positive` for anything else.",
    }),
  );

export const LeakReportRequest = z
  .strictObject({
    keys: described(
      z.array(Token).check(z.minLength(1), z.maxLength(MAX_LEAK_KEYS)),
      `The leaked keys themselves (1 to ${MAX_LEAK_KEYS}).`,
    ),
    source: described(
      z.optional(z.string().check(z.minLength(1), z.maxLength(256))),
      "Who or what found them (recorded in each key's `leaked` event).",
    ),
    url: described(z.optional(Where), "Where they were found (recorded in each key's `leaked` event)."),
  })
  .apply(meta({ id: "LeakReportRequest" }));
export type LeakReportInput = z.output<typeof LeakReportRequest>;

export const LeakReportResult = z
  .object({
    data: z.array(
      z.object({
        token_hash: TokenHash,
        label: described(Label, "`true_positive`: a key of this deployment (that the caller may act on)."),
        key_id: described(z.nullable(KeyId), "The key's id, for a true positive."),
        action: described(
          z.nullable(z.enum(["revoked", "disabled"])),
          "What this report did to the key; null when nothing (unknown, or already revoked or disabled).",
        ),
      }),
    ),
  })
  .apply(meta({ id: "LeakReportResult" }));
export type LeakReportResultView = z.output<typeof LeakReportResult>;
