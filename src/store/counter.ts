/**
 * Exact usage counters: one SQLite-backed Durable Object per key chain (named by the key's usage id,
 * which a rotated key inherits), holding its rate-limit buckets and credit balance.
 *
 * A Durable Object runs one instance worldwide and one call at a time; each method here reads,
 * decides and writes in one synchronous step on its storage (the synchronous KV API, no await in
 * between), so no interleaving can overspend credits or admit one request too many, from any number
 * of isolates or locations. A verification makes one call carrying every limit of the key.
 */
import { DurableObject } from "cloudflare:workers";
import { type CounterState, type KeyLimits, type UsageVerdict, applyUsage } from "../keys/limit-arithmetic";
import { StorageUnavailableError } from "./store";
import { withTimeout } from "./timeout";

/** The counters' clock, replaceable by tests to cross a refill boundary or refill a bucket. */
export const counterClock = { now: (): number => Date.now() };

const STATE = "state";

export class UsageCounter extends DurableObject {
  /**
   * Applies one verification (cost 0: a peek) to every limit, all or nothing, after any credit
   * operation recorded in `limits` that this counter has not applied yet.
   */
  take(limits: KeyLimits, cost: number): UsageVerdict {
    const kv = this.ctx.storage.kv;
    const state = kv.get<CounterState>(STATE) ?? { credits: null, buckets: {} };
    const verdict = applyUsage(state, limits, cost, counterClock.now());
    kv.put(STATE, state);
    return verdict;
  }
}

/** A counter call slower than this fails (closed: the verification answers 503, never unmetered). */
const COUNTER_TIMEOUT_MS = 3000;

/** The counters as the service sees them. */
export interface UsageCounters {
  take(usageId: string, limits: KeyLimits, cost: number): Promise<UsageVerdict>;
}

export class DurableUsageCounters implements UsageCounters {
  constructor(private readonly namespace: DurableObjectNamespace<UsageCounter>) {}

  async take(usageId: string, limits: KeyLimits, cost: number): Promise<UsageVerdict> {
    try {
      const stub = this.namespace.get(this.namespace.idFromName(usageId));
      return await withTimeout(stub.take(limits, cost), COUNTER_TIMEOUT_MS, "usage counter");
    } catch (cause) {
      throw new StorageUnavailableError("usage counter call failed", { cause });
    }
  }
}
