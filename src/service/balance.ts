/** A key chain's credit balance as it is now (a peek at its counter), and a key's view showing it. */
import type { KeyRecord } from "../model";
import { describeError, log } from "../log";
import type { ApiKeyView } from "../schemas";
import { StorageUnavailableError } from "./errors";
import { chainOf } from "./rules";
import type { ServiceDeps } from "./verify";
import { toApiKey } from "./views";

function counters(deps: ServiceDeps) {
  if (!deps.counters) throw new StorageUnavailableError("usage counters are not bound (USAGE_COUNTER)");
  return deps.counters;
}

/**
 * The chain's credit balance now (a peek: one counter call), or null when the counter cannot answer:
 * the operation is recorded in D1 all the same and applies at the counter's next call.
 */
export async function balance(deps: ServiceDeps, record: KeyRecord): Promise<number | null> {
  if (!record.limits) return null;
  try {
    const usage = await counters(deps).take(chainOf(record), record.limits, 0);
    return usage.credits?.remaining ?? null;
  } catch (error) {
    log("warn", "usage_counter_unavailable", { error: describeError(error) });
    return null;
  }
}

/**
 * The key's view with its credit balance as it is now (one counter call, only for a live key with
 * credits). A revoked key is shown as stored and never reaches the counter: limit changes are written
 * to a chain's unrevoked keys only, so its rule may be older than the chain's, and a peek applies the
 * rule it is given (a refill). A counter that cannot answer leaves the stored balance in the view:
 * a created or rotated key's one showing of its plaintext must never be lost to it.
 */
export async function liveView(deps: ServiceDeps, record: KeyRecord): Promise<ApiKeyView> {
  const view = toApiKey(record);
  if (!view.credits || record.revokedAt !== null) return view;
  const remaining = await balance(deps, record);
  return remaining === null ? view : { ...view, credits: { ...view.credits, remaining } };
}
