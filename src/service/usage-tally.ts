/**
 * Verification counts by key, hour and outcome, without a write per request: each isolate adds them
 * up in memory and writes them in one batch (store/usage-counts.ts) once the oldest is USAGE_FLUSH_MS old or
 * USAGE_FLUSH_ENTRIES are waiting, after the response (waitUntil). An isolate that dies loses at most
 * what it gathered since its last flush: under USAGE_FLUSH_MS of its own traffic. A failed write puts
 * the counts back for the next flush, USAGE_FLUSH_MS later, up to USAGE_MAX_ENTRIES (beyond that, new counts are dropped
 * and one warning logged per flush interval: memory stays bounded while D1 is down).
 */
import { describeError, log } from "../log";
import type { UsageCount, UsageStore } from "../store/usage-counts";

export const USAGE_FLUSH_MS = 30_000;
export const USAGE_FLUSH_ENTRIES = 500;
export const USAGE_MAX_ENTRIES = 10_000;
const HOUR_MS = 3_600_000;

export class UsageTally {
  private readonly counts = new Map<string, { -readonly [K in keyof UsageCount]: UsageCount[K] }>();
  private oldest = 0;
  private flushing = false;
  /** After a failed write, no flush before this time, however many counts wait (no write per request while D1 is down). */
  private retryAt = 0;
  /** Whether dropping at the bound has been logged since the last flush (once, not per request). */
  private dropLogged = false;

  /** Counts one verification; true when a flush is due. */
  add(keyId: string, outcome: string, now: number): boolean {
    if (this.counts.size === 0) this.oldest = now;
    this.put(keyId, now - (now % HOUR_MS), outcome, 1);
    if (this.flushing || now < this.retryAt) return false;
    return now - this.oldest >= USAGE_FLUSH_MS || this.counts.size >= USAGE_FLUSH_ENTRIES;
  }

  /** Adds `count` to its key, hour and outcome; a new entry beyond USAGE_MAX_ENTRIES is dropped. */
  private put(keyId: string, hour: number, outcome: string, count: number): void {
    const id = `${keyId}|${hour}|${outcome}`;
    const entry = this.counts.get(id);
    if (entry) {
      entry.count += count;
    } else if (this.counts.size < USAGE_MAX_ENTRIES) {
      this.counts.set(id, { keyId, hour, outcome, count });
    } else if (!this.dropLogged) {
      this.dropLogged = true;
      log("warn", "usage_counts_dropped", { bound: USAGE_MAX_ENTRIES });
    }
  }

  /** Writes every gathered count in one batch; on failure they wait for the next flush. */
  async flush(store: UsageStore, now = Date.now()): Promise<void> {
    if (this.flushing || this.counts.size === 0) return;
    this.flushing = true;
    this.dropLogged = false;
    const batch = [...this.counts.values()];
    this.counts.clear();
    this.oldest = now;
    try {
      await store.add(batch);
    } catch (error) {
      log("warn", "usage_counts_write_failed", { error: describeError(error) });
      for (const c of batch) this.put(c.keyId, c.hour, c.outcome, c.count);
      // Retried a full interval after this attempt (not at once: no write per request while D1 is down),
      // even when USAGE_FLUSH_ENTRIES counts wait.
      this.oldest = now;
      this.retryAt = now + USAGE_FLUSH_MS;
    } finally {
      this.flushing = false;
    }
  }

  clear(): void {
    this.counts.clear();
    this.oldest = 0;
    this.retryAt = 0;
    this.flushing = false;
    this.dropLogged = false;
  }
}
