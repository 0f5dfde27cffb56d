/**
 * Storage operations on the hot path, counted: D1 and KV are wrapped in Proxies that log every call
 * (and the SQL of every D1 statement run), and the Worker is called with that env. A warm key costs no
 * storage at all, a cold one at most one KV read (and its per-minute last_used write), an unknown key
 * one lookup and then nothing, and a malformed key never reaches storage. The usage counters (Durable
 * Objects) are counted too: a key without limits never calls one, a key with limits makes one call.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env } from "../../src/env";
import { generateKey } from "../../src/keys/format";
import { sha256Hex } from "../../src/keys/hash";
import { isolateCache } from "../../src/service/verify";
import type { UsageCounter } from "../../src/store/counter";
import { call, createKey, envWith, expectProblem, token, uniqueSub } from "../helpers";

interface StorageLog {
  /** Every method called on env.DB, env.KEY_CACHE, env.USAGE_COUNTER or a counter, e.g. `DB.prepare`, `KV.get`, `DO.take`. */
  calls: string[];
  /** Every D1 statement run, as `<first|run|all|raw> <sql>`. */
  queries: string[];
}

const KV_WRITES = new Set(["KV.put", "KV.delete"]);
const D1_WRITE = /^\w+ (INSERT|UPDATE|DELETE)\b/i;

/**
 * A fresh env whose DB and KV log every call (over `base`). Unless `base` sets its own, the feed sync is once a minute, so that after
 * a warm-up request (which syncs) no sync can fall due during a test, however slow the machine.
 */
function countingEnv(base: Env = env): { testEnv: Env; log: StorageLog; reset(): void } {
  const log: StorageLog = { calls: [], queries: [] };
  const passThrough = <T extends object>(
    target: T,
    onCall: (name: string, args: unknown[], result: unknown) => unknown,
  ) =>
    new Proxy(target, {
      get(t, property) {
        const value: unknown = Reflect.get(t, property, t);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) =>
          onCall(String(property), args, (value as (...a: unknown[]) => unknown).apply(t, args));
      },
    });
  const statement = (sql: string, real: D1PreparedStatement): D1PreparedStatement =>
    passThrough(real, (name, _args, result) => {
      if (name === "bind") return statement(sql, result as D1PreparedStatement);
      log.queries.push(`${name} ${sql}`);
      return result;
    });
  // A session's queries (a management request's, store/d1-session.ts) are D1 queries too.
  const onDb = (name: string, args: unknown[], result: unknown): unknown => {
    log.calls.push(`DB.${name}`);
    if (name === "withSession") return passThrough(result as D1DatabaseSession, onDb);
    return name === "prepare" ? statement(String(args[0]), result as D1PreparedStatement) : result;
  };
  const db = passThrough(base.DB, onDb);
  const kv = passThrough(base.KEY_CACHE, (name, _args, result) => {
    log.calls.push(`KV.${name}`);
    return result;
  });
  const counters = passThrough(env.USAGE_COUNTER!, (name, _args, result) => {
    log.calls.push(`DO.${name}`);
    if (name !== "get") return result;
    // An RPC stub answers every property name, so it is wrapped by hand rather than by a Proxy.
    const stub = result as DurableObjectStub<UsageCounter>;
    return {
      take: (...args: Parameters<UsageCounter["take"]>) => (log.calls.push("DO.take"), stub.take(...args)),
    };
  });
  const testEnv = {
    ...base,
    DB: db,
    KEY_CACHE: kv,
    USAGE_COUNTER: counters,
    REVOCATION_SYNC_SECONDS: base === env ? "60" : base.REVOCATION_SYNC_SECONDS,
    // At least twice the sync interval, as config.ts requires (else it logs an error and uses that).
    MAX_STALENESS_SECONDS: base === env ? "120" : base.MAX_STALENESS_SECONDS,
  };
  return {
    testEnv,
    log,
    reset() {
      log.calls.length = 0;
      log.queries.length = 0;
    },
  };
}

const whoami = (key: string, testEnv: Env, client = uniqueSub("client")) =>
  call("GET", "/v1/whoami", { auth: key, env: testEnv, headers: { "cf-connecting-ip": client } });

const verify = async (body: Record<string, unknown>, testEnv: Env) => {
  const response = await call("POST", "/v1/verify", { body, env: testEnv });
  expect(response.status).toBe(200);
  return response.json<{ valid: boolean; code: string }>();
};

