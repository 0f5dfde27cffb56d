/**
 * Usage control: rate limits and credits per key, exact under concurrency on the key
 * chain's Durable Object, refilled at UTC calendar boundaries (crossed here with the counters' clock),
 * 429s with RateLimit headers on latchkey's own routes, the credits route, shared counters across a
 * key chain, and usage counts per hour and day.
 */
import { evictDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config";
import { type KeyLimits, applyUsage, nextPeriodStart, periodStart } from "../../src/keys/limit-arithmetic";
import { IsolateCache, Verifier, isolateCache } from "../../src/service/verify";
import { KvRecordCache } from "../../src/store/cache";
import { DurableUsageCounters, counterClock } from "../../src/store/counter";
import { D1KeyStore } from "../../src/store/d1";
import { D1UsageStore } from "../../src/store/usage-counts";
import { USAGE_PENDING_MS } from "../../src/service/usage-tally";
import { generateKey } from "../../src/keys/format";
import { call, captureLogs, createKey, envWith, expectProblem, token, uniqueSub } from "../helpers";

const verify = async (body: Record<string, unknown>) => {
  const response = await call("POST", "/v1/verify", { body });
  expect(response.status).toBe(200);
  return response.json<Record<string, unknown>>();
};

const codes = (verdicts: Record<string, unknown>[]) =>
  verdicts.reduce<Record<string, number>>((n, v) => ({ ...n, [String(v.code)]: (n[String(v.code)] ?? 0) + 1 }), {});

/** Sets the counters' clock to `at` (epoch ms or RFC 3339) and returns it. */
function clockAt(at: number | string): number {
  const ms = typeof at === "number" ? at : Date.parse(at);
  counterClock.now = () => ms;
  return ms;
}

afterEach(() => {
  counterClock.now = () => Date.now();
});

async function limitedKey(limits: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const jwt = await token(uniqueSub());
  return { jwt, ...(await createKey(jwt, { ...limits, ...extra })) };
}

describe("creating keys with limits", () => {
  it("stores rate limits and credits and shows them; GET shows the live balance", async () => {
    const ratelimits = [
      { name: "burst", limit: 10, duration_ms: 1000 },
      { name: "daily", limit: 5000, duration_ms: 86_400_000 },
    ];
    const credits = { remaining: 1000, refill: { amount: 1000, interval: "month" } };
    const { jwt, id, key, ...view } = await limitedKey({ ratelimits, credits });
    expect(view).toMatchObject({ ratelimits, credits });
    await verify({ key, cost: 7 });
    const got = await call("GET", `/v1/keys/${id}`, { auth: jwt });
    expect(await got.json()).toMatchObject({ ratelimits, credits: { remaining: 993, refill: credits.refill } });
    const listed = await call("GET", "/v1/keys", { auth: jwt });
    expect(((await listed.json()) as { data: unknown[] }).data[0]).toMatchObject({ credits: { remaining: 993 } });
  });

  it("shows no limits for a key without them; refill defaults to null", async () => {
    const plain = await createKey(await token(uniqueSub()));
    expect(plain).toMatchObject({ ratelimits: [], credits: null });
    expect(await verify({ key: plain.key })).not.toHaveProperty("credits");
    const { credits } = (await limitedKey({ credits: { remaining: 5 } })) as { credits?: unknown };
    expect(credits).toEqual({ remaining: 5, refill: null, low_threshold: null });
  });

  it.each([
    [{ ratelimits: [{ name: "a", limit: 1, duration_ms: 999 }] }, "ratelimits.0.duration_ms"],
    [{ ratelimits: [{ name: "a", limit: 1, duration_ms: 86_400_001 }] }, "ratelimits.0.duration_ms"],
    [{ ratelimits: [{ name: "a", limit: 0, duration_ms: 1000 }] }, "ratelimits.0.limit"],
    [
      {
        ratelimits: [
          { name: "a", limit: 1, duration_ms: 1000 },
          { name: "a", limit: 2, duration_ms: 2000 },
        ],
      },
      "ratelimits.1.name",
    ],
    [
      { ratelimits: Array.from({ length: 11 }, (_, i) => ({ name: `n${i}`, limit: 1, duration_ms: 1000 })) },
      "ratelimits",
    ],
    [{ credits: { remaining: -1 } }, "credits.remaining"],
    [{ credits: { remaining: 1.5 } }, "credits.remaining"],
    [{ credits: { remaining: 1, refill: { amount: 5, interval: "week" } } }, "credits.refill.interval"],
    [{ credits: { remaining: 1, refill: { amount: 0, interval: "day" } } }, "credits.refill.amount"],
  ])("refuses %j naming %s", async (body, field) => {
    const response = await call("POST", "/v1/keys", { auth: await token(uniqueSub()), body: { name: "x", ...body } });
    const problem = await expectProblem(response, 422);
    expect(Object.keys(problem.errors as object)).toContain(field);
  });
});

describe("exactness under concurrency", () => {
  it("100 credits and 150 concurrent verifications: exactly 100 VALID", async () => {
    const { key, id, jwt } = await limitedKey({ credits: { remaining: 100 } });
    const verdicts = await Promise.all(Array.from({ length: 150 }, () => verify({ key })));
    expect(codes(verdicts)).toEqual({ VALID: 100, USAGE_EXCEEDED: 50 });
    const remaining = verdicts
      .filter((v) => v.code === "VALID")
      .map((v) => (v.credits as { remaining: number }).remaining);
    expect(new Set(remaining).size).toBe(100); // each VALID saw its own balance: 99 .. 0
    expect(Math.min(...remaining)).toBe(0);
    const got = await call("GET", `/v1/keys/${id}`, { auth: jwt });
    expect(await got.json()).toMatchObject({ credits: { remaining: 0 } });
  });

  it("a limit of 10 per minute admits exactly 10 of 30 concurrent", async () => {
    const { key } = await limitedKey({ ratelimits: [{ name: "minute", limit: 10, duration_ms: 60_000 }] });
    const start = clockAt(Date.now());
    const verdicts = await Promise.all(Array.from({ length: 30 }, () => verify({ key })));
    expect(codes(verdicts)).toEqual({ VALID: 10, RATE_LIMITED: 20 });
    const limited = verdicts.find((v) => v.code === "RATE_LIMITED");
    expect(limited?.ratelimits).toEqual([{ name: "minute", limit: 10, remaining: 0, reset: start + 60_000 }]);
  });

  it("every limit must pass, and a refusal takes nothing from any limit", async () => {
    const { key } = await limitedKey({
      ratelimits: [
        { name: "second", limit: 3, duration_ms: 1000 },
        { name: "minute", limit: 100, duration_ms: 60_000 },
      ],
      credits: { remaining: 50 },
    });
    clockAt(Date.now());
    const verdicts = await Promise.all(Array.from({ length: 10 }, () => verify({ key })));
    expect(codes(verdicts)).toEqual({ VALID: 3, RATE_LIMITED: 7 });
    const peek = await verify({ key, cost: 0 });
    expect(peek).toMatchObject({ code: "VALID", credits: { remaining: 47 } });
    expect((peek.ratelimits as { name: string; remaining: number }[]).map((r) => [r.name, r.remaining])).toEqual([
      ["second", 0],
      ["minute", 97],
    ]);
  });
});

describe("a counter's memory", () => {
  it("holds nothing storage does not: a counter evicted from memory goes on from what was spent", async () => {
    const { key, id } = await limitedKey({
      credits: { remaining: 10 },
      ratelimits: [{ name: "minute", limit: 5, duration_ms: 60_000 }],
    });
    clockAt(Date.now());
    for (let i = 0; i < 3; i++) expect(await verify({ key })).toMatchObject({ code: "VALID" });
    await evictDurableObject(env.USAGE_COUNTER!.get(env.USAGE_COUNTER!.idFromName(id)));
    const after = await verify({ key });
    expect(after).toMatchObject({ code: "VALID", credits: { remaining: 6 } });
    expect(after.ratelimits).toMatchObject([{ name: "minute", remaining: 1 }]);
  });
});

describe("cost", () => {
  it("0 peeks (spends nothing, takes no token); more than the balance is refused and spends nothing", async () => {
    const { key } = await limitedKey({
      credits: { remaining: 10 },
      ratelimits: [{ name: "r", limit: 2, duration_ms: 60_000 }],
    });
    clockAt(Date.now());
    for (let i = 0; i < 3; i++) {
      expect(await verify({ key, cost: 0 })).toMatchObject({
        code: "VALID",
        credits: { remaining: 10 },
        ratelimits: [{ remaining: 2 }],
      });
    }
    expect(await verify({ key, cost: 11 })).toMatchObject({ code: "USAGE_EXCEEDED", credits: { remaining: 10 } });
    expect(await verify({ key, cost: 10 })).toMatchObject({ code: "VALID", credits: { remaining: 0 } });
    expect(await verify({ key, cost: 0 })).toMatchObject({ code: "VALID", credits: { remaining: 0 } });
  });

  it("is validated: a negative or fractional cost is a 422 naming it", async () => {
    for (const cost of [-1, 0.5, "1"]) {
      const response = await call("POST", "/v1/verify", { body: { key: generateKey("lk"), cost } });
      expect((await expectProblem(response, 422)).errors).toHaveProperty("cost");
    }
  });

  it("reaches RPC verify", async () => {
    const { key } = await limitedKey({ credits: { remaining: 5 } });
    expect(await exports.KeyService.verify(key, { cost: 4 })).toMatchObject({
      code: "VALID",
      credits: { remaining: 1 },
    });
    expect(await exports.KeyVerifier.verify(key, { cost: 2 })).toMatchObject({ code: "USAGE_EXCEEDED" });
  });
});

describe("refill at UTC calendar boundaries (controlled clock)", () => {
  it("month: nothing before the 1st at 00:00Z, topped up to the amount from then on", async () => {
    const { key } = await limitedKey({ credits: { remaining: 2, refill: { amount: 1000, interval: "month" } } });
    const before = clockAt("2027-01-31T23:59:59.999Z");
    expect(await verify({ key, cost: 2 })).toMatchObject({ code: "VALID", credits: { remaining: 0 } });
    const refused = await call("POST", "/v1/verify", { body: { key } });
    expect(await refused.json()).toMatchObject({ code: "USAGE_EXCEEDED" });
    expect(nextPeriodStart(before, "month")).toBe(Date.parse("2027-02-01T00:00:00Z"));
    clockAt("2027-02-01T00:00:00.000Z");
    expect(await verify({ key })).toMatchObject({ code: "VALID", credits: { remaining: 999 } });
    clockAt("2027-02-28T23:59:59.999Z");
    expect(await verify({ key, cost: 999 })).toMatchObject({ code: "VALID", credits: { remaining: 0 } });
    clockAt("2027-03-01T00:00:00.000Z");
    expect(await verify({ key, cost: 0 })).toMatchObject({ credits: { remaining: 1000 } });
  });

  it("day: refills at midnight UTC, once per day however often it is read", async () => {
    const { key } = await limitedKey({ credits: { remaining: 1, refill: { amount: 3, interval: "day" } } });
    clockAt("2027-06-10T23:59:59.999Z");
    expect(await verify({ key })).toMatchObject({ code: "VALID", credits: { remaining: 0 } });
    clockAt("2027-06-11T00:00:00.000Z");
    expect(await verify({ key, cost: 3 })).toMatchObject({ code: "VALID", credits: { remaining: 0 } });
    clockAt("2027-06-11T23:59:59.999Z");
    expect(await verify({ key })).toMatchObject({ code: "USAGE_EXCEEDED" });
    clockAt("2027-06-13T12:00:00.000Z"); // two boundaries passed: still one top-up, to the amount
    expect(await verify({ key, cost: 0 })).toMatchObject({ credits: { remaining: 3 } });
  });

  it("never takes credits away: a balance above the amount stays", async () => {
    const { key, id, jwt } = await limitedKey({ credits: { remaining: 5, refill: { amount: 10, interval: "day" } } });
    clockAt("2027-06-10T12:00:00Z");
    await verify({ key, cost: 0 });
    const set = await call("POST", `/v1/keys/${id}/credits`, { auth: jwt, body: { op: "set", amount: 50 } });
    expect(await set.json()).toEqual({ remaining: 50 });
    clockAt("2027-06-11T00:00:01Z");
    expect(await verify({ key, cost: 0 })).toMatchObject({ credits: { remaining: 50 } });
  });

  it("periodStart and nextPeriodStart cut at UTC midnight and the 1st (leap years included)", () => {
    expect(periodStart(Date.parse("2028-02-29T23:59:59.999Z"), "day")).toBe(Date.parse("2028-02-29T00:00:00Z"));
    expect(nextPeriodStart(Date.parse("2028-02-29T23:59:59.999Z"), "day")).toBe(Date.parse("2028-03-01T00:00:00Z"));
    expect(periodStart(Date.parse("2027-12-31T23:59:59Z"), "month")).toBe(Date.parse("2027-12-01T00:00:00Z"));
    expect(nextPeriodStart(Date.parse("2027-12-31T23:59:59Z"), "month")).toBe(Date.parse("2028-01-01T00:00:00Z"));
  });
});

describe("rate limits refill continuously (token bucket)", () => {
  it("one token per duration/limit, never more than the limit", async () => {
    const { key } = await limitedKey({ ratelimits: [{ name: "s", limit: 2, duration_ms: 1000 }] });
    const t = clockAt(Date.now());
    expect(codes(await Promise.all([1, 2, 3].map(() => verify({ key }))))).toEqual({ VALID: 2, RATE_LIMITED: 1 });
    clockAt(t + 499);
    expect(await verify({ key })).toMatchObject({ code: "RATE_LIMITED" });
    clockAt(t + 500);
    expect(await verify({ key })).toMatchObject({ code: "VALID", ratelimits: [{ remaining: 0, reset: t + 1500 }] });
    clockAt(t + 60_000);
    expect(codes(await Promise.all([1, 2, 3].map(() => verify({ key }))))).toEqual({ VALID: 2, RATE_LIMITED: 1 });
  });
});

describe("latchkey's own routes", () => {
  it("answer 429 with Retry-After and RateLimit headers when the key is over its rate limit", async () => {
    const { key } = await limitedKey({ ratelimits: [{ name: "m", limit: 2, duration_ms: 60_000 }] });
    const t = clockAt(Date.now());
    expect((await call("GET", "/v1/whoami", { auth: key })).status).toBe(200);
    clockAt(t + 1000);
    expect((await call("GET", "/v1/whoami", { auth: key })).status).toBe(200);
    clockAt(t + 2000);
    const refused = await call("GET", "/v1/whoami", { auth: key });
    const problem = await expectProblem(refused, 429);
    expect(problem.code).toBe("key_rate_limited");
    expect(problem.ratelimits).toEqual([{ name: "m", limit: 2, remaining: 0, reset: t + 60_000 }]);
    expect(refused.headers.get("www-authenticate")).toBeNull();
    // The bucket refilled 2000 ms x 2/60 s = 1/15 of a token: the next is 28 s away, full in 58 s.
    expect(refused.headers.get("retry-after")).toBe("28");
    expect(refused.headers.get("ratelimit-limit")).toBe("2");
    expect(refused.headers.get("ratelimit-remaining")).toBe("0");
    expect(refused.headers.get("ratelimit-reset")).toBe("58");
  });

  it("describe the tightest rate limit in the RateLimit headers, and wait for the slowest in Retry-After", async () => {
    const { key } = await limitedKey({
      ratelimits: [
        { name: "burst", limit: 5, duration_ms: 1000 },
        { name: "minute", limit: 3, duration_ms: 60_000 },
      ],
    });
    const t = clockAt(Date.now());
    for (let i = 0; i < 3; i++) expect((await call("GET", "/v1/whoami", { auth: key })).status).toBe(200);
    const refused = await call("GET", "/v1/whoami", { auth: key });
    expect((await expectProblem(refused, 429)).ratelimits).toEqual([
      { name: "burst", limit: 5, remaining: 2, reset: t + 600 },
      { name: "minute", limit: 3, remaining: 0, reset: t + 60_000 },
    ]);
    expect(refused.headers.get("ratelimit-limit")).toBe("3");
    expect(refused.headers.get("ratelimit-remaining")).toBe("0");
    expect(refused.headers.get("ratelimit-reset")).toBe("60");
    expect(refused.headers.get("retry-after")).toBe("20"); // one "minute" token: 60 s / 3
  });

  it("answer 429 USAGE_EXCEEDED with Retry-After until the refill when credits run out", async () => {
    const { key } = await limitedKey({ credits: { remaining: 1, refill: { amount: 5, interval: "day" } } });
    clockAt(Date.parse("2027-06-10T23:59:00Z"));
    expect((await call("GET", "/v1/whoami", { auth: key })).status).toBe(200);
    const refused = await call("GET", "/v1/whoami", { auth: key });
    const problem = await expectProblem(refused, 429);
    expect(problem).toMatchObject({ code: "key_usage_exceeded", credits: { remaining: 0 } });
    expect(refused.headers.get("retry-after")).toBe("60");
    expect(refused.headers.get("ratelimit-limit")).toBeNull();
  });

  it("answer 429 without Retry-After when no refill would cover the request (waiting does not help)", async () => {
    const { key } = await limitedKey({ credits: { remaining: 1 } });
    expect((await call("GET", "/v1/whoami", { auth: key })).status).toBe(200);
    const refused = await call("GET", "/v1/whoami", { auth: key });
    expect((await expectProblem(refused, 429)).code).toBe("key_usage_exceeded");
    expect(refused.headers.get("retry-after")).toBeNull();
  });

  it("a failing counter fails a limited key closed (503), never unmetered; unlimited keys are unaffected", async () => {
    const broken = envWith({
      USAGE_COUNTER: new Proxy(env.USAGE_COUNTER!, {
        get: () => () => {
          throw new Error("injected fault: counter");
        },
      }),
    });
    const { key } = await limitedKey({ credits: { remaining: 5 } });
    const plain = await createKey(await token(uniqueSub()));
    const logs = captureLogs();
    expect((await call("GET", "/v1/whoami", { auth: key, env: broken })).status).toBe(503);
    expect((await call("POST", "/v1/verify", { body: { key }, env: broken })).status).toBe(503);
    expect((await call("GET", "/v1/whoami", { auth: plain.key, env: broken })).status).toBe(200);
    logs.restore();
    expect(logs.lines()).toMatchObject([
      { event: "storage_unavailable", error: "usage counter call failed" },
      { event: "storage_unavailable", error: "usage counter call failed" },
    ]);
  });
});

describe("POST /v1/keys/{id}/credits", () => {
  it("sets, increments and decrements (stopping at 0)", async () => {
    const { key, id, jwt } = await limitedKey({ credits: { remaining: 10 } });
    const op = async (body: Record<string, unknown>) => {
      const response = await call("POST", `/v1/keys/${id}/credits`, { auth: jwt, body });
      expect(response.status).toBe(200);
      return response.json();
    };
    expect(await op({ op: "increment", amount: 5 })).toEqual({ remaining: 15 });
    expect(await op({ op: "decrement", amount: 3 })).toEqual({ remaining: 12 });
    expect(await op({ op: "decrement", amount: 100 })).toEqual({ remaining: 0 });
    expect(await verify({ key })).toMatchObject({ code: "USAGE_EXCEEDED" });
    expect(await op({ op: "set", amount: 2 })).toEqual({ remaining: 2 });
    expect(await verify({ key })).toMatchObject({ code: "VALID", credits: { remaining: 1 } });
    // Each operation is audited, newest first, with what was asked (the warnings the balance gave aside).
    const events = (await (await call("GET", `/v1/keys/${id}/events?action=updated`, { auth: jwt })).json()) as {
      data: { action: string; changes: Record<string, { new: unknown }> }[];
    };
    expect(events.data.slice(0, 4).map((e) => [e.action, e.changes.credits?.new])).toEqual([
      ["updated", { op: "set", amount: 2 }],
      ["updated", { op: "decrement", amount: 100 }],
      ["updated", { op: "decrement", amount: 3 }],
      ["updated", { op: "increment", amount: 5 }],
    ]);
  });

  it("invalid operations change nothing: no balance change, no event", async () => {
    const { key, id, jwt } = await limitedKey({ credits: { remaining: 10 } });
    const eventCount = async () =>
      ((await (await call("GET", `/v1/keys/${id}/events`, { auth: jwt })).json()) as { data: unknown[] }).data.length;
    const before = await eventCount();
    for (const body of [{ op: "add", amount: 1 }, { op: "increment", amount: -5 }, { op: "set" }, { amount: 3 }]) {
      const response = await call("POST", `/v1/keys/${id}/credits`, { auth: jwt, body });
      expect(Object.keys((await expectProblem(response, 422)).errors as object).length).toBeGreaterThan(0);
    }
    expect(await eventCount()).toBe(before);
    expect(await verify({ key, cost: 0 })).toMatchObject({ credits: { remaining: 10 } });
  });

  it("refuses bad input, keys without credits, other owners' keys and keys with limits of their own", async () => {
    const { id, jwt } = await limitedKey({ credits: { remaining: 10 } });
    const post = (path: string, body: unknown, auth = jwt) => call("POST", path, { auth, body });
    expect(
      (await expectProblem(await post(`/v1/keys/${id}/credits`, { op: "add", amount: 1 }), 422)).errors,
    ).toHaveProperty("op");
    expect(
      (await expectProblem(await post(`/v1/keys/${id}/credits`, { op: "set", amount: -1 }), 422)).errors,
    ).toHaveProperty("amount");
    const plain = await createKey(jwt);
    await expectProblem(await post(`/v1/keys/${plain.id}/credits`, { op: "set", amount: 1 }), 409);
    await expectProblem(await post(`/v1/keys/${id}/credits`, { op: "set", amount: 1 }, await token(uniqueSub())), 404);
    const reader = await createKey(jwt, { scopes: ["keys:read"] });
    await expectProblem(await post(`/v1/keys/${id}/credits`, { op: "set", amount: 1 }, reader.key), 403);
    // A limited key with keys:write cannot top itself (or anyone) up.
    const self = await createKey(jwt, { scopes: ["keys:write"], credits: { remaining: 1 } });
    const refused = await expectProblem(
      await post(`/v1/keys/${self.id}/credits`, { op: "increment", amount: 1000 }, self.key),
      403,
    );
    expect(refused.exceeded).toBe("credits");
    // An unlimited admin key may.
    const admin = await createKey(jwt, { scopes: ["*"] });
    expect(await (await post(`/v1/keys/${id}/credits`, { op: "set", amount: 7 }, admin.key)).json()).toEqual({
      remaining: 7,
    });
  });

  it("is KeyService.credits over RPC", async () => {
    const sub = uniqueSub();
    const created = await exports.KeyService.create(
      { type: "user", id: sub },
      { name: "rpc", credits: { remaining: 3 } },
    );
    expect(created.credits).toEqual({ remaining: 3, refill: null, low_threshold: null });
    expect(
      await exports.KeyService.credits({ type: "user", id: sub }, created.id, { op: "increment", amount: 2 }),
    ).toEqual({ remaining: 5 });
    expect(await exports.KeyService.verify(created.key)).toMatchObject({ credits: { remaining: 4 } });
    const ratelimits = [{ name: "s", limit: 5, duration_ms: 1000 }];
    expect(await exports.KeyService.update({ type: "user", id: sub }, created.id, { ratelimits })).toMatchObject({
      ratelimits,
      credits: { remaining: 4 },
    });
    const refused = await exports.KeyService.credits({ type: "user", id: sub }, created.id, {
      op: "decrement",
      amount: -1,
    }).then(
      () => "resolved",
      (error: Error) => error.message,
    );
    expect(refused).toMatch(/^\[invalid\] input: amount: /);
  });
});

describe("key chains share one set of counters", () => {
  it("a key made by a limited key draws from its parent's balance and cannot set its own limits", async () => {
    const jwt = await token(uniqueSub());
    const parent = await createKey(jwt, { scopes: ["keys:write", "models:invoke"], credits: { remaining: 4 } });
    const made = await call("POST", "/v1/keys", {
      auth: parent.key,
      body: { name: "child", scopes: ["models:invoke"] },
    });
    const child = (await made.json()) as { key: string; credits: unknown };
    expect(child.credits).toEqual({ remaining: 3, refill: null, low_threshold: null }); // the shared balance: the create cost the parent 1
    expect(await verify({ key: child.key, cost: 2 })).toMatchObject({ code: "VALID", credits: { remaining: 1 } });
    expect(await verify({ key: parent.key, cost: 2 })).toMatchObject({
      code: "USAGE_EXCEEDED",
      credits: { remaining: 1 },
    });
    const own = await call("POST", "/v1/keys", { auth: parent.key, body: { name: "c", credits: null } });
    expect((await expectProblem(own, 403)).exceeded).toBe("credits");
  });

  it("a rotated key shares its predecessor's counters: 100 credits spent through both keys in the grace overlap give exactly 100 VALID", async () => {
    const { id, key, jwt } = await limitedKey({
      credits: { remaining: 100 },
      ratelimits: [{ name: "m", limit: 1000, duration_ms: 60_000 }],
    });
    clockAt(Date.now());
    const rotated = await call("POST", `/v1/keys/${id}/rotate`, { auth: jwt, body: { grace_seconds: 600 } });
    expect(rotated.status).toBe(201);
    const successor = (await rotated.json()) as { id: string; key: string; credits: unknown; ratelimits: unknown };
    expect(successor.ratelimits).toEqual([{ name: "m", limit: 1000, duration_ms: 60_000 }]);
    expect(successor.credits).toEqual({ remaining: 100, refill: null, low_threshold: null });
    const verdicts = await Promise.all(
      Array.from({ length: 150 }, (_, i) => verify({ key: i % 2 ? successor.key : key })),
    );
    expect(codes(verdicts)).toEqual({ VALID: 100, USAGE_EXCEEDED: 50 });
    expect(await verify({ key: successor.key, cost: 0 })).toMatchObject({ ratelimits: [{ remaining: 900 }] });
    expect(await verify({ key, cost: 0 })).toMatchObject({ credits: { remaining: 0 } });
  });

  it("a limited key may rotate only keys sharing its counters: never an unlimited key, to get around its own limits", async () => {
    const jwt = await token(uniqueSub());
    const limited = await createKey(jwt, { scopes: ["*"], credits: { remaining: 10 } });
    const unlimited = await createKey(jwt, { scopes: ["models:invoke"] });
    const refused = await call("POST", `/v1/keys/${unlimited.id}/rotate`, { auth: limited.key, body: {} });
    expect((await expectProblem(refused, 403)).detail).toMatch(/sharing its usage counters/);
    expect(await verify({ key: unlimited.key })).toMatchObject({ code: "VALID" }); // not rotated away
    // Its own chain it may rotate: the replacement shares the one balance.
    const own = await call("POST", `/v1/keys/${limited.id}/rotate`, { auth: limited.key, body: {} });
    expect(own.status).toBe(201);
    const replacement = (await own.json()) as { key: string };
    // 10, less 1 for each of the two requests the key made on latchkey's own routes.
    expect(await verify({ key: replacement.key, cost: 0 })).toMatchObject({ credits: { remaining: 8 } });
  });

  it("a revoked key's older rule never refills its chain when the key is read", async () => {
    const { id, jwt } = await limitedKey({ credits: { remaining: 1000, refill: { amount: 1000, interval: "month" } } });
    clockAt("2027-05-10T00:00:00Z");
    const rotated = await call("POST", `/v1/keys/${id}/rotate`, { auth: jwt, body: {} });
    const successor = (await rotated.json()) as { id: string; key: string };
    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt })).status).toBe(204);
    // The chain's rule now: 10 credits, no refill (written to the live key only).
    const patched = await call("PATCH", `/v1/keys/${successor.id}`, {
      auth: jwt,
      body: { credits: { remaining: 10, refill: null } },
    });
    expect(patched.status).toBe(200);
    clockAt("2027-06-01T00:00:01Z"); // a month later: the revoked key's stored rule would refill to 1000
    const old = await call("GET", `/v1/keys/${id}`, { auth: jwt });
    expect(await old.json()).toMatchObject({ revoked_at: expect.any(String) });
    const listed = await call("GET", "/v1/keys?include_revoked=true", { auth: jwt });
    expect(listed.status).toBe(200);
    expect(await verify({ key: successor.key, cost: 0 })).toMatchObject({ credits: { remaining: 10 } });
  });

  it("a counter that cannot answer never costs a created or rotated key its one showing", async () => {
    const jwt = await token(uniqueSub());
    const { id } = await createKey(jwt, { credits: { remaining: 7 } });
    const broken = envWith({
      USAGE_COUNTER: new Proxy(env.USAGE_COUNTER!, {
        get: () => () => {
          throw new Error("injected fault: counter");
        },
      }),
    });
    const logs = captureLogs();
    const created = await call("POST", "/v1/keys", {
      auth: jwt,
      body: { name: "made while the counter is down", credits: { remaining: 3 } },
      env: broken,
    });
    const rotated = await call("POST", `/v1/keys/${id}/rotate`, { auth: jwt, body: {}, env: broken });
    const listed = await call("GET", "/v1/keys", { auth: jwt, env: broken });
    logs.restore();
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ key: expect.any(String), credits: { remaining: 3 } });
    expect(rotated.status).toBe(201);
    expect(await rotated.json()).toMatchObject({ key: expect.any(String), credits: { remaining: 7 } });
    expect(listed.status).toBe(200); // the stored balances, not a 503
    expect(logs.lines().length).toBeGreaterThan(0);
    expect(logs.lines().every((line) => line.event === "usage_counter_unavailable")).toBe(true);
  });

  it("a change of limits on one key of a chain changes them on every live key of it, each audited", async () => {
    const { id, key, jwt } = await limitedKey({ credits: { remaining: 5 } });
    const rotated = await call("POST", `/v1/keys/${id}/rotate`, { auth: jwt, body: { grace_seconds: 600 } });
    const successor = (await rotated.json()) as { id: string; key: string };
    const ratelimits = [{ name: "s", limit: 1, duration_ms: 60_000 }];
    const patched = await call("PATCH", `/v1/keys/${successor.id}`, { auth: jwt, body: { ratelimits } });
    expect(await patched.json()).toMatchObject({ ratelimits });
    const old = await call("GET", `/v1/keys/${id}`, { auth: jwt });
    expect(await old.json()).toMatchObject({ ratelimits, credits: { remaining: 5 } });
    clockAt(Date.now());
    // One bucket for both: the predecessor's request takes the only token.
    expect(await verify({ key })).toMatchObject({ code: "VALID" });
    expect(await verify({ key: successor.key })).toMatchObject({ code: "RATE_LIMITED" });
    for (const keyId of [id, successor.id]) {
      const events = (await (await call("GET", `/v1/keys/${keyId}/events`, { auth: jwt })).json()) as {
        data: { action: string; changes: Record<string, unknown> }[];
      };
      expect(events.data[0]).toMatchObject({
        action: "updated",
        changes: { ratelimits: { old: [], new: ratelimits } },
      });
    }
  });
});

