/**
 * Storage faults. KV is only a cache: when it throws, rejects or hangs (cut off by its 1 s timeout),
 * verification falls back to D1 and still gives the right answer. D1 is the store of record: when it
 * fails, the answer is a 503 problem with Retry-After (never a 401, never a 201), no key is returned
 * that was not stored, and no half-written record is left behind.
 */
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import { generateKey } from "../../src/keys/format";
import { sha256Hex } from "../../src/keys/hash";
import { isolateCache } from "../../src/service/verify";
import {
  type CreatedKey,
  type Fault,
  type CapturedLogs,
  call,
  captureLogs,
  createKey,
  envWith,
  expectProblem,
  faultyDb,
  faultyKv,
  tableSnapshot,
  token,
  uniqueSub,
} from "../helpers";
import { type CachedRecord, cacheKey } from "../../src/store/cache";

const verify = async (key: string, testEnv: Env = env) => {
  const response = await call("POST", "/v1/verify", { body: { key }, env: testEnv });
  expect(response.status).toBe(200);
  return (await response.json()) as { valid: boolean; code: string; key_id: string | null };
};

const kvRecord = async (hash: string) =>
  (await env.KEY_CACHE.get<CachedRecord>(cacheKey(hash), "json"))?.record ?? null;

async function expectUnavailable(response: Response): Promise<void> {
  await expectProblem(response, 503);
  expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0);
}

/** The faults below are logged by design: captured (so the run stays quiet) and checked. */
let logs: CapturedLogs;
beforeEach(() => {
  isolateCache.clear();
  logs = captureLogs();
});
afterEach(() => {
  logs.restore();
  // Every line the faults caused is a structured one (throws on a line that is not JSON).
  for (const line of logs.lines()) expect(line.level).toMatch(/^(warn|error)$/);
});

describe("KV faults: verification falls back to D1", () => {
  for (const fault of ["throw", "reject", "hang"] satisfies Fault[]) {
    it(`answers correctly when every KV call ${fault}s`, async () => {
      const jwt = await token(uniqueSub());
      const good = await createKey(jwt, { scopes: ["models:invoke"] });
      const revoked = await createKey(jwt);
      expect((await call("DELETE", `/v1/keys/${revoked.id}`, { auth: jwt })).status).toBe(204);
      // The healthy path put the good key in KV, so the faulty KV is the one being consulted.
      expect(await kvRecord(await sha256Hex(good.key))).not.toBeNull();

      const broken = envWith({ KEY_CACHE: faultyKv(fault) });
      isolateCache.clear(); // a fresh isolate: memory is cold, so every lookup goes to KV, then D1
      expect(await verify(good.key, broken)).toMatchObject({ valid: true, code: "VALID", key_id: good.id });
      isolateCache.clear();
      expect(await verify(revoked.key, broken)).toMatchObject({ valid: false, code: "REVOKED" });
      isolateCache.clear();
      expect(await verify(generateKey("lk"), broken)).toMatchObject({ valid: false, code: "NOT_FOUND" });
      expect(logs.events("kv_failed").length).toBeGreaterThan(0);
      isolateCache.clear();
      const whoami = await call("GET", "/v1/whoami", { auth: good.key, env: broken });
      expect(whoami.status).toBe(200);
      expect(await whoami.json()).toMatchObject({ principal: "api_key", key_id: good.id });

      // Creating and revoking work too; the key made without KV is found in D1 by a fresh isolate.
      const made = await createKey(jwt, {}, broken);
      isolateCache.clear();
      expect(await verify(made.key)).toMatchObject({ valid: true, key_id: made.id });
      expect((await call("DELETE", `/v1/keys/${made.id}`, { auth: jwt, env: broken })).status).toBe(204);
      expect(await verify(made.key, broken)).toMatchObject({ code: "REVOKED" });
    }, 30_000); // a hanging KV costs its 1 s timeout per call
  }

  it("a revocation whose KV delete failed is still honoured here and by a fresh isolate", async () => {
    const jwt = await token(uniqueSub());
    const key = await createKey(jwt);
    const hash = await sha256Hex(key.key);
    expect(await kvRecord(hash)).toMatchObject({ revokedAt: null });
    // Sync now, so the checks below run inside the sync interval: only what the revoking request
    // recorded in this isolate can refuse the key here (not a sync that reads D1 first).
    expect(await verify(key.key)).toMatchObject({ code: "VALID" });
    expect(isolateCache.feed.lastSyncAt).toBeGreaterThan(0);

    const broken = envWith({ KEY_CACHE: faultyKv("reject") });
    expect((await call("DELETE", `/v1/keys/${key.id}`, { auth: jwt, env: broken })).status).toBe(204);
    // KV still holds the stale, unrevoked copy...
    expect(await kvRecord(hash)).toMatchObject({ revokedAt: null });
    // ...yet this location refuses the key at once, and a fresh one learns the revocation from D1 first.
    expect(await verify(key.key)).toMatchObject({ code: "REVOKED" });
    isolateCache.clear();
    expect(await verify(key.key)).toMatchObject({ code: "REVOKED" });
    expect((await call("GET", "/v1/whoami", { auth: key.key })).status).toBe(401);
  });
});

