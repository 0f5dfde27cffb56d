/**
 * Errors in a route's own shape (see ErrorFormat in route.ts). Any error is classified exactly as
 * latchkey's problems classify it (errors/classify.ts decides what an error means, and what it logs
 * it still logs), then rendered in the route's shape: a dialect translates shapes, never decides what
 * an error means. latchkey's problem titles are per kind ("Unknown API key"), but the vendors' pages
 * use the HTTP reason phrase ("Unauthorized"), so a failure's title is that.
 */
import { report } from "../errors/classify";
import { issuesByField } from "../problems";
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

/** The failure an error stands for. */
export function failureOf(error: unknown): Failure {
  const c = report(error);
  const headers: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const value = c.headers?.[name];
    if (value !== undefined) headers[name] = value;
  }
  const title = REASON_PHRASES[c.status] ?? "Error";
  const issues = c.issues ?? null;
  return {
    status: c.status,
    title,
    detail: c.detail,
    errors: issues && issuesByField(issues),
    issues,
    headers,
  };
}

/** The response for `error` in `format`. */
export function renderFailure(format: ErrorFormat, error: unknown): Response {
  const failure = failureOf(error);
  const status = format.status?.(failure.status) ?? failure.status;
  return new Response(JSON.stringify(format.body({ ...failure, status })), {
    status,
    headers: { ...failure.headers, "Content-Type": format.mediaType },
  });
}
