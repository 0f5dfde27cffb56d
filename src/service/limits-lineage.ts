/**
 * Limits reach the lineage. A key with usage limits makes only keys that share its counters (rules.ts,
 * limitsForNewKey), so no key is looser than the key that minted it. Limits given later by a PATCH
 * must keep that true: a change that gives a key chain limits it did not have is refused (409
 * `conflict`, `key_ids` naming them) while keys minted by a key of the chain, by parent_id or at its
 * request, spend no limits or other counters. The lineage as read is pinned by a guard in the write.
 */
import { type KeyLimits, hasLimits } from "../keys/limit-arithmetic";
import type { KeyRecord } from "../model";
import type { KeyStore, ReachGuard } from "../store/store";
import { LineageConflictError } from "./errors";
import { chainOf, outsideChain } from "./rules";

export async function limitsLineageGuard(
  store: Pick<KeyStore, "reach">,
  current: KeyRecord,
  limits: KeyLimits | null,
  now: number,
): Promise<ReachGuard[]> {
  if (!hasLimits(limits) || hasLimits(current.limits)) return [];
  const { records, guard } = await store.reach("chain-lineage", chainOf(current));
  const looser = outsideChain(chainOf(current), records, now);
  if (looser.length > 0) {
    throw new LineageConflictError(
      `Keys minted by this key (or by a key sharing its usage counters) would keep no limits or other counters: ${looser.join(", ")}; revoke them first`,
      looser,
    );
  }
  return [guard];
}
