/**
 * Exact usage counters: one SQLite-backed Durable Object per key chain (named by the key's usage id,
 * which a rotated key inherits), holding its rate-limit buckets and credit balance.
 *
 * A Durable Object runs one instance worldwide and one call at a time; each method here reads,
 * decides and writes in one synchronous step on its storage (the synchronous KV API, no await in
 * between), so no interleaving can overspend credits or admit one request too many, from any number
 * of isolates or locations. A verification makes one call carrying every limit of the key.
 *
 * A key whose owner has limits too (per-customer limits, keys/owner-usage.ts) still makes one call:
 * to its chain's counter, which takes its own share synchronously, then asks the owner's counter (a
 * second hop, Durable Object to Durable Object) and gives its share back if the owner's refuses. A key
 * without limits of its own asks the owner's counter directly.
 */
import { DurableObject } from "cloudflare:workers";
import {
  type CounterState,
  type KeyLimits,
  type UsageVerdict,
  applyUsage,
  refundUsage,
} from "../keys/limit-arithmetic";
import { type OwnerCounter, combinedVerdict, keyVerdict } from "../keys/owner-usage";
import { StorageUnavailableError } from "./store";
import { withTimeout } from "./timeout";

/** The counters' clock, replaceable by tests to cross a refill boundary or refill a bucket. */
export const counterClock = { now: (): number => Date.now() };

const STATE = "state";

interface CounterEnv {
  readonly USAGE_COUNTER?: DurableObjectNamespace<UsageCounter>;
}

export class UsageCounter extends DurableObject<CounterEnv> {
  /**
   * Applies one verification (cost 0: a peek) to every limit, all or nothing, after any credit
   * operation recorded in `limits` that this counter has not applied yet. With `owner`, the owner's
   * counter must say yes too: this counter's share is taken first (in one synchronous step, so calls
   * arriving meanwhile see it taken) and given back if the owner's refuses or cannot be reached.
   */
  async take(limits: KeyLimits, cost: number, owner?: OwnerCounter): Promise<UsageVerdict> {
    const own = this.apply(limits, cost);
    if (!owner || own.code !== "VALID") return keyVerdict(own);
    const namespace = this.env.USAGE_COUNTER;
    let theirs: UsageVerdict;
    try {
      if (!namespace) throw new Error("USAGE_COUNTER is not bound");
      const stub = namespace.get(namespace.idFromName(owner.name));
      theirs = await withTimeout(stub.take(owner.limits, cost), COUNTER_TIMEOUT_MS, "owner usage counter");
    } catch (error) {
      this.refund(limits, cost);
      throw error;
    }
    return combinedVerdict(theirs.code === "VALID" ? own : this.refund(limits, cost), theirs);
  }

  private apply(limits: KeyLimits, cost: number): UsageVerdict {
    const kv = this.ctx.storage.kv;
    const state = kv.get<CounterState>(STATE) ?? { credits: null, buckets: {} };
    const verdict = applyUsage(state, limits, cost, counterClock.now());
    kv.put(STATE, state);
    return verdict;
  }

  private refund(limits: KeyLimits, cost: number) {
    const kv = this.ctx.storage.kv;
    const state = kv.get<CounterState>(STATE) ?? { credits: null, buckets: {} };
    const balances = refundUsage(state, limits, cost, counterClock.now());
    kv.put(STATE, state);
    return balances;
  }
}

/** A counter call slower than this fails (closed: the verification answers 503, never unmetered). */
const COUNTER_TIMEOUT_MS = 3000;

/** The counters as the service sees them. */
export interface UsageCounters {
  /** `usageId`: a key chain's, or an owner's counter name; `owner`: the owner's counter to ask as well. */
  take(usageId: string, limits: KeyLimits, cost: number, owner?: OwnerCounter): Promise<UsageVerdict>;
}

export class DurableUsageCounters implements UsageCounters {
  constructor(private readonly namespace: DurableObjectNamespace<UsageCounter>) {}

  async take(usageId: string, limits: KeyLimits, cost: number, owner?: OwnerCounter): Promise<UsageVerdict> {
    try {
      const stub = this.namespace.get(this.namespace.idFromName(usageId));
      // With a second hop to the owner's counter inside, the call may take up to two timeouts.
      const timeout = owner ? 2 * COUNTER_TIMEOUT_MS : COUNTER_TIMEOUT_MS;
      return await withTimeout(stub.take(limits, cost, owner), timeout, "usage counter");
    } catch (cause) {
      throw new StorageUnavailableError("usage counter call failed", { cause });
    }
  }
}
