/**
 * How errors are written to the log: one line, the error's message. Keys and tokens are never put in
 * errors, so a message is safe to log; request content never is.
 */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
