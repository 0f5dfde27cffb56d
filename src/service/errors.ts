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

/** The request conflicts with the key's state (e.g. rotating or updating a revoked key). */
export class ConflictError extends Error {
  override readonly name = "ConflictError";
}
