/**
 * The rows a write reaches beyond the key it names, checked and pinned: a key chain's counters, a
 * narrowed key's lineage, the keys that minted a widened key, a rotated-away key's replacement. Each
 * guard pins the rows as read (store.ts, ReachGuard), so a concurrent change cannot slip between the
 * check and the write.
 */
import { type Actor, type KeyRecord, mintingKeyId } from "../model";
import type { KeyStore, ReachGuard } from "../store/store";
import { LineageConflictError } from "./errors";
import {
  type Powers,
  chainOf,
  exceededPower,
  requireManagementOfAll,
  rotatedExpiryAllowed,
  strongerThan,
} from "./rules";

/**
 * Chain-wide powers: a change of limits or credits changes every key sharing the counters, so a key
 * making it must be allowed to manage each of them. The guard pins the chain as read.
 */
export async function chainGuard(store: KeyStore, actor: Actor, current: KeyRecord): Promise<ReachGuard[]> {
  if (actor.kind !== "api_key") return [];
  const { records, guard } = await store.reach("chain", chainOf(current));
  requireManagementOfAll(actor, records, "The key shares its usage counters with");
  return [guard];
}

/**
 * Narrowing reaches the lineage: a change that takes a power from `current` is refused (409) while a
 * live key of its lineage would keep that power. The guard pins the lineage as read.
 */
export async function lineageGuard(store: KeyStore, current: KeyRecord, next: Powers): Promise<ReachGuard[]> {
  if (exceededPower(next, current) === null) return [];
  const now = Date.now();
  const { records, guard } = await store.reach("tree", current.id);
  const live = records.filter((r) => r.id !== current.id && (r.expiresAt === null || r.expiresAt > now));
  const stronger = strongerThan(next, live);
  if (stronger.length > 0) {
    throw new LineageConflictError(
      `Keys of this key's lineage would keep powers it loses: ${stronger.join(", ")}; narrow or revoke them first`,
      stronger,
    );
  }
  return [guard];
}

/**
 * No key is stronger than a key that minted it (its parent, and the key that asked for it): a change
 * that widens a key beyond a minting key that is not revoked is refused (409 naming it), whoever asks.
 * An expired minting key still binds (a PATCH may extend it again); revoking it frees the key.
 */
export async function requireWithinMinters(store: KeyStore, current: KeyRecord, next: KeyRecord): Promise<void> {
  if (exceededPower(current, next) === null) return;
  const ids = [...new Set([current.parentId, mintingKeyId(current)])].filter((id): id is string => id !== null);
  const minters = await Promise.all(ids.map((id) => store.findById(id)));
  const outgrown = minters
    .filter((m): m is KeyRecord => m !== null && m.revokedAt === null)
    .filter((m) => exceededPower(m, next) !== null)
    .map((m) => m.id);
  if (outgrown.length > 0) {
    throw new LineageConflictError(
      `The key would be stronger than the key that minted it: ${outgrown.join(", ")}; widen or revoke that key first`,
      outgrown,
    );
  }
}

/** A rotated-away key's expiry may be shortened, never extended or cleared (409 naming its replacement). */
export async function requireRotatedExpiry(store: KeyStore, current: KeyRecord, next: KeyRecord): Promise<void> {
  const replacement = await store.replacementOf(current.id);
  if (replacement !== null && !rotatedExpiryAllowed(current.expiresAt, next.expiresAt)) {
    throw new LineageConflictError(
      `The key was rotated (its replacement is ${replacement}): its expiry may be brought forward, never extended or removed`,
      [replacement],
    );
  }
}
