/**
 * Verification counts gathered per isolate (service/usage-tally.ts): the first count opens a window and
 * its work writes every count gathered meanwhile when the window ends, with no later request (an idle
 * isolate's counts reach D1); a full tally is written at once; a failed write keeps the counts and is
 * retried only USAGE_RETRY_MS later, however many wait; a window whose request was cancelled is
 * replaced; at its bound the tally drops new counts with one warning. The window is ended by hand here;
 * over HTTP, the last test.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { isolateCache } from "../../src/service/isolate-cache";
import {
  USAGE_FLUSH_ENTRIES,
  USAGE_MAX_ENTRIES,
  USAGE_PENDING_MS,
  USAGE_RETRY_MS,
  USAGE_WINDOW_MS,
  UsageTally,
  usageTiming,
} from "../../src/service/usage-tally";
import { D1_TIMEOUT_MS } from "../../src/store/d1-sql";
import { D1UsageStore, type UsageCount, type UsageStore } from "../../src/store/usage-counts";
import { STALE_FLUSH_MS, WAIT_UNTIL_MS } from "../../src/util/flush-window";
import { handWindow } from "../hand-window";
import { call, captureLogs, createKey, envWith, token, uniqueSub } from "../helpers";

/** A store that records each write and may fail. */
function recordingStore() {
  const writes: UsageCount[][] = [];
  const store: UsageStore & { failing: boolean } = {
    failing: false,
    async add(counts) {
      if (this.failing) throw new Error("injected fault: D1");
      writes.push([...counts]);
    },
    read: async () => [],
  };
  return { store, writes };
}

/** A tally whose window the test ends and whose clock it sets. */
function handTally() {
  const window = handWindow();
  const clock = { now: 0 };
  const tally = new UsageTally(window.wait, () => clock.now);
  return { tally, window, clock };
}

const AT = Date.parse("2027-06-10T12:30:00Z");
const HOUR = Date.parse("2027-06-10T12:00:00Z");
const WINDOW = usageTiming.windowMs;
afterEach(() => {
  usageTiming.windowMs = WINDOW;
});

