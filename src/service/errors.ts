/**
 * What the service can refuse, in its own words. The HTTP layer (http/problem.ts) and the RPC
 * entrypoint (rpc.ts) each translate these; the service itself knows no status codes.
 */

/** The resource does not exist or is not the caller's: the two are deliberately indistinguishable. */
export class NotFoundError extends Error {
  override readonly name = "NotFoundError";
  constructor(what = "key") {
    super(`No such ${what}`);
  }
}

/** Input that passed the schema but not the rules, by field. `source` says where the field came from. */
export class ValidationError extends Error {
  override readonly name = "ValidationError";
  constructor(
    readonly errors: Record<string, string[]>,
    readonly source: "body" | "query" = "body",
  ) {
    super(
      Object.entries(errors)
        .map(([field, messages]) => `${field}: ${messages.join("; ")}`)
        .join(", "),
    );
  }
}

/** The caller is authenticated but the request exceeds its powers; `exceeded` names what. */
export class ForbiddenError extends Error {
  override readonly name = "ForbiddenError";
  constructor(
    readonly exceeded: string,
    message: string,
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
  constructor() {
    super("The API key making this request has been revoked or has expired");
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
