/**
 * Errors in a route's own shape (see ErrorFormat in route.ts). Any error is first classified exactly
 * as latchkey's problems classify it (problem.ts stays the one place where errors become statuses,
 * and what it logs it still logs), then rendered in the route's shape: a dialect translates shapes,
 * never decides what an error means. latchkey's problem titles are per kind ("Unknown API key"), but
 * the vendors' pages use the HTTP reason phrase ("Unauthorized"), so a failure's title is that.
 */
import { errorToProblem } from "./problem";
import type { ErrorFormat, Failure } from "./route";

const KEPT_HEADERS = [
  "Retry-After",
  "WWW-Authenticate",
  "Allow",
  "RateLimit-Limit",
  "RateLimit-Remaining",
  "RateLimit-Reset",
];

/** RFC 9110's reason phrases, for the statuses latchkey answers with. */
const REASON_PHRASES: Record<number, string> = {
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

/** The failure an error (or a problem response already made, e.g. the limiter's 429) stands for. */
export async function failureOf(error: unknown): Promise<Failure> {
  const response = error instanceof Response ? error : errorToProblem(error);
  const problem = (await response.json()) as { detail: string; errors?: Record<string, string[]> };
  const headers: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const value = response.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  const title = REASON_PHRASES[response.status] ?? "Error";
  return { status: response.status, title, detail: problem.detail, errors: problem.errors ?? null, headers };
}

/** The response for `error` in `format`. */
export async function renderFailure(format: ErrorFormat, error: unknown): Promise<Response> {
  const failure = await failureOf(error);
  const status = format.status?.(failure.status) ?? failure.status;
  return new Response(JSON.stringify(format.body({ ...failure, status })), {
    status,
    headers: { ...failure.headers, "Content-Type": format.mediaType },
  });
}
