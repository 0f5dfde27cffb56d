/**
 * The one place where an error gets its meaning: any error the service, the store, authentication
 * or the HTTP layer throws becomes plain data — a problem code, an RPC code, a status, words for
 * people, field issues, extension members and headers. HTTP problems (http/problem.ts), the dialects
 * (http/failure.ts) and the RPC entrypoint (rpc.ts) only render it.
 *
 * Nothing from an unexpected error is classified into the answer: it becomes `internal_error` with a
 * fixed detail, and its message and stack go only to the log (which never holds a key: keys are not
 * put in errors).
 *
 * Sits above src/auth and below src/http and src/rpc.ts, so both faces import it.
 */
import type { RpcErrorCode } from "@latchkey/client/rpc-errors";
import { AuthenticationError, IdentityProviderUnavailableError, SigningKeysUnavailableError } from "../auth/errors";
import { type UsageVerdict, usageFields } from "../keys/limit-arithmetic";
import { type LogFields, describeError, log } from "../log";
import { type FieldIssue, PROBLEMS, type ProblemCode } from "../problems";
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

export type { RpcErrorCode };

export const WWW_AUTHENTICATE = 'Bearer realm="latchkey", Api-Key realm="latchkey"';
const UNAVAILABLE_RETRY_AFTER_SECONDS = "5";

