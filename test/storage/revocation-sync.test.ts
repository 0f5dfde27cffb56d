/**
 * Changes across locations, through the change feed (src/service/feed.ts). That the revoking
 * location refuses a key on the very next request is tested in storage.test.ts. Any other isolate
 * learns of a change from D1's feed within twice the sync interval, even while its memory and KV
 * still hold the key's old record; the feed is ordered by D1's commit sequence, so a revocation
 * stamped with any time, or committed late, is honoured all the same.
 *
 * "Another location" is a direct UPDATE of D1 (its trigger appends to the feed), which evicts nothing
 * from an isolate or from KV. `isolate()` makes a second isolate: a Verifier with caches of its own.
 *
 * Changes other than revocation (disable, expiry, scopes, resources, allow-list, a rotation's new
 * expiry) travel the same way: migration 0005's trigger feeds enabled and allowed_ips, 0002's the rest,
 * so `changeElsewhere` (a direct UPDATE) is fed like any change.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config";
import type { Env } from "../../src/env";
import { sha256Hex } from "../../src/keys/hash";
import { CHANGE_MEMORY_ENTRIES, CHANGE_MEMORY_MS, FeedState } from "../../src/service/feed";
import { IsolateCache, SYNC_WAIT_MS, Verifier, isolateCache } from "../../src/service/verify";
import { type CachedRecord, KvRecordCache, cacheKey } from "../../src/store/cache";
import { D1KeyStore } from "../../src/store/d1";
import { call, captureLogs, createKey, envWith, faultyDb, token, uniqueSub } from "../helpers";

const SYNC_SECONDS = 0.2;
const INTERVAL_MS = SYNC_SECONDS * 1000;
/** The same bindings with a short sync interval (a fresh env object: its configuration is read afresh). */
const fastSync = envWith({ REVOCATION_SYNC_SECONDS: String(SYNC_SECONDS) });

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(() => vi.useRealTimers());

const whoami = (key: string, testEnv: Env = env) =>
  call("GET", "/v1/whoami", { auth: key, env: testEnv, headers: { "cf-connecting-ip": uniqueSub("client") } });

async function verifyCode(key: string, testEnv: Env = env, options: Record<string, unknown> = {}): Promise<string> {
  const response = await call("POST", "/v1/verify", { body: { key, ...options }, env: testEnv });
  expect(response.status).toBe(200);
  return (await response.json<{ code: string }>()).code;
}

async function kvEntry(key: string): Promise<CachedRecord | null> {
  return env.KEY_CACHE.get<CachedRecord>(cacheKey(await sha256Hex(key)), "json");
}

/** Revokes the key in D1 only, as another location's DELETE would: no isolate and no KV is told. */
async function revokeElsewhere(id: string, at = Date.now()): Promise<void> {
  const { results } = await env.DB.prepare(
    "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING id",
  )
    .bind(at, id)
    .all();
  expect(results).toEqual([{ id }]);
}

/** Another isolate: a Verifier with its own memory and feed position, over the given bindings. */
function isolate(testEnv: Env = fastSync, kv: KVNamespace = testEnv.KEY_CACHE) {
  const local = new IsolateCache();
  const deferred: Promise<unknown>[] = [];
  const verifier = new Verifier(
    {
      store: new D1KeyStore(testEnv.DB),
      cache: new KvRecordCache(kv),
      config: loadConfig(testEnv),
      defer: (work) => void deferred.push(work),
    },
    local,
  );
  return {
    local,
    verifier,
    /** Verifies, then lets the work deferred past the "response" finish. */
    async code(key: string): Promise<string> {
      const { code } = await verifier.verify(key);
      while (deferred.length > 0) await Promise.allSettled(deferred.splice(0));
      return code;
    },
  };
}

/** A key used once, so that it is cached in this isolate's memory and in KV. */
async function warmKey(body: Record<string, unknown> = {}): Promise<{ id: string; key: string }> {
  const { id, key } = await createKey(await token(uniqueSub()), body);
  expect((await whoami(key, fastSync)).status).toBe(200); // also makes this isolate's sync fresh
  expect(isolateCache.records.get(await sha256Hex(key), Date.now())?.record.id).toBe(id);
  expect((await kvEntry(key))?.record).toMatchObject({ id, revokedAt: null });
  return { id, key };
}

