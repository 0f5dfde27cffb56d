/**
 * Wires one request's (or one RPC call's) service from the bindings. Cheap: the configuration is
 * read once per env object and the caches live in the isolate (service/verify.ts).
 */
import { type Config, loadConfig } from "./config";
import { describeError, log } from "./log";
import type { Env } from "./env";
import { Keys } from "./service/keys";
import { LeakIntake } from "./service/leaks";
import { RootKeys } from "./service/root-keys";
import { D1RootKeyStore } from "./store/root-keys";
import { type Readiness, checkReadiness, purgeDeadKeys } from "./service/operations";
import type { Origin } from "./service/verify";
import { verificationCounter } from "./store/analytics";
import { KvRecordCache } from "./store/cache";
import { LookupTally, tallyCache, tallyStore } from "./store/lookup-tally";
import { DurableUsageCounters } from "./store/counter";
import type { D1Queries, RequestSession } from "./store/d1-session";
import { type ReadViews, type RootKeyViews, type WebhookViews, primaryViews } from "./service/read-views";
import { D1KeyStore } from "./store/d1";
import { D1OwnerLimitsStore } from "./store/owner-limits";
import { D1UsageStore } from "./store/usage-counts";
import { scanExpiry } from "./service/warnings";
import { OwnerLimitsService } from "./service/owner-limits";
import { D1WebhookStore } from "./store/webhooks";
import { oneDatabaseStores, storesFor } from "./store/sharded-stores";
import { afterAuditedWrites, dispatchAfterWrite, dispatchWebhooks, sweepOverdue } from "./service/webhook-dispatch";
import { Webhooks } from "./service/webhooks";
import { webhookEnqueue } from "./webhook-queue";

/** Finished deliveries stay in an endpoint's log this long. */
const DELIVERY_LOG_DAYS = 30;

export interface AppContext {
  readonly config: Config;
  readonly keys: Keys;
  /** Where this request's verification was answered, counted only with SERVER_TIMING on. */
  readonly lookups: LookupTally | null;
  /** Leaked-key reports (POST /v1/leaks, /v1/leaks/github, RPC reportLeaks). */
  readonly leaks: LeakIntake;
  /** Per-customer limits: owners' rate limits and credits (service/owner-limits.ts). */
  readonly owners: OwnerLimitsService;
  /** Root keys (/v1/root-keys), and the authentication of a root key. */
  readonly rootKeys: RootKeys;
  /** GET /readyz: D1 (and its schema) and KV. */
  readonly readiness: () => Promise<Readiness>;
  /** The cron: deletes keys dead for PURGE_AFTER_DAYS (none when unset); how many. */
  readonly purge: (now: number) => Promise<number>;
  /** The cron: writes the expiry warnings due (EXPIRY_WARNING_DAYS, and `expired`); how many. */
  readonly expiryWarnings: (now: number) => Promise<number>;
  /** Webhook endpoints and their delivery logs. */
  readonly webhooks: Webhooks;
  /**
   * The cron: dispatches what the outbox holds and re-enqueues lost deliveries (how many); deletes old
   * delivery logs and the endpoints of root key chains with no live key.
   */
  readonly dispatchWebhooks: (now: number) => Promise<number>;
}

/**
 * `origin`: where the call came from, for the audit log (HTTP requests; RPC calls have none).
 * `session`: a management request's D1 sessions (store/d1-session.ts): its read-only views read from
 * a replica, everything else from the primary. Without one (RPC, the cron, verification), every query
 * goes through the binding, to the primary.
 */