describe("a warm key", () => {
  it("verifies with no D1 query, no KV call and no write, over HTTP auth and POST /v1/verify", async () => {
    const { key, id } = await createKey(await token(uniqueSub()), { scopes: ["models:invoke"] });
    const { testEnv, log, reset } = countingEnv();

    // Another isolate: its first request syncs the change feed and fills its memory from KV.
    isolateCache.clear();
    const first = await whoami(key, testEnv);
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ principal: "api_key", key_id: id });
    expect(log.calls).toContain("KV.get");
    // A new isolate's first sync reads the newest changes of the feed, once.
    expect(log.queries.filter((q) => q.includes("FROM key_changes"))).toEqual([
      expect.stringMatching(/^all SELECT seq, hash, key_id, kind FROM key_changes ORDER BY seq DESC LIMIT/),
    ]);
    expect(log.queries.filter((q) => q.includes("WHERE hash = ?"))).toEqual([]);
    expect(log.queries.filter((q) => q.includes("SET last_used_at"))).toHaveLength(1);
    expect(log.calls.filter((c) => KV_WRITES.has(c))).toEqual([]);

    reset();
    for (let i = 0; i < 20; i++) {
      expect((await whoami(key, testEnv)).status).toBe(200);
      expect(await verify({ key, scope: "models:invoke" }, testEnv)).toMatchObject({ valid: true, code: "VALID" });
      expect(await verify({ key, scope: "keys:write" }, testEnv)).toMatchObject({ code: "INSUFFICIENT_SCOPE" });
    }
    expect(log.queries).toEqual([]);
    expect(log.calls).toEqual([]);
  });

  it("stays storage-free with an older accepted prefix and with the Analytics Engine counters on", async () => {
    const { key } = await createKey(await token(uniqueSub()), { scopes: ["models:invoke"] });
    const { testEnv, log, reset } = countingEnv();
    const points: unknown[] = [];
    const migrated: Env = {
      ...testEnv,
      KEY_PREFIX: "sk_live",
      ACCEPTED_PREFIXES: "lk",
      // The suite's opaque:sk_live_ format would overlap the new prefix (a configuration error).
      LEGACY_KEY_FORMATS: "sanctum",
      VERIFY_ANALYTICS: { writeDataPoint: (point) => void points.push(point) },
    };
    isolateCache.clear();
    expect((await whoami(key, migrated)).status).toBe(200); // warms this isolate
    reset();
    points.length = 0;
    for (let i = 0; i < 10; i++) {
      expect((await whoami(key, migrated)).status).toBe(200);
      expect(await verify({ key, scope: "models:invoke" }, migrated)).toMatchObject({ valid: true });
    }
    expect(log.queries).toEqual([]);
    expect(log.calls).toEqual([]);
    expect(points).toHaveLength(20); // one data point per verification, and nothing else
  });

  it("called from an allowed browser origin, still no storage: CORS is decided from the configuration alone", async () => {
    const { key } = await createKey(await token(uniqueSub()));
    const counting = countingEnv();
    const testEnv = { ...counting.testEnv, ALLOWED_ORIGINS: "https://dash.example.com" };
    const headers = { Origin: "https://dash.example.com", "cf-connecting-ip": uniqueSub("client") };
    expect((await call("GET", "/v1/whoami", { auth: key, env: testEnv, headers })).status).toBe(200);

    counting.reset();
    for (let i = 0; i < 10; i++) {
      const response = await call("GET", "/v1/whoami", { auth: key, env: testEnv, headers });
      expect(response.headers.get("access-control-allow-origin")).toBe("https://dash.example.com");
      const preflight = await call("OPTIONS", "/v1/keys", {
        env: testEnv,
        headers: { ...headers, "Access-Control-Request-Method": "POST" },
      });
      expect(preflight.status).toBe(204);
    }
    expect(counting.log.calls).toEqual([]);
  });

  it("made here by POST /v1/keys is warm at once: its first use reads nothing but writes last_used", async () => {
    const { testEnv, log, reset } = countingEnv();
    await verify({ key: generateKey("lk") }, testEnv); // any well-formed key: makes the feed sync fresh
    const { key } = await createKey(await token(uniqueSub()), {}, testEnv);
    expect(log.calls.filter((c) => c === "KV.put")).toHaveLength(1);
    expect(log.calls.filter((c) => c === "DB.batch")).toHaveLength(1); // the INSERT and its audit event
    expect(log.queries.filter((q) => D1_WRITE.test(q))).toEqual([]);

    reset();
    expect((await whoami(key, testEnv)).status).toBe(200);
    expect(log.calls).toEqual(["DB.prepare"]);
    expect(log.queries).toHaveLength(1);
    expect(log.queries[0]).toMatch(/^run UPDATE api_keys SET last_used_at/);

    reset();
    for (let i = 0; i < 10; i++) expect((await whoami(key, testEnv)).status).toBe(200);
    expect(log.calls).toEqual([]);
  });
});