describe("a revocation made at another location", () => {
  it("is not seen before the sync interval, and is honoured once twice the interval has passed, though KV still holds the key", async () => {
    const { id, key } = await warmKey();
    await revokeElsewhere(id);

    // Right after: answered from this isolate's cache, within the (default, 5 s) sync interval.
    expect((await whoami(key)).status).toBe(200);
    expect(await verifyCode(key)).toBe("VALID");

    // Once twice the interval has passed, the isolate syncs before answering: the key fails.
    await pause(2 * INTERVAL_MS + 50);
    const refused = await whoami(key, fastSync);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/revoked/);
    expect(await verifyCode(key, fastSync)).toBe("REVOKED");
    expect(await verifyCode(key)).toBe("REVOKED");

    // The feed did this, not an eviction: KV still holds the pre-revocation record.
    expect((await kvEntry(key))?.record).toMatchObject({ id, revokedAt: null });
  });

  it("past one interval but within two, is answered from memory once while the sync runs after the response, then refused", async () => {
    const { id, key } = await warmKey();
    await revokeElsewhere(id);
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(isolateCache.feed.lastSyncAt + 1.5 * INTERVAL_MS);
    expect((await whoami(key, fastSync)).status).toBe(200); // due, not stale: not waited for
    expect((await whoami(key, fastSync)).status).toBe(401); // `call` waited for the sync it started
    expect((await kvEntry(key))?.record).toMatchObject({ id, revokedAt: null });
  });

  it("is honoured by a fresh isolate at once, whatever KV holds", async () => {
    const { id, key } = await warmKey();
    await revokeElsewhere(id);
    isolateCache.clear();
    expect((await kvEntry(key))?.record).toMatchObject({ id, revokedAt: null });
    expect(await verifyCode(key)).toBe("REVOKED");
    expect((await whoami(key)).status).toBe(401);
  });

  it("leaves other keys of the same isolate working", async () => {
    const revoked = await warmKey();
    const kept = await warmKey();
    await revokeElsewhere(revoked.id);
    await pause(2 * INTERVAL_MS + 50);
    expect(await verifyCode(revoked.key, fastSync)).toBe("REVOKED");
    expect(await verifyCode(kept.key, fastSync)).toBe("VALID");
    expect((await whoami(kept.key)).status).toBe(200);
  });
});

describe("the feed is ordered by D1, not by clocks", () => {
  it("honours a revocation written directly in D1 with a back-dated revoked_at", async () => {
    const { id, key } = await createKey(await token(uniqueSub()));
    const other = isolate();
    expect(await other.code(key)).toBe("VALID");
    await revokeElsewhere(id, Date.now() - 3_600_000); // an hour in the past, by an operator
    const { results } = await env.DB.prepare("SELECT kind FROM key_changes WHERE key_id = ?").bind(id).all();
    expect(results).toEqual([{ kind: "revoked" }]); // the trigger fed it
    await pause(2 * INTERVAL_MS + 50);
    expect(await other.code(key)).toBe("REVOKED");
  });

  it("honours a revocation that commits long after the time it was stamped with", async () => {
    const { id, key } = await createKey(await token(uniqueSub()));
    const other = isolate();
    const stampedAt = Date.now();
    vi.useFakeTimers({ toFake: ["Date"] });
    // The other isolate syncs a minute after the stamp, with the revocation not yet committed.
    vi.setSystemTime(stampedAt + 60_000);
    expect(await other.code(key)).toBe("VALID");
    expect(other.local.feed.lastSyncAt).toBe(stampedAt + 60_000);
    await revokeElsewhere(id, stampedAt); // commits now, a minute "late"
    vi.setSystemTime(stampedAt + 60_000 + 2 * INTERVAL_MS);
    expect(await other.code(key)).toBe("REVOKED");
  });

  it("never trusts a stale copy that a KV fill racing the revocation put back", async () => {
    const jwt = await token(uniqueSub());
    const { id, key } = await createKey(jwt);
    const hash = await sha256Hex(key);
    const watcher = isolate(); // warm and synced before the revocation
    expect(await watcher.code(key)).toBe("VALID");
    await env.KEY_CACHE.delete(cacheKey(hash));

    // An isolate reads the key from D1 (a KV miss) and defers its KV put, which is held back...
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const slowPut: KVNamespace = new Proxy(env.KEY_CACHE, {
      get(target, prop) {
        if (prop === "put") return async (...args: Parameters<KVNamespace["put"]>) => (await held, target.put(...args));
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const filler = isolate(fastSync, slowPut);
    const filling = filler.code(key);
    await pause(50);
    // ...while the key is revoked (its KV copy deleted), and only then lands.
    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt })).status).toBe(204);
    release();
    expect(await filling).toBe("VALID");
    expect((await kvEntry(key))?.record).toMatchObject({ id, revokedAt: null }); // the stale copy is back

    expect(await isolate().code(key)).toBe("REVOKED"); // a new isolate: the feed's tail names the key
    await pause(2 * INTERVAL_MS + 50);
    expect(await watcher.code(key)).toBe("REVOKED"); // a warm one: it synced the revocation
    expect(await filler.code(key)).toBe("REVOKED");
  });

  it("loses no change across a page boundary, and a new isolate distrusts KV copies older than the feed it read", async () => {
    const owner = uniqueSub("filler");
    const fillers = (label: string) =>
      env.DB.batch(
        Array.from({ length: 1000 }, (_, i) =>
          env.DB.prepare(
            "INSERT INTO api_keys (id, hash, start, name, owner_type, owner_id, scopes, created_by, created_at) VALUES (?, ?, 'lk_x', 'f', 'user', ?, '[]', 'user:filler', 0)",
          ).bind(crypto.randomUUID(), `${owner}-${label}-${i}`, `${owner}-${label}`),
        ),
      );
    const revokeFillers = (label: string) =>
      env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE owner_type = 'user' AND owner_id = ?")
        .bind(Date.now(), `${owner}-${label}`)
        .run();
    await fillers("before");
    await fillers("after");
    const { id, key } = await createKey(await token(uniqueSub())); // its record is now in KV
    const warm = isolate();
    expect(await warm.code(key)).toBe("VALID");

    // 1,000 changes, then the key's revocation (the 1,001st: on the second page), then 1,000 more.
    await revokeFillers("before");
    await revokeElsewhere(id);
    await revokeFillers("after");
    await pause(2 * INTERVAL_MS + 50);
    expect(await warm.code(key)).toBe("REVOKED");

    // A new isolate reads only the newest 1,000 changes: KV's copy predates them, so it asks D1.
    expect((await kvEntry(key))?.record).toMatchObject({ id, revokedAt: null });
    const fresh = isolate();
    expect(await fresh.code(key)).toBe("REVOKED");
    expect(fresh.local.feed.change(await sha256Hex(key))).toBeUndefined(); // not from the feed's memory
  }, 30_000);
});

