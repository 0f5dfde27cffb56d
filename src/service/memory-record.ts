/** A record in this isolate's memory: what it holds, how long it is kept, and its approximate bytes (the memory budget). */
import { type LegacyScheme, schemeOf } from "../keys/legacy";
import { KV_TTL_SECONDS } from "../store/cache";
import type { CompactRecord } from "../model";
import type { LruWatcher } from "../util/lru";
import { ownerLimitsBytes } from "./metering";

/**
 * How long this isolate keeps a record it has read. A stored record changes only through the feed
 * (which drops it here) and when its last use is written (service/last-use.ts keeps that), so the
 * lifetime only bounds how long a row deleted by an operator lingers; it matches KV's. Each record
 * gets 80-100% of it, so keys first read together are not all refetched in the same second.
 */
export const RECORD_MEMORY_MS = KV_TTL_SECONDS * 1000;
export const recordLifetime = () => RECORD_MEMORY_MS * (0.8 + 0.2 * Math.random());
/** The bytes of key records one isolate holds (of its 128 MB). */
export const RECORD_MEMORY_BYTES = 16 * 1024 * 1024;

/** A record in this isolate's memory. */
export interface MemoryRecord {
  readonly record: CompactRecord;
  /** The feed position it is current as of. */
  readonly seq: number;
  /** When it was last read from D1 (or written there) by this isolate; 0 when it came from KV. */
  readonly checkedAt: number;
}

/**
 * The approximate V8 heap bytes of a record in memory, estimated once when it enters: the objects,
 * ids and map slot (a fixed allowance) plus each scope and resource string (one byte per character,
 * as they are ASCII, plus a header and an array slot) and the owner id (two bytes per character: it
 * may be any Unicode). Meant to over-estimate: a budget is a promise.
 */
export function memoryRecordBytes(hash: string, entry: MemoryRecord): number {
  const { record } = entry;
  let bytes = 600 + hash.length + 2 * record.owner.id.length + (record.legacyHash?.length ?? 0);
  for (const scope of record.scopes) bytes += 32 + scope.length;
  for (const resource of record.resources ?? []) bytes += 32 + resource.length;
  for (const range of record.allowedIps ?? []) bytes += 32 + range.length;
  // Usage limits: a few numbers per rate limit and for credits (keys without limits add nothing).
  if (record.limits) bytes += 200 + 100 * record.limits.ratelimits.length;
  for (const limit of record.limits?.ratelimits ?? []) bytes += limit.name.length;
  bytes += ownerLimitsBytes(record.ownerLimits);
  return bytes;
}

/** How a record is looked up: by its scheme (keys/legacy.ts), null for latchkey's own keys. */
export const lookupScheme = (record: CompactRecord): LegacyScheme | null =>
  record.format === undefined ? null : schemeOf(record.format);

/**
 * How many records of each lookup scheme this isolate's memory holds (an expired record counts until it
 * leaves). A scheme with none needs no hash to know memory cannot vouch for a key in it: what a client
 * over its failure limit sends in such a form is refused without hashing it (service/verify.ts).
 */
export class SchemeCounts implements LruWatcher<string, MemoryRecord> {
  private readonly counts = new Map<LegacyScheme | null, number>();

  added(_hash: string, entry: MemoryRecord): void {
    const scheme = lookupScheme(entry.record);
    this.counts.set(scheme, (this.counts.get(scheme) ?? 0) + 1);
  }

  removed(_hash: string, entry: MemoryRecord): void {
    const scheme = lookupScheme(entry.record);
    this.counts.set(scheme, (this.counts.get(scheme) ?? 0) - 1);
  }

  /** Whether memory may hold a record looked up by `scheme`. */
  holds(scheme: LegacyScheme | null): boolean {
    return (this.counts.get(scheme) ?? 0) > 0;
  }
}
