/**
 * What the service can refuse, in its own words; the service itself knows no status codes. One
 * classifier (errors/classify.ts) turns each into a code, a status and a message, which the HTTP
 * problems, the dialects and the RPC entrypoint render.
 *
 * The store's failures are re-exported here on purpose: they reach HTTP and RPC through the service's
 * vocabulary, so neither face imports from src/store.
 */
export { StorageMisconfiguredError, StorageUnavailableError } from "../store/store";
import type { UsageVerdict } from "../keys/limit-arithmetic";
import { type FieldIssue, issuesByField } from "../problems";

/** The resource does not exist or is not the caller's: the two are deliberately indistinguishable. */
export class NotFoundError extends Error {
  override readonly name = "NotFoundError";
  constructor(what = "key") {
    super(`No such ${what}`);
  }
}

/**
 * Input refused, by field: each issue names its field, a kind a program can branch on, and a message.
 * Takes issues, or messages by field (kind `invalid`). `source` says where the fields came from.
 */
export class ValidationError extends Error {
  override readonly name = "ValidationError";
  readonly issues: readonly FieldIssue[];
  constructor(
    errors: Record<string, string[]> | readonly FieldIssue[],
    readonly source: "body" | "query" | "header" = "body",
  ) {
    const issues = isIssueList(errors)
      ? errors
      : Object.entries(errors).flatMap(([field, messages]) =>
          messages.map((message) => ({ field, kind: "invalid" as const, message })),
        );
    super(
      Object.entries(issuesByField(issues))
        .map(([field, messages]) => `${field}: ${messages.join("; ")}`)
        .join(", "),
    );
    this.issues = issues;
  }

  /** The messages by field: `{ "name": ["Required"] }`. */
  get errors(): Record<string, string[]> {
    return issuesByField(this.issues);
  }
}

function isIssueList(errors: Record<string, string[]> | readonly FieldIssue[]): errors is readonly FieldIssue[] {
  return Array.isArray(errors);
}

/**
 * The caller is authenticated but the request exceeds its powers; `exceeded` names what. `scope`:
 * the caller lacks the scope the operation needs (as opposed to asking for more than it holds);
 * `role`: the person lacks the workspace admin role the operation needs; `operator`: the operator role
 * (OPERATOR_ROLES) root keys need.
 */
export class ForbiddenError extends Error {
  override readonly name = "ForbiddenError";
  constructor(
    readonly exceeded: string,
    message: string,
    readonly kind: "scope" | "role" | "operator" | "powers" = "powers",
  ) {
    super(message);
  }
}

/**
 * The API key making a management request is no longer live in D1 (revoked, expired or gone), though
 * it authenticated from a cache: answered as a failed authentication.
 */
export class CredentialNotLiveError extends Error {
  override readonly name = "CredentialNotLiveError";
  constructor(message = "The API key making this request has been revoked or has expired") {
    super(message);
  }
}

/**
 * A configured limit refuses the request. `limit` names it (e.g. MAX_KEYS_PER_OWNER); with
 * `retryAfterSeconds` it is a rate (wait and retry: HTTP 429), without it a quota (free some: 403).
 */
export class LimitExceededError extends Error {
  override readonly name = "LimitExceededError";
  constructor(
    readonly limit: string,
    message: string,
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message);
  }
}

/**
 * A create retried with an Idempotency-Key that already created key `keyId` with the same input. The
 * plaintext key is not stored, so it cannot be returned again: the caller learns the id instead.
 */
export class IdempotentReplayError extends Error {
  override readonly name = "IdempotentReplayError";
  constructor(readonly keyId: string) {
    super(`A key was already created with this Idempotency-Key (id ${keyId}); the key itself cannot be shown again`);
  }
}

/** An Idempotency-Key already used, within its lifetime, for a request with different input. */
export class IdempotencyKeyReusedError extends Error {
  override readonly name = "IdempotencyKeyReusedError";
  constructor() {
    super("This Idempotency-Key was already used with a different request body; use a new key");
  }
}

/** The request conflicts with the key's state (e.g. rotating or updating a revoked key). */
export class ConflictError extends Error {
  override readonly name = "ConflictError";
}

/**
 * The change would break a rule of the key's lineage: narrowing a key that has stronger live keys in
 * its lineage, widening a key beyond a key that minted it, giving a key chain limits while keys it
 * minted spend none, or extending a rotated-away key's expiry. `keyIds` names the keys in the way.
 */
export class LineageConflictError extends Error {
  override readonly name = "LineageConflictError";
  constructor(
    message: string,
    readonly keyIds: readonly string[],
  ) {
    super(message);
  }
}

/**
 * A key-authenticated request refused by the key's own usage limits (RATE_LIMITED or
 * USAGE_EXCEEDED): not an authentication failure, so it never counts against the client's limiter.
 */
export class UsageLimitedError extends Error {
  override readonly name = "UsageLimitedError";
  constructor(readonly usage: UsageVerdict) {
    super(
      usage.code === "USAGE_EXCEEDED"
        ? "The API key has no credits left for this request"
        : "The API key is over its rate limit",
    );
  }
}
