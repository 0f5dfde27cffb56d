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
import { LastUses } from "./last-use";

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
  /** Last uses queued to be written (service/last-use.ts). */
  readonly lastUses = new LastUses();
  /** Verification outcomes per key, not written yet. */
  readonly usage = new UsageTally();

  clear(): void {
    this.records.clear();
    this.unknown.clear();
    for (const feed of [this.feed, this.shardFeeds]) feed.clear();
    this.lastUses.clear();
    this.usage.clear();
  }
}

/** The one cache of this isolate. */
export const isolateCache = new IsolateCache();
