/**
 * Exact usage counters: one SQLite-backed Durable Object per key chain (named by the key's usage id,
 * which a rotated key inherits), holding its rate-limit buckets and credit balance.
 *
 * A Durable Object runs one instance worldwide and one call at a time; each method here reads,
 * decides and writes in one synchronous step on its storage (the synchronous KV API, no await in
 * between), so no interleaving can overspend credits or admit one request too many, from any number
 * of isolates or locations. A verification makes one call carrying every limit of the key.
 *
 * Credit warnings (`credits_low`, `credits_exhausted`: keys/warnings.ts) are found in that same step,
 * so exactly: the call that finds one keeps it in this object's storage, in the same write as the
 * balance, and sets the object's alarm. The alarm writes the audit events to D1 (store/warnings.ts; with
 * sharding by owner, to the owner's database: store/sharded-warnings.ts;
 * idempotent: a retry writes nothing twice) and forgets them; a failed write is retried with backoff
 * until it lands. So the warning reaches D1 even if the calling Worker dies the moment after, and the
 * verification pays no extra round trip: the Worker is not involved at all.
 *
 * A key whose owner has limits too (per-customer limits, keys/owner-usage.ts) still makes one call:
 * to its chain's counter, which takes its own share synchronously, then asks the owner's counter (a
 * second hop, Durable Object to Durable Object) and gives its share back if the owner's refuses. A key
 * without limits of its own asks the owner's counter directly. A warning the chain's step found is kept
 * only once the owner's counter agreed (a refunded step warns of nothing). The owner's counter finds
 * the owner's own credit warnings the same way, and its alarm writes them to the owner's audit log.
 */
import { DurableObject } from "cloudflare:workers";
import {
  type CounterState,
  type KeyLimits,
  type UsageVerdict,
  applyUsage,
  refundUsage,
} from "../keys/limit-arithmetic";
import { type OwnerCounter, combinedVerdict, keyVerdict, ownerOfCounterName } from "../keys/owner-usage";
import type { CreditWarning } from "../keys/warnings";
import { describeError, log } from "../log";
import { StorageUnavailableError } from "./store";
import { withTimeout } from "./timeout";
import { D1WarningStore, type WarningStore } from "./warnings";
import { type CreditWarningStore, creditWarningsFor } from "./sharded-warnings";
import type { Env } from "../env";

/** The counters' clock, replaceable by tests to cross a refill boundary or refill a bucket. */
export const counterClock = { now: (): number => Date.now() };

const STATE = "state";
const PENDING = "pending_warnings";
/** The most warnings kept unwritten (a D1 outage of many periods keeps the newest). */
const MAX_PENDING = 20;
/** Backoff of a failed warning write: doubling from this, at most RETRY_MAX_MS. */
const RETRY_MS = 5_000;
const RETRY_MAX_MS = 3_600_000;

/** Warnings found and not yet written to D1, with the chain they are about. */
interface PendingWarnings {
  chain: string;
  warnings: CreditWarning[];
  failures: number;
}

/** The D1 bindings the counter writes warnings with (the Worker's env: DB, and D1_SHARDS' DB_1, ...). */
interface CounterEnv {
  readonly DB?: D1Database;
  readonly D1_SHARDS?: string;
  readonly USAGE_COUNTER?: DurableObjectNamespace<UsageCounter>;
}

export class UsageCounter extends DurableObject<CounterEnv> {
  /**
   * The counters as this instance last wrote them (read from storage once per instance): the object is
   * its storage's only writer and runs one call's step at a time, so the copy is exact, and each step
   * still writes the whole state before it answers. A step that throws drops the copy (read again next
   * time); a failed commit resets the whole object, copy included.
   */
  private state: CounterState | undefined;

