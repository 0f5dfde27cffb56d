/**
 * RFC 9457 problem responses. Every problem carries a stable `code` and its `type` URI
 * (src/problems.ts), a `title` and a `detail`. What an error means (its code, status, headers and
 * what is logged) is decided once, by errors/classify.ts; this renders it as a problem document.
 */
import { type Classified, HttpError, type ProblemInit, report } from "../errors/classify";
import { PROBLEMS, type ProblemCode, issuesByField, problemType } from "../problems";

export { HttpError, WWW_AUTHENTICATE, usageLimitHeaders } from "../errors/classify";
export type { ProblemInit };

const PROBLEM_TYPE = "application/problem+json";

/** A problem of kind `code`, for the routes that answer one directly (readiness, CORS). */
export function problem(code: ProblemCode, init: Omit<ProblemInit, "issues"> = {}): Response {
  const kind = PROBLEMS[code];
  return render({ code, title: kind.title, status: kind.status, detail: init.detail ?? kind.description, ...init });
}

type Renderable = Pick<Classified, "code" | "title" | "status" | "detail" | "issues" | "extra" | "headers">;

function render(c: Renderable): Response {
  const body = {
    type: problemType(c.code),
    title: c.title,
    status: c.status,
    detail: c.detail,
    code: c.code,
    ...c.extra,
    ...(c.issues ? { errors: issuesByField(c.issues) } : {}),
  };
  return new Response(JSON.stringify(body), {
    status: c.status,
    headers: { "Content-Type": PROBLEM_TYPE, ...c.headers },
  });
}

/** The problem response for any error (logging what its classification asks to log). */
export function errorToProblem(error: unknown): Response {
  return render(report(error));
}