describe("the change feed", () => {
  it("costs a warm key nothing, though the feed carried changes to other keys; a revoked key is then refused from memory", async () => {
    const jwt = await token(uniqueSub());
    const [kept, revoked] = [await createKey(jwt), await createKey(jwt)];
    const { testEnv, log, reset } = countingEnv(envWith({ REVOCATION_SYNC_SECONDS: "0.1" }));
    isolateCache.clear();
    expect((await whoami(kept.key, testEnv)).status).toBe(200);
    expect((await whoami(revoked.key, testEnv)).status).toBe(200);
    // Revoked at another location: D1 only (its trigger appends to the feed).
    await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(Date.now(), revoked.id).run();
    await new Promise((resolve) => setTimeout(resolve, 250)); // past two sync intervals
    reset();
    expect((await whoami(kept.key, testEnv)).status).toBe(200); // syncs first: one feed query
    expect(log.queries).toEqual([
      expect.stringMatching(/^all SELECT seq, hash, key_id, kind FROM key_changes WHERE seq > \?/),
    ]);

    reset();
    for (let i = 0; i < 5; i++) {
      expect((await whoami(kept.key, testEnv)).status).toBe(200);
      expect(await verify({ key: revoked.key }, testEnv)).toEqual({
        valid: false,
        code: "REVOKED",
        key_id: revoked.id,
      });
      expect((await whoami(revoked.key, testEnv)).status).toBe(401);
    }
    // Within the interval nothing is synced, and the revocation is answered from the feed's memory.
    expect(log.queries.filter((q) => !q.includes("FROM key_changes"))).toEqual([]);
    expect(log.calls.filter((c) => c.startsWith("KV."))).toEqual([]);
  });
});

describe("a warm key with an IP allow-list", () => {
  it("verifies, or is refused by address, with no storage call at all", async () => {
    const { key } = await createKey(await token(uniqueSub()), { allowed_ips: ["192.0.2.0/24", "2001:db8::/32"] });
    const { testEnv, log, reset } = countingEnv();
    const from = (ip: string) =>
      call("GET", "/v1/whoami", { auth: key, env: testEnv, headers: { "cf-connecting-ip": ip } });
    expect((await from("192.0.2.1")).status).toBe(200); // warm-up: sync, KV read, last use

    reset();
    for (let i = 0; i < 20; i++) {
      expect((await from("192.0.2.7")).status).toBe(200);
      expect((await from("2001:db8::7")).status).toBe(200);
      expect(await verify({ key, ip: "192.0.2.9" }, testEnv)).toMatchObject({ code: "VALID" });
      expect(await verify({ key, ip: "198.51.100.1" }, testEnv)).toMatchObject({ code: "IP_NOT_ALLOWED" });
      expect(await verify({ key }, testEnv)).toMatchObject({ code: "IP_NOT_ALLOWED" });
    }
    expect(log.calls).toEqual([]);
  });
});

describe("a key changed here", () => {
  it("is answered from memory at once: the change costs its own write, the next verification nothing", async () => {
    const sub = uniqueSub();
    const { id, key } = await createKey(await token(sub), { scopes: ["models:invoke"] });
    const { testEnv, log, reset } = countingEnv();
    expect((await whoami(key, testEnv)).status).toBe(200); // warm-up

    for (const [body, code] of [
      [{ enabled: false }, "DISABLED"],
      [{ enabled: true, allowed_ips: ["10.0.0.0/8"] }, "IP_NOT_ALLOWED"],
      [{ allowed_ips: null, scopes: ["metrics:read"] }, "INSUFFICIENT_SCOPE"],
    ] as const) {
      const response = await call("PATCH", `/v1/keys/${id}`, { auth: await token(sub), body, env: testEnv });
      expect(response.status).toBe(200);
      reset();
      for (let i = 0; i < 5; i++) {
        expect(await verify({ key, scope: "models:invoke" }, testEnv)).toMatchObject({ code });
      }
      expect(log.calls).toEqual([]);
    }
  });
});

