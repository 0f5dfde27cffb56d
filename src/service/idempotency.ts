/** Idempotency-Key claims: who asks, the key's hash and the request's hash, and a claim's conflict in the service's words. */
import { sha256Hex } from "../keys/hash";
import type { Actor } from "../model";
import { type IdempotencyClaim, IdempotencyConflict } from "../store/store";
import { actorName } from "./audit-changes";
import { IdempotencyKeyReusedError, IdempotentReplayError } from "./errors";
import { IDEMPOTENCY_TTL_MS } from "./operations";

/**
 * Who made a request, for scoping Idempotency-Keys: one caller's key never matches another's. Named as
 * in the audit log, but for a trusted Worker, whose claims are its owner's alone.
 */
function callerOf(actor: Actor): string {
  return actor.kind === "service" ? `service:${actor.owner.type}:${actor.owner.id}` : actorName(actor);
}

/** The claim an idempotent request makes: its caller, the key's hash, and the hash of what it asks. */
export async function idempotencyClaim(
  actor: Actor,
  idempotencyKey: string,
  request: unknown,
): Promise<IdempotencyClaim> {
  return {
    caller: callerOf(actor),
    keyHash: await sha256Hex(idempotencyKey),
    requestHash: await sha256Hex(JSON.stringify(request)),
    expiredBefore: Date.now() - IDEMPOTENCY_TTL_MS,
  };
}

/**
 * A store error as the answer to an idempotent request: a repeat of the same request is a replay
 * naming the key the first one created; the same Idempotency-Key with other input is a reuse. Any
 * other error is returned as it is.
 */
export function claimConflict(error: unknown, claim: IdempotencyClaim | undefined): unknown {
  if (!(error instanceof IdempotencyConflict)) return error;
  if (error.requestHash === claim?.requestHash) return new IdempotentReplayError(error.keyId);
  return new IdempotencyKeyReusedError();
}
