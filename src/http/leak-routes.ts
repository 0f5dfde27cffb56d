/**
 * The leaked-key intake (docs/leaks.md): GitHub's secret scanning partner endpoint, whose body must
 * carry GitHub's signature, and POST /v1/leaks for operators and other scanners. Both call the same
 * service (service/leaks.ts).
 */
import * as z from "zod/mini";
import { verifyGithubSignature } from "../auth/github-signature";
import {
  GithubLeakFeedback,
  GithubLeakReport,
  LeakReportRequest,
  LeakReportResult,
  MAX_LEAK_KEYS,
  described,
} from "../schemas";
import { type Route, defineRoute, json } from "./route";

/** About 3,000 matches with their URLs. */
export const GITHUB_REPORT_MAX_BYTES = 1024 * 1024;
/** A thousand keys with a URL. */
const LEAK_REPORT_MAX_BYTES = 128 * 1024;

const GithubSignatureHeaders = z.object({
  "Github-Public-Key-Identifier": described(
    z.optional(z.string()),
    "The key (of those GitHub publishes) that signed the body.",
  ),
  "Github-Public-Key-Signature": described(
    z.optional(z.string()),
    "Base64 DER ECDSA P-256 / SHA-256 signature over the exact body.",
  ),
});

export const leakRoutes: readonly Route[] = [
  defineRoute({
    method: "post",
    path: "/v1/leaks/github",
    operationId: "reportGithubLeaks",
    summary: "GitHub secret scanning partner endpoint: leaked keys are revoked at once",
    description:
      "Called by GitHub, never by people: the body must be signed by a key GitHub publishes at GITHUB_SECRET_SCANNING_KEYS_URL (401 `signature_invalid` otherwise, changing nothing). Each token that is a key of this deployment is revoked (or disabled: LEAK_ACTION) with a `leaked` audit event; the answer labels each token.",
    tag: "leaks",
    auth: "none",
    body: GithubLeakReport,
    bodyOptions: {
      maxBytes: GITHUB_REPORT_MAX_BYTES,
      signed: (bytes, request, app) =>
        verifyGithubSignature(
          app.config.leaks.githubKeysUrl,
          request.headers.get("Github-Public-Key-Identifier"),
          request.headers.get("Github-Public-Key-Signature"),
          bytes,
        ),
    },
    requestHeaders: GithubSignatureHeaders,
    success: { status: 200, description: "One label per reported token, in order.", schema: GithubLeakFeedback },
    problems: [400, 401, 413, 415, 422],
    problemDescriptions: {
      401: "`signature_invalid`: unsigned, badly signed, or signed with a key GitHub does not publish. Nothing was changed.",
      413: "The body is over 1 MB.",
      503: "`signing_keys_unavailable`: GitHub's keys could not be fetched (GitHub retries), or storage is unavailable. Nothing was changed.",
    },
    handle: async ({ app }, { body }) => {
      const items = body.map((leak) => ({
        token: leak.token,
        type: leak.type,
        source: leak.source ?? null,
        url: leak.url ?? null,
      }));
      const outcomes = await app.leaks.report({ kind: "github" }, items);
      return json(outcomes.map(({ token_hash, token_type, label }) => ({ token_hash, token_type, label })));
    },
  }),
  defineRoute({
    method: "post",
    path: "/v1/leaks",
    operationId: "reportLeaks",
    summary: "Report leaked keys: each key of this deployment is revoked at once",
    description: `For operators (OPERATOR_ROLES) and trusted scanners: up to ${MAX_LEAK_KEYS} keys, each revoked (or disabled: LEAK_ACTION) with a \`leaked\` audit event recording \`source\` and \`url\`, exactly as a GitHub report does. Anything that is not a key of this deployment is a \`false_positive\`; a key already revoked is a \`true_positive\` left alone. Anyone else: 403.`,
    tag: "leaks",
    auth: "required",
    body: LeakReportRequest,
    bodyOptions: { maxBytes: LEAK_REPORT_MAX_BYTES },
    success: { status: 200, description: "One result per key, in order.", schema: LeakReportResult },
    problems: [400, 403, 413, 415, 422],
    problemDescriptions: { 413: "The body is over 128 KB." },
    handle: async ({ app, actor }, { body }) => json(await app.leaks.reportKeys({ kind: "caller", actor }, body)),
  }),
];