describe("a key's record in isolate memory", () => {
  afterEach(() => vi.useRealTimers());

  it("outlives a minute (only a change in the feed changes a record, and sync handles that), then is read again", async () => {
    const { key } = await createKey(await token(uniqueSub()));
    const { testEnv, log, reset } = countingEnv();
    isolateCache.clear();
    expect((await whoami(key, testEnv)).status).toBe(200); // read from KV into memory
    expect(log.calls).toContain("KV.get");

    vi.useFakeTimers({ toFake: ["Date"] });
    const start = Date.now();
    reset();
    vi.setSystemTime(start + 3 * 60_000); // before the shortest lifetime (80% of 5 minutes)
    expect((await whoami(key, testEnv)).status).toBe(200);
    expect(log.calls).not.toContain("KV.get");
    // What three minutes do cost: a feed sync from where it was (stale caches sync first) and the key's last use.
    expect(log.queries).toEqual([
      expect.stringMatching(/^all SELECT seq, hash, key_id, kind FROM key_changes WHERE seq > \? ORDER BY seq/),
      expect.stringMatching(/^run UPDATE api_keys SET last_used_at/),
    ]);

    reset();
    vi.setSystemTime(start + 5 * 60_000 + 1); // past the longest
    expect((await whoami(key, testEnv)).status).toBe(200);
    expect(log.calls).toContain("KV.get");
  });
});

describe("a well-formed unknown key", () => {
  it("costs one KV read and one D1 lookup, then nothing while it is remembered as unknown", async () => {
    const { testEnv, log, reset } = countingEnv();
    await verify({ key: generateKey("lk") }, testEnv); // any well-formed key: makes the feed sync fresh
    const unknown = generateKey("lk");

    reset();
    expect(await verify({ key: unknown }, testEnv)).toMatchObject({ valid: false, code: "NOT_FOUND" });
    expect(log.calls).toEqual(["KV.get", "DB.prepare"]);
    expect(log.queries).toEqual([expect.stringMatching(/^first SELECT .* WHERE hash = \?$/)]);

    reset();
    for (let i = 0; i < 10; i++) {
      expect(await verify({ key: unknown }, testEnv)).toMatchObject({ code: "NOT_FOUND" });
      expect((await whoami(unknown, testEnv)).status).toBe(401);
    }
    expect(log.calls).toEqual([]);
  });
});

describe("a malformed key", () => {
  it("makes no KV or D1 call at all, on HTTP auth or POST /v1/verify, even when a feed sync is due", async () => {
    const { key } = await createKey(await token(uniqueSub()));
    const wrongChecksum = key.slice(0, -1) + (key.endsWith("A") ? "B" : "A");
    const { testEnv, log } = countingEnv();
    isolateCache.clear(); // a fresh isolate: the next well-formed key would sync first

    for (const bad of [wrongChecksum, key.slice(0, -1), `${key}A`, "lk_garbage"]) {
      const response = await whoami(bad, testEnv);
      expect(response.status).toBe(401);
      expect(((await response.json()) as { detail: string }).detail).toMatch(/malformed/);
      expect(await verify({ key: bad }, testEnv)).toMatchObject({ valid: false, code: "MALFORMED" });
    }
    expect(await verify({ key: generateKey("other") }, testEnv)).toMatchObject({ code: "MALFORMED" });
    expect(log.calls).toEqual([]);

    // The counting env does see storage when a key is well-formed.
    expect((await whoami(key, testEnv)).status).toBe(200);
    expect(log.calls).toContain("KV.get");
  });
});