describe("when the feed cannot be read", () => {
  it("an isolate that cannot sync for longer than MAX_STALENESS_SECONDS fails closed, and recovers once D1 answers", async () => {
    const settings = { REVOCATION_SYNC_SECONDS: String(SYNC_SECONDS), MAX_STALENESS_SECONDS: "1" };
    const healthy = envWith(settings);
    const broken = envWith({ ...settings, DB: faultyDb("reject") });
    const { key } = await createKey(await token(uniqueSub()));
    const { key: known } = await createKey(await token(uniqueSub())); // in KV, never used here
    isolateCache.clear();
    expect((await whoami(key, healthy)).status).toBe(200);
    const syncedAt = isolateCache.feed.lastSyncAt;

    vi.useFakeTimers({ toFake: ["Date"] });
    const logs = captureLogs();
    // Within the bound: D1 is down, the sync fails, and the isolate keeps answering from memory.
    vi.setSystemTime(syncedAt + 900);
    expect((await whoami(key, broken)).status).toBe(200);
    expect(await verifyCode(key, broken)).toBe("VALID");

    // Past it: neither memory nor KV vouches for a key; D1 must, and cannot.
    vi.setSystemTime(syncedAt + 1100);
    for (const candidate of [key, known]) {
      const refused = await whoami(candidate, broken);
      expect(refused.status).toBe(503);
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      const verdict = await call("POST", "/v1/verify", { body: { key: candidate }, env: broken });
      expect(verdict.status).toBe(503);
      expect(await verdict.text()).not.toMatch(/VALID/);
    }

    // Each failed sync and each refused lookup was logged.
    logs.restore();
    expect(logs.events("change_feed_sync_failed").length).toBeGreaterThan(0);
    expect(logs.events("storage_unavailable").length).toBeGreaterThan(0);
    expect(logs.lines().every((line) => ["change_feed_sync_failed", "storage_unavailable"].includes(line.event))).toBe(
      true,
    );

    // D1 answers again: the next request syncs, and the keys work.
    vi.setSystemTime(syncedAt + 1400);
    expect((await whoami(key, healthy)).status).toBe(200);
    expect(isolateCache.feed.lastSyncAt).toBe(syncedAt + 1400);
    expect(await verifyCode(known, healthy)).toBe("VALID");
  });
});

