/** Idempotency-Key records in D1: a claim written with its key, and an earlier claim found. */
import type { D1Queries } from "./d1-session";
import { type IdempotencyClaim, IdempotencyConflict } from "./store";

/**
 * A claim's two statements: the first forgets an expired claim of the same key (before the key's
 * insert), the second records this one, only if the statement before it changed a row.
 */
export function claimStatements(
  db: D1Queries,
  claim: IdempotencyClaim,
  keyId: string,
  createdAt: number,
): [D1PreparedStatement, D1PreparedStatement] {
  return [
    db
      .prepare("DELETE FROM idempotency_keys WHERE caller = ? AND key_hash = ? AND created_at < ?")
      .bind(claim.caller, claim.keyHash, claim.expiredBefore),
    db
      .prepare(
        "INSERT INTO idempotency_keys (caller, key_hash, request_hash, key_id, created_at) SELECT ?, ?, ?, ?, ? WHERE changes() = 1",
      )
      .bind(claim.caller, claim.keyHash, claim.requestHash, keyId, createdAt),
  ];
}

/** Throws IdempotencyConflict when `claim`'s Idempotency-Key is already claimed (and not expired). */
export async function throwIfClaimed(db: D1Queries, claim: IdempotencyClaim): Promise<void> {
  const existing = await db
    .prepare("SELECT key_id, request_hash FROM idempotency_keys WHERE caller = ? AND key_hash = ? AND created_at >= ?")
    .bind(claim.caller, claim.keyHash, claim.expiredBefore)
    .first<{ key_id: string; request_hash: string }>();
  if (existing) throw new IdempotencyConflict(existing.key_id, existing.request_hash);
}