describe("a client over its failed-authentication limit", () => {
  it("gets its 429 before any storage lookup: zero D1 and KV calls, and the limiter is not asked again", async () => {
    const { key: warm } = await createKey(await token(uniqueSub()));
    const { key: cold, id: coldId } = await createKey(await token(uniqueSub()));
    const { testEnv, log, reset } = countingEnv();
    let asked = 0;
    // A limiter that finds the client over its limit at its first failure.
    const limitedEnv = {
      ...testEnv,
      AUTH_FAILURE_LIMITER: { limit: async () => (asked++, { success: false }) } as RateLimit,
    };
    const client = `2001:db8:${crypto.randomUUID().slice(0, 4)}::1`;
    const from = (authorization: string) =>
      call("GET", "/v1/whoami", { headers: { authorization, "cf-connecting-ip": client }, env: limitedEnv });

    expect((await from(`Bearer ${warm}`)).status).toBe(200); // syncs, and makes `warm` warm here
    isolateCache.records.delete(await sha256Hex(cold)); // `cold` is a valid key this isolate has not seen
    const first = await from(`Bearer ${generateKey("lk")}`);
    expect(first.status).toBe(429);
    expect(log.calls).toContain("KV.get"); // the failure that found the limit did look the key up
    expect(asked).toBe(1);

    reset();
    for (let i = 0; i < 10; i++) {
      for (const authorization of [`Bearer ${generateKey("lk")}`, `Api-Key ${generateKey("lk")}`, `Bearer ${cold}`]) {
        const response = await from(authorization);
        expect(response.status, authorization.slice(0, 8)).toBe(429);
        expect(response.headers.get("retry-after")).toBe("60");
      }
    }
    expect(log.calls).toEqual([]);
    expect(asked).toBe(1);
    // What memory can settle is still answered: a warm key works, from memory alone.
    expect((await from(`Bearer ${warm}`)).status).toBe(200);
    expect(log.calls.filter((c) => c.startsWith("KV"))).toEqual([]);
    expect(log.queries.filter((q) => !q.includes("SET last_used_at"))).toEqual([]);
    // Another client is not shed: the same cold key is looked up and works.
    const other = await call("GET", "/v1/whoami", {
      auth: cold,
      env: limitedEnv,
      headers: { "cf-connecting-ip": "192.0.2.7" },
    });
    expect(await other.json()).toMatchObject({ key_id: coldId });
  });

  it("once its memory is up, a flood re-checks it with one request, not one lookup per request in flight", async () => {
    const { key: warm } = await createKey(await token(uniqueSub()));
    const { testEnv, log, reset } = countingEnv();
    let over = true;
    let asked = 0;
    const limitedEnv = {
      ...testEnv,
      AUTH_FAILURE_LIMITER: { limit: async () => (asked++, { success: !over }) } as RateLimit,
    };
    const client = `2001:db8:${crypto.randomUUID().slice(0, 4)}::2`;
    const from = (key: string) =>
      call("GET", "/v1/whoami", {
        headers: { authorization: `Bearer ${key}`, "cf-connecting-ip": client },
        env: limitedEnv,
      });
    const guesses = (n: number) => Promise.all(Array.from({ length: n }, () => from(generateKey("lk"))));
    try {
      expect((await from(warm)).status).toBe(200); // syncs, and makes `warm` warm here
      expect((await from(generateKey("lk"))).status).toBe(429); // found over at its first failure
      expect(asked).toBe(1);

      // Past the 10 s of memory, ten guesses arrive at once: one re-checks (its lookup, the binding),
      // the other nine are judged from memory, as are those that follow.
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 10_001 });
      reset();
      expect((await guesses(10)).map((r) => r.status)).toEqual(Array(10).fill(429));
      expect(asked).toBe(2);
      expect(log.calls.filter((c) => c === "KV.get")).toHaveLength(1);
      expect((await guesses(5)).map((r) => r.status)).toEqual(Array(5).fill(429));
      expect(asked).toBe(2);
      expect(log.calls.filter((c) => c === "KV.get")).toHaveLength(1);

      // A new window: the re-check finds the client under its limit, and it is an ordinary client again.
      over = false;
      vi.setSystemTime(Date.now() + 10_001);
      expect((await from(generateKey("lk"))).status).toBe(401);
      expect((await from(generateKey("lk"))).status).toBe(401);
      expect(asked).toBe(4);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("an open POST /v1/verify, for a client over its NOT_FOUND limit", () => {
  it("answers 429 to what memory cannot settle, with zero storage calls; known keys still get their verdict", async () => {
    const { key: warm } = await createKey(await token(uniqueSub()), { scopes: ["models:invoke"] });
    const { testEnv, log, reset } = countingEnv();
    const counted: string[] = [];
    const missLimit = 2;
    const limitedEnv = {
      ...testEnv,
      VERIFY_MISS_LIMITER: {
        limit: async ({ key }: RateLimitOptions) => {
          counted.push(key);
          return { success: counted.filter((k) => k === key).length <= missLimit };
        },
      } as RateLimit,
    };
    const client = `2001:db8:${crypto.randomUUID().slice(0, 4)}::1`;
    const verifyFrom = (key: string, ip = client) =>
      call("POST", "/v1/verify", {
        body: { key, scope: "models:invoke" },
        env: limitedEnv,
        headers: { "cf-connecting-ip": ip },
      });

    // Known keys and malformed ones are not misses: never counted.
    expect(await (await verifyFrom(warm)).json()).toMatchObject({ valid: true, code: "VALID" });
    expect(await (await verifyFrom("lk_garbage")).json()).toMatchObject({ code: "MALFORMED" });
    expect(counted).toEqual([]);
    for (let i = 0; i < missLimit; i++) {
      expect(await (await verifyFrom(generateKey("lk"))).json()).toMatchObject({ code: "NOT_FOUND" });
    }
    const over = await verifyFrom(generateKey("lk"));
    await expectProblem(over, 429, "verify_rate_limited");
    expect(over.headers.get("retry-after")).toBe("60");
    expect(counted).toHaveLength(missLimit + 1);
    expect(new Set(counted).size).toBe(1);

    reset();
    for (let i = 0; i < 10; i++) expect((await verifyFrom(generateKey("lk"))).status).toBe(429);
    expect(log.calls).toEqual([]);
    expect(counted).toHaveLength(missLimit + 1); // the limiter is not asked again either
    expect(await (await verifyFrom(warm)).json()).toMatchObject({ valid: true, code: "VALID" });
    expect(await (await verifyFrom("lk_garbage")).json()).toMatchObject({ code: "MALFORMED" });
    expect(log.calls.filter((c) => c.startsWith("KV"))).toEqual([]);
    expect(log.queries.filter((q) => !q.includes("SET last_used_at"))).toEqual([]);

    // Another client still gets its NOT_FOUND, counted under its own key.
    expect(await (await verifyFrom(generateKey("lk"), "192.0.2.8")).json()).toMatchObject({ code: "NOT_FOUND" });
    expect(counted.at(-1)).not.toBe(counted[0]);
  });
});

describe("memory-only verdicts (a client over its limit)", () => {
  it("still refuse a disabled key and a key used from outside its allow-list, with no storage call", async () => {
    const jwt = await token(uniqueSub());
    const disabled = await createKey(jwt, { scopes: ["models:invoke"] });
    const listed = await createKey(jwt, { scopes: ["models:invoke"], allowed_ips: ["192.0.2.0/24"] });
    const patched = await call("PATCH", `/v1/keys/${disabled.id}`, { auth: jwt, body: { enabled: false } });
    expect(patched.status).toBe(200);
    const { testEnv, log, reset } = countingEnv();
    const limitedEnv = {
      ...testEnv,
      VERIFY_MISS_LIMITER: { limit: async () => ({ success: false }) } as RateLimit,
    };
    const client = `2001:db8:${crypto.randomUUID().slice(0, 4)}::1`;
    const verifyFrom = async (key: string, ip?: string) =>
      (
        await call("POST", "/v1/verify", {
          body: { key, ...(ip ? { ip } : {}) },
          env: limitedEnv,
          headers: { "cf-connecting-ip": client },
        })
      ).json<{ valid: boolean; code: string }>();

    // Over the limit from its first miss: from then on, memory alone answers this client.
    expect(
      (
        await call("POST", "/v1/verify", {
          body: { key: generateKey("lk") },
          env: limitedEnv,
          headers: { "cf-connecting-ip": client },
        })
      ).status,
    ).toBe(429);
    reset();
    expect(await verifyFrom(disabled.key)).toMatchObject({ valid: false, code: "DISABLED" });
    expect(await verifyFrom(listed.key, "198.51.100.1")).toMatchObject({ valid: false, code: "IP_NOT_ALLOWED" });
    expect(await verifyFrom(listed.key)).toMatchObject({ valid: false, code: "IP_NOT_ALLOWED" });
    expect(await verifyFrom(listed.key, "192.0.2.1")).toMatchObject({ valid: true, code: "VALID" });
    expect(log.calls.filter((c) => c.startsWith("KV"))).toEqual([]);
    expect(log.queries.filter((q) => !q.includes("SET last_used_at"))).toEqual([]);
  });
});

describe("imported keys' formats (LEGACY_KEY_FORMATS)", () => {
  const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const alnum = (length: number) =>
    Array.from(crypto.getRandomValues(new Uint8Array(length)), (b) => ALNUM[b % ALNUM.length]).join("");

  it("a string in no accepted form touches no storage, whatever formats are enabled", async () => {
    const { testEnv, log } = countingEnv();
    const none = { ...testEnv, LEGACY_KEY_FORMATS: "" };
    isolateCache.clear(); // a fresh isolate: a lookup would sync revocations first
    const neither = [
      `pk_live_${alnum(24)}`, // a prefix not enabled
      `sk_live_${alnum(8)}`, // too short
      `sk_live_${alnum(20)}.x`, // a character no key has
      alnum(39), // too short for a Sanctum secret
      `x|${alnum(40)}`, // a Sanctum id is digits
      `12|${alnum(39)}`,
      `${crypto.randomUUID()}|lk_garbage`, // the <id>|<key> form needs a well-formed key
      `1|${generateKey("lk")}`, // ...and the key's UUID
    ];
    for (const candidate of neither) {
      expect(await verify({ key: candidate }, testEnv), candidate).toMatchObject({ code: "MALFORMED" });
      expect((await whoami(candidate, testEnv)).status).toBe(401);
    }
    for (const candidate of [alnum(40), `7|${alnum(40)}`, `sk_live_${alnum(24)}`]) {
      expect(await verify({ key: candidate }, none), candidate).toMatchObject({ code: "MALFORMED" });
    }
    // A configured prefix overlapping latchkey's is refused, so a malformed latchkey key stays free.
    vi.spyOn(console, "error").mockImplementation(() => {});
    const overlapping = { ...testEnv, LEGACY_KEY_FORMATS: "opaque:lk,opaque:lk_live_" };
    for (const candidate of [`lk_${alnum(49)}`, `lk_live_${alnum(24)}`]) {
      expect(await verify({ key: candidate }, overlapping), candidate).toMatchObject({ code: "MALFORMED" });
    }
    vi.restoreAllMocks();
    expect(log.calls).toEqual([]);
  });

  it("a random string in an enabled form costs one lookup, then nothing while it is remembered as unknown", async () => {
    const { testEnv, log, reset } = countingEnv();
    await verify({ key: generateKey("lk") }, testEnv); // makes the revocation sync fresh
    for (const guess of [alnum(40), `sk_live_${alnum(24)}`]) {
      reset();
      expect(await verify({ key: guess }, testEnv)).toMatchObject({ code: "NOT_FOUND" });
      expect(log.calls).toEqual(["KV.get", "DB.prepare"]);
      reset();
      for (let i = 0; i < 5; i++) {
        expect(await verify({ key: guess }, testEnv)).toMatchObject({ code: "NOT_FOUND" });
        expect((await whoami(guess, testEnv)).status).toBe(401);
      }
      expect(log.calls).toEqual([]);
    }
  });

  it("a warm imported key verifies with no storage at all, in either of its forms", async () => {
    const secret = alnum(40);
    const jwt = await token(uniqueSub());
    const imported = await call("POST", "/v1/keys/import", {
      auth: jwt,
      env: envWith({ IMPORT_ALLOWED: "personal" }),
      body: { keys: [{ hash: await sha256Hex(secret), name: "laravel", format: "sanctum" }] },
    });
    expect(imported.status).toBe(200);
    const { testEnv, log, reset } = countingEnv();
    expect((await whoami(`3|${secret}`, testEnv)).status).toBe(200); // warm: last use written
    reset();
    for (let i = 0; i < 10; i++) {
      expect((await whoami(`3|${secret}`, testEnv)).status).toBe(200);
      expect(await verify({ key: secret }, testEnv)).toMatchObject({ valid: true });
    }
    expect(log.calls).toEqual([]);
  });
});

describe("imported keys' formats, for a client over its failed-authentication limit", () => {
  const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const alnum = (length: number) =>
    Array.from(crypto.getRandomValues(new Uint8Array(length)), (b) => ALNUM[b % ALNUM.length]).join("");

  it("a guess in a form no record in memory has is refused unhashed; a warm imported key still works", async () => {
    const { testEnv, log, reset } = countingEnv();
    const limitedEnv = {
      ...testEnv,
      AUTH_FAILURE_LIMITER: { limit: async () => ({ success: false }) } as RateLimit,
    };
    const client = `2001:db8:${crypto.randomUUID().slice(0, 4)}::3`;
    const from = (authorization: string) =>
      call("GET", "/v1/whoami", { headers: { authorization, "cf-connecting-ip": client }, env: limitedEnv });
    const secret = alnum(40);
    const jwt = await token(uniqueSub());
    const imported = await call("POST", "/v1/keys/import", {
      auth: jwt,
      env: envWith({ IMPORT_ALLOWED: "personal" }),
      body: { keys: [{ hash: await sha256Hex(secret), name: "laravel", format: "sanctum" }] },
    });
    expect(imported.status).toBe(200);
    const { key: latchkey } = await createKey(jwt);

    isolateCache.clear(); // no imported key in memory
    expect((await from(`Bearer ${latchkey}`)).status).toBe(200); // syncs; a latchkey key is warm here
    expect((await from(`Bearer ${generateKey("lk")}`)).status).toBe(429); // the client is over its limit
    reset();
    const digest = vi.spyOn(crypto.subtle, "digest");
    for (const guess of [alnum(40), `7|${alnum(40)}`]) expect((await from(`Bearer ${guess}`)).status).toBe(429);
    expect(digest).not.toHaveBeenCalled();
    expect((await from(`Bearer ${latchkey}`)).status).toBe(200); // a warm key of another scheme: hashed, works
    expect(digest).toHaveBeenCalledTimes(1);
    digest.mockClear();

    // Once an imported key is warm here, the client's guesses in its form are hashed and looked for.
    expect((await call("GET", "/v1/whoami", { auth: `3|${secret}`, env: limitedEnv })).status).toBe(200);
    reset();
    digest.mockClear();
    expect((await from(`Bearer ${alnum(40)}`)).status).toBe(429);
    expect(digest).toHaveBeenCalledTimes(1);
    expect((await from(`Bearer ${secret}`)).status).toBe(200);
    expect((await from(`Api-Key 12|${secret}`)).status).toBe(200);
    expect(log.calls.filter((c) => c.startsWith("KV"))).toEqual([]);
    expect(log.queries.filter((q) => !q.includes("SET last_used_at"))).toEqual([]);

    // When it leaves memory, its form is refused unhashed again.
    isolateCache.records.delete(await sha256Hex(secret));
    digest.mockClear();
    expect((await from(`Bearer ${secret}`)).status).toBe(429);
    expect(digest).not.toHaveBeenCalled();
  });
});

describe("usage limits (Durable Object counters)", () => {
  it("a key without limits never calls a counter; a warm key with limits makes one counter call, no D1 or KV", async () => {
    const jwt = await token(uniqueSub());
    const plain = await createKey(jwt);
    const limited = await createKey(jwt, {
      ratelimits: [
        { name: "second", limit: 1000, duration_ms: 1000 },
        { name: "day", limit: 100_000, duration_ms: 86_400_000 },
      ],
      credits: { remaining: 1000, refill: { amount: 1000, interval: "month" } },
    });
    const { testEnv, log, reset } = countingEnv();
    await whoami(plain.key, testEnv); // warm-up: sync, and first uses written
    await whoami(limited.key, testEnv);

    reset();
    for (let i = 0; i < 10; i++) {
      expect((await whoami(plain.key, testEnv)).status).toBe(200);
      expect(await verify({ key: plain.key }, testEnv)).toMatchObject({ code: "VALID" });
    }
    expect(log.calls).toEqual([]);

    reset();
    for (let i = 0; i < 5; i++) {
      expect((await whoami(limited.key, testEnv)).status).toBe(200);
      expect(await verify({ key: limited.key, cost: 3 }, testEnv)).toMatchObject({ code: "VALID" });
    }
    // Each verification: one stub (idFromName + get) and one call carrying every limit.
    expect(log.calls).toEqual(Array.from({ length: 10 }, () => ["DO.idFromName", "DO.get", "DO.take"]).flat());
  });
});
