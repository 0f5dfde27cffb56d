/**
 * Keeps `npm test` quiet about one known runtime report. When a method of a WorkerEntrypoint rejects,
 * workerd logs the rejection on the callee's side as "uncaught exception; source = Uncaught (in
 * promise)" even though the caller handles it (cloudflare/workers-sdk#14736: the leak is in workerd's
 * native RPC promise handling, not in the test or in vitest-plugin, and cannot be avoided by how the
 * caller awaits). The vitest plugin forwards workerd's log to this process's stderr, so this setup
 * drops exactly those reports whose error is one latchkey's RPC throws on purpose (a message starting
 * with a code in brackets, src/rpc.ts); every other line, including any other uncaught exception,
 * passes through.
 */
const DELIBERATE_RPC_REJECTION =
  /^uncaught exception; source = Uncaught \(in promise\); stack = Error: \[(?:invalid|not_found|forbidden|unavailable)\] /;

export default function quietRpcRejections(): () => void {
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (typeof chunk === "string" && DELIBERATE_RPC_REJECTION.test(chunk)) return true;
    return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  return () => {
    process.stderr.write = write;
  };
}
