/**
 * RFC 9457 problem responses, and the one place where errors become HTTP statuses. Every problem
 * carries a stable `code` and its `type` URI (src/problems.ts), a `title` and a `detail`. Nothing from
 * an unexpected error reaches the client: a 500 says only that something failed, and the log gets
 * the error (which never holds a key: keys are not put in errors).
 */
import { AuthenticationError, IdentityProviderUnavailableError } from "../auth/errors";
import {
  ConflictError,
  CredentialNotLiveError,
  ForbiddenError,
  IdempotencyKeyReusedError,
  IdempotentReplayError,
  LimitExceededError,
  LineageConflictError,
  NotFoundError,
  StorageMisconfiguredError,
  StorageUnavailableError,
  UsageLimitedError,
  ValidationError,
} from "../service/errors";
import { type UsageVerdict, usageFields } from "../keys/usage";
import { describeError, log } from "../log";
import { PROBLEMS, type ProblemCode, problemType } from "../problems";

const PROBLEM_TYPE = "application/problem+json";
const UNAVAILABLE_RETRY_AFTER_SECONDS = "5";
export const WWW_AUTHENTICATE = 'Bearer realm="latchkey", Api-Key realm="latchkey"';

export interface ProblemInit {
  /** For people; every problem has one (the kind's description when not given). */
  readonly detail?: string;
  readonly errors?: Record<string, string[]>;
  readonly headers?: Record<string, string>;
  readonly extra?: Record<string, unknown>;
}

/** An HTTP failure raised by the HTTP layer itself (body, content type, routing). */
export class HttpError extends Error {
  override readonly name = "HttpError";
  constructor(
    readonly code: ProblemCode,
    readonly init: ProblemInit = {},
  ) {
    super(init.detail ?? PROBLEMS[code].title);
  }
}

export function problem(code: ProblemCode, init: ProblemInit = {}): Response {
  const kind = PROBLEMS[code];
  const body = {
    type: problemType(code),
    title: kind.title,
    status: kind.status,
    detail: init.detail ?? kind.description,
    code,
    ...init.extra,
    ...(init.errors ? { errors: init.errors } : {}),
  };
  return new Response(JSON.stringify(body), {
    status: kind.status,
    headers: { "Content-Type": PROBLEM_TYPE, ...init.headers },
  });
}

const unavailable = (code: ProblemCode, detail: string): Response =>
  problem(code, { detail, headers: { "Retry-After": UNAVAILABLE_RETRY_AFTER_SECONDS } });

const VALIDATION: Record<ValidationError["source"], { code: ProblemCode; detail: string }> = {
  body: { code: "validation_failed", detail: "The request body is invalid" },
  query: { code: "invalid_query", detail: "The query string is invalid" },
  header: { code: "invalid_header", detail: "A request header is invalid" },
};

const FORBIDDEN: Record<ForbiddenError["kind"], ProblemCode> = {
  scope: "insufficient_scope",
  role: "role_required",
  powers: "forbidden",
};

/**
 * The 429 headers of a key over its own limits: Retry-After when waiting helps (the rate limit's next
 * token, or the next refill for credits), and RateLimit-Limit / -Remaining / -Reset (seconds) of the
 * tightest rate limit (the fewest requests left) when the key has rate limits.
 */
export function usageLimitHeaders(usage: UsageVerdict): Record<string, string> {
  const headers: Record<string, string> = {};
  if (usage.retryAfterMs !== null) headers["Retry-After"] = String(Math.max(1, Math.ceil(usage.retryAfterMs / 1000)));
  const tightest = usage.ratelimits.reduce<UsageVerdict["ratelimits"][number] | null>(
    (min, limit) => (min === null || limit.remaining < min.remaining ? limit : min),
    null,
  );
  if (tightest) {
    headers["RateLimit-Limit"] = String(tightest.limit);
    headers["RateLimit-Remaining"] = String(tightest.remaining);
    headers["RateLimit-Reset"] = String(Math.max(0, Math.ceil((tightest.reset - usage.at) / 1000)));
  }
  return headers;
}

export function errorToProblem(error: unknown): Response {
  if (error instanceof HttpError) return problem(error.code, error.init);
  if (error instanceof AuthenticationError) {
    return problem(error.code, { detail: error.message, headers: { "WWW-Authenticate": WWW_AUTHENTICATE } });
  }
  if (error instanceof CredentialNotLiveError) {
    return problem("key_not_live", { detail: error.message, headers: { "WWW-Authenticate": WWW_AUTHENTICATE } });
  }
  if (error instanceof NotFoundError) return problem("not_found", { detail: error.message });
  if (error instanceof ConflictError) return problem("conflict", { detail: error.message });
  if (error instanceof LineageConflictError) {
    return problem("conflict", { detail: error.message, extra: { key_ids: [...error.keyIds] } });
  }
  if (error instanceof UsageLimitedError) {
    return problem(error.usage.code === "USAGE_EXCEEDED" ? "key_usage_exceeded" : "key_rate_limited", {
      detail: error.message,
      extra: usageFields(error.usage),
      headers: usageLimitHeaders(error.usage),
    });
  }
  if (error instanceof ValidationError) {
    const { code, detail } = VALIDATION[error.source];
    return problem(code, { detail, errors: error.errors });
  }
  if (error instanceof ForbiddenError) {
    return problem(FORBIDDEN[error.kind], {
      detail: error.message,
      extra: { exceeded: error.exceeded },
      errors: { [error.exceeded]: [error.message] },
    });
  }
  if (error instanceof LimitExceededError) {
    const rate = error.retryAfterSeconds !== null;
    return problem(rate ? "creation_rate_limited" : "quota_exceeded", {
      detail: error.message,
      extra: { limit: error.limit },
      ...(rate ? { headers: { "Retry-After": String(error.retryAfterSeconds) } } : {}),
    });
  }
  if (error instanceof IdempotentReplayError) {
    return problem("idempotent_replay", {
      detail: error.message,
      extra: { key_id: error.keyId },
      headers: { Location: `/v1/keys/${error.keyId}` },
    });
  }
  if (error instanceof IdempotencyKeyReusedError) {
    return problem("idempotency_key_reused", {
      detail: error.message,
      errors: { "Idempotency-Key": [error.message] },
    });
  }
  if (error instanceof IdentityProviderUnavailableError) {
    log("error", "identity_provider_unavailable", { error: error.message, cause: describeError(error.cause) });
    return unavailable("identity_provider_unavailable", "Tokens cannot be verified right now; try again shortly");
  }
  if (error instanceof StorageMisconfiguredError) {
    log("error", "configuration_error", { error: error.message, cause: describeError(error.cause) });
    return problem("configuration_error", { detail: "The service is misconfigured; the operator has been told" });
  }
  if (error instanceof StorageUnavailableError) {
    log("error", "storage_unavailable", { error: error.message, cause: describeError(error.cause) });
    return unavailable("storage_unavailable", "Storage is unavailable; try again shortly");
  }
  log("error", "unexpected_error", { error: describeError(error, true) });
  return problem("internal_error", { detail: "Something went wrong on our side" });
}