describe("verification counts gathered per isolate", () => {
  it("are written when the window the first count opened ends, with no later count (an idle isolate)", async () => {
    usageTiming.windowMs = 20_000;
    const { tally, window, clock } = handTally();
    const { store, writes } = recordingStore();
    const work = tally.add("k1", "VALID", AT, store);
    expect(work).not.toBeNull();
    // Counted meanwhile: no second window, no write.
    expect(tally.add("k1", "VALID", AT + 1_000, store)).toBeNull();
    expect(tally.add("k2", "RATE_LIMITED", AT + 2_000, store)).toBeNull();
    await Promise.resolve();
    expect(writes).toEqual([]);
    expect(window.asked).toEqual([20_000]);
    // No request comes: the work the first count deferred writes when the window ends.
    clock.now = AT + 20_000;
    window.release();
    await work;
    expect(writes).toEqual([
      [
        { keyId: "k1", hour: HOUR, outcome: "VALID", count: 2 },
        { keyId: "k2", hour: HOUR, outcome: "RATE_LIMITED", count: 1 },
      ],
    ]);
    expect(tally.waiting).toBe(0);
    // The next count opens the next window.
    expect(tally.add("k1", "VALID", AT + 21_000, store)).not.toBeNull();
  });

  it("fit the window and its write inside waitUntil's time after the response, so pending_from holds", () => {
    expect(USAGE_WINDOW_MS + D1_TIMEOUT_MS).toBeLessThan(WAIT_UNTIL_MS);
    expect(USAGE_WINDOW_MS + D1_TIMEOUT_MS).toBeLessThanOrEqual(USAGE_PENDING_MS);
    expect(USAGE_PENDING_MS).toBeLessThanOrEqual(USAGE_RETRY_MS);
  });

  it("write a full tally at once, without waiting for the window", async () => {
    usageTiming.windowMs = 20_000;
    const { tally, window } = handTally();
    const { store, writes } = recordingStore();
    const works = Array.from({ length: USAGE_FLUSH_ENTRIES }, (_, i) => tally.add(`k${i}`, "VALID", AT + i, store));
    // The first count opened the window; the one that filled the tally wrote it.
    expect(works.filter((work) => work !== null)).toHaveLength(2);
    await works[USAGE_FLUSH_ENTRIES - 1];
    expect(writes).toHaveLength(1);
    expect(writes[0]).toHaveLength(USAGE_FLUSH_ENTRIES);
    // The window's end finds nothing left to write.
    window.release();
    await works[0];
    expect(writes).toHaveLength(1);
  });

  it("after a failed write keep the counts and add them to the next one: nothing counted twice, nothing lost", async () => {
    const tally = new UsageTally();
    const written: UsageCount[] = [];
    let fail = (_: Error) => {};
    const failing: UsageStore = {
      add: () => new Promise<void>((_, reject) => void (fail = reject)),
      read: async () => [],
    };
    const working: UsageStore = { add: async (counts) => void written.push(...counts), read: async () => [] };
    const { store } = recordingStore();
    usageTiming.windowMs = Infinity; // flushed by hand here
    tally.add("k1", "VALID", AT, store);
    tally.add("k1", "VALID", AT + 1, store);
    const logs = captureLogs();
    const flushing = tally.flush(failing, AT + 2);
    tally.add("k1", "VALID", AT + 3, store); // while the write is in flight
    fail(new Error("injected fault: D1"));
    await flushing;
    logs.restore();
    expect(logs.raw).toEqual([expect.stringContaining("injected fault: D1")]);
    tally.add("k1", "RATE_LIMITED", AT + 4, store);
    await tally.flush(working, AT + USAGE_RETRY_MS + 3);
    expect(written.sort((a, b) => a.outcome.localeCompare(b.outcome))).toEqual([
      { keyId: "k1", hour: HOUR, outcome: "RATE_LIMITED", count: 1 },
      { keyId: "k1", hour: HOUR, outcome: "VALID", count: 3 },
    ]);
    await tally.flush(working);
    expect(written).toHaveLength(2);
  });

  it("after a failed write, start no flush for USAGE_RETRY_MS, however many counts wait: no write per request", async () => {
    usageTiming.windowMs = 20_000;
    const { tally, window, clock } = handTally();
    const { store, writes } = recordingStore();
    const opened = tally.add("first", "VALID", AT, store);
    for (let i = 1; i < USAGE_FLUSH_ENTRIES - 1; i++) tally.add(`k${i}`, "VALID", AT, store);
    store.failing = true;
    clock.now = AT + 20_000;
    const logs = captureLogs();
    window.release();
    await opened;
    logs.restore();
    expect(logs.events("usage_counts_write_failed")).toHaveLength(1);
    expect(tally.waiting).toBe(USAGE_FLUSH_ENTRIES - 1);
    store.failing = false;
    // The counts are back, more arrive (a full tally's worth), yet no count starts a write until the interval is over.
    const failedAt = AT + 20_000;
    for (let i = 0; i < 100; i++) expect(tally.add(`more${i}`, "VALID", failedAt + 1 + i, store)).toBeNull();
    expect(tally.waiting).toBeGreaterThan(USAGE_FLUSH_ENTRIES);
    expect(tally.add("k1", "VALID", failedAt + USAGE_RETRY_MS - 1, store)).toBeNull();
    expect(writes).toEqual([]);
    const retry = tally.add("k1", "VALID", failedAt + USAGE_RETRY_MS, store);
    expect(retry).not.toBeNull();
    await retry;
    expect(writes).toHaveLength(1);
    expect(writes[0]).toHaveLength(USAGE_FLUSH_ENTRIES - 1 + 100);
    expect(writes[0]?.find((c) => c.keyId === "k1")?.count).toBe(3);
  });

  it("write nothing when a window opened before a failed write ends before the retry interval", async () => {
    usageTiming.windowMs = 20_000;
    const { tally, window, clock } = handTally();
    const { store, writes } = recordingStore();
    const opened = tally.add("k1", "VALID", AT, store);
    store.failing = true;
    const logs = captureLogs();
    await tally.flush(store, AT + 1_000); // by hand, failing: the retry is USAGE_RETRY_MS later
    logs.restore();
    store.failing = false;
    clock.now = AT + 20_000;
    window.release();
    await opened;
    expect(writes).toEqual([]);
    expect(tally.waiting).toBe(1);
  });

  it("open a new window when the one open never ended (its request was cancelled)", async () => {
    usageTiming.windowMs = 20_000;
    // The first window's work is cancelled with its request: its wait never ends. Later ones end at once.
    let windows = 0;
    const wait = () => (windows++ === 0 ? new Promise<void>(() => {}) : Promise.resolve());
    const tally = new UsageTally(wait, () => AT + STALE_FLUSH_MS + 20_001);
    const { store, writes } = recordingStore();
    expect(tally.add("k1", "VALID", AT, store)).not.toBeNull();
    expect(tally.add("k2", "VALID", AT + STALE_FLUSH_MS, store)).toBeNull();
    const fresh = tally.add("k3", "VALID", AT + STALE_FLUSH_MS + 1, store);
    expect(fresh).not.toBeNull();
    await fresh;
    expect(writes.flat().map((c) => c.keyId)).toEqual(["k1", "k2", "k3"]);
  });

  it("at its bound, drop new counts and say so once per flush, not once per request", async () => {
    usageTiming.windowMs = Infinity; // flushed by hand here
    const tally = new UsageTally();
    const { store, writes } = recordingStore();
    const logs = captureLogs();
    try {
      store.failing = true;
      tally.add("k0", "VALID", AT, store);
      await tally.flush(store, AT); // fails: no flush for USAGE_RETRY_MS, so the counts below pile up
      store.failing = false;
      for (let i = 0; i < USAGE_MAX_ENTRIES; i++) expect(tally.add(`k${i}`, "VALID", AT + 1, store)).toBeNull();
      tally.add("over1", "VALID", AT + 1, store);
      tally.add("over2", "VALID", AT + 1, store);
      tally.add("k0", "VALID", AT + 1, store); // an entry already held still counts
    } finally {
      logs.restore();
    }
    expect(logs.events("usage_counts_write_failed")).toHaveLength(1);
    expect(logs.events("usage_counts_dropped")).toHaveLength(1);
    await tally.flush(store, AT + 2);
    const written = writes.flat();
    expect(written).toHaveLength(USAGE_MAX_ENTRIES);
    expect(written.find((c) => c.keyId === "k0")?.count).toBe(3);
    expect(written.some((c) => c.keyId.startsWith("over"))).toBe(false);
  });
});

