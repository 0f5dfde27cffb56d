/**
 * Warnings latchkey writes to the audit log on its own, as actor `latchkey`: `expiring` (EXPIRY_WARNING_DAYS
 * before a key's expiry) and `expired`, from the expiry scan of the Cron Trigger (its clock is the
 * trigger's scheduled time, set here); `credits_low` and `credits_exhausted`, found by the key chain's
 * counter (its clock: counterClock) and written by its alarm. Each exactly once, re-armed by a new
 * expiry or a new credit period; none for revoked keys; nothing on the hot path of keys without credits.
 */
import {
  createExecutionContext,
  runDurableObjectAlarm,
  runInDurableObject,
  waitOnExecutionContext,
} from "cloudflare:test";
import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import worker from "../../src/index";
import type { Env } from "../../src/env";
import { type KeyLimits, applyUsage, type CounterState } from "../../src/keys/limit-arithmetic";
import {
  DAY_MS,
  EXPIRED_LOOKBACK_MS,
  expiryWindows,
  lowThreshold,
  parseExpiryWarningDays,
} from "../../src/keys/warnings";
import { scanExpiry } from "../../src/service/warnings";
import { counterClock, counterWarnings } from "../../src/store/counter";
import { D1WarningStore, type WarningStore } from "../../src/store/warnings";
import { call, captureLogs, createKey, envWith, recordingEnv, token, uniqueSub, type CapturedLogs } from "../helpers";

// The service's log lines (info on changes, warnings on refusals) are captured, not printed: the run stays quiet.
let quiet: CapturedLogs;
beforeEach(() => {
  quiet = captureLogs();
});
afterEach(() => quiet.restore());

interface EventView {
  id: string;
  key_id: string;
  action: string;
  actor: string;
  at: string;
  changes: Record<string, { old: unknown; new: unknown }>;
  ip: string | null;
  user_agent: string | null;
}

const WARNINGS = ["expiring", "expired", "credits_low", "credits_exhausted"];

async function warningsOf(jwt: string, id: string): Promise<EventView[]> {
  const response = await call("GET", `/v1/keys/${id}/events?limit=100`, { auth: jwt });
  expect(response.status).toBe(200);
  const { data } = await response.json<{ data: EventView[] }>();
  // Oldest first; warnings found in one step (one `at`) in the order they are named in WARNINGS.
  return data
    .filter((event) => WARNINGS.includes(event.action))
    .sort((a, b) => a.at.localeCompare(b.at) || WARNINGS.indexOf(a.action) - WARNINGS.indexOf(b.action));
}

async function runCron(at: number, testEnv: Env = env): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ cron: "17 * * * *", scheduledTime: at }), testEnv, ctx);
  await waitOnExecutionContext(ctx);
}

const HOUR_MS = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

afterEach(() => {
  counterClock.now = () => Date.now();
  counterWarnings.storeFor = (db) => new D1WarningStore(db);
});

describe("EXPIRY_WARNING_DAYS and the windows of the scan", () => {
  it("parses a comma list of days, largest first; empty means none; nonsense is refused for the default", () => {
    expect(parseExpiryWarningDays(undefined)).toEqual({ thresholdsMs: [7 * DAY_MS, DAY_MS], error: null });
    expect(parseExpiryWarningDays("1, 7").thresholdsMs).toEqual([7 * DAY_MS, DAY_MS]);
    expect(parseExpiryWarningDays("0.5,30,30").thresholdsMs).toEqual([30 * DAY_MS, DAY_MS / 2]);
    expect(parseExpiryWarningDays("")).toEqual({ thresholdsMs: [], error: null });
    for (const bad of ["0", "-1", "seven", "400", "1,2,3,4,5,6,7,8,9,10,11"]) {
      const parsed = parseExpiryWarningDays(bad);
      expect(parsed.thresholdsMs, bad).toEqual([7 * DAY_MS, DAY_MS]);
      expect(parsed.error, bad).toMatch(/^EXPIRY_WARNING_DAYS must be/);
    }
  });

  it("gives each threshold the band down to the next one, and `expired` a day back", () => {
    const now = 1_000 * DAY_MS;
    expect(expiryWindows([7 * DAY_MS, DAY_MS], now)).toEqual([
      {
        action: "expiring",
        warning: `expiring:${7 * DAY_MS}`,
        thresholdMs: 7 * DAY_MS,
        from: now + DAY_MS,
        to: now + 7 * DAY_MS,
      },
      { action: "expiring", warning: `expiring:${DAY_MS}`, thresholdMs: DAY_MS, from: now, to: now + DAY_MS },
      { action: "expired", warning: "expired", thresholdMs: null, from: now - EXPIRED_LOOKBACK_MS, to: now },
    ]);
  });
});

