/**
 * Last-use times without a write per request. A key's successful use is queued at most once a minute
 * per isolate (and not at all while its stored last use is under a minute old); the queued uses are
 * written together after the response (waitUntil), once the first has waited `lastUseTiming.windowMs`
 * (util/flush-window.ts: the window is closed by work the first use starts, not by a later request), in
 * conditional UPDATEs of up to TOUCH_BATCH keys (store.touchLastUsed; D1 keeps the newest time and
 * guards the minute again, across isolates). A batch that fills meanwhile is written at once.
 *
 * So an isolate makes about one last-use write per window, however many keys it sees, instead of one
 * per key and round trip; a use is written within the window (15 s) and the write's budget, and only an
 * isolate that dies inside them loses what it queued. docs/design.md says what "used" means;
 * bench/capacity.mjs models it.
 */
import { describeError, log } from "../log";
import { TOUCH_BATCH } from "../store/store";
import { FlushWindow } from "../util/flush-window";
import { TtlLru } from "../util/lru";

/** A key's last use is written at most this often. */
export const LAST_USED_INTERVAL_MS = 60_000;

/**
 * How long a queued use waits for others to be written with it (tests set 0: written at once). With
 * FLUSH_BUDGET_MS it stays inside waitUntil's 30 s after the response (WAIT_UNTIL_MS).
 */
export const lastUseTiming = { windowMs: 15_000 };

/** How long one flush may keep writing once its window is over (it writes batch after batch). */
const FLUSH_BUDGET_MS = 10_000;

/** Where last uses go (store/store.ts KeyStore). */
export interface LastUseStore {
  touchLastUsed(ids: readonly string[], at: number, minIntervalMs: number): Promise<void>;
}

/** This isolate's queue of last uses (one per isolate, in service/isolate-cache.ts). */
export class LastUses {
  /** When this isolate last queued each key's use (so it queues it at most once a minute). */
  private readonly queued = new TtlLru<string, number>(10_000, LAST_USED_INTERVAL_MS);
  /** Key ids whose use is due to be written, with when. */
  private readonly pending = new Map<string, number>();
  /** The window the first queued use opens (util/flush-window.ts). */
  private readonly window: FlushWindow;

  constructor(wait?: (ms: number) => Promise<void>) {
    this.window = new FlushWindow(lastUseTiming, wait);
  }

  /**
   * Notes a successful use of key `id` (its stored last use `lastUsedAt`) at `now`: the work to run
   * after the response when this use opens a window or fills a batch, else null.
   */
  note(id: string, lastUsedAt: number | null, now: number, store: LastUseStore): Promise<void> | null {
    const last = Math.max(lastUsedAt ?? 0, this.queued.get(id, now) ?? 0);
    if (now - last < LAST_USED_INTERVAL_MS) return null;
    this.queued.set(id, now, now);
    this.pending.set(id, now);
    if (this.pending.size >= TOUCH_BATCH) return this.write(this.take(), store).catch((error) => this.failed(error));
    return this.window.start(now, this.flush, store);
  }

  /** How many uses wait to be written. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Once the window is over: writes every queued use, a batch at a time, within the budget. */
  private readonly flush = async (store: LastUseStore): Promise<void> => {
    try {
      const started = Date.now();
      // What is left past the budget waits for the next use to open another window.
      while (this.pending.size > 0 && Date.now() - started < FLUSH_BUDGET_MS) {
        await this.write(this.take(), store);
      }
    } catch (error) {
      this.failed(error, [...this.pending.keys()]);
      this.pending.clear();
    }
  };

  /** Up to TOUCH_BATCH queued uses, out of the queue: their ids and the newest time among them. */
  private take(): { ids: string[]; at: number } {
    const ids: string[] = [];
    let at = 0;
    for (const [id, usedAt] of this.pending) {
      ids.push(id);
      at = Math.max(at, usedAt);
      if (ids.length === TOUCH_BATCH) break;
    }
    for (const id of ids) this.pending.delete(id);
    return { ids, at };
  }

  /** One conditional write; on failure the batch's keys may be queued again by their next use. */
  private async write({ ids, at }: { ids: string[]; at: number }, store: LastUseStore): Promise<void> {
    try {
      await store.touchLastUsed(ids, at, LAST_USED_INTERVAL_MS);
    } catch (error) {
      for (const id of ids) this.queued.delete(id);
      throw error;
    }
  }

  /** A failed write is logged once; the uses still queued with it (`dropped`) are given up too. */
  private failed(error: unknown, dropped: readonly string[] = []): void {
    for (const id of dropped) this.queued.delete(id);
    log("warn", "last_used_update_failed", { error: describeError(error) });
  }

  clear(): void {
    this.queued.clear();
    this.pending.clear();
    this.window.clear();
  }
}