describe("verification counts over HTTP", () => {
  it("of an isolate that then goes idle reach D1 in one write when the window ends, with no later request", async () => {
    const jwt = await token(uniqueSub());
    const { key, id } = await createKey(jwt, { scopes: ["models:invoke"] });
    await isolateCache.usage.flush(new D1UsageStore(env.DB)); // what earlier tests counted
    usageTiming.windowMs = 2_500;
    const inserts: number[] = [];
    const counting: D1Database = new Proxy(env.DB, {
      get(target, prop) {
        if (prop !== "prepare") return Reflect.get(target, prop, target);
        return (sql: string) => {
          const statement = target.prepare(sql);
          if (!sql.startsWith("INSERT INTO key_usage")) return statement;
          return {
            bind: (...values: unknown[]) => {
              inserts.push(values.length / 4); // rows: key, hour, outcome and count each
              return statement.bind(...values);
            },
          };
        };
      },
    });
    const responses = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        call("POST", "/v1/verify", {
          body: i < 4 ? { key } : { key, scope: "keys:write" },
          env: envWith({ DB: counting }),
        }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(responses.map(() => 200));
    // Every call has returned with its deferred work done: the first count's window ended and wrote
    // all six counts in one statement. No request follows.
    expect(inserts).toHaveLength(1);
    const { results } = await env.DB.prepare(
      "SELECT outcome, SUM(count) AS count FROM key_usage WHERE key_id = ? GROUP BY outcome ORDER BY outcome",
    )
      .bind(id)
      .all<{ outcome: string; count: number }>();
    expect(results).toEqual([
      { outcome: "INSUFFICIENT_SCOPE", count: 2 },
      { outcome: "VALID", count: 4 },
    ]);
    const report = await call("GET", `/v1/keys/${id}/usage`, { auth: jwt });
    const { buckets } = (await report.json()) as { buckets: { total: number }[] };
    expect(buckets.reduce((n, b) => n + b.total, 0)).toBe(6);
  });
});