describe("the expiry scan", () => {
  it("writes the 7-day warning, then the 1-day one, then `expired`, each once, as latchkey with no origin", async () => {
    const jwt = await token(uniqueSub());
    const expiresAt = Date.now() + 3 * DAY_MS;
    const key = await createKey(jwt, { name: "soon", expires_at: iso(expiresAt) });

    await runCron(Date.now());
    await runCron(Date.now() + HOUR_MS); // still inside the 7-day band: nothing new
    let events = await warningsOf(jwt, key.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      action: "expiring",
      actor: "latchkey",
      ip: null,
      user_agent: null,
      changes: { expires_at: { old: iso(expiresAt), new: iso(expiresAt) }, threshold_days: { old: null, new: 7 } },
    });

    await runCron(expiresAt - 12 * HOUR_MS);
    await runCron(expiresAt - 11 * HOUR_MS);
    events = await warningsOf(jwt, key.id);
    expect(events.map((e) => [e.action, e.changes.threshold_days?.new])).toEqual([
      ["expiring", 7],
      ["expiring", 1],
    ]);
    expect(events[1]?.at).toBe(iso(expiresAt - 12 * HOUR_MS));

    await runCron(expiresAt + HOUR_MS);
    await runCron(expiresAt + 2 * HOUR_MS);
    events = await warningsOf(jwt, key.id);
    expect(events.map((e) => e.action)).toEqual(["expiring", "expiring", "expired"]);
    expect(events[2]?.changes).toEqual({ expires_at: { old: iso(expiresAt), new: iso(expiresAt) } });
  });

  it("warns a key first found inside the last band once, with that band's threshold only", async () => {
    const jwt = await token(uniqueSub());
    const expiresAt = Date.now() + 12 * HOUR_MS;
    const key = await createKey(jwt, { expires_at: iso(expiresAt) });
    await runCron(Date.now());
    const events = await warningsOf(jwt, key.id);
    expect(events.map((e) => [e.action, e.changes.threshold_days?.new])).toEqual([["expiring", 1]]);
  });

  it("re-arms when the expiry changes: the new date is warned again", async () => {
    const jwt = await token(uniqueSub());
    const first = Date.now() + 2 * DAY_MS;
    const key = await createKey(jwt, { expires_at: iso(first) });
    await runCron(Date.now());
    const later = first + 3 * DAY_MS;
    const patched = await call("PATCH", `/v1/keys/${key.id}`, { auth: jwt, body: { expires_at: iso(later) } });
    expect(patched.status).toBe(200);
    await runCron(Date.now() + HOUR_MS);
    const events = await warningsOf(jwt, key.id);
    expect(events.map((e) => e.changes.expires_at?.new)).toEqual([iso(first), iso(later)]);
  });

  it("writes nothing for revoked keys, keys replaced by rotation, or keys long expired", async () => {
    const jwt = await token(uniqueSub());
    const expiresAt = Date.now() + 2 * DAY_MS;
    const revoked = await createKey(jwt, { expires_at: iso(expiresAt) });
    expect((await call("DELETE", `/v1/keys/${revoked.id}`, { auth: jwt })).status).toBe(204);
    const rotated = await createKey(jwt, { expires_at: iso(expiresAt) });
    expect(
      (await call("POST", `/v1/keys/${rotated.id}/rotate`, { auth: jwt, body: { grace_seconds: 3600 } })).status,
    ).toBe(201);
    const old = await createKey(jwt, { expires_at: iso(expiresAt) });
    await runCron(Date.now());
    await runCron(expiresAt + HOUR_MS);
    expect(await warningsOf(jwt, revoked.id)).toEqual([]);
    expect(await warningsOf(jwt, rotated.id)).toEqual([]);
    // A key whose expiry passed more than a day before the scan is not announced (a scan long missed).
    const none = await createKey(jwt, { expires_at: iso(expiresAt) });
    await runCron(expiresAt + EXPIRED_LOOKBACK_MS + HOUR_MS);
    expect(await warningsOf(jwt, none.id)).toEqual([]);
    expect((await warningsOf(jwt, old.id)).map((e) => e.action)).toEqual(["expiring", "expired"]);
  });

  it("run twice at once writes each warning once", async () => {
    const jwt = await token(uniqueSub());
    const expiresAt = Date.now() + 5 * DAY_MS;
    const keys = await Promise.all([1, 2, 3, 4].map(() => createKey(jwt, { expires_at: iso(expiresAt) })));
    const store = new D1WarningStore(env.DB);
    const now = Date.now();
    await Promise.all([scanExpiry(store, [7 * DAY_MS, DAY_MS], now), scanExpiry(store, [7 * DAY_MS, DAY_MS], now)]);
    await Promise.all([runCron(now), runCron(now)]);
    for (const key of keys) expect((await warningsOf(jwt, key.id)).map((e) => e.action)).toEqual(["expiring"]);
  });

  it("is bounded: one batch warns at most its limit, the next goes on", async () => {
    const jwt = await token(uniqueSub());
    const expiresAt = Date.now() + 90 * DAY_MS + Math.floor(Math.random() * HOUR_MS);
    const keys = await Promise.all([1, 2, 3].map(() => createKey(jwt, { expires_at: iso(expiresAt) })));
    const store = new D1WarningStore(env.DB);
    // A window holding exactly these keys (their expiry is to the millisecond theirs).
    const window = {
      action: "expiring",
      warning: "expiring:1",
      thresholdMs: DAY_MS,
      from: expiresAt - 1,
      to: expiresAt,
    } as const;
    expect(await store.expiryWarnings(window, Date.now(), 2)).toBe(2);
    expect(await store.expiryWarnings(window, Date.now(), 2)).toBe(1);
    expect(await store.expiryWarnings(window, Date.now(), 2)).toBe(0);
    for (const key of keys) expect(await warningsOf(jwt, key.id)).toHaveLength(1);
  });

  it("follows EXPIRY_WARNING_DAYS; empty: `expired` only", async () => {
    const jwt = await token(uniqueSub());
    const expiresAt = Date.now() + 20 * DAY_MS;
    const key = await createKey(jwt, { expires_at: iso(expiresAt) });
    await runCron(Date.now(), envWith({ EXPIRY_WARNING_DAYS: "30" }));
    const quiet = await createKey(jwt, { expires_at: iso(expiresAt) });
    await runCron(expiresAt - HOUR_MS, envWith({ EXPIRY_WARNING_DAYS: "" }));
    await runCron(expiresAt + HOUR_MS, envWith({ EXPIRY_WARNING_DAYS: "" }));
    expect((await warningsOf(jwt, key.id)).map((e) => e.changes.threshold_days?.new ?? e.action)).toEqual([
      30,
      "expired",
    ]);
    expect((await warningsOf(jwt, quiet.id)).map((e) => e.action)).toEqual(["expired"]);
  });
});

