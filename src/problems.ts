/**
 * Every kind of problem latchkey answers with, by its stable machine-readable `code`: the one table
 * the HTTP layer (http/problem.ts), the OpenAPI document and the error table of docs/api.md follow. A
 * client branches on `code` (or the equivalent `type` URI), never on `title` or `detail`, which are
 * for people and may be reworded. Codes are only ever added; a code never changes meaning.
 *
 * Lives at the top of src/ (imports nothing) so every layer can name a code: auth errors carry theirs.
 */

export const PROBLEM_TYPE_BASE = "https://latchkey.dev/problems/";

export interface ProblemKind {
  readonly status: number;
  readonly title: string;
  /** When it happens and what the client should do: docs/api.md's table and the document say this. */
  readonly description: string;
}

export const PROBLEMS = {
  authentication_required: {
    status: 401,
    title: "Authentication required",
    description: "No usable credentials: the Authorization header is missing, empty or uses another scheme.",
  },
  key_malformed: {
    status: 401,
    title: "Malformed API key",
    description: "The API key has the wrong shape or checksum (a typo or truncation); no storage was consulted.",
  },
  key_not_found: { status: 401, title: "Unknown API key", description: "The API key is well formed but unknown." },
  key_revoked: { status: 401, title: "API key revoked", description: "The API key has been revoked." },
  key_expired: { status: 401, title: "API key expired", description: "The API key is past its expires_at." },
  key_disabled: {
    status: 401,
    title: "API key disabled",
    description: "The API key is disabled (enabled: false): it works again once enabled by PATCH /v1/keys/{id}.",
  },
  key_ip_not_allowed: {
    status: 401,
    title: "Address not allowed",
    description: "The API key has an allowed_ips list and the request comes from an address outside it.",
  },
  key_not_live: {
    status: 401,
    title: "API key no longer live",
    description:
      "The API key making a management request authenticated from a cache, but D1 says it is revoked, expired or disabled: no key was created or changed.",
  },
  token_expired: { status: 401, title: "Token expired", description: "The JWT is past its exp: get a new one." },
  token_invalid: {
    status: 401,
    title: "Invalid token",
    description:
      "The JWT failed verification (signature, algorithm, issuer, audience, subject, iat or lifetime, or an unusable workspace claim).",
  },
  token_required: {
    status: 401,
    title: "Token required",
    description: "This route is for people: send a JWT. API keys are refused before any lookup.",
  },
  verify_token_required: {
    status: 401,
    title: "Verify credential required",
    description:
      "POST /v1/verify needs `Authorization: Bearer <VERIFY_TOKEN>` on this deployment (missing or wrong); when VERIFY_TOKEN is set but unusable, every request gets this.",
  },
  signature_invalid: {
    status: 401,
    title: "Invalid signature",
    description:
      "POST /v1/leaks/github: the report is unsigned, its signature is malformed or does not match the body, or it names a key GitHub does not publish. Nothing was changed.",
  },
  insufficient_scope: {
    status: 403,
    title: "Insufficient scope",
    description: "The calling key lacks the scope this operation needs (`exceeded` names it).",
  },
  forbidden: {
    status: 403,
    title: "Forbidden",
    description:
      "The request exceeds the caller's powers, e.g. a key asking for a stronger key (`exceeded` names what).",
  },
  quota_exceeded: {
    status: 403,
    title: "Key quota exceeded",
    description:
      "The owner already holds MAX_KEYS_PER_OWNER live keys (`limit` names it): revoke some first; waiting does not help.",
  },
  role_required: {
    status: 403,
    title: "Workspace admin role required",
    description:
      "Only a workspace admin (a role in WORKSPACE_ADMIN_ROLES, from the JWT's roles claim) may create, change or revoke workspace keys.",
  },
  operator_required: {
    status: 403,
    title: "Operator role required",
    description:
      "Only an operator (a role in OPERATOR_ROLES, from the JWT's roles claim) may create, list, rotate or revoke root keys.",
  },
  origin_not_allowed: {
    status: 403,
    title: "Origin not allowed",
    description:
      "A CORS preflight from an origin not in ALLOWED_ORIGINS (VERIFY_ALLOWED_ORIGINS for /v1/verify): the browser will not send the request.",
  },
  not_found: {
    status: 404,
    title: "Not found",
    description: "No such route, or no such key visible to the caller (the two are indistinguishable).",
  },
  method_not_allowed: {
    status: 405,
    title: "Method not allowed",
    description: "The path exists, but not with this method (see the Allow header).",
  },
  idempotent_replay: {
    status: 409,
    title: "Already created",
    description:
      "A request with this Idempotency-Key and body already created a key (`key_id`, Location). The plaintext key is never stored, so it cannot be shown again: use the key you received, or revoke this one and retry with a new Idempotency-Key.",
  },
  conflict: {
    status: 409,
    title: "Conflict",
    description:
      "The key's state forbids the change: a revoked key cannot be changed or rotated, nor an expired key rotated; or another request changed the key meanwhile (retry).",
  },
  invalid_query: {
    status: 400,
    title: "Invalid query string",
    description: "A query parameter is invalid (`errors` names each one).",
  },
  malformed_body: {
    status: 400,
    title: "Malformed body",
    description: "The body is not valid UTF-8 JSON.",
  },
  invalid_header: {
    status: 400,
    title: "Invalid header",
    description: "A request header is invalid (`errors` names it), e.g. an Idempotency-Key of the wrong shape.",
  },
  body_too_large: {
    status: 413,
    title: "Body too large",
    description:
      "The body is over the route's limit: 16 KB (256 KB for POST /v1/keys/import, 128 KB for POST /v1/leaks, 1 MB for POST /v1/leaks/github).",
  },
  unsupported_media_type: {
    status: 415,
    title: "Unsupported media type",
    description: "The body is not sent as application/json.",
  },
  validation_failed: {
    status: 422,
    title: "Validation failed",
    description: "The body is well-formed JSON but a field is invalid (`errors` maps each field to its messages).",
  },
  idempotency_key_reused: {
    status: 422,
    title: "Idempotency-Key reused",
    description: "This Idempotency-Key was already used with a different body: use a new key for a new request.",
  },
  rate_limited: {
    status: 429,
    title: "Too many requests",
    description: "Too many failed authentications from this client: wait Retry-After seconds.",
  },
  creation_rate_limited: {
    status: 429,
    title: "Too many keys created",
    description:
      "This owner created keys faster than KEY_CREATION_LIMITER allows (`limit` names it): wait Retry-After seconds.",
  },
  verify_rate_limited: {
    status: 429,
    title: "Too many unknown keys",
    description:
      "An open POST /v1/verify (no VERIFY_TOKEN) answered NOT_FOUND too often to this client: wait Retry-After seconds (known keys still verify).",
  },
  key_rate_limited: {
    status: 429,
    title: "API key rate limited",
    description:
      'The API key is over one of its own rate limits (`ratelimits`), or its owner\'s (`limited_by: "owner"`, `owner_limits`): wait Retry-After seconds. RateLimit-Limit / -Remaining / -Reset describe the tightest limit of whoever refused.',
  },
  key_usage_exceeded: {
    status: 429,
    title: "API key out of credits",
    description:
      "The API key's credits (`credits`), or its owner's shared credits (`limited_by: \"owner\"`), do not cover this request: Retry-After is the next refill when one would cover it, absent when waiting will not help (top the credits up).",
  },
  configuration_error: {
    status: 500,
    title: "Configuration error",
    description:
      "The deployment is misconfigured (e.g. D1 migrations not applied); retrying will not help. The log names the cause.",
  },
  internal_error: {
    status: 500,
    title: "Internal error",
    description: "An unexpected error; no internals are disclosed, the log has them.",
  },
  storage_unavailable: {
    status: 503,
    title: "Storage unavailable",
    description: "D1 failed or timed out: retry after Retry-After seconds. Nothing was changed.",
  },
  identity_provider_unavailable: {
    status: 503,
    title: "Identity provider unavailable",
    description: "The identity provider's key set could not be fetched, so the JWT was not judged: retry later.",
  },
  signing_keys_unavailable: {
    status: 503,
    title: "Signing keys unavailable",
    description:
      "POST /v1/leaks/github: GitHub's secret scanning keys could not be fetched, so the report was not judged and nothing was changed: GitHub retries.",
  },
  not_ready: {
    status: 503,
    title: "Not ready",
    description: "GET /readyz: a dependency is unreachable or D1's schema is behind this build (`checks` says which).",
  },
} as const satisfies Record<string, ProblemKind>;

