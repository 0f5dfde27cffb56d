/**
 * What the API leaves in storage, and how storage and caches follow the key lifecycle: the plaintext
 * key is in no D1 row and no KV entry; revocation and expiry win over every cache on the very next
 * request; last_used_at is written after use and at most once a minute.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/keys/hash";
import { type CompactRecord, compact } from "../../src/model";
import { isolateCache } from "../../src/service/verify";
import { D1KeyStore } from "../../src/store/d1";
import { type CreatedKey, call, createKey, token, uniqueSub } from "../helpers";
import { type CachedRecord, cacheKey } from "../../src/store/cache";

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Uses `key` against the API; the status says whether it was accepted. */
async function whoami(key: string): Promise<Response> {
  return call("GET", "/v1/whoami", { auth: key, headers: { "cf-connecting-ip": uniqueSub("client") } });
}

async function allRows(): Promise<Record<string, unknown>[]> {
  return (await env.DB.prepare("SELECT * FROM api_keys").all()).results;
}

async function allKv(): Promise<{ name: string; value: string | null }[]> {
  const entries: { name: string; value: string | null }[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await env.KEY_CACHE.list(cursor === undefined ? {} : { cursor });
    for (const { name } of page.keys) entries.push({ name, value: await env.KEY_CACHE.get(name) });
    if (page.list_complete) return entries;
    cursor = page.cursor;
  }
}

/**
 * Every 12-character piece of the key's secret part (what follows `start`): finding any of them in
 * storage would mean part of the key leaked. 12 random base62 characters never match by chance.
 */
function secretPieces(key: string, start: string): string[] {
  const secret = key.slice(start.length);
  return Array.from({ length: secret.length - 11 }, (_, i) => secret.slice(i, i + 12));
}

const kvRecord = async (key: string): Promise<CompactRecord | null> =>
  (await env.KEY_CACHE.get<CachedRecord>(cacheKey(await sha256Hex(key)), "json"))?.record ?? null;

async function lastUsedAt(id: string): Promise<number | null> {
  const row = await env.DB.prepare("SELECT last_used_at FROM api_keys WHERE id = ?").bind(id).first<{
    last_used_at: number | null;
  }>();
  if (!row) throw new Error(`no row ${id}`);
  return row.last_used_at;
}

describe("the plaintext key", () => {
  it("is in no D1 row and no KV key or value, while KV holds the record by hash", async () => {
    const jwt = await token(uniqueSub());
    const created: CreatedKey[] = [];
    for (let i = 0; i < 3; i++) created.push(await createKey(jwt, { name: `k${i}`, metadata: { i } }));
    // Creation itself warms KV (after the response), so the first use needs no D1 query.
    for (const { key, id } of created) expect(await kvRecord(key)).toMatchObject({ id, lastUsedAt: null });
    // Use, list and read them too: no later path may store the key either.
    for (const { key, id } of created) {
      expect((await whoami(key)).status).toBe(200);
      expect((await call("GET", `/v1/keys/${id}`, { auth: key })).status).toBe(200);
    }
    expect((await call("GET", "/v1/keys", { auth: jwt })).status).toBe(200);

    const rows = await allRows();
    const kv = await allKv();
    expect(rows.length).toBeGreaterThanOrEqual(created.length);
    for (const { key, id, start } of created) {
      const pieces = secretPieces(key, String(start));
      for (const row of rows) {
        for (const [column, value] of Object.entries(row)) {
          expect(
            pieces.filter((piece) => String(value).includes(piece)),
            `api_keys.${column}`,
          ).toEqual([]);
        }
      }
      for (const { name, value } of kv) {
        expect(
          pieces.filter((piece) => name.includes(piece) || (value ?? "").includes(piece)),
          name,
        ).toEqual([]);
      }

      const hash = await sha256Hex(key);
      expect(rows.filter((row) => row.hash === hash).map((row) => row.id)).toEqual([id]);
      expect(kv.map((entry) => entry.name)).toContain(cacheKey(hash));
      const cached = await kvRecord(key);
      expect(cached).toMatchObject({ id, hash, revokedAt: null });
      // The compact record: no name, start or metadata leaves D1.
      expect(Object.keys(cached ?? {}).sort()).toEqual(
        [
          "allowedIps",
          "enabled",
          "expiresAt",
          "hash",
          "id",
          "lastUsedAt",
          "owner",
          "resources",
          "revokedAt",
          "scopes",
        ].sort(),
      );
    }
  });
});

