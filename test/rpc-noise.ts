/**
 * The one place the suite hides workerd's log of expected RPC rejections (cloudflare/workers-sdk#14736).
 *
 * Every KeyService or KeyVerifier call that rejects (a latchkey error such as `[invalid] input: ...`,
 * or the runtime's "The RPC receiver does not implement ..." for a method an entrypoint lacks) makes
 * workerd log one "uncaught exception; source = Uncaught (in promise)" entry with the callee's stack,
 * although the caller handles the rejection at once (test/clients/consumer.test.ts attaches its handler in
 * the same turn). The entry is written by workerd, not by latchkey or the test: the compatibility date
 * (2026-11-01) already has workerd's fix for early unhandled-rejection reports (workerd#6049), the
 * promise is handed to the RPC layer as the method's result, and no JavaScript on either side holds it
 * unhandled (DEVELOPING.md, "Quiet tests"). The Vitest plugin prints workerd's structured log from the main
 * process, so test/setup/quiet-rpc.ts drops these entries there and keeps every other line.
 *
 * Only an entry that is exactly such a rejection is dropped: any other uncaught exception, or an RPC
 * error that is not one of latchkey's coded errors, is still printed (test/clients/rpc-noise.test.ts).
 */

/** latchkey's RPC error codes (src/rpc.ts: "[code] message"). */
const RPC_CODES = ["invalid", "not_found", "forbidden", "conflict", "quota_exceeded", "rate_limited", "unavailable"];

const EXPECTED_REJECTION = new RegExp(
  "^uncaught exception; source = Uncaught \\(in promise\\); stack = " +
    `(?:Error: \\[(?:${RPC_CODES.join("|")})\\] |TypeError: The RPC receiver does not implement "\\w+"\\.\\n)`,
);

/** Whether `entry` (one log write from workerd) is the log of an RPC rejection the caller handled. */
export function isExpectedRpcRejection(entry: string): boolean {
  return EXPECTED_REJECTION.test(entry);
}
