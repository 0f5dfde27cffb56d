/**
 * The windowed flush shared by last uses and verification counts (util/flush-window.ts): the first item
 * opens a window whose work waits it out and then writes, with no later item needed; items meanwhile
 * open nothing; the window closes before the write, so an item during the write opens the next one; a
 * window whose request was cancelled is replaced after STALE_FLUSH_MS. The wait is ended by hand.
 */
import { describe, expect, it } from "vitest";
import { FlushWindow, STALE_FLUSH_MS, WAIT_UNTIL_MS } from "../../src/util/flush-window";
import { handWindow } from "../hand-window";

/** A write that records its argument and, while `hold` is set, does not finish until `finish()`. */
function recordingWrite() {
  const written: string[] = [];
  let finishing: (() => void)[] = [];
  const state = { hold: false };
  const write = async (arg: string) => {
    written.push(arg);
    if (state.hold) await new Promise<void>((resolve) => finishing.push(resolve));
  };
  const finish = () => {
    const now = finishing;
    finishing = [];
    now.forEach((go) => go());
  };
  return { write, written, state, finish };
}

const T = 1_800_000_000_000;

describe("a windowed flush", () => {
  it("is opened by the first item: its work waits out the window, then writes, with no later item", async () => {
    const window = handWindow();
    const flushes = new FlushWindow({ windowMs: 20_000 }, window.wait);
    const { write, written } = recordingWrite();
    const work = flushes.start(T, write, "first");
    expect(work).not.toBeNull();
    expect(flushes.open).toBe(true);
    // Items while it is open open nothing.
    expect(flushes.start(T + 1_000, write, "second")).toBeNull();
    expect(flushes.start(T + STALE_FLUSH_MS, write, "third")).toBeNull();
    await Promise.resolve();
    expect(window.asked).toEqual([20_000]);
    expect(written).toEqual([]);
    window.release();
    await work;
    expect(written).toEqual(["first"]);
    expect(flushes.open).toBe(false);
  });

  it("closes before the write: an item during the write opens the next window", async () => {
    const window = handWindow();
    const flushes = new FlushWindow({ windowMs: 20_000 }, window.wait);
    const { write, written, state, finish } = recordingWrite();
    state.hold = true;
    const first = flushes.start(T, write, "first");
    window.release();
    await Promise.resolve();
    await Promise.resolve();
    expect(written).toEqual(["first"]); // writing, not finished
    const next = flushes.start(T + 20_001, write, "next");
    expect(next).not.toBeNull();
    state.hold = false;
    finish();
    await first;
    expect(flushes.open).toBe(true); // the first's end did not close the next one
    window.release();
    await next;
    expect(written).toEqual(["first", "next"]);
  });

  it("replaces a window that never ended (its request was cancelled) after STALE_FLUSH_MS, not before", async () => {
    const window = handWindow();
    const flushes = new FlushWindow({ windowMs: 20_000 }, window.wait);
    const { write, written } = recordingWrite();
    const cancelled = flushes.start(T, write, "cancelled");
    expect(cancelled).not.toBeNull();
    expect(flushes.start(T + STALE_FLUSH_MS, write, "too soon")).toBeNull();
    const fresh = flushes.start(T + STALE_FLUSH_MS + 1, write, "fresh");
    expect(fresh).not.toBeNull();
    // Waiting for the window and writing stay inside waitUntil's time; a stale window is past it.
    expect(20_000 + 5_000).toBeLessThan(WAIT_UNTIL_MS);
    expect(STALE_FLUSH_MS).toBeGreaterThan(WAIT_UNTIL_MS);
    window.release();
    await Promise.all([cancelled, fresh]);
    expect(written).toEqual(["cancelled", "fresh"]);
  });

  it("writes at once with a window of 0, and opens none with a window of Infinity", async () => {
    const window = handWindow();
    const { write, written } = recordingWrite();
    const atOnce = new FlushWindow({ windowMs: 0 }, window.wait);
    const work = atOnce.start(T, write, "now");
    expect(written).toEqual(["now"]); // before any await
    await work;
    expect(window.asked).toEqual([]);
    expect(atOnce.open).toBe(false);
    const never = new FlushWindow({ windowMs: Infinity }, window.wait);
    expect(never.start(T, write, "never")).toBeNull();
    expect(never.open).toBe(false);
    expect(written).toEqual(["now"]);
  });

  it("reads the window when it opens, so a test can set it", async () => {
    const window = handWindow();
    const timing = { windowMs: Infinity };
    const flushes = new FlushWindow(timing, window.wait);
    const { write } = recordingWrite();
    expect(flushes.start(T, write, "a")).toBeNull();
    timing.windowMs = 5;
    const work = flushes.start(T, write, "b");
    expect(window.asked).toEqual([5]);
    flushes.clear();
    expect(flushes.open).toBe(false);
    window.release();
    await work;
  });
});