export type ProblemCode = keyof typeof PROBLEMS;

export const PROBLEM_CODES = Object.keys(PROBLEMS) as ProblemCode[];

/** The `type` URI of a code: `key_revoked` -> `https://latchkey.dev/problems/key-revoked`. */
export function problemType(code: ProblemCode): string {
  return PROBLEM_TYPE_BASE + code.replaceAll("_", "-");
}

/**
 * What is wrong with one field, as a kind a program can branch on (the message is for people and may
 * be reworded): `required` (missing), `type` (wrong type, or null), `format` (pattern, date-time, UUID),
 * `too_small` / `too_big` (length, count or value), `enum` (not one of the allowed values),
 * `unknown_key` (a field the shape does not have), `reserved` (a "__proto__" key), `forbidden` (beyond
 * the caller's powers), `reused` (an Idempotency-Key already used), `invalid` (any other rule).
 */
export const ISSUE_KINDS = [
  "required",
  "type",
  "format",
  "too_small",
  "too_big",
  "enum",
  "unknown_key",
  "reserved",
  "forbidden",
  "reused",
  "invalid",
] as const;

export type IssueKind = (typeof ISSUE_KINDS)[number];

/** One field's issue: `field` is its path ("name", "scopes.0"; "body" for the whole body). */
export interface FieldIssue {
  readonly field: string;
  readonly kind: IssueKind;
  readonly message: string;
}

/** Issues by field, in order, as problems' `errors` show them: `{ "name": ["Required"] }`. */
export function issuesByField(issues: readonly FieldIssue[]): Record<string, string[]> {
  // No prototype: a field named "__proto__" or "constructor" must not resolve to Object.prototype's.
  const out = Object.create(null) as Record<string, string[]>;
  for (const issue of issues) (out[issue.field] ??= []).push(issue.message);
  return out;
}