describe("the feed's retention", () => {
  it("each appended row deletes up to 4 of the oldest rows older than a day, and nothing younger", async () => {
    const day = 86_400_000;
    const now = Date.now();
    // Rows numbered before any other (the oldest): five older than a day, one younger. (The younger is
    // written first: appending it would prune the others.)
    const rows = [-11, -16, -15, -14, -13, -12].map((seq, i) => [seq, i > 0 ? now - 2 * day : now - day / 2]);
    await env.DB.batch(
      rows.map(([seq, at]) =>
        env.DB.prepare(
          "INSERT INTO key_changes (seq, hash, key_id, kind, at) VALUES (?, 'old', 'old', 'updated', ?)",
        ).bind(seq, at),
      ),
    );
    const oldRows = async () =>
      (
        await env.DB.prepare("SELECT seq FROM key_changes WHERE hash = 'old' ORDER BY seq").all<{ seq: number }>()
      ).results.map((r) => r.seq);
    expect(await oldRows()).toEqual([-16, -15, -14, -13, -12, -11]);
    const { id } = await createKey(await token(uniqueSub()));
    await revokeElsewhere(id); // one new row: four old ones go
    expect(await oldRows()).toEqual([-12, -11]);
    const { id: next } = await createKey(await token(uniqueSub()));
    await revokeElsewhere(next); // the last old one goes; the younger one stays
    expect(await oldRows()).toEqual([-11]);
    await env.DB.prepare("DELETE FROM key_changes WHERE hash = 'old'").run();
  });
});

describe("a sync on the request path", () => {
  it("is waited for at most SYNC_WAIT_MS, even by a new isolate whose feed read hangs", async () => {
    const { id, key } = await createKey(await token(uniqueSub()));
    let hung = 0;
    const hangingFeed: D1Database = new Proxy(env.DB, {
      get(target, prop) {
        if (prop !== "prepare") return Reflect.get(target, prop, target);
        return (sql: string) => {
          if (!sql.startsWith("SELECT seq")) return target.prepare(sql);
          const never = () => (hung++, new Promise<never>(() => {}));
          return { bind: () => ({ all: never, first: never, run: never, raw: never }) };
        };
      },
    });
    const cold = isolate(envWith({ REVOCATION_SYNC_SECONDS: String(SYNC_SECONDS), DB: hangingFeed }));
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    let verdict: string | null = null;
    void cold.verifier.verify(key).then((v) => (verdict = v.code));
    for (let i = 0; i < 200 && hung === 0; i++) await scheduler.wait(5);
    expect(hung).toBe(1);
    await vi.advanceTimersByTimeAsync(SYNC_WAIT_MS - 1);
    for (let i = 0; i < 20; i++) await scheduler.wait(5);
    expect(verdict).toBeNull(); // still waiting for the sync...
    await vi.advanceTimersByTimeAsync(1);
    // ...and no longer: with no feed to vouch for KV, the key is read from D1 (not hung).
    for (let i = 0; i < 400 && verdict === null; i++) await scheduler.wait(5);
    expect(verdict).toBe("VALID");
    expect(cold.local.records.get(await sha256Hex(key), Date.now())?.record.id).toBe(id);
  });
});

describe("the isolate's memory of changes", () => {
  it("is bounded by count (forgetting raises the floor, so older copies are no longer trusted) and by time", () => {
    const feed = new FeedState();
    feed.floor = 0;
    const start = Date.now();
    for (let seq = 1; seq <= CHANGE_MEMORY_ENTRIES + 10; seq++) {
      feed.seq = seq;
      feed.note(`hash-${seq}`, { seq, keyId: `id-${seq}`, revoked: true }, start);
    }
    expect(feed.known).toBe(CHANGE_MEMORY_ENTRIES);
    expect(feed.change("hash-1")).toBeUndefined();
    expect(feed.floor).toBeGreaterThanOrEqual(10);
    expect(feed.trusts("hash-1", 5, "kv")).toBe(false); // read before a forgotten change: ask D1
    expect(feed.trusts("other", CHANGE_MEMORY_ENTRIES + 10, "kv")).toBe(true);
    expect(feed.trusts(`hash-${CHANGE_MEMORY_ENTRIES}`, CHANGE_MEMORY_ENTRIES - 1, "kv")).toBe(false);

    feed.prune(start + CHANGE_MEMORY_MS - 1);
    expect(feed.known).toBe(CHANGE_MEMORY_ENTRIES);
    feed.prune(start + CHANGE_MEMORY_MS);
    expect(feed.known).toBe(0);
  });

  it("keeps a revocation a revocation when a later change to the same key follows it", () => {
    const feed = new FeedState();
    feed.floor = 0;
    const now = Date.now();
    feed.note("hash-r", { seq: 1, keyId: "id-r", revoked: true }, now);
    // An operator's UPDATE of scopes or expiry after the revocation appends 'updated' for the same hash.
    feed.note("hash-r", { seq: 2, keyId: "id-r", revoked: false }, now);
    expect(feed.change("hash-r")).toMatchObject({ seq: 2, revoked: true });
    expect(feed.trusts("hash-r", 1, "kv")).toBe(false); // a copy read before the later change: ask D1
  });
});