describe("credit warnings, as rules", () => {
  const credits = (remaining: number, extra: Record<string, unknown> = {}): KeyLimits => ({
    ratelimits: [],
    credits: { remaining, refill: null, ...extra },
  });
  const fresh = (): CounterState => ({ credits: null, buckets: {} });
  const kinds = (state: CounterState, limits: KeyLimits, cost: number, now = 1) =>
    (applyUsage(state, limits, cost, now).warnings ?? []).map((w) => w.kind);

  it("default threshold: 10 % of the last set or refill, rounded up; the key's own when set", () => {
    expect(lowThreshold(null, 100)).toBe(10);
    expect(lowThreshold(undefined, 95)).toBe(10);
    expect(lowThreshold(3, 100)).toBe(3);
    expect(lowThreshold(0, 100)).toBe(0);
  });

  it("low once below the threshold, exhausted once at 0, both in one step when it jumps", () => {
    const state = fresh();
    const limits = credits(100);
    expect(kinds(state, limits, 90)).toEqual([]); // 10 left: not below 10
    expect(kinds(state, limits, 1)).toEqual(["low"]); // 9
    expect(kinds(state, limits, 1)).toEqual([]); // 8: once
    expect(kinds(state, limits, 8)).toEqual(["exhausted"]);
    expect(kinds(state, limits, 1)).toEqual([]); // refused at 0: once
    expect(kinds(state, limits, 0)).toEqual([]);
    const jump = fresh();
    expect(kinds(jump, credits(50), 50)).toEqual(["low", "exhausted"]);
  });

  it("re-arms when an add, a set or a refill takes the balance back to the threshold", () => {
    const state = fresh();
    const rule = { remaining: 100, refill: null };
    expect(kinds(state, { ratelimits: [], credits: rule }, 100)).toEqual(["low", "exhausted"]);
    const period = state.credits?.period ?? 0;
    // An add of 5: still below 10, so no new period (nothing new at 0 either).
    const added = { ...rule, added: 5 };
    expect(kinds(state, { ratelimits: [], credits: added }, 5, 2)).toEqual([]);
    expect(state.credits?.period ?? 0).toBe(period);
    // An add of 50 more: a new period; spending it down warns again.
    const more = { ...rule, added: 55 };
    expect(kinds(state, { ratelimits: [], credits: more }, 45, 3)).toEqual(["low"]);
    expect(state.credits?.period).toBeGreaterThan(period);
    expect(kinds(state, { ratelimits: [], credits: more }, 5, 4)).toEqual(["exhausted"]);
    // A refill (daily) tops it up to 20: the threshold is now 2, and a new period starts.
    const refilled = { ...more, refill: { amount: 20, interval: "day" as const } };
    expect(kinds(state, { ratelimits: [], credits: refilled }, 0, 5 * DAY_MS)).toEqual([]);
    expect(kinds(state, { ratelimits: [], credits: refilled }, 18, 5 * DAY_MS + 1)).toEqual([]); // 2 left: not below 2
    expect(kinds(state, { ratelimits: [], credits: refilled }, 1, 5 * DAY_MS + 2)).toEqual(["low"]);
  });

  it("a threshold of 0 never warns low, and a balance stuck at 0 is exhausted once", () => {
    const state = fresh();
    const limits = credits(3, { low_threshold: 0 });
    expect(kinds(state, limits, 3)).toEqual(["exhausted"]);
    for (let i = 0; i < 3; i++) expect(kinds(state, limits, 1, 2 + i)).toEqual([]);
  });
});

