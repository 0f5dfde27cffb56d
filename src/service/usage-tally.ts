/**
 * Verification counts by key, hour and outcome, without a write per request: each isolate adds them
 * up in memory and writes them in one batch (store/usage-counts.ts) after a response (waitUntil). The
 * first count while no window is open opens one (util/flush-window.ts): the work it starts waits out
 * `usageTiming.windowMs` (20 s), then writes every count gathered meanwhile, so counts reach D1 although
 * no later request comes. USAGE_FLUSH_ENTRIES waiting are written at once. So a count is in D1 within
 * USAGE_PENDING_MS of being counted while its isolate lives and D1 answers, and an isolate that dies
 * loses at most what it gathered in its open window (and the counts a failed write kept).
 *
 * A failed write puts the counts back; no flush starts for USAGE_RETRY_MS (no write per request while
 * D1 is down, however many counts wait), then the next count opens a window (or, USAGE_FLUSH_ENTRIES
 * waiting, writes at once): an isolate idle since the failure keeps them until its next verification.
 * Up to USAGE_MAX_ENTRIES are kept: beyond that, new counts are dropped and one warning logged per
 * flush, so memory stays bounded while D1 is down.
 */
import { describeError, log } from "../log";
import { PartlyWrittenError, type UsageCount, type UsageStore } from "../store/usage-counts";
import { FlushWindow } from "../util/flush-window";

/**
 * How long the first count waits for others before they go in one write (tests set Infinity: counts
 * stay until a test flushes them, or until USAGE_FLUSH_ENTRIES wait). The write is one D1 batch bounded
 * by D1_TIMEOUT_MS (5 s; with D1_SHARDS > 1 one per database holding the keys, side by side): window
 * and write end 25 s after the count, inside waitUntil's 30 s after the response (WAIT_UNTIL_MS) with room to
 * spare. Longer than last use's 15 s, which keeps 10 s to write batch after batch: fewer writes per busy
 * isolate.
 */
export const USAGE_WINDOW_MS = 20_000;
export const usageTiming = { windowMs: USAGE_WINDOW_MS };
/** A count reaches D1 within this long (the window and the write) while its isolate lives and D1 answers: `pending_from`. */
export const USAGE_PENDING_MS = 30_000;
/** After a failed write, no flush starts for this long. */
export const USAGE_RETRY_MS = 30_000;
export const USAGE_FLUSH_ENTRIES = 500;
export const USAGE_MAX_ENTRIES = 10_000;
const HOUR_MS = 3_600_000;

export class UsageTally {
  private readonly counts = new Map<string, { -readonly [K in keyof UsageCount]: UsageCount[K] }>();
  /** The window the first count opens. */
  private readonly window: FlushWindow;
  /** After a failed write, no flush before this time, however many counts wait (no write per request while D1 is down). */
  private retryAt = 0;
  /** Whether dropping at the bound has been logged since the last flush (once, not per request). */
  private dropLogged = false;

  constructor(
    wait?: (ms: number) => Promise<void>,
    private readonly clock: () => number = Date.now,
  ) {
    this.window = new FlushWindow(usageTiming, wait);
  }

  /**
   * Counts one verification at `now`: the work to run after the response when this count fills a batch
   * (written at once) or opens a window (written when it ends), else null.
   */
  add(keyId: string, outcome: string, now: number, store: UsageStore): Promise<void> | null {
    this.put(keyId, now - (now % HOUR_MS), outcome, 1);
    if (now < this.retryAt) return null;
    if (this.counts.size >= USAGE_FLUSH_ENTRIES) return this.flush(store, now);
    return this.window.start(now, this.flushWhenDue, store);
  }

  /** How many key/hour/outcome entries wait to be written. */
  get waiting(): number {
    return this.counts.size;
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

  /** A window's end: writes what it gathered, unless a write failed since it opened (the retry waits its interval). */
  private readonly flushWhenDue = (store: UsageStore): Promise<void> => {
    const now = this.clock();
    return now < this.retryAt ? Promise.resolve() : this.flush(store, now);
  };

  /**
   * Writes every gathered count in one batch; on failure they are put back, and no flush starts before
   * USAGE_RETRY_MS later. Two writes may overlap (a full batch while a window's is in flight): each takes
   * its own counts, and D1 adds them up.
   */
  async flush(store: UsageStore, now = this.clock()): Promise<void> {
    if (this.counts.size === 0) return;
    this.dropLogged = false;
    const batch = [...this.counts.values()];
    this.counts.clear();
    try {
      await store.add(batch);
    } catch (error) {
      log("warn", "usage_counts_write_failed", { error: describeError(error) });
      // Counts another database took stay written: only the rest go back (never counted twice).
      const back = error instanceof PartlyWrittenError ? error.unwritten : batch;
      for (const c of back) this.put(c.keyId, c.hour, c.outcome, c.count);
      // Retried an interval after this attempt (not at once: no write per request while D1 is down),
      // even when USAGE_FLUSH_ENTRIES counts wait.
      this.retryAt = now + USAGE_RETRY_MS;
    }
  }

  clear(): void {
    this.counts.clear();
    this.window.clear();
    this.retryAt = 0;
    this.dropLogged = false;
  }
}
