/**
 * Wires one request's (or one RPC call's) service from the bindings. Cheap: the configuration is
 * read once per env object and the caches live in the isolate (service/verify.ts).
 */
import { type Config, loadConfig } from "./config";
import type { Env } from "./env";
import { Keys } from "./service/keys";
import { RootKeys } from "./service/root-keys";
import { D1RootKeyStore } from "./store/root-keys";
import { type Readiness, checkReadiness, purgeDeadKeys } from "./service/operations";
import type { Origin } from "./service/verify";
import { verificationCounter } from "./store/analytics";
import { KvRecordCache } from "./store/cache";
import { DurableUsageCounters } from "./store/counter";
import { D1KeyStore } from "./store/d1";
import { D1UsageStore } from "./store/usage-counts";

export interface AppContext {
  readonly config: Config;
  readonly keys: Keys;
  /** Root keys (/v1/root-keys), and the authentication of a root key. */
  readonly rootKeys: RootKeys;
  /** GET /readyz: D1 (and its schema) and KV. */
  readonly readiness: () => Promise<Readiness>;
  /** The cron: deletes keys dead for PURGE_AFTER_DAYS (none when unset); how many. */
  readonly purge: (now: number) => Promise<number>;
}

/** `origin`: where the call came from, for the audit log (HTTP requests; RPC calls have none). */
export function createContext(
  env: Env,
  ctx: { waitUntil(promise: Promise<unknown>): void },
  origin?: () => Origin,
): AppContext {
  const config = loadConfig(env);
  const store = new D1KeyStore(env.DB);
  const cache = new KvRecordCache(env.KEY_CACHE);
  const keys = new Keys({
    store,
    cache,
    config,
    defer: (work) => ctx.waitUntil(work),
    creationLimiter: env.KEY_CREATION_LIMITER,
    onVerified: env.VERIFY_ANALYTICS ? verificationCounter(env.VERIFY_ANALYTICS) : undefined,
    origin,
    ...(env.USAGE_COUNTER ? { counters: new DurableUsageCounters(env.USAGE_COUNTER) } : {}),
    usageStore: new D1UsageStore(env.DB),
  });
  const rootKeys = new RootKeys({ store: new D1RootKeyStore(env.DB), config, defer: (work) => ctx.waitUntil(work) });
  return {
    config,
    keys,
    rootKeys,
    readiness: () => checkReadiness({ store, cache: () => cache.probe() }),
    purge: async (now) => (config.purgeAfterDays === null ? 0 : purgeDeadKeys(store, config.purgeAfterDays, now)),
  };
}