export interface ProblemInit {
  /** For people; every problem has one (the kind's description when not given). */
  readonly detail?: string;
  readonly issues?: readonly FieldIssue[];
  readonly headers?: Readonly<Record<string, string>>;
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** A failure the HTTP layer raises itself (body, content type, routing), with its problem code. */
export class HttpError extends Error {
  override readonly name = "HttpError";
  constructor(
    readonly code: ProblemCode,
    readonly init: ProblemInit = {},
  ) {
    super(init.detail ?? PROBLEMS[code].title);
  }
}

/** An error as data: what every face renders. */
export interface Classified {
  /** The problem code (HTTP `code`, and the `type` URI). */
  readonly code: ProblemCode;
  /** The code an RPC caller sees in brackets: `[not_found] No such key`. */
  readonly rpc: RpcErrorCode;
  readonly status: number;
  readonly title: string;
  /** For people, as the HTTP problem's `detail`. */
  readonly detail: string;
  /** The same failure in one self-contained sentence (RPC has no fields to carry issues in). */
  readonly message: string;
  readonly issues?: readonly FieldIssue[];
  /** The problem's extension members (`exceeded`, `limit`, `key_id`, `credits`, `ratelimits`). */
  readonly extra?: Readonly<Record<string, unknown>>;
  readonly headers?: Readonly<Record<string, string>>;
  /** What the operator's log should say about it, if anything. */
  readonly log?: { readonly event: string; readonly fields: LogFields };
}

/** Every problem code's RPC code: a failure has a code on every face. */
export const RPC_CODE: Record<ProblemCode, RpcErrorCode> = {
  authentication_required: "unauthenticated",
  key_malformed: "unauthenticated",
  key_not_found: "unauthenticated",
  key_revoked: "unauthenticated",
  key_expired: "unauthenticated",
  key_disabled: "unauthenticated",
  key_ip_not_allowed: "unauthenticated",
  key_not_live: "unauthenticated",
  token_expired: "unauthenticated",
  token_invalid: "unauthenticated",
  token_required: "unauthenticated",
  verify_token_required: "unauthenticated",
  signature_invalid: "unauthenticated",
  insufficient_scope: "forbidden",
  forbidden: "forbidden",
  quota_exceeded: "quota_exceeded",
  role_required: "forbidden",
  operator_required: "forbidden",
  origin_not_allowed: "forbidden",
  not_found: "not_found",
  method_not_allowed: "not_found",
  idempotent_replay: "conflict",
  conflict: "conflict",
  invalid_query: "invalid",
  malformed_body: "invalid",
  invalid_header: "invalid",
  body_too_large: "invalid",
  unsupported_media_type: "invalid",
  validation_failed: "invalid",
  idempotency_key_reused: "invalid",
  rate_limited: "rate_limited",
  creation_rate_limited: "rate_limited",
  verify_rate_limited: "rate_limited",
  key_rate_limited: "rate_limited",
  key_usage_exceeded: "quota_exceeded",
  configuration_error: "internal",
  internal_error: "internal",
  storage_unavailable: "unavailable",
  identity_provider_unavailable: "unavailable",
  signing_keys_unavailable: "unavailable",
  not_ready: "unavailable",
};

interface Parts {
  readonly detail?: string;
  readonly message?: string;
  readonly issues?: readonly FieldIssue[];
  readonly extra?: Readonly<Record<string, unknown>>;
  readonly headers?: Readonly<Record<string, string>>;
  readonly log?: Classified["log"];
}

/** A code's classification: `detail` defaults to the kind's description, `message` to `detail`. */
export function classified(code: ProblemCode, parts: Parts = {}): Classified {
  const kind = PROBLEMS[code];
  const detail = parts.detail ?? kind.description;
  return {
    code,
    rpc: RPC_CODE[code],
    status: kind.status,
    title: kind.title,
    detail,
    message: parts.message ?? detail,
    ...(parts.issues ? { issues: parts.issues } : {}),
    ...(parts.extra ? { extra: parts.extra } : {}),
    ...(parts.headers ? { headers: parts.headers } : {}),
    ...(parts.log ? { log: parts.log } : {}),
  };
}

const VALIDATION: Record<ValidationError["source"], { code: ProblemCode; detail: string }> = {
  body: { code: "validation_failed", detail: "The request body is invalid" },
  query: { code: "invalid_query", detail: "The query string is invalid" },
  header: { code: "invalid_header", detail: "A request header is invalid" },
};

const FORBIDDEN: Record<ForbiddenError["kind"], ProblemCode> = {
  scope: "insufficient_scope",
  role: "role_required",
  operator: "operator_required",
  powers: "forbidden",
};

const retryShortly = { "Retry-After": UNAVAILABLE_RETRY_AFTER_SECONDS };
const challenge = { "WWW-Authenticate": WWW_AUTHENTICATE };
const cause = (error: Error): LogFields => ({ error: error.message, cause: describeError(error.cause) });

/**
 * The 429 headers of a key over its own limits: Retry-After when waiting helps (the rate limit's next
 * token, or the next refill for credits), and RateLimit-Limit / -Remaining / -Reset (seconds) of the
 * tightest rate limit (the fewest requests left) when the key has rate limits.
 */
export function usageLimitHeaders(usage: UsageVerdict): Record<string, string> {
  const headers: Record<string, string> = {};
  if (usage.retryAfterMs !== null) headers["Retry-After"] = String(Math.max(1, Math.ceil(usage.retryAfterMs / 1000)));
  // The limits of whoever refused (the owner's, for per-customer limits); else every limit consulted.
  const limits =
    usage.limit === "owner"
      ? (usage.owner?.ratelimits ?? [])
      : usage.limit === "key"
        ? usage.ratelimits
        : [...usage.ratelimits, ...(usage.owner?.ratelimits ?? [])];
  const tightest = limits.reduce<UsageVerdict["ratelimits"][number] | null>(
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

/** What `error` means, as data. Pure: the log line it asks for is written by `report`. */
export function classify(error: unknown): Classified {
  if (error instanceof HttpError) return classified(error.code, error.init);
  if (error instanceof AuthenticationError) {
    return classified(error.code, { detail: error.message, headers: challenge });
  }
  if (error instanceof CredentialNotLiveError) {
    return classified("key_not_live", { detail: error.message, headers: challenge });
  }
  if (error instanceof NotFoundError) return classified("not_found", { detail: error.message });
  if (error instanceof ConflictError) return classified("conflict", { detail: error.message });
  if (error instanceof LineageConflictError) {
    return classified("conflict", { detail: error.message, extra: { key_ids: [...error.keyIds] } });
  }
  if (error instanceof UsageLimitedError) {
    return classified(error.usage.code === "USAGE_EXCEEDED" ? "key_usage_exceeded" : "key_rate_limited", {
      detail: error.message,
      extra: usageFields(error.usage),
      headers: usageLimitHeaders(error.usage),
    });
  }
  if (error instanceof ValidationError) {
    const { code, detail } = VALIDATION[error.source];
    return classified(code, { detail, message: error.message, issues: error.issues });
  }
  if (error instanceof ForbiddenError) {
    return classified(FORBIDDEN[error.kind], {
      detail: error.message,
      message: `${error.exceeded}: ${error.message}`,
      extra: { exceeded: error.exceeded },
      issues: [{ field: error.exceeded, kind: "forbidden", message: error.message }],
    });
  }
  if (error instanceof LimitExceededError) {
    const rate = error.retryAfterSeconds !== null;
    return classified(rate ? "creation_rate_limited" : "quota_exceeded", {
      detail: error.message,
      message: `${error.limit}: ${error.message}`,
      extra: { limit: error.limit },
      ...(rate ? { headers: { "Retry-After": String(error.retryAfterSeconds) } } : {}),
    });
  }
  if (error instanceof IdempotentReplayError) {
    return classified("idempotent_replay", {
      detail: error.message,
      extra: { key_id: error.keyId },
      headers: { Location: `/v1/keys/${error.keyId}` },
    });
  }
  if (error instanceof IdempotencyKeyReusedError) {
    return classified("idempotency_key_reused", {
      detail: error.message,
      issues: [{ field: "Idempotency-Key", kind: "reused", message: error.message }],
    });
  }
  if (error instanceof IdentityProviderUnavailableError) {
    return classified("identity_provider_unavailable", {
      detail: "Tokens cannot be verified right now; try again shortly",
      headers: retryShortly,
      log: { event: "identity_provider_unavailable", fields: cause(error) },
    });
  }
  if (error instanceof SigningKeysUnavailableError) {
    return classified("signing_keys_unavailable", {
      detail: "The report's signature cannot be checked right now; nothing was changed",
      headers: retryShortly,
      log: { event: "signing_keys_unavailable", fields: { error: error.message } },
    });
  }
  if (error instanceof StorageMisconfiguredError) {
    return classified("configuration_error", {
      detail: "The service is misconfigured; the operator has been told",
      log: { event: "configuration_error", fields: cause(error) },
    });
  }
  if (error instanceof StorageUnavailableError) {
    return classified("storage_unavailable", {
      detail: "Storage is unavailable; try again shortly",
      message: "Storage is unavailable; retry shortly",
      headers: retryShortly,
      log: { event: "storage_unavailable", fields: cause(error) },
    });
  }
  return classified("internal_error", {
    detail: "Something went wrong on our side",
    log: { event: "unexpected_error", fields: { error: describeError(error, true) } },
  });
}

/** `classify`, and the log line the classification asks for. */
export function report(error: unknown): Classified {
  const result = classify(error);
  if (result.log) log("error", result.log.event, result.log.fields);
  return result;
}

/**
 * Every error class the service, the store and authentication throw, and the HTTP layer's own: each
 * has its own code on every face (test/rules/classify.test.ts walks this list and the modules' exports).
 */
export const CLASSIFIED_ERRORS = [
  HttpError,
  AuthenticationError,
  IdentityProviderUnavailableError,
  SigningKeysUnavailableError,
  CredentialNotLiveError,
  NotFoundError,
  ConflictError,
  LineageConflictError,
  UsageLimitedError,
  ValidationError,
  ForbiddenError,
  LimitExceededError,
  IdempotentReplayError,
  IdempotencyKeyReusedError,
  StorageMisconfiguredError,
  StorageUnavailableError,
] as const;