  /**
   * Applies one verification (cost 0: a peek) to every limit, all or nothing, after any credit
   * operation recorded in `limits` that this counter has not applied yet. `chain`: the key chain this
   * counter is (its name), for the warnings' audit events. With `owner`, the owner's counter must say
   * yes too: this counter's share is taken first (in one synchronous step, so calls arriving meanwhile
   * see it taken) and given back if the owner's refuses or cannot be reached.
   */
  async take(limits: KeyLimits, cost: number, chain?: string, owner?: OwnerCounter): Promise<UsageVerdict> {
    const { warnings, ...own } = this.apply(limits, cost);
    const keep = () => {
      if (warnings && chain !== undefined) this.keep(chain, warnings);
    };
    if (!owner || own.code !== "VALID") {
      keep();
      return keyVerdict(own);
    }
    const namespace = this.env.USAGE_COUNTER;
    let theirs: UsageVerdict;
    try {
      if (!namespace) throw new Error("USAGE_COUNTER is not bound");
      const stub = namespace.get(namespace.idFromName(owner.name));
      // Its name goes along: the owner's counter keeps its own credit warnings, for the owner's audit log.
      theirs = await withTimeout(stub.take(owner.limits, cost, owner.name), COUNTER_TIMEOUT_MS, "owner usage counter");
    } catch (error) {
      this.refund(limits, cost);
      throw error;
    }
    if (theirs.code !== "VALID") return combinedVerdict(this.refund(limits, cost), theirs);
    keep();
    return combinedVerdict(own, theirs);
  }

  private apply(limits: KeyLimits, cost: number): UsageVerdict {
    return this.step((state) => applyUsage(state, limits, cost, counterClock.now()));
  }

  private refund(limits: KeyLimits, cost: number) {
    return this.step((state) => refundUsage(state, limits, cost, counterClock.now()));
  }

  /** One synchronous read-decide-write of the counters. */
  private step<T>(change: (state: CounterState) => T): T {
    const kv = this.ctx.storage.kv;
    const state = (this.state ??= kv.get<CounterState>(STATE) ?? { credits: null, buckets: {} });
    try {
      const result = change(state);
      kv.put(STATE, state);
      return result;
    } catch (error) {
      this.state = undefined;
      throw error;
    }
  }

  /** Keeps warnings to write, in the same storage write as the balance, and wakes the alarm to write them. */
  private keep(chain: string, warnings: readonly CreditWarning[]): void {
    const kv = this.ctx.storage.kv;
    const pending = kv.get<PendingWarnings>(PENDING) ?? { chain, warnings: [], failures: 0 };
    pending.warnings = [...pending.warnings, ...warnings].slice(-MAX_PENDING);
    kv.put(PENDING, { ...pending, chain });
    void this.ctx.storage.setAlarm(Date.now());
  }

  /** Writes the kept warnings to D1, then forgets them; after a failure, tries again later. */
  override async alarm(): Promise<void> {
    const kv = this.ctx.storage.kv;
    const pending = kv.get<PendingWarnings>(PENDING);
    if (!pending || pending.warnings.length === 0) return;
    const written = new Set<string>();
    try {
      const store = warningStoreFor(this.env);
      // An owner's counter warns the owner (its audit log); a key chain's, the chain's keys.
      const owner = ownerOfCounterName(pending.chain);
      for (const warning of pending.warnings) {
        await (owner ? store.ownerCreditWarning(owner, warning) : store.creditWarning(pending.chain, warning));
        written.add(warningId(warning));
      }
    } catch (error) {
      log("warn", "credit_warning_write_failed", { chain: pending.chain, error: describeError(error) });
    }
    // A call may have kept more meanwhile: forget only what was written.
    const now = kv.get<PendingWarnings>(PENDING) ?? pending;
    const left = now.warnings.filter((warning) => !written.has(warningId(warning)));
    if (left.length === 0) {
      kv.delete(PENDING);
      return;
    }
    const failed = left.length < now.warnings.length ? 0 : now.failures + 1;
    kv.put(PENDING, { ...now, warnings: left, failures: failed });
    await this.ctx.storage.setAlarm(Date.now() + Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** Math.min(failed, 20)));
  }
}

const warningId = (warning: CreditWarning) => `${warning.kind}:${warning.period}`;

/**
 * Where a counter writes its warnings: the owner's database (store/sharded-warnings.ts). Replaceable by
 * tests: a failing D1 (`storeFor`), or another number of databases than the Worker's (`envFor`).
 */
export const counterWarnings = {
  storeFor: (db: D1Database): WarningStore => new D1WarningStore(db),
  envFor: (env: CounterEnv): CounterEnv => env,
};

function warningStoreFor(env: CounterEnv): CreditWarningStore {
  if (!env.DB) throw new StorageUnavailableError("no D1 binding (DB) for the usage counter's warnings");
  return creditWarningsFor(counterWarnings.envFor(env) as Env, counterWarnings.storeFor);
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
      return await withTimeout(stub.take(limits, cost, usageId, owner), timeout, "usage counter");
    } catch (cause) {
      throw new StorageUnavailableError("usage counter call failed", { cause });
    }
  }
}
