/**
 * The one way latchkey writes to the log: one JSON object per line (`level`, `event`, fields, and the
 * `request_id` of the request being served), which Workers Logs indexes field by field. Every console
 * call in src/ goes through here, so no line escapes the shape or the scrubbing below.
 *
 * Nothing secret is ever passed in (keys and tokens are not put in errors, request content is never
 * logged); as a second line of defence, anything shaped like an API key or a JWT is replaced by
 * `[redacted]` before the line is written. Logging is never on the hot path.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export type LogLevel = "info" | "warn" | "error";
export type LogFields = Record<string, string | number | boolean | null | undefined>;

const requestScope = new AsyncLocalStorage<string>();

/** A JWT (three base64url parts, header starting `eyJ`) or a key: `<prefix>_` then 49 base62 characters. */
const SECRET_SHAPES = /eyJ[\w-]*\.[\w-]*\.[\w-]*|\b[a-z][a-z0-9_]{0,15}_[0-9A-Za-z]{49}\b/g;

/** What an X-Request-Id from the client must look like to be used as is (else a new id is made). */
const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** The client's X-Request-Id when well-formed (and not secret-shaped), else a new UUID. */
export function requestIdFrom(header: string | null): string {
  if (header !== null && REQUEST_ID.test(header) && header.replace(SECRET_SHAPES, "") === header) return header;
  return crypto.randomUUID();
}

/** Runs `work` with `requestId` attached to every log line it writes, including after awaits. */
export function withRequestId<T>(requestId: string, work: () => T): T {
  return requestScope.run(requestId, work);
}

/** The id of the request being served, if any. */
export function currentRequestId(): string | undefined {
  return requestScope.getStore();
}

export function scrub(text: string): string {
  return text.replace(SECRET_SHAPES, "[redacted]");
}

export function log(level: LogLevel, event: string, fields: LogFields = {}): void {
  const line = scrub(JSON.stringify({ level, event, ...fields, request_id: requestScope.getStore() }));
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

/** An error as a log field: its message only (with the stack for unexpected errors, via `withStack`). */
export function describeError(error: unknown, withStack = false): string {
  if (!(error instanceof Error)) return String(error);
  return withStack && error.stack ? error.stack : error.message;
}
