/**
 * Last-use writes gathered per isolate (service/last-use.ts): a queued use waits for the window and goes
 * with every use queued meanwhile, a full batch goes at once, a key is queued at most once a minute, a
 * failed write lets the keys' next uses queue them again, and a flush that never ended is replaced.
 * The window is driven by hand here (a wait the test releases); over HTTP, the last test.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { LAST_USED_INTERVAL_MS, LastUses, type LastUseStore, lastUseTiming } from "../../src/service/last-use";
import { isolateCache } from "../../src/service/isolate-cache";
import { TOUCH_BATCH } from "../../src/store/store";
import { handWindow } from "../hand-window";
import { call, captureLogs, createKey, envWith, token, uniqueSub } from "../helpers";

/** A store that records each write (ids and time) and may fail. */
function recordingStore() {
  const writes: { ids: string[]; at: number }[] = [];
  const store: LastUseStore & { failing: boolean } = {
    failing: false,
    async touchLastUsed(ids, at, minIntervalMs) {
      expect(minIntervalMs).toBe(LAST_USED_INTERVAL_MS);
      if (this.failing) throw new Error("D1 is down");
      writes.push({ ids: [...ids], at });
    },
  };
  return { store, writes };
}

/** A moment in epoch milliseconds (the queue compares times with its last flush's start, 0 when none). */
const T = 1_800_000_000_000;
const WINDOW = lastUseTiming.windowMs;
afterEach(() => {
  lastUseTiming.windowMs = WINDOW;
});

describe("last uses gathered per isolate", () => {
  it("wait for the window, then go together in one write at the newest time", async () => {
    lastUseTiming.windowMs = 15_000;
    const window = handWindow();
    const uses = new LastUses(window.wait);
    const { store, writes } = recordingStore();
    const flush = uses.note("k1", null, T + 1_000, store);
    expect(flush).not.toBeNull();
    // Queued meanwhile: no second flush.
    expect(uses.note("k2", null, T + 2_000, store)).toBeNull();
    expect(uses.note("k3", T + 1_000 - LAST_USED_INTERVAL_MS, T + 3_000, store)).toBeNull();
    await Promise.resolve();
    expect(writes).toEqual([]);
    expect(window.waits()).toBe(1);
    window.release();
    await flush;
    expect(writes).toEqual([{ ids: ["k1", "k2", "k3"], at: T + 3_000 }]);
    expect(uses.waiting).toBe(0);
  });

  it("queue a key at most once a minute, and not while its stored last use is under a minute old", async () => {
    lastUseTiming.windowMs = 0;
    const uses = new LastUses();
    const { store, writes } = recordingStore();
    await uses.note("k1", null, T + 100_000, store);
    expect(uses.note("k1", null, T + 100_000 + LAST_USED_INTERVAL_MS - 1, store)).toBeNull();
    expect(uses.note("k2", T + 100_000, T + 100_000 + LAST_USED_INTERVAL_MS - 1, store)).toBeNull();
    expect(uses.waiting).toBe(0);
    await uses.note("k1", null, T + 100_000 + LAST_USED_INTERVAL_MS, store);
    expect(writes.map((w) => w.ids)).toEqual([["k1"], ["k1"]]);
  });

  it("write a full batch at once, without waiting for the window", async () => {
    lastUseTiming.windowMs = 15_000;
    const window = handWindow();
    const uses = new LastUses(window.wait);
    const { store, writes } = recordingStore();
    const ids = Array.from({ length: TOUCH_BATCH + 1 }, (_, i) => `k${i}`);
    const works = ids.map((id, i) => uses.note(id, null, T + 1_000 + i, store));
    // The first use started the window; the one that filled a batch wrote it.
    expect(works.filter((work) => work !== null)).toHaveLength(2);
    await works[TOUCH_BATCH - 1];
    expect(writes).toEqual([{ ids: ids.slice(0, TOUCH_BATCH), at: T + 1_000 + TOUCH_BATCH - 1 }]);
    expect(uses.waiting).toBe(1);
    window.release();
    await works[0];
    expect(writes[1]).toEqual({ ids: [ids[TOUCH_BATCH]], at: T + 1_000 + TOUCH_BATCH });
  });

  it("after a failed write, log it once and let the keys' next uses queue them again", async () => {
    lastUseTiming.windowMs = 0;
    const uses = new LastUses();
    const { store, writes } = recordingStore();
    const logs = captureLogs();
    try {
      store.failing = true;
      await uses.note("k1", null, T + 1_000, store);
      expect(logs.events("last_used_update_failed")).toHaveLength(1);
      store.failing = false;
      await uses.note("k1", null, T + 2_000, store);
      expect(writes).toEqual([{ ids: ["k1"], at: T + 2_000 }]);
    } finally {
      logs.restore();
    }
  });

  it("start a new flush when the one waiting never ended (its request was cancelled)", async () => {
    lastUseTiming.windowMs = 15_000;
    const window = handWindow();
    const uses = new LastUses(window.wait);
    const { store } = recordingStore();
    expect(uses.note("k1", null, T + 1_000, store)).not.toBeNull();
    expect(uses.note("k2", null, T + 40_000, store)).toBeNull();
    expect(uses.note("k3", null, T + 50_000, store)).not.toBeNull();
  });
});

describe("last uses over HTTP", () => {
  it("of keys used together in one isolate go in one UPDATE after the window", async () => {
    lastUseTiming.windowMs = 2_500;
    const jwt = await token(uniqueSub());
    const keys = await Promise.all(Array.from({ length: 20 }, () => createKey(jwt)));
    isolateCache.clear(); // every key is now due for its first last-use write
    const updates: number[] = [];
    const counting: D1Database = new Proxy(env.DB, {
      get(target, prop) {
        if (prop !== "prepare") return Reflect.get(target, prop, target);
        return (sql: string) => {
          const statement = target.prepare(sql);
          if (!sql.startsWith("UPDATE api_keys SET last_used_at")) return statement;
          return {
            bind: (...values: unknown[]) => {
              updates.push(values.length - 2); // the ids: all values but the time and the guard
              return statement.bind(...values);
            },
          };
        };
      },
    });
    const responses = await Promise.all(
      keys.map(({ key }) => call("GET", "/v1/whoami", { auth: key, env: envWith({ DB: counting }) })),
    );
    expect(responses.map((r) => r.status)).toEqual(keys.map(() => 200));
    expect(updates).toEqual([20]);
    const { results } = await env.DB.prepare(
      `SELECT last_used_at FROM api_keys WHERE id IN (${keys.map(() => "?").join(", ")})`,
    )
      .bind(...keys.map((k) => k.id))
      .all<{ last_used_at: number | null }>();
    expect(results.every((row) => row.last_used_at !== null)).toBe(true);
  });
});
