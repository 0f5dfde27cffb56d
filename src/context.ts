/**
 * Wires one request's (or one RPC call's) service from the bindings. Cheap: the configuration is
 * read once per env object and the caches live in the isolate (service/verify.ts).
 */
import { type Config, loadConfig } from "./config";
import type { Env } from "./env";
import { Keys } from "./service/keys";
import type { Origin } from "./service/verify";
import { KvRecordCache } from "./store/cache";
import { D1KeyStore } from "./store/d1";

export interface AppContext {
  readonly config: Config;
  readonly keys: Keys;
}

/** `origin`: where the call came from, for the audit log (HTTP requests; RPC calls have none). */
export function createContext(
  env: Env,
  ctx: { waitUntil(promise: Promise<unknown>): void },
  origin?: () => Origin,
): AppContext {
  const config = loadConfig(env);
  const keys = new Keys({
    store: new D1KeyStore(env.DB),
    cache: new KvRecordCache(env.KEY_CACHE),
    config,
    defer: (work) => ctx.waitUntil(work),
    origin,
  });
  return { config, keys };
}
