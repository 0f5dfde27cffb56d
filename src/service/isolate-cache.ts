/**
 * The caches and bookkeeping an isolate keeps for verification (service/verify.ts), for as long as it
 * lives: records by hash (bounded by approximate bytes), unknown hashes, the change feed's state, and
 * the last uses and outcome counts not written yet.
 */
import { TtlLru } from "../util/lru";
import { FeedState } from "./feed";
import { ShardFeeds } from "./shard-feed";
import {
  type MemoryRecord,
  RECORD_MEMORY_BYTES,
  RECORD_MEMORY_MS,
  SchemeCounts,
  memoryRecordBytes,
} from "./memory-record";
import { UsageTally } from "./usage-tally";

/** A key's last use is written at most this often. */
export const LAST_USED_INTERVAL_MS = 60_000;

/** Caches and sync bookkeeping that live as long as the isolate. */
export class IsolateCache {
  /** The records below by lookup scheme (kept by the map itself). */
  readonly schemes = new SchemeCounts();
  readonly records = new TtlLru<string, MemoryRecord>(
    100_000,
    RECORD_MEMORY_MS,
    { maxBytes: RECORD_MEMORY_BYTES, sizeOf: memoryRecordBytes },
    this.schemes,
  );
  /** Unknown hashes: fixed-size entries (a 64-character hash), so a count bounds their bytes (~2 MB). */
  readonly unknown = new TtlLru<string, true>(10_000, 10_000);
  /** The change feed: position, known changes, sync bookkeeping (shardFeeds instead when D1_SHARDS > 1). */
  readonly feed = new FeedState();
  readonly shardFeeds = new ShardFeeds();
  readonly lastUsedWrites = new TtlLru<string, number>(10_000, LAST_USED_INTERVAL_MS);
  /** Key ids whose use is due to be written, with when; written by at most one flush at a time. */
  readonly pendingUses = new Map<string, number>();
  /** Verification outcomes per key, not written yet. */
  readonly usage = new UsageTally();
  /** When the flush in flight started (0: none). */
  flushStartedAt = 0;

  clear(): void {
    this.records.clear();
    this.unknown.clear();
    for (const feed of [this.feed, this.shardFeeds]) feed.clear();
    this.lastUsedWrites.clear();
    this.pendingUses.clear();
    this.usage.clear();
    this.flushStartedAt = 0;
  }
}

/** The one cache of this isolate. */
export const isolateCache = new IsolateCache();
