/**
 * The codes latchkey's service-binding entrypoints (KeyVerifier, KeyService) put in brackets at the
 * start of an error's message, e.g. `[not_found] No such key`: RPC carries only an error's message, so
 * the code travels in it. Branch on the code, never on the words after it.
 */
export const RPC_ERROR_CODES = [
  /** The input is refused: the message names the argument and each field (`input: name: Required`). */
  "invalid",
  /** No such key, or not the owner's: the two are indistinguishable. */
  "not_found",
  /** The request exceeds the owner's powers: the message starts with what it exceeds. */
  "forbidden",
  /** The key's state forbids the change (revoked, expired, or changed meanwhile: retry). */
  "conflict",
  /** A quota refuses it (MAX_KEYS_PER_OWNER, or a key's credits): waiting does not help. */
  "quota_exceeded",
  /** A rate refuses it (e.g. KEY_CREATION_LIMITER): retry later. */
  "rate_limited",
  /** A credential was refused (not met over a binding, which trusts its caller; listed for completeness). */
  "unauthenticated",
  /** latchkey's storage is down, or cannot vouch for a key right now: retry shortly. */
  "unavailable",
  /** Something failed on latchkey's side; its log has the cause, the message says nothing more. */
  "internal",
] as const;

export type RpcErrorCode = (typeof RPC_ERROR_CODES)[number];

/** A rejected call's code and the words after it. */
export interface RpcError {
  readonly code: RpcErrorCode;
  readonly message: string;
}

const CODED = /^\[([a-z_]+)\] ?([\s\S]*)$/;

/**
 * The code and message of an error a latchkey binding rejected with, or null when `error` is not one
 * (e.g. the runtime's own "does not implement" or a network error).
 */
export function parseRpcError(error: unknown): RpcError | null {
  const message =
    typeof error === "string"
      ? error
      : typeof error === "object" && error !== null && typeof (error as { message?: unknown }).message === "string"
        ? (error as { message: string }).message
        : null;
  const match = message === null ? null : CODED.exec(message);
  if (!match) return null;
  const code = match[1] as RpcErrorCode;
  return RPC_ERROR_CODES.includes(code) ? { code, message: match[2] ?? "" } : null;
}
