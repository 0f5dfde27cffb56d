/**
 * Workers KV as a shared cache of key records by hash, so a key that is warm anywhere needs no D1
 * query. It holds the compact record (never the key itself, nor its name or metadata) with the feed
 * position it was read at, so an isolate can tell a copy older than a change it knows of (see
 * service/feed.ts). It is only ever a cache: every failure or slow answer is logged and treated as a
 * miss, so a broken KV can cost speed but never fail an authentication or lose data.
 */
import type { CompactRecord } from "../model";
import { withTimeout } from "./timeout";
import { describeError, log } from "../log";

/** How long a record may live in KV. Stale copies are covered by the change feed (see service/feed.ts). */
export const KV_TTL_SECONDS = 300;
/** KV refuses shorter expirations. */
const KV_MIN_TTL_SECONDS = 60;
/** How long the KV edge may serve its copy before re-reading (KV's minimum is 30 s). */
export const KV_CACHE_TTL_SECONDS = 60;
const KV_TIMEOUT_MS = 1000;

/** Versioned, so a deploy that changes the cached shape never reads the old shape. */
export const cacheKey = (hash: string) => `key:v3:${hash}`;

/** A cached record and the feed position (`seq`) it is current as of. */
export interface CachedRecord {
  readonly record: CompactRecord;
  readonly seq: number;
}

export interface RecordCache {
  /** The record, or null on a miss, a failure or a timeout. */
  get(hash: string): Promise<CachedRecord | null>;
  /** Caches the record for at most KV_TTL_SECONDS and never past its expiry; failures are logged. */
  put(entry: CachedRecord, now: number): Promise<void>;
  delete(hash: string): Promise<void>;
}

function warn(what: string, error: unknown): void {
  log("warn", "kv_failed", { operation: what, error: describeError(error), effect: "continuing without the cache" });
}

/** Seconds the record may be cached for, or 0 when it must not be (KV's minimum would outlive it). */
export function cacheTtlSeconds(record: CompactRecord, now: number): number {
  if (record.revokedAt !== null) return 0;
  const untilExpiry = record.expiresAt === null ? Infinity : Math.floor((record.expiresAt - now) / 1000);
  const ttl = Math.min(KV_TTL_SECONDS, untilExpiry);
  return ttl >= KV_MIN_TTL_SECONDS ? ttl : 0;
}

export class KvRecordCache implements RecordCache {
  constructor(private readonly kv: KVNamespace) {}

  /** Resolves when KV answers a read in time; throws otherwise (readiness only: reads never do). */
  async probe(): Promise<void> {
    await withTimeout(this.kv.get(cacheKey("readiness-probe")), KV_TIMEOUT_MS, "KV readiness probe");
  }

  async get(hash: string): Promise<CachedRecord | null> {
    try {
      return await withTimeout(
        this.kv.get<CachedRecord>(cacheKey(hash), { type: "json", cacheTtl: KV_CACHE_TTL_SECONDS }),
        KV_TIMEOUT_MS,
        "get",
      );
    } catch (error) {
      warn("get", error);
      return null;
    }
  }

  async put(entry: CachedRecord, now: number): Promise<void> {
    const ttl = cacheTtlSeconds(entry.record, now);
    if (ttl === 0) return;
    try {
      await withTimeout(
        this.kv.put(cacheKey(entry.record.hash), JSON.stringify(entry), { expirationTtl: ttl }),
        KV_TIMEOUT_MS,
        "put",
      );
    } catch (error) {
      warn("put", error);
    }
  }

  async delete(hash: string): Promise<void> {
    try {
      await withTimeout(this.kv.delete(cacheKey(hash)), KV_TIMEOUT_MS, "delete");
    } catch (error) {
      warn("delete", error);
    }
  }
}
