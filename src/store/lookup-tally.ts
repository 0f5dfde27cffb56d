/**
 * Where one request's key lookups were answered: this isolate's memory, Workers KV or D1. With
 * SERVER_TIMING on (config.ts) the request's cache and store are wrapped to count, and the response
 * says where its verification was answered in a `Server-Timing` header (`lookup;desc="memory"`), so a
 * load test can measure the hit rates the capacity model predicts (bench/hit-rates.mjs). Off, nothing is
 * wrapped: verification pays nothing for it.
 */
import type { RecordCache } from "./cache";
import type { KeyStore } from "./store";

export type LookupLayer = "memory" | "kv" | "d1";

export class LookupTally {
  verifications = 0;
  kvHits = 0;
  d1Reads = 0;

  /**
   * Where this request's verification was answered: D1 when it read D1, else KV when KV had the
   * record, else memory (the isolate's records, its negative cache or the feed); null without one.
   */
  layer(): LookupLayer | null {
    if (this.verifications === 0) return null;
    if (this.d1Reads > 0) return "d1";
    return this.kvHits > 0 ? "kv" : "memory";
  }

  /** The `Server-Timing` value, or null when the request verified no key. */
  serverTiming(): string | null {
    const layer = this.layer();
    return layer === null ? null : `lookup;desc="${layer}"`;
  }
}

/** `cache`, counting the reads that found a record. */
export function tallyCache(cache: RecordCache, tally: LookupTally): RecordCache {
  return {
    get: async (hash) => {
      const cached = await cache.get(hash);
      if (cached) tally.kvHits++;
      return cached;
    },
    put: (entry, now) => cache.put(entry, now),
    delete: (hash) => cache.delete(hash),
  };
}

/** `store`, counting its reads by hash (verification's only D1 read). */
export function tallyStore<S extends KeyStore>(store: S, tally: LookupTally): S {
  const wrapped = Object.create(store) as S;
  Object.defineProperty(wrapped, "findByHash", {
    value: (hash: string) => {
      tally.d1Reads++;
      return store.findByHash(hash);
    },
  });
  return wrapped;
}