describe("revocation", () => {
  it("takes effect on the very next request, though the key was warm in memory and KV", async () => {
    const jwt = await token(uniqueSub());
    const { id, key } = await createKey(jwt);
    for (let i = 0; i < 3; i++) expect((await whoami(key)).status).toBe(200);
    expect(await kvRecord(key)).not.toBeNull();

    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt })).status).toBe(204);
    const refused = await whoami(key);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/revoked/);
    expect(await kvRecord(key)).toBeNull();
  });

  it("holds in a fresh isolate that finds a stale copy of the key in KV", async () => {
    const jwt = await token(uniqueSub());
    const { id, key } = await createKey(jwt);
    expect((await whoami(key)).status).toBe(200);
    const stale = await env.KEY_CACHE.get(cacheKey(await sha256Hex(key)));
    expect(stale).not.toBeNull();

    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt })).status).toBe(204);
    // Another location's KV edge may still serve the pre-revocation copy to an isolate that never saw the DELETE.
    await env.KEY_CACHE.put(cacheKey(await sha256Hex(key)), stale!, { expirationTtl: 300 });
    isolateCache.clear();
    expect((await whoami(key)).status).toBe(401);
    expect((await whoami(key)).status).toBe(401);
  });

  it("revoking with the key itself stops it at once", async () => {
    const { id, key } = await createKey(await token(uniqueSub()));
    expect((await call("DELETE", `/v1/keys/${id}`, { auth: key })).status).toBe(204);
    expect((await whoami(key)).status).toBe(401);
    expect((await call("GET", "/v1/keys", { auth: key })).status).toBe(401);
  });
});

describe("expiry", () => {
  it("a key works until expires_at and fails after, even while cached in memory or KV", async () => {
    const jwt = await token(uniqueSub());
    const expiresAt = Date.now() + 1500;
    const { key } = await createKey(jwt, { expires_at: new Date(expiresAt).toISOString() });
    expect((await whoami(key)).status).toBe(200);
    expect((await call("GET", "/v1/keys", { auth: key })).status).toBe(200);

    while (Date.now() <= expiresAt) await pause(100);
    const expired = await whoami(key);
    expect(expired.status).toBe(401);
    expect(((await expired.json()) as { detail: string }).detail).toMatch(/expired/);

    // A record cached in KV before expiry (e.g. with a clock-skewed TTL) must not revive the key.
    const stored = await new D1KeyStore(env.DB).findByHash(await sha256Hex(key));
    const entry = { record: compact(stored!.record), seq: stored!.seq };
    await env.KEY_CACHE.put(cacheKey(stored!.record.hash), JSON.stringify(entry), { expirationTtl: 300 });
    isolateCache.clear();
    expect((await whoami(key)).status).toBe(401);
    expect((await call("POST", "/v1/keys", { auth: key, body: { name: "child" } })).status).toBe(401);
  });

  it("is never cached in KV for longer than the key lives", async () => {
    const jwt = await token(uniqueSub());
    const soon = await createKey(jwt, { expires_at: new Date(Date.now() + 30_000).toISOString() });
    expect((await whoami(soon.key)).status).toBe(200);
    expect(await kvRecord(soon.key)).toBeNull();

    const later = await createKey(jwt, { expires_at: new Date(Date.now() + 3_600_000).toISOString() });
    expect((await whoami(later.key)).status).toBe(200);
    const cached = (await env.KEY_CACHE.list({ prefix: cacheKey(await sha256Hex(later.key)) })).keys[0];
    expect(cached?.expiration).toBeDefined();
    expect(cached!.expiration! * 1000).toBeLessThanOrEqual(Date.parse(String(later.expires_at)));
  });
});

describe("last_used_at", () => {
  it("is set after the first use and not rewritten within a minute", async () => {
    const jwt = await token(uniqueSub());
    const { id, key, created_at } = await createKey(jwt);
    expect(await lastUsedAt(id)).toBeNull();
    await pause(5);

    const before = Date.now();
    expect((await whoami(key)).status).toBe(200);
    const first = await lastUsedAt(id);
    expect(first).toBeGreaterThanOrEqual(before);
    expect(first).toBeGreaterThan(Date.parse(String(created_at)));
    const view = (await (await call("GET", `/v1/keys/${id}`, { auth: jwt })).json()) as { last_used_at: string };
    expect(view.last_used_at).toBe(new Date(first!).toISOString());

    await pause(5);
    expect((await whoami(key)).status).toBe(200);
    expect(await lastUsedAt(id)).toBe(first);

    // A fresh isolate (its KV copy says "never used") must not rewrite it either: D1 guards the write.
    isolateCache.clear();
    await pause(5);
    expect((await whoami(key)).status).toBe(200);
    expect(await lastUsedAt(id)).toBe(first);
  });

  it("is not touched by JWT requests nor by failed uses", async () => {
    const jwt = await token(uniqueSub());
    const { id, key } = await createKey(jwt);
    await call("GET", `/v1/keys/${id}`, { auth: jwt });
    await call("DELETE", `/v1/keys/${id}`, { auth: jwt });
    expect((await whoami(key)).status).toBe(401);
    expect(await lastUsedAt(id)).toBeNull();
  });
});

describe("revocation edge cases", () => {
  it("a repeated DELETE of a key already revoked elsewhere still evicts it here", async () => {
    const jwt = await token(uniqueSub());
    const created = await createKey(jwt);
    expect((await whoami(created.key)).status).toBe(200); // warm in this isolate and in KV
    // The first revoke committed in D1, but its answer was lost (or it ran at another location).
    await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(Date.now(), created.id).run();
    expect((await call("DELETE", `/v1/keys/${created.id}`, { auth: jwt })).status).toBe(204);
    expect((await whoami(created.key)).status).toBe(401);
    expect(await kvRecord(created.key)).toBeNull();
  });
});
