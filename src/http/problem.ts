/**
 * RFC 9457 problem responses, and the one place where errors become HTTP statuses. Nothing from an
 * unexpected error reaches the client: a 500 says only that something failed, and the log gets the
 * error (which never holds a key: keys are not put in errors).
 */
import { AuthenticationError, IdentityProviderUnavailableError } from "../auth/errors";
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from "../service/errors";
import { StorageUnavailableError } from "../store/store";
import { describeError } from "../log";

const PROBLEM_TYPE = "application/problem+json";
const UNAVAILABLE_RETRY_AFTER_SECONDS = "5";
export const WWW_AUTHENTICATE = 'Bearer realm="latchkey", Api-Key realm="latchkey"';

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export interface ProblemInit {
  readonly detail?: string;
  readonly errors?: Record<string, string[]>;
  readonly headers?: Record<string, string>;
  readonly extra?: Record<string, unknown>;
}

/** An HTTP failure raised by the HTTP layer itself (body, content type, routing). */
export class HttpError extends Error {
  override readonly name = "HttpError";
  constructor(
    readonly status: number,
    readonly init: ProblemInit = {},
  ) {
    super(init.detail ?? TITLES[status] ?? "Error");
  }
}

export function problem(status: number, init: ProblemInit = {}): Response {
  const body = {
    type: "about:blank",
    title: TITLES[status] ?? "Error",
    status,
    ...(init.detail ? { detail: init.detail } : {}),
    ...init.extra,
    ...(init.errors ? { errors: init.errors } : {}),
  };
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": PROBLEM_TYPE, ...init.headers },
  });
}

export function errorToProblem(error: unknown): Response {
  if (error instanceof HttpError) return problem(error.status, error.init);
  if (error instanceof AuthenticationError) {
    return problem(401, { detail: error.message, headers: { "WWW-Authenticate": WWW_AUTHENTICATE } });
  }
  if (error instanceof NotFoundError) return problem(404, { detail: error.message });
  if (error instanceof ConflictError) return problem(409, { detail: error.message });
  if (error instanceof ValidationError) {
    return problem(error.source === "query" ? 400 : 422, {
      detail: error.source === "query" ? "The query string is invalid" : "The request body is invalid",
      errors: error.errors,
    });
  }
  if (error instanceof ForbiddenError) {
    return problem(403, {
      detail: error.message,
      extra: { exceeded: error.exceeded },
      errors: { [error.exceeded]: [error.message] },
    });
  }
  if (error instanceof IdentityProviderUnavailableError) {
    console.error(`latchkey: ${error.message}: ${describeError(error.cause)}`);
    return problem(503, {
      detail: "Tokens cannot be verified right now; try again shortly",
      headers: { "Retry-After": UNAVAILABLE_RETRY_AFTER_SECONDS },
    });
  }
  if (error instanceof StorageUnavailableError) {
    console.error(`latchkey: ${error.message}: ${describeError(error.cause)}`);
    return problem(503, {
      detail: "Storage is unavailable; try again shortly",
      headers: { "Retry-After": UNAVAILABLE_RETRY_AFTER_SECONDS },
    });
  }
  console.error(
    `latchkey: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
  );
  return problem(500, { detail: "Something went wrong on our side" });
}
