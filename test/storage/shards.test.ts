/**
 * Sharding by owner with two databases (D1_SHARDS=2, bindings DB and DB_1): owners land in the
 * database their bucket maps to, keys carry their owner's bucket, and every route behaves as with one
 * database — create, verify, list across owners, revoke, cascade, rotate, import, owner limits, the
 * change feed of each database — while a bucket being moved refuses writes with 503. With D1_SHARDS
 * unset, DB_1 is never touched.
 */
import { env } from "cloudflare:workers";
import { createExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { call, captureLogs, createKey, envWith, expectProblem, token, uniqueSub } from "../helpers";
import { sha256Hex } from "../../src/keys/hash";
import { hexBucket, ownerBucket } from "../../src/keys/shard";
import { forgetShardMap } from "../../src/store/shards";
import { storesFor } from "../../src/store/sharded-stores";
import { BucketMovingError } from "../../src/store/store";
import { loadConfig } from "../../src/config";
import { createContext } from "../../src/context";
import { isolateCache } from "../../src/service/verify";
import { USAGE_RETRY_MS, UsageTally } from "../../src/service/usage-tally";
import { cacheKey } from "../../src/store/cache";

const sharded = envWith({ D1_SHARDS: "2" });
const databases = [env.DB, env.DB_1] as const;

afterEach(async () => {
  await env.DB.prepare("DELETE FROM shard_map").run();
  forgetShardMap();
});

async function rowsIn(db: D1Database, ownerId: string): Promise<number> {
  const row = await db
    .prepare("SELECT COUNT(*) AS n FROM api_keys WHERE owner_id = ?")
    .bind(ownerId)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

async function verdict(key: string, testEnv = sharded): Promise<{ valid: boolean; code: string }> {
  return (await call("POST", "/v1/verify", { body: { key }, env: testEnv })).json();
}

/** Subjects until both databases have some (bucket % 2 decides, so a few are enough). */
async function ownersOfBothShards(count: number): Promise<{ sub: string; shard: number }[]> {
  const owners: { sub: string; shard: number }[] = [];
  while (owners.length < count || new Set(owners.map((o) => o.shard)).size < 2) {
    const sub = uniqueSub("shard");
    owners.push({ sub, shard: (await ownerBucket({ type: "user", id: sub })) % 2 });
  }
  return owners;
}

describe("two databases (D1_SHARDS=2)", () => {
  it("puts each owner's keys in its bucket's database, in both databases, and keys and ids carry the bucket", async () => {
    const owners = await ownersOfBothShards(8);
    for (const { sub, shard } of owners) {
      const created = await createKey(await token(sub), {}, sharded);
      const bucket = await ownerBucket({ type: "user", id: sub });
      expect(hexBucket(await sha256Hex(created.key))).toBe(bucket);
      expect(hexBucket(created.id)).toBe(bucket);
      expect(await rowsIn(databases[shard]!, sub)).toBe(1);
      expect(await rowsIn(databases[1 - shard]!, sub)).toBe(0);
      expect(await verdict(created.key)).toMatchObject({ valid: true, code: "VALID" });
      // Cold: from D1 itself, found by the bucket its hash carries.
      isolateCache.clear();
      await env.KEY_CACHE.delete(cacheKey(await sha256Hex(created.key)));
      expect(await verdict(created.key)).toMatchObject({ valid: true, code: "VALID" });
    }
  });

  it("lists, gets, revokes with cascade and rotates as with one database", async () => {
    for (const { sub } of await ownersOfBothShards(2)) {
      const auth = await token(sub);
      const parent = await createKey(auth, { scopes: ["keys:write", "keys:read"] }, sharded);
      const child = await createKey(parent.key, { name: "child" }, sharded);
      const list = await (await call("GET", "/v1/keys", { auth, env: sharded })).json<{ data: { id: string }[] }>();
      expect(list.data.map((k) => k.id).sort()).toEqual([parent.id, child.id].sort());
      expect((await call("GET", `/v1/keys/${child.id}`, { auth, env: sharded })).status).toBe(200);

      const rotated = await call("POST", `/v1/keys/${child.id}/rotate`, { auth, body: {}, env: sharded });
      expect(rotated.status).toBe(201);
      const replacement = await rotated.json<{ id: string; key: string }>();
      expect(await verdict(replacement.key)).toMatchObject({ valid: true });

      expect((await call("DELETE", `/v1/keys/${parent.id}?cascade=true`, { auth, env: sharded })).status).toBe(204);
      expect(await verdict(parent.key)).toMatchObject({ code: "REVOKED" });
      expect(await verdict(child.key)).toMatchObject({ code: "REVOKED" });
    }
  });

  it("lists a person's own and workspace keys together when they live in different databases", async () => {
    const sub = uniqueSub("split");
    let org = uniqueSub("org");
    while (
      (await ownerBucket({ type: "user", id: sub })) % 2 ===
      (await ownerBucket({ type: "workspace", id: org })) % 2
    ) {
      org = uniqueSub("org");
    }
    const auth = await token(sub, { org });
    const own = await createKey(auth, {}, sharded);
    const shared = await createKey(auth, { owner: "workspace" }, sharded);
    const list = await (await call("GET", "/v1/keys", { auth, env: sharded })).json<{ data: { id: string }[] }>();
    expect(list.data.map((k) => k.id).sort()).toEqual([own.id, shared.id].sort());
  });

  it("imports a key whose hash names the other database, verifies it through the directory, and refuses it to another owner", async () => {
    const org = uniqueSub("import");
    const shard = (await ownerBucket({ type: "workspace", id: org })) % 2;
    let key: string;
    let hash: string;
    do {
      key = `sk_live_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
      hash = await sha256Hex(key);
    } while (hexBucket(hash) % 2 === shard);
    const body = { keys: [{ hash, format: "opaque", name: "imported", owner: "workspace" }] };
    const importing = envWith({ D1_SHARDS: "2", IMPORT_ALLOWED: "personal" });
    const imported = await call("POST", "/v1/keys/import", {
      auth: await token(uniqueSub(), { org }),
      body,
      env: importing,
    });
    expect(imported.status).toBe(200);
    expect(await rowsIn(databases[shard]!, org)).toBe(1);
    expect(await verdict(key)).toMatchObject({ valid: true });
    const logs = captureLogs(); // the conflict with another owner is logged for the operator
    const other = await call("POST", "/v1/keys/import", {
      auth: await token(uniqueSub(), { org: uniqueSub("import") }),
      body,
      env: importing,
    });
    logs.restore();
    expect(logs.lines().map((line) => line.event)).toContain("import_conflict_other_owner");
    expect(await other.json()).toMatchObject({ imported: 0, conflicts: 1 });
  });

  it("keeps owner limits in the owner's database", async () => {
    const org = uniqueSub("limits");
    const auth = await token(uniqueSub(), { org });
    const path = `/v1/owners/workspace/${org}/limits`;
    const put = await call("PUT", path, { auth, body: { credits: { remaining: 5 } }, env: sharded });
    expect(put.status).toBe(200);
    const shard = (await ownerBucket({ type: "workspace", id: org })) % 2;
    const row = await databases[shard]!.prepare("SELECT 1 FROM owner_limits WHERE owner_id = ?").bind(org).first();
    expect(row).not.toBeNull();
    expect(
      (await (await call("GET", path, { auth, env: sharded })).json<{ credits: unknown }>()).credits,
    ).toMatchObject({
      remaining: 5,
    });
  });

  it("follows each database's change feed: a revocation written in either reaches this isolate", async () => {
    for (const { sub, shard } of await ownersOfBothShards(2)) {
      const created = await createKey(await token(sub), {}, sharded);
      expect(await verdict(created.key)).toMatchObject({ valid: true }); // warm in memory
      // Revoked by "another isolate": only the database's feed tells this one.
      await databases[shard]!.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?")
        .bind(Date.now(), created.id)
        .run();
      const app = createContext(sharded, createExecutionContext());
      await app.keys.verifier.syncFeed();
      expect(await verdict(created.key)).toMatchObject({ code: "REVOKED" });
    }
  });

  it("refuses writes to a bucket being moved with 503 and Retry-After, and lets reads through", async () => {
    const sub = uniqueSub("moving");
    const auth = await token(sub);
    const before = await createKey(auth, {}, sharded);
    const bucket = await ownerBucket({ type: "user", id: sub });
    await env.DB.prepare("INSERT INTO shard_map (bucket, shard, moving_since) VALUES (?, ?, ?)")
      .bind(bucket, bucket % 2, Date.now())
      .run();
    forgetShardMap();
    const logs = captureLogs();
    const refused = await call("POST", "/v1/keys", { auth, body: { name: "during" }, env: sharded });
    logs.restore();
    await expectProblem(refused, 503, "storage_unavailable");
    expect(refused.headers.get("retry-after")).toBeTruthy();
    expect(await verdict(before.key)).toMatchObject({ valid: true });
    expect((await call("GET", "/v1/keys", { auth, env: sharded })).status).toBe(200);
  });

  it("refuses a moving bucket's usage counts and leak marks before writing anything (they are retried after the move)", async () => {
    const sub = uniqueSub("moving-usage");
    const created = await createKey(await token(sub), {}, sharded);
    const bucket = await ownerBucket({ type: "user", id: sub });
    const stores = storesFor(sharded, loadConfig(sharded));
    const hour = Date.now() - (Date.now() % 3_600_000);
    await env.DB.prepare("INSERT INTO shard_map (bucket, shard, moving_since) VALUES (?, ?, ?)")
      .bind(bucket, bucket % 2, Date.now())
      .run();
    forgetShardMap();
    await expect(stores.usage.add([{ keyId: created.id, hour, outcome: "VALID", count: 3 }])).rejects.toBeInstanceOf(
      BucketMovingError,
    );
    expect(await stores.usage.read(created.id, hour, hour + 3_600_000)).toEqual([]);
    const hash = await sha256Hex(created.key);
    expect(await stores.leaks.findByHashes([hash])).toHaveLength(1);
    const origin = { actor: "service" as const, ip: null, userAgent: null };
    await expect(stores.leaks.markLeaked("revoke", [{ hash, changes: {} }], Date.now(), origin)).rejects.toBeInstanceOf(
      BucketMovingError,
    );
    expect(await verdict(created.key)).toMatchObject({ valid: true });
    // Once the move is over, the same writes land.
    await env.DB.prepare("UPDATE shard_map SET moving_since = NULL WHERE bucket = ?").bind(bucket).run();
    forgetShardMap();
    await stores.usage.add([{ keyId: created.id, hour, outcome: "VALID", count: 3 }]);
    expect(await stores.usage.read(created.id, hour, hour + 3_600_000)).toEqual([
      { keyId: created.id, hour, outcome: "VALID", count: 3 },
    ]);
  });

  it("writes each database's share of a batch of usage counts; when one database fails, only its share is kept to write again (none counted twice)", async () => {
    const [first, second] = await ownersOfBothShards(2).then((owners) => [
      owners.find((o) => o.shard === 0),
      owners.find((o) => o.shard === 1),
    ]);
    if (!first || !second) throw new Error("owners of both databases expected");
    const inDb = await createKey(await token(first.sub), {}, sharded);
    const inDb1 = await createKey(await token(second.sub), {}, sharded);
    // DB_1 refuses every batch; DB answers.
    const brokenDb1 = new Proxy(env.DB_1, {
      get(target, prop) {
        if (prop === "batch") return () => Promise.reject(new Error("injected fault: DB_1"));
        const value: unknown = Reflect.get(target, prop);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const broken = { ...envWith({ D1_SHARDS: "2" }), DB_1: brokenDb1 };
    const stores = storesFor(sharded, loadConfig(sharded));
    const now = Date.now();
    const hour = now - (now % 3_600_000);
    const tally = new UsageTally();
    for (let i = 0; i < 3; i++) tally.add(inDb.id, "VALID", now, stores.usage);
    for (let i = 0; i < 2; i++) tally.add(inDb1.id, "VALID", now, stores.usage);
    const logs = captureLogs();
    await tally.flush(storesFor(broken, loadConfig(broken)).usage, now);
    logs.restore();
    expect(logs.events("usage_counts_write_failed")).toHaveLength(1);
    expect(tally.waiting).toBe(1);
    const counted = async (id: string) =>
      (await stores.usage.read(id, hour, hour + 3_600_000)).reduce((sum, c) => sum + c.count, 0);
    expect(await counted(inDb.id)).toBe(3);
    expect(await counted(inDb1.id)).toBe(0);
    await tally.flush(stores.usage, now + USAGE_RETRY_MS);
    expect(await counted(inDb.id)).toBe(3);
    expect(await counted(inDb1.id)).toBe(2);
  });

  it("refuses storage when D1_SHARDS names a database the Worker lacks, never writing elsewhere", async () => {
    const sub = uniqueSub("misconfigured");
    const logs = captureLogs();
    const response = await call("POST", "/v1/keys", {
      auth: await token(sub),
      body: { name: "x" },
      env: envWith({ D1_SHARDS: "3" }),
    });
    logs.restore();
    await expectProblem(response, 500, "configuration_error");
    expect(logs.lines().map((line) => line.event)).toContain("configuration_error");
    for (const db of databases) expect(await rowsIn(db, sub)).toBe(0);
  });
});

describe("one database (D1_SHARDS unset)", () => {
  it("never touches DB_1", async () => {
    const owners = await ownersOfBothShards(4);
    for (const { sub } of owners) {
      const created = await createKey(await token(sub));
      expect(await rowsIn(env.DB, sub)).toBe(1);
      expect(await rowsIn(env.DB_1, sub)).toBe(0);
      expect(await verdict(created.key, env)).toMatchObject({ valid: true });
    }
  });
});