export function createContext(
  env: Env,
  ctx: { waitUntil(promise: Promise<unknown>): void },
  origin?: () => Origin,
  session?: RequestSession,
): AppContext {
  const config = loadConfig(env);
  const enqueue = webhookEnqueue(env);
  // Every write of a key runs the dispatcher after the response (webhook-dispatch.ts); verification writes none.
  // One D1 database, or several with sharding by owner (D1_SHARDS; store/sharded-stores.ts). A request
  // session (one database only) puts the store of record on its primary handle.
  const stores = session ? oneDatabaseStores(session.primary) : storesFor(env, config);
  const webhookStore = stores.webhooks;
  const writes = enqueue
    ? afterAuditedWrites(stores.keys, () => ctx.waitUntil(dispatchLogged(webhookStore, enqueue)))
    : stores.keys;
  const kv = new KvRecordCache(env.KEY_CACHE);
  const lookups = config.serverTiming ? new LookupTally() : null;
  const store = lookups ? tallyStore(writes, lookups) : writes;
  const cache = lookups ? tallyCache(kv, lookups) : kv;
  const analytics = env.VERIFY_ANALYTICS ? verificationCounter(env.VERIFY_ANALYTICS) : undefined;
  const deps = {
    store,
    cache,
    config,
    defer: (work: Promise<unknown>) => ctx.waitUntil(work),
    creationLimiter: env.KEY_CREATION_LIMITER,
    onVerified: lookups
      ? (...verdict: Parameters<NonNullable<typeof analytics>>) => {
          lookups.verifications++;
          analytics?.(...verdict);
        }
      : analytics,
    origin,
    ...(env.USAGE_COUNTER ? { counters: new DurableUsageCounters(env.USAGE_COUNTER) } : {}),
    usageStore: stores.usage,
    ownerLimits: stores.ownerLimits,
  };
  const views = session ? sessionViews(session.views) : null;
  const keys = new Keys(deps, views?.reads ?? primaryViews(deps));
  const leaks = new LeakIntake({
    store: stores.leaks,
    verifier: keys.verifier,
    acceptedPrefixes: config.acceptedPrefixes,
    action: config.leaks.action,
    origin,
  });
  const rootKeys = new RootKeys({
    store: new D1RootKeyStore(session?.primary ?? env.DB),
    config,
    defer: (work) => ctx.waitUntil(work),
    ...(views ? { views: views.rootKeys } : {}),
  });
  return {
    config,
    keys,
    lookups,
    leaks,
    owners: new OwnerLimitsService(deps, views?.reads.ownerLimits ?? deps.ownerLimits),
    rootKeys,
    readiness: () => checkReadiness({ store, cache: () => kv.probe() }),
    purge: async (now) => (config.purgeAfterDays === null ? 0 : purgeDeadKeys(store, config.purgeAfterDays, now)),
    expiryWarnings: async (now) => {
      let written = 0;
      for (const warnings of stores.warnings) written += await scanExpiry(warnings, config.expiryWarningMs, now);
      return written;
    },
    webhooks: new Webhooks({
      store: webhookStore,
      config,
      enqueue: enqueue ?? (async () => {}),
      ...(views ? { views: views.webhooks } : {}),
    }),
    dispatchWebhooks: async (now) => {
      if (!enqueue) return 0;
      await webhookStore.prepareOutboxes();
      const dispatched = await dispatchWebhooks(webhookStore, enqueue, now);
      await webhookStore.purgeDeliveries(now - DELIVERY_LOG_DAYS * 86_400_000, 1000);
      await webhookStore.purgeInactiveEndpoints(now, 100);
      return dispatched + (await sweepOverdue(webhookStore, enqueue, now));
    },
  };
}

/** The read-only views on a session's handle (service/read-views.ts): stores typed as their reads alone. */
function sessionViews(replica: D1Queries): { reads: ReadViews; webhooks: WebhookViews; rootKeys: RootKeyViews } {
  return {
    reads: {
      keys: new D1KeyStore(replica),
      usage: new D1UsageStore(replica),
      ownerLimits: new D1OwnerLimitsStore(replica),
    },
    webhooks: new D1WebhookStore(replica),
    rootKeys: new D1RootKeyStore(replica),
  };
}

/** The dispatch after a write: its failure is logged, and the cron's dispatch catches up. */
async function dispatchLogged(store: D1WebhookStore, enqueue: NonNullable<ReturnType<typeof webhookEnqueue>>) {
  try {
    await dispatchAfterWrite(store, enqueue, Date.now());
  } catch (error) {
    log("warn", "webhook_dispatch_failed", { error: describeError(error) });
  }
}