describe("PATCH of ratelimits and credits", () => {
  it("sets both, credits as a `set` of the balance; null removes them", async () => {
    const { id, key, jwt } = await limitedKey({ credits: { remaining: 10 } });
    expect(await verify({ key, cost: 4 })).toMatchObject({ credits: { remaining: 6 } });
    const patch = (body: unknown) => call("PATCH", `/v1/keys/${id}`, { auth: jwt, body });
    const credits = { remaining: 50, refill: { amount: 50, interval: "day" } };
    expect(await (await patch({ credits })).json()).toMatchObject({ credits });
    expect(await verify({ key, cost: 0 })).toMatchObject({ credits: { remaining: 50 } });
    // The same rule again is a set all the same: the balance goes back to 50.
    expect(await verify({ key, cost: 5 })).toMatchObject({ credits: { remaining: 45 } });
    expect(await (await patch({ credits })).json()).toMatchObject({ credits: { remaining: 50 } });
    const none = await patch({ credits: null, ratelimits: [] });
    expect(await none.json()).toMatchObject({ credits: null, ratelimits: [] });
    const verdict = await verify({ key, cost: 1000 });
    expect(verdict).toMatchObject({ code: "VALID" });
    expect(verdict).not.toHaveProperty("credits");
    // Given again after removal: a fresh balance, not the old one.
    await patch({ credits: { remaining: 3 } });
    expect(await verify({ key, cost: 0 })).toMatchObject({ credits: { remaining: 3 } });
  });

  it.each([
    [{ ratelimits: [{ name: "a", limit: 1, duration_ms: 500 }] }, "ratelimits.0.duration_ms"],
    [{ ratelimits: [{ name: "", limit: 1, duration_ms: 1000 }] }, "ratelimits.0.name"],
    [{ credits: { remaining: "10" } }, "credits.remaining"],
    [{ credits: { remaining: 1, extra: true } }, "credits"],
  ])("refuses %j with a 422 naming %s, and changes nothing", async (body, field) => {
    const { id, key, jwt } = await limitedKey({ credits: { remaining: 10 } });
    const response = await call("PATCH", `/v1/keys/${id}`, { auth: jwt, body });
    expect(Object.keys((await expectProblem(response, 422)).errors as object).join(" ")).toContain(field);
    const view = await (await call("GET", `/v1/keys/${id}`, { auth: jwt })).json();
    expect(view).toMatchObject({ ratelimits: [], credits: { remaining: 10 } });
    expect(await verify({ key, cost: 0 })).toMatchObject({ credits: { remaining: 10 } });
  });

  it("a key with limits may not change any key's limits (its own included); an unlimited key may", async () => {
    const jwt = await token(uniqueSub());
    const limited = await createKey(jwt, { scopes: ["keys:write"], credits: { remaining: 5 } });
    const other = await createKey(jwt, { scopes: ["keys:read"] });
    for (const [target, body, field] of [
      [limited.id, { credits: { remaining: 1_000_000 } }, "credits"],
      [limited.id, { ratelimits: [] }, "ratelimits"],
      [other.id, { ratelimits: [{ name: "x", limit: 1, duration_ms: 1000 }] }, "ratelimits"],
    ] as const) {
      const refused = await call("PATCH", `/v1/keys/${target}`, { auth: limited.key, body });
      expect((await expectProblem(refused, 403)).exceeded).toBe(field);
    }
    const admin = await createKey(jwt, { scopes: ["*"] });
    const allowed = await call("PATCH", `/v1/keys/${other.id}`, {
      auth: admin.key,
      body: { credits: { remaining: 2 } },
    });
    expect(await allowed.json()).toMatchObject({ credits: { remaining: 2 } });
  });

  it("reaches another isolate's cached verdict through the change feed", async () => {
    const fastSync = envWith({ REVOCATION_SYNC_SECONDS: "0.2" });
    const { id, key, jwt } = await limitedKey({ ratelimits: [{ name: "m", limit: 100, duration_ms: 60_000 }] });
    const local = new IsolateCache();
    const other = new Verifier(
      {
        store: new D1KeyStore(env.DB),
        cache: new KvRecordCache(env.KEY_CACHE),
        config: loadConfig(fastSync),
        defer: () => {},
        counters: new DurableUsageCounters(env.USAGE_COUNTER!),
      },
      local,
    );
    clockAt(Date.now());
    expect(await other.verify(key)).toMatchObject({ code: "VALID", usage: { ratelimits: [{ limit: 100 }] } });
    const ratelimits = [{ name: "m", limit: 1, duration_ms: 60_000 }];
    expect((await call("PATCH", `/v1/keys/${id}`, { auth: jwt, body: { ratelimits } })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 450)); // past twice the sync interval
    // The bucket keeps its 99 tokens, capped at the new limit: one more request, then refused.
    expect(await other.verify(key)).toMatchObject({ code: "VALID", usage: { ratelimits: [{ limit: 1 }] } });
    expect(await other.verify(key)).toMatchObject({ code: "RATE_LIMITED", usage: { ratelimits: [{ limit: 1 }] } });
  });
});

