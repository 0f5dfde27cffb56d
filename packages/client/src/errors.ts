/**
 * One error type for every failure of a latchkey call, so callers branch on data, not on classes:
 * `status` is the HTTP status (0 when no response came: network failure or timeout) and `problem` is
 * latchkey's RFC 9457 document (or one built to the same shape when there was none).
 */
import type { Problem } from "./types.js";

export class LatchkeyError extends Error {
  override readonly name = "LatchkeyError";

  constructor(
    /** The HTTP status; 0 when latchkey could not be reached or did not answer in time. */
    readonly status: number,
    readonly problem: Problem,
    /** Seconds to wait before retrying, from `Retry-After`; null when the response had none. */
    readonly retryAfter: number | null = null,
    options?: { cause?: unknown },
  ) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title, options);
  }

  /** latchkey could not be reached, did not answer in time, or is temporarily unavailable (503). */
  get unavailable(): boolean {
    return this.status === 0 || this.status === 503;
  }
}

/** A problem for a failure that produced no problem document. */
export function syntheticProblem(status: number, title: string, detail?: string): Problem {
  return { type: "about:blank", title, status, ...(detail ? { detail } : {}) };
}
