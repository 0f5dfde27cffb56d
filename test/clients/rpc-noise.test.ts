/**
 * The filter that keeps workerd's log of expected RPC rejections out of `npm test` (test/rpc-noise.ts)
 * hides exactly those and nothing else: a real uncaught exception must still be printed.
 */
import { describe, expect, it } from "vitest";
import { isExpectedRpcRejection } from "../rpc-noise";

const entry = (stack: string) => `uncaught exception; source = Uncaught (in promise); stack = ${stack}`;

describe("the RPC rejection log filter", () => {
  it("drops workerd's entry for each kind of rejection the RPC tests provoke and handle", () => {
    for (const stack of [
      "Error: [invalid] input: name: Must not be empty\n    at check (src/rpc.ts:92:11)",
      "Error: [not_found] No such key\n    at rpcErrors (src/rpc.ts:120:5)",
      "Error: [forbidden] scopes: The key may not grant scopes it does not hold",
      "Error: [conflict] The key is revoked",
      "Error: [quota_exceeded] MAX_KEYS_PER_OWNER: ...",
      "Error: [rate_limited] KEY_CREATION_LIMITER: ...",
      "Error: [unavailable] Storage is unavailable; retry shortly",
      'TypeError: The RPC receiver does not implement "revoke".\n    at assertRPCPropertyAccessible (...)',
    ]) {
      expect(isExpectedRpcRejection(entry(stack)), stack).toBe(true);
    }
  });

  it("keeps every other line: real uncaught exceptions, uncoded errors, other logs", () => {
    for (const line of [
      entry("TypeError: Cannot read properties of undefined (reading 'id')\n    at KeyService.get (src/rpc.ts:1:1)"),
      entry("Error: boom"),
      entry("Error: [teapot] not one of latchkey's codes"),
      entry('TypeError: The RPC receiver\'s prototype does not implement "create", but the receiver instance does.'),
      "uncaught exception; source = Uncaught; stack = Error: [invalid] thrown outside a promise",
      `something else ${entry("Error: [invalid] x")}`,
      '{"level":"error","msg":"storage_unavailable"}',
      " ✓ test/clients/consumer.test.ts (18 tests)",
    ]) {
      expect(isExpectedRpcRejection(line), line).toBe(false);
    }
  });
});