describe("D1 faults: 503 with Retry-After, nothing half-done", () => {
  for (const fault of ["throw", "reject"] satisfies Fault[]) {
    it(`every storage-backed route answers 503 when D1 ${fault}s, and nothing is stored`, async () => {
      const jwt = await token(uniqueSub());
      const key = await createKey(jwt, { scopes: ["keys:read", "keys:write"] });
      isolateCache.clear();
      const broken = envWith({ DB: faultyDb(fault) });
      const before = await tableSnapshot();

      const create = await call("POST", "/v1/keys", { auth: jwt, body: { name: "never stored" }, env: broken });
      await expectUnavailable(create);
      await expectUnavailable(await call("GET", "/v1/keys", { auth: jwt, env: broken }));
      await expectUnavailable(await call("GET", `/v1/keys/${key.id}`, { auth: jwt, env: broken }));
      await expectUnavailable(await call("DELETE", `/v1/keys/${key.id}`, { auth: jwt, env: broken }));
      // A key that cannot be looked up (D1 down, and not in KV) is "try again", not "invalid", and
      // no failed authentication.
      const uncached = envWith({ DB: faultyDb(fault), KEY_CACHE: faultyKv(fault) });
      await expectUnavailable(await call("POST", "/v1/verify", { body: { key: key.key }, env: uncached }));
      await expectUnavailable(await call("GET", "/v1/whoami", { auth: key.key, env: uncached }));
      await expectUnavailable(await call("POST", "/v1/keys", { auth: key.key, body: { name: "x" }, env: uncached }));

      expect(await tableSnapshot()).toEqual(before);
      expect(logs.events("storage_unavailable").length).toBeGreaterThanOrEqual(7);
      expect(await verify(key.key)).toMatchObject({ valid: true }); // the failed DELETE revoked nothing
      // Routes that need no storage are unaffected.
      expect((await call("GET", "/healthz", { env: broken })).status).toBe(200);
    });
  }

  it("a D1 that hangs is cut off by its timeout: 503, not a hung request, and nothing stored", async () => {
    const jwt = await token(uniqueSub());
    const before = await tableSnapshot();
    const hung = envWith({ DB: faultyDb("hang") });
    await expectUnavailable(await call("POST", "/v1/keys", { auth: jwt, body: { name: "never stored" }, env: hung }));
    await expectUnavailable(await call("GET", "/v1/keys", { auth: jwt, env: hung }));
    expect(await tableSnapshot()).toEqual(before);
  }, 30_000); // each hung D1 call costs its 5 s timeout

  it("when only the INSERT fails, a create by key is a 503 with no row and no key", async () => {
    const jwt = await token(uniqueSub());
    const parent = await createKey(jwt, { scopes: ["keys:write", "models:invoke"] });
    isolateCache.clear(); // the parent key must be read from D1, which still answers reads
    const broken = envWith({ DB: faultyDb("reject", (sql) => sql.startsWith("INSERT")) });
    // The parent's row is left out: authenticating with it may record its last use.
    const before = await tableSnapshot([parent.id]);
    const response = await call("POST", "/v1/keys", { auth: parent.key, body: { name: "half" }, env: broken });
    await expectUnavailable(response);
    expect(await tableSnapshot([parent.id])).toEqual(before);
    const { results } = await env.DB.prepare("SELECT id FROM api_keys WHERE name = 'half'").all();
    expect(results).toEqual([]);
  });

  it("when only the revoking UPDATE fails, the key is not half-revoked: 503 and it still works everywhere", async () => {
    const jwt = await token(uniqueSub());
    const key = await createKey(jwt);
    const broken = envWith({ DB: faultyDb("throw", (sql) => sql.startsWith("UPDATE api_keys SET revoked_at")) });
    await expectUnavailable(await call("DELETE", `/v1/keys/${key.id}`, { auth: jwt, env: broken }));
    expect(await verify(key.key)).toMatchObject({ valid: true });
    isolateCache.clear();
    expect(await verify(key.key)).toMatchObject({ valid: true });
    // Retrying once D1 is back revokes it.
    expect((await call("DELETE", `/v1/keys/${key.id}`, { auth: jwt })).status).toBe(204);
    expect(await verify(key.key)).toMatchObject({ code: "REVOKED" });
  });

  it("whichever D1 call fails during a create, a 201 means the key is stored and anything else stored nothing", async () => {
    const jwt = await token(uniqueSub());
    const parent = await createKey(jwt, { scopes: ["keys:write", "models:invoke"] });
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: 4 }),
        fc.boolean(),
        fc.constantFrom<Fault>("throw", "reject"),
        async (failAt, cold, fault) => {
          if (cold) isolateCache.clear(); // cold: the parent is looked up (sync + lookup) before the INSERT
          let calls = 0;
          const broken = envWith({ DB: faultyDb(fault, () => calls++ === failAt), KEY_CACHE: faultyKv("reject") });
          const before = await tableSnapshot([parent.id]); // its last use may be recorded
          const response = await call("POST", "/v1/keys", { auth: parent.key, body: { name: "maybe" }, env: broken });
          seen.add(response.status);
          if (response.status === 201) {
            const created = (await response.json()) as CreatedKey;
            const row = await env.DB.prepare("SELECT hash FROM api_keys WHERE id = ?").bind(created.id).first();
            expect(row).toEqual({ hash: await sha256Hex(created.key) });
            expect(await tableSnapshot([parent.id, created.id])).toEqual(before);
            isolateCache.clear();
            expect(await verify(created.key)).toMatchObject({ valid: true, key_id: created.id });
          } else {
            await expectUnavailable(response);
            expect(await tableSnapshot([parent.id])).toEqual(before);
          }
        },
      ),
      { numRuns: 40 },
    );
    expect([...seen].sort()).toEqual([201, 503]); // both outcomes were exercised
  });
});