/** The chain's counter (a key's own id, unless it inherited another's). */
const counterOf = (chain: string) => env.USAGE_COUNTER!.get(env.USAGE_COUNTER!.idFromName(chain));

/**
 * Runs the counter's alarm now (it may already be running on its own) until it has nothing left to
 * write, so its events are in D1. Bounded: a write that keeps failing leaves it kept.
 */
async function flush(chain: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    await runDurableObjectAlarm(counterOf(chain));
    const pending = await runInDurableObject(counterOf(chain), (_, state) => state.storage.kv.get("pending_warnings"));
    if (pending === undefined) return;
    await scheduler.wait(10);
  }
}

const verify = async (key: string, cost: number) => {
  const response = await call("POST", "/v1/verify", { body: { key, cost } });
  expect(response.status).toBe(200);
  return response.json<{ code: string; credits?: { remaining: number } }>();
};

describe("credit warnings of a key", () => {
  it("writes credits_low and credits_exhausted once each per period, re-armed by an add", async () => {
    const jwt = await token(uniqueSub());
    const { id, key } = await createKey(jwt, { credits: { remaining: 100 } });
    expect((await verify(key, 90)).credits?.remaining).toBe(10);
    await flush(id);
    expect(await warningsOf(jwt, id)).toEqual([]);
    await verify(key, 1);
    await verify(key, 1);
    await flush(id);
    const low = await warningsOf(jwt, id);
    expect(low).toHaveLength(1);
    expect(low[0]).toMatchObject({
      action: "credits_low",
      actor: "latchkey",
      ip: null,
      user_agent: null,
      changes: { credits_remaining: { old: 10, new: 9 }, low_threshold: { old: null, new: 10 } },
    });
    await verify(key, 8);
    await verify(key, 1); // refused at 0
    await flush(id);
    expect((await warningsOf(jwt, id)).map((e) => e.action)).toEqual(["credits_low", "credits_exhausted"]);

    const add = await call("POST", `/v1/keys/${id}/credits`, { auth: jwt, body: { op: "increment", amount: 50 } });
    expect(add.status).toBe(200);
    await verify(key, 45);
    await flush(id);
    expect((await warningsOf(jwt, id)).map((e) => e.action)).toEqual([
      "credits_low",
      "credits_exhausted",
      "credits_low",
    ]);
  });

  it("takes the key's own low_threshold, shown in its view, validated", async () => {
    const jwt = await token(uniqueSub());
    const created = await createKey(jwt, { credits: { remaining: 100, low_threshold: 50 } });
    expect(created.credits).toEqual({ remaining: 100, refill: null, low_threshold: 50 });
    await verify(created.key, 51);
    await flush(created.id);
    expect((await warningsOf(jwt, created.id)).map((e) => e.changes.low_threshold?.new)).toEqual([50]);

    const bad = await call("POST", "/v1/keys", { auth: jwt, body: { credits: { remaining: 1, low_threshold: -1 } } });
    expect(bad.status).toBe(422);
    expect(JSON.stringify(await bad.json())).toContain("credits.low_threshold");
    const patched = await call("PATCH", `/v1/keys/${created.id}`, {
      auth: jwt,
      body: { credits: { remaining: 10, low_threshold: null } },
    });
    expect(((await patched.json()) as { credits: unknown }).credits).toEqual({
      remaining: 10,
      refill: null,
      low_threshold: null,
    });
  });

  it("reaches D1 even when the first write fails, and a retried write adds nothing", async () => {
    const jwt = await token(uniqueSub());
    const { id, key } = await createKey(jwt, { credits: { remaining: 10 } });
    let attempts = 0;
    counterWarnings.storeFor = (db) => {
      const real = new D1WarningStore(db);
      const failing: WarningStore = {
        ...real,
        creditWarning: async () => {
          attempts++;
          throw new Error("D1 is down");
        },
        expiryWarnings: real.expiryWarnings.bind(real),
        ownerCreditWarning: real.ownerCreditWarning.bind(real),
        pruneWarnings: real.pruneWarnings.bind(real),
      };
      return failing;
    };
    const logs = captureLogs();
    await verify(key, 10);
    await flush(id);
    logs.restore();
    expect(attempts).toBeGreaterThan(0);
    expect(logs.events("credit_warning_write_failed").length).toBeGreaterThan(0);
    expect(await warningsOf(jwt, id)).toEqual([]);
    // The counter kept them and set its alarm again: D1 back, they land, once.
    counterWarnings.storeFor = (db) => new D1WarningStore(db);
    expect(await runDurableObjectAlarm(counterOf(id))).toBe(true);
    expect((await warningsOf(jwt, id)).map((e) => e.action)).toEqual(["credits_low", "credits_exhausted"]);
    const pending = await runInDurableObject(counterOf(id), (_, state) => state.storage.kv.get("pending_warnings"));
    expect(pending).toBeUndefined();

    // The same warning written again (an alarm retried after a write that did land) adds no event.
    const store = new D1WarningStore(env.DB);
    const warning = { kind: "low" as const, period: 0, at: Date.now(), remaining: { old: 10, new: 0 }, threshold: 1 };
    await store.creditWarning(id, warning);
    await store.creditWarning(id, warning);
    expect((await warningsOf(jwt, id)).map((e) => e.action)).toEqual(["credits_low", "credits_exhausted"]);
  });

  it("goes to every live key of the chain, not to a revoked or expired one", async () => {
    const jwt = await token(uniqueSub());
    const rotate = async (id: string, grace: number) => {
      const response = await call("POST", `/v1/keys/${id}/rotate`, { auth: jwt, body: { grace_seconds: grace } });
      expect(response.status).toBe(201);
      return response.json<{ id: string; key: string }>();
    };
    const first = await createKey(jwt, { credits: { remaining: 10 } });
    const second = await rotate(first.id, 3600); // first: live for an hour more
    const third = await rotate(second.id, 3600); // second: live for an hour more
    const fourth = await rotate(third.id, 0); // third: expired at once
    expect((await call("DELETE", `/v1/keys/${first.id}`, { auth: jwt })).status).toBe(204);
    await verify(fourth.key, 10);
    await flush(first.id);
    for (const live of [second.id, fourth.id]) {
      expect((await warningsOf(jwt, live)).map((e) => e.action)).toEqual(["credits_low", "credits_exhausted"]);
    }
    expect(await warningsOf(jwt, first.id)).toEqual([]);
    expect(await warningsOf(jwt, third.id)).toEqual([]);
  });

  it("costs the hot path nothing: no D1 use for keys without credits, nothing kept while no warning is due", async () => {
    const jwt = await token(uniqueSub());
    const limited = await createKey(jwt, { ratelimits: [{ name: "burst", limit: 100, duration_ms: 1000 }] });
    const metered = await createKey(jwt, { credits: { remaining: 1000 } });
    const { testEnv, uses } = recordingEnv();
    const warm = async (key: string) => {
      const response = await call("POST", "/v1/verify", { body: { key }, env: testEnv });
      expect(((await response.json()) as { code: string }).code).toBe("VALID");
    };
    await warm(limited.key);
    await warm(metered.key);
    uses.length = 0;
    for (let i = 0; i < 5; i++) {
      await warm(limited.key);
      await warm(metered.key);
    }
    expect(uses.filter((use) => use.startsWith("DB."))).toEqual([]);
    for (const chain of [limited.id, metered.id]) {
      const [pending, alarm] = await runInDurableObject(counterOf(chain), async (_, state) => [
        state.storage.kv.get("pending_warnings"),
        await state.storage.getAlarm(),
      ]);
      expect(pending).toBeUndefined();
      expect(alarm).toBeNull();
    }
    const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM key_warnings WHERE key_id IN (?, ?)")
      .bind(limited.id, metered.id)
      .first<{ n: number }>();
    expect(rows?.n).toBe(0);
  });
});
