/**
 * Verification counts by key, hour and outcome, without a write per request: each isolate adds them
 * up in memory and writes them in one batch (store/usage.ts) once the oldest is USAGE_FLUSH_MS old or
 * USAGE_FLUSH_ENTRIES are waiting, after the response (waitUntil). An isolate that dies loses at most
 * what it gathered since its last flush: under USAGE_FLUSH_MS of its own traffic. A failed write puts
 * the counts back for the next flush, USAGE_FLUSH_MS later, up to USAGE_MAX_ENTRIES (beyond that, new counts are dropped
 * and a warning logged: memory stays bounded while D1 is down).
 */
import { describeError } from "../log";
import type { UsageCount, UsageStore } from "../store/usage";

export const USAGE_FLUSH_MS = 30_000;
const USAGE_FLUSH_ENTRIES = 500;
const USAGE_MAX_ENTRIES = 10_000;
const HOUR_MS = 3_600_000;

export class UsageTally {
  private readonly counts = new Map<string, { -readonly [K in keyof UsageCount]: UsageCount[K] }>();
  private oldest = 0;
  private flushing = false;

  /** Counts one verification; true when a flush is due. */
  add(keyId: string, outcome: string, now: number): boolean {
    const hour = now - (now % HOUR_MS);
    const id = `${keyId}|${hour}|${outcome}`;
    const count = this.counts.get(id);
    if (count) {
      count.count += 1;
    } else if (this.counts.size < USAGE_MAX_ENTRIES) {
      if (this.counts.size === 0) this.oldest = now;
      this.counts.set(id, { keyId, hour, outcome, count: 1 });
    } else {
      console.warn("latchkey: usage counts not written yet are at their bound; dropping new ones");
    }
    return !this.flushing && (now - this.oldest >= USAGE_FLUSH_MS || this.counts.size >= USAGE_FLUSH_ENTRIES);
  }

  /** Writes every gathered count in one batch; on failure they wait for the next flush. */
  async flush(store: UsageStore, now = Date.now()): Promise<void> {
    if (this.flushing || this.counts.size === 0) return;
    this.flushing = true;
    const batch = [...this.counts.values()];
    this.counts.clear();
    this.oldest = now;
    try {
      await store.add(batch);
    } catch (error) {
      console.warn(`latchkey: usage counts write failed, retrying later: ${describeError(error)}`);
      for (const count of batch) {
        const id = `${count.keyId}|${count.hour}|${count.outcome}`;
        const newer = this.counts.get(id);
        if (newer) newer.count += count.count;
        else if (this.counts.size < USAGE_MAX_ENTRIES) this.counts.set(id, { ...count });
      }
      // Retried a full interval after this attempt (not at once: no write per request while D1 is down).
      this.oldest = now;
    } finally {
      this.flushing = false;
    }
  }

  clear(): void {
    this.counts.clear();
    this.oldest = 0;
    this.flushing = false;
  }
}
