/**
 * Migrations with two databases (D1_SHARDS=2): a root key's import naming owners of both databases puts
 * each key in its own owner's database, checks each owner's quota there, and is refused whole when one
 * owner is full; an HMAC-imported key upgraded on first use is found by the SHA-256 of its token from
 * any isolate (its home claimed for its owner's bucket), and its digest imported again is a conflict.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/keys/hash";
import { hmacSha256Hex } from "../../src/keys/legacy-digest";
import { hexBucket, ownerBucket } from "../../src/keys/shard";
import { isolateCache } from "../../src/service/verify";
import { cacheKey } from "../../src/store/cache";
import { forgetShardMap } from "../../src/store/shards";
import { call, captureLogs, envWith, expectProblem, token, uniqueSub, type CapturedLogs } from "../helpers";

const PEPPER = "pepper-for-shard-tests-0b8e";
const QUOTA = 3;
const sharded = envWith({
  D1_SHARDS: "2",
  MAX_KEYS_PER_OWNER: String(QUOTA),
  LEGACY_KEY_FORMATS: "hmac-sha256:opaque:hk_,opaque:sk_live_",
  LEGACY_HMAC_PEPPER: PEPPER,
});
const databases = [env.DB, env.DB_1] as const;

let quiet: CapturedLogs;
beforeEach(() => {
  quiet = captureLogs();
});
afterEach(async () => {
  quiet.restore();
  forgetShardMap();
});

/** A person of each database (bucket % 2 decides). */
async function oneOfEach(): Promise<[string, string]> {
  const found: (string | undefined)[] = [undefined, undefined];
  while (!found[0] || !found[1]) {
    const sub = uniqueSub("mig");
    found[(await ownerBucket({ type: "user", id: sub })) % 2] ??= sub;
  }
  return [found[0], found[1]];
}

async function rootKey(): Promise<string> {
  const response = await call("POST", "/v1/root-keys", {
    auth: await token(uniqueSub("op"), { roles: ["operator"] }),
    body: { name: "migration" },
    env: sharded,
  });
  expect(response.status).toBe(201);
  return (await response.json<{ key: string }>()).key;
}

const opaqueItem = async (owner: string) => {
  const key = `sk_live_${crypto.randomUUID().replaceAll("-", "")}`;
  return {
    key,
    item: { hash: await sha256Hex(key), name: "imported", format: "opaque", owner: "user", owner_id: owner },
  };
};

const importAs = (auth: string, keys: Record<string, unknown>[]) =>
  call("POST", "/v1/keys/import", { auth, body: { keys }, env: sharded });

const rowsIn = async (db: D1Database, owner: string) =>
  (await db.prepare("SELECT COUNT(*) AS n FROM api_keys WHERE owner_id = ?").bind(owner).first<{ n: number }>())?.n;

const verify = async (key: string) =>
  (await call("POST", "/v1/verify", { body: { key }, env: sharded })).json<{ code: string; key_id?: string }>();

describe("a root key's import across two databases", () => {
  it("puts each key in its own owner's database, each owner's quota counting its own items", async () => {
    const root = await rootKey();
    const [zero, one] = await oneOfEach();
    const items = [await opaqueItem(zero), await opaqueItem(one), await opaqueItem(zero), await opaqueItem(one)];
    const response = await importAs(
      root,
      items.map((i) => i.item),
    );
    expect(response.status, await response.clone().text()).toBe(200);
    expect(await response.json()).toMatchObject({ imported: 4, conflicts: 0 });
    expect([await rowsIn(databases[0], zero), await rowsIn(databases[1], zero)]).toEqual([2, 0]);
    expect([await rowsIn(databases[0], one), await rowsIn(databases[1], one)]).toEqual([0, 2]);
    for (const { key } of items) expect(await verify(key)).toMatchObject({ code: "VALID" });
    for (const owner of [zero, one]) {
      const list = await call("GET", `/v1/keys?owner_type=user&owner_id=${owner}`, { auth: root, env: sharded });
      expect((await list.json<{ data: unknown[] }>()).data).toHaveLength(2);
    }
  });

  it("is refused whole when an owner of either database would go over its quota", async () => {
    const root = await rootKey();
    const [zero, one] = await oneOfEach();
    const full = [await opaqueItem(one), await opaqueItem(one), await opaqueItem(one)];
    expect(
      (
        await importAs(
          root,
          full.map((i) => i.item),
        )
      ).status,
    ).toBe(200);
    const problem = await expectProblem(
      await importAs(root, [(await opaqueItem(zero)).item, (await opaqueItem(one)).item]),
      403,
    );
    expect(problem.code).toBe("quota_exceeded");
    expect([await rowsIn(databases[0], zero), await rowsIn(databases[1], one)]).toEqual([0, QUOTA]);
  });
});

describe("an HMAC-imported key with two databases", () => {
  it("is found by the SHA-256 of its token once upgraded, cold, and its digest imported again is a conflict", async () => {
    const owner = uniqueSub("hmac");
    const jwt = await token(owner);
    const root = await rootKey();
    // A token whose SHA-256 names the other database than its owner's: only the directory finds it there.
    const shard = (await ownerBucket({ type: "user", id: owner })) % 2;
    let key = "";
    do key = `hk_${crypto.randomUUID().replaceAll("-", "")}`;
    while (hexBucket(await sha256Hex(key)) % 2 === shard);
    const digest = await hmacSha256Hex(PEPPER, key);
    const item = { hash: digest, name: "hmac", format: "hmac-sha256", owner: "user", owner_id: owner };
    const first = await importAs(root, [item]);
    expect(await first.json()).toMatchObject({ imported: 1 });

    const id = (await verify(key)).key_id;
    expect(id).toBeDefined();
    // Cold: no memory, no KV copy: found through the home its SHA-256 was given for the owner's bucket.
    isolateCache.clear();
    await env.KEY_CACHE.delete(cacheKey(await sha256Hex(key)));
    expect(await verify(key)).toMatchObject({ code: "VALID", key_id: id });
    const home = await env.DB.prepare("SELECT bucket FROM key_homes WHERE hash = ?")
      .bind(await sha256Hex(key))
      .first<{ bucket: number }>();
    expect(home?.bucket).toBe(await ownerBucket({ type: "user", id: owner }));

    expect(await (await importAs(root, [item])).json()).toMatchObject({ imported: 0, conflicts: 1 });
    const events = await call("GET", `/v1/keys/${id}/events`, { auth: jwt, env: sharded });
    const actions = (await events.json<{ data: { action: string }[] }>()).data.map((e) => e.action);
    expect(actions.filter((a) => a === "upgraded")).toHaveLength(1);
  });
});