describe("credit operations are applied exactly once (keys/limit-arithmetic.ts)", () => {
  const at = Date.parse("2027-06-10T12:00:00Z");
  const withCredits = (credits: KeyLimits["credits"]): KeyLimits => ({ ratelimits: [], credits });

  it("a stale rule (an isolate not yet synced) neither re-applies nor undoes an operation", () => {
    const state = { credits: null, buckets: {} };
    const base = { remaining: 10, refill: null };
    expect(applyUsage(state, withCredits(base), 1, at).credits).toEqual({ remaining: 9 });
    const topped = { ...base, added: 100 };
    expect(applyUsage(state, withCredits(topped), 1, at).credits).toEqual({ remaining: 108 });
    // The old rule again: the increment is neither undone nor applied twice.
    expect(applyUsage(state, withCredits(base), 0, at).credits).toEqual({ remaining: 108 });
    expect(applyUsage(state, withCredits(topped), 0, at).credits).toEqual({ remaining: 108 });
    const lowered = { ...topped, removed: 500 };
    expect(applyUsage(state, withCredits(lowered), 0, at).credits).toEqual({ remaining: 0 }); // stops at 0
    expect(applyUsage(state, withCredits({ ...lowered, added: 105 }), 0, at).credits).toEqual({ remaining: 5 });
  });

  it("a set replaces the balance once; an older set is ignored", () => {
    const state = { credits: null, buckets: {} };
    const set = { remaining: 40, refill: null, added: 3, set: { at, amount: 40, added: 3, removed: 0 } };
    expect(applyUsage(state, withCredits({ remaining: 10, refill: null }), 5, at).credits).toEqual({ remaining: 5 });
    expect(applyUsage(state, withCredits(set), 1, at).credits).toEqual({ remaining: 39 });
    expect(applyUsage(state, withCredits(set), 1, at).credits).toEqual({ remaining: 38 });
    const older = { ...set, set: { ...set.set, at: at - 1, amount: 1000 } };
    expect(applyUsage(state, withCredits(older), 0, at).credits).toEqual({ remaining: 38 });
  });

  it("a rule without credits keeps the balance; a bucket of a limit it lacks survives until it would be full", () => {
    const state = { credits: null, buckets: {} };
    const limits: KeyLimits = {
      ratelimits: [{ name: "m", limit: 2, duration_ms: 60_000 }],
      credits: { remaining: 3, refill: null },
    };
    applyUsage(state, limits, 1, at);
    applyUsage(state, limits, 1, at);
    expect(applyUsage(state, { ratelimits: [], credits: null }, 1, at + 1000).code).toBe("VALID");
    expect(applyUsage(state, limits, 1, at + 1000)).toMatchObject({ code: "RATE_LIMITED", credits: { remaining: 1 } });
  });
});

