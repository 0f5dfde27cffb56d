/**
 * Wires one request's (or one RPC call's) service from the bindings. Cheap: the configuration is
 * read once per env object and the caches live in the isolate (service/verify.ts).
 */
import { type Config, loadConfig } from "./config";
import type { Env } from "./env";
import { Keys } from "./service/keys";
import { KvRecordCache } from "./store/cache";
import { DurableUsageCounters } from "./store/counter";
import { D1KeyStore } from "./store/d1";
import { D1UsageStore } from "./store/usage";

export interface AppContext {
  readonly config: Config;
  readonly keys: Keys;
}

export function createContext(env: Env, ctx: { waitUntil(promise: Promise<unknown>): void }): AppContext {
  const config = loadConfig(env);
  const keys = new Keys({
    store: new D1KeyStore(env.DB),
    cache: new KvRecordCache(env.KEY_CACHE),
    config,
    defer: (work) => ctx.waitUntil(work),
    ...(env.USAGE_COUNTER ? { counters: new DurableUsageCounters(env.USAGE_COUNTER) } : {}),
    usageStore: new D1UsageStore(env.DB),
  });
  return { config, keys };
}
