/**
 * Drops workerd's log entries for RPC rejections the tests expect and handle (test/rpc-noise.ts says
 * why they are printed at all), so `npm test` prints only what a reader needs. Runs in Vitest's main
 * process, where the plugin writes workerd's log; everything else passes through unchanged. The
 * number dropped is printed once at the end, so the filter is never silent about what it hid.
 */
import { isExpectedRpcRejection } from "../rpc-noise";

type Write = typeof process.stderr.write;

export default function quietRpcRejections(): () => void {
  let dropped = 0;
  const streams = [process.stdout, process.stderr];
  const originals = streams.map((stream) => stream.write);
  streams.forEach((stream, i) => {
    const original = originals[i]!;
    stream.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
      if (typeof chunk === "string" && isExpectedRpcRejection(chunk)) {
        dropped++;
        return true;
      }
      return (original as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as Write;
  });
  return () => {
    streams.forEach((stream, i) => {
      stream.write = originals[i]!;
    });
    if (dropped > 0)
      process.stdout.write(
        `(${dropped} expected RPC rejections logged by workerd were not shown: test/rpc-noise.ts)\n`,
      );
  };
}
