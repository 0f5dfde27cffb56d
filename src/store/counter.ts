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
import {
  type CounterState,
  type CreditsOp,
  type CreditsRule,
  type KeyLimits,
  type UsageVerdict,
  adjustCredits,
  applyUsage,
} from "../keys/usage";
import { StorageUnavailableError } from "./store";
import { withTimeout } from "./timeout";

/** The counters' clock, replaceable by tests to cross a refill boundary or refill a bucket. */
export const counterClock = { now: (): number => Date.now() };

const STATE = "state";

export class UsageCounter extends DurableObject {
  /** Applies one verification (cost 0: a peek) to every limit, all or nothing. */
  take(limits: KeyLimits, cost: number): UsageVerdict {
    return this.update((state, now) => applyUsage(state, limits, cost, now));
  }

  /** Changes the credit balance; the balance afterwards. */
  adjust(rule: CreditsRule, op: CreditsOp, amount: number): number {
    return this.update((state, now) => adjustCredits(state, rule, op, amount, now));
  }

  private update<T>(apply: (state: CounterState, now: number) => T): T {
    const kv = this.ctx.storage.kv;
    const state = kv.get<CounterState>(STATE) ?? { credits: null, buckets: {} };
    const result = apply(state, counterClock.now());
    kv.put(STATE, state);
    return result;
  }
}

/** A counter call slower than this fails (closed: the verification answers 503, never unmetered). */
const COUNTER_TIMEOUT_MS = 3000;

/** The counters as the service sees them. */
export interface UsageCounters {
  take(usageId: string, limits: KeyLimits, cost: number): Promise<UsageVerdict>;
  adjust(usageId: string, rule: CreditsRule, op: CreditsOp, amount: number): Promise<number>;
}

export class DurableUsageCounters implements UsageCounters {
  constructor(private readonly namespace: DurableObjectNamespace<UsageCounter>) {}

  take(usageId: string, limits: KeyLimits, cost: number): Promise<UsageVerdict> {
    return this.call("take", (stub) => stub.take(limits, cost), usageId);
  }

  adjust(usageId: string, rule: CreditsRule, op: CreditsOp, amount: number): Promise<number> {
    return this.call("credits", (stub) => stub.adjust(rule, op, amount), usageId);
  }

  private async call<T>(
    what: string,
    run: (stub: DurableObjectStub<UsageCounter>) => Promise<T>,
    usageId: string,
  ): Promise<T> {
    try {
      return await withTimeout(run(this.namespace.get(this.namespace.idFromName(usageId))), COUNTER_TIMEOUT_MS, what);
    } catch (cause) {
      throw new StorageUnavailableError(`usage counter ${what} failed`, { cause });
    }
  }
}