/** Changes the key in D1 only, as another location's PATCH or rotation would: this isolate and KV are not told. */
async function changeElsewhere(id: string, set: string, ...values: unknown[]): Promise<void> {
  const { results } = await env.DB.prepare(`UPDATE api_keys SET ${set}, updated_at = ? WHERE id = ? RETURNING id`)
    .bind(...values, Date.now(), id)
    .all();
  expect(results).toEqual([{ id }]);
}

describe("a change made at another location", () => {
  // Earlier tests leave this isolate's feed state at fake times: start each from a clean isolate.
  beforeEach(() => isolateCache.clear());
  const options = { scope: "models:invoke", resource: "m1" };
  const kinds: [string, string, (now: number) => unknown[], string][] = [
    ["disable", "enabled = 0", () => [], "DISABLED"],
    ["a new expiry (or a rotation's)", "expires_at = ?", (now) => [now], "EXPIRED"],
    ["narrower scopes", "scopes = ?", () => ['["metrics:read"]'], "INSUFFICIENT_SCOPE"],
    ["narrower resources", "resources = ?", () => ['["m2"]'], "RESOURCE_NOT_ALLOWED"],
    ["an allow-list", "allowed_ips = ?", () => ['["10.0.0.0/8"]'], "IP_NOT_ALLOWED"],
  ];

  it.each(kinds)(
    "%s is honoured within twice the sync interval, though KV held the old record",
    async (_, set, values, code) => {
      const { id, key } = await warmKey({ scopes: ["models:invoke"], resources: ["m1"] });
      await changeElsewhere(id, set, ...values(Date.now()));

      // Right after: answered from this isolate's cache, within the (default, 5 s) sync interval.
      expect(await verifyCode(key, env, options)).toBe("VALID");
      // Nothing evicted it: KV holds the record as it was before the change.
      expect((await kvEntry(key))?.record).toMatchObject({ id, enabled: true, allowedIps: null });

      // Sync learns of the change; the isolate drops its copy and, KV's being older, reads D1.
      await pause(2 * SYNC_SECONDS * 1000 + 50);
      expect(await verifyCode(key, fastSync, options)).toBe(code);
      expect(await verifyCode(key, env, options)).toBe(code);
    },
  );

  it.each(kinds)("%s is honoured by a fresh isolate at once, whatever KV holds", async (_, set, values, code) => {
    const { id, key } = await warmKey({ scopes: ["models:invoke"], resources: ["m1"] });
    await changeElsewhere(id, set, ...values(Date.now()));
    isolateCache.clear();
    expect((await kvEntry(key))?.record).toMatchObject({ id, enabled: true });
    expect(await verifyCode(key, env, options)).toBe(code);
  });

  it("re-enabling elsewhere is honoured too (a change need not be a restriction)", async () => {
    const { id, key } = await warmKey();
    await changeElsewhere(id, "enabled = 0");
    await pause(2 * SYNC_SECONDS * 1000 + 50);
    expect(await verifyCode(key, fastSync)).toBe("DISABLED");
    await changeElsewhere(id, "enabled = 1");
    await pause(2 * SYNC_SECONDS * 1000 + 50);
    expect(await verifyCode(key, fastSync)).toBe("VALID");
  });
});

describe("a change made here", () => {
  it("is honoured by the very next request here, and KV's copy is gone", async () => {
    const sub = uniqueSub();
    const { id, key } = await createKey(await token(sub));
    expect((await whoami(key)).status).toBe(200);
    const response = await call("PATCH", `/v1/keys/${id}`, { auth: await token(sub), body: { enabled: false } });
    expect(response.status).toBe(200);
    expect(await kvEntry(key)).toBeNull();
    expect((await whoami(key)).status).toBe(401);
    expect(await verifyCode(key)).toBe("DISABLED");
  });
});
