/**
 * Errors in a route's own shape (see ErrorFormat in route.ts). Any error is first classified exactly
 * as latchkey's problems classify it (problem.ts stays the one place where errors become statuses,
 * and what it logs it still logs), then rendered in the route's shape: a dialect translates shapes,
 * never decides what an error means.
 */
import { errorToProblem } from "./problem";
import type { ErrorFormat, Failure } from "./route";

const KEPT_HEADERS = ["Retry-After", "WWW-Authenticate", "Allow"];

/** The failure an error (or a problem response already made, e.g. the limiter's 429) stands for. */
export async function failureOf(error: unknown): Promise<Failure> {
  const response = error instanceof Response ? error : errorToProblem(error);
  const problem = (await response.json()) as { title?: string; detail?: string; errors?: Record<string, string[]> };
  const headers: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const value = response.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  const title = problem.title ?? "Error";
  return { status: response.status, title, detail: problem.detail ?? title, errors: problem.errors ?? null, headers };
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
