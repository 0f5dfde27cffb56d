/**
 * A windowed flush: what an isolate gathers for D1 without a write per request (last uses,
 * service/last-use.ts; verification counts, service/usage-tally.ts) is written by work that runs after a
 * response (waitUntil), not by a later request, so an isolate that goes idle still writes what it holds.
 *
 * The first item while no window is open opens one: `start` returns the work for the caller to defer,
 * which waits out the window and then writes everything gathered meanwhile. The window closes when its
 * wait ends, before the write, so an item that arrives while the write runs opens the next window (and
 * is written by it) rather than waiting for a request that may never come. Work cancelled with its
 * request (waitUntil's 30 s) never closes its window: an item STALE_FLUSH_MS after it opened opens a new
 * one. What to write, what a full batch or a failed write does: the owner's rules, in its `write`.
 *
 * Pure but for the timer, which is injected: tests end a window by hand.
 */

/** How long work deferred with waitUntil may run after the response; a window and its write fit inside. */
export const WAIT_UNTIL_MS = 30_000;

/** A window open this long was cancelled with its request (waitUntil's limit has passed, with room to spare). */
export const STALE_FLUSH_MS = 45_000;

/**
 * How long the first item waits for others. Mutable for tests: 0 writes at once; Infinity opens no window
 * (only what the owner writes itself, such as a full batch or an explicit flush, reaches D1).
 */
export interface FlushTiming {
  windowMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One isolate's window for one kind of batch. */
export class FlushWindow {
  /** When the open window opened (0: none). */
  private openedAt = 0;

  constructor(
    private readonly timing: FlushTiming,
    private readonly wait: (ms: number) => Promise<void> = sleep,
  ) {}

  /**
   * An item gathered at `now`: when it opens a window, the work to defer (wait out the window, then
   * `write(arg)`; `write` handles its own failures), else null. `write` and `arg` are passed apart so
   * that an item that opens nothing allocates nothing.
   */
  start<T>(now: number, write: (arg: T) => Promise<void>, arg: T): Promise<void> | null {
    if (this.openedAt !== 0 && now - this.openedAt <= STALE_FLUSH_MS) return null;
    if (this.timing.windowMs === Infinity) return null;
    return this.run(now, write, arg);
  }

  /** Whether a window is open (its wait not over). */
  get open(): boolean {
    return this.openedAt !== 0;
  }

  private async run<T>(now: number, write: (arg: T) => Promise<void>, arg: T): Promise<void> {
    this.openedAt = now;
    if (this.timing.windowMs > 0) await this.wait(this.timing.windowMs);
    // Closed before the write: what arrives during it opens the next window. (A stale window replaced
    // meanwhile, or a clear(), is not this one's to close.)
    if (this.openedAt === now) this.openedAt = 0;
    await write(arg);
  }

  clear(): void {
    this.openedAt = 0;
  }
}