describe("GET /v1/keys/{id}/usage", () => {
  const flush = () => isolateCache.usage.flush(new D1UsageStore(env.DB));

  it("counts verifications per hour by outcome, written in batches", async () => {
    const { key, id, jwt } = await limitedKey({ credits: { remaining: 3 } }, { scopes: ["models:invoke"] });
    await flush(); // what earlier tests counted, so no full batch (USAGE_FLUSH_ENTRIES) is written during this one
    for (let i = 0; i < 4; i++) await verify({ key });
    await verify({ key, scope: "keys:write" });
    const before = await call("GET", `/v1/keys/${id}/usage`, { auth: jwt });
    const unflushed = (await before.json()) as { buckets: { total: number }[] };
    expect(unflushed.buckets).toHaveLength(24);
    // Not written yet: tests open no window (test/setup/usage-tally.ts; the window: test/storage/usage-tally.test.ts).
    expect(unflushed.buckets.reduce((n, b) => n + b.total, 0)).toBe(0);

    await flush();
    const response = await call("GET", `/v1/keys/${id}/usage`, { auth: jwt });
    expect(response.status).toBe(200);
    const report = (await response.json()) as {
      key_id: string;
      granularity: string;
      buckets: Record<string, unknown>[];
    };
    expect(report).toMatchObject({ key_id: id, granularity: "hour" });
    const hour = Date.now() - (Date.now() % 3_600_000);
    expect(report.buckets.at(-1)).toEqual({
      start: new Date(hour).toISOString(),
      total: 5,
      valid: 3,
      usage_exceeded: 1,
      insufficient_scope: 1,
      rate_limited: 0,
      revoked: 0,
      expired: 0,
      disabled: 0,
      ip_not_allowed: 0,
      resource_not_allowed: 0,
    });

    await verify({ key });
    await flush();
    const day = await call(
      "GET",
      `/v1/keys/${id}/usage?granularity=day&from=${new Date(Date.now() - 86_400_000).toISOString()}`,
      { auth: jwt },
    );
    const days = (await day.json()) as { buckets: { total: number; usage_exceeded: number }[] };
    expect(days.buckets).toHaveLength(2);
    expect(days.buckets.at(-1)).toMatchObject({ total: 6, usage_exceeded: 2 });
  });

  it("says from when counts may be pending (USAGE_PENDING_MS before now: window and write), null for a range that ends before", async () => {
    const sub = uniqueSub();
    const { id } = await createKey(await token(sub));
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      const now = Date.parse("2027-03-04T10:20:30.000Z");
      vi.setSystemTime(now);
      const report = async (query = "") =>
        (await (await call("GET", `/v1/keys/${id}/usage${query}`, { auth: await token(sub) })).json()) as {
          pending_from: string | null;
        };
      expect((await report()).pending_from).toBe(new Date(now - USAGE_PENDING_MS).toISOString());
      // A range ending within the interval: pending from its start when it starts inside it too.
      const recent = `?from=${new Date(now - 10_000).toISOString()}&to=${new Date(now).toISOString()}`;
      expect((await report(recent)).pending_from).toBe(new Date(now - USAGE_PENDING_MS).toISOString());
      const past = `?to=${new Date(now - USAGE_PENDING_MS).toISOString()}`;
      expect((await report(past)).pending_from).toBeNull();
      const justBefore = `?to=${new Date(now - USAGE_PENDING_MS + 1).toISOString()}`;
      expect((await report(justBefore)).pending_from).toBe(new Date(now - USAGE_PENDING_MS).toISOString());
      // Never before the range's start: 10 s into an hour, the hour's bucket is pending from its start.
      vi.setSystemTime(Date.parse("2027-03-04T11:00:10.000Z"));
      const thisHour = `?from=2027-03-04T11:00:05.000Z`;
      expect((await report(thisHour)).pending_from).toBe("2027-03-04T11:00:00.000Z");
    } finally {
      vi.useRealTimers();
    }
  });

  it("is the owner's only, and refuses bad ranges with a 400 naming the field", async () => {
    const { id, jwt } = await limitedKey({});
    await expectProblem(await call("GET", `/v1/keys/${id}/usage`, { auth: await token(uniqueSub()) }), 404);
    const bad = async (query: string, field: string) =>
      expect(
        (await expectProblem(await call("GET", `/v1/keys/${id}/usage?${query}`, { auth: jwt }), 400)).errors,
      ).toHaveProperty(field);
    await bad("granularity=week", "granularity");
    await bad("from=yesterday", "from");
    await bad("from=2027-01-02T00:00:00Z&to=2027-01-01T00:00:00Z", "from");
    await bad("granularity=hour&from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z", "from");
  });
});
