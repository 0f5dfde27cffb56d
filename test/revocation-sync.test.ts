/**
 * Revocation, and every other change of a key, across locations. (That the revoking location refuses the key on the very next request is
 * tested in storage.test.ts.) Any other location learns of it from D1 by revocation sync (src/service/verify.ts) within twice the sync
 * interval, even while its memory and KV still hold the key's pre-revocation record. "Another
 * location" here is a direct UPDATE of D1, which evicts nothing from this isolate or from KV.
 *
 * Changes other than revocation (disable, expiry, scopes, resources, allow-list, a rotation's new
 * expiry) travel the same way, by the interim change sync on updated_at; when the change feed lands,
 * `changeElsewhere` is the one place to retarget (write the change and its feed row).
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../src/env";
import { sha256Hex } from "../src/keys/hash";
import type { KeyRecord } from "../src/model";
import { isolateCache } from "../src/service/verify";
import { call, createKey, envWith, token, uniqueSub } from "./helpers";
import { cacheKey } from "../src/store/cache";

const SYNC_SECONDS = 0.2;
/** The same bindings with a short sync interval (a fresh env object: its configuration is read afresh). */
const fastSync = envWith({ REVOCATION_SYNC_SECONDS: String(SYNC_SECONDS) });

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const whoami = (key: string, testEnv: Env = env) =>
  call("GET", "/v1/whoami", { auth: key, env: testEnv, headers: { "cf-connecting-ip": uniqueSub("client") } });

async function verifyCode(key: string, testEnv: Env = env, options: Record<string, unknown> = {}): Promise<string> {
  const response = await call("POST", "/v1/verify", { body: { key, ...options }, env: testEnv });
  expect(response.status).toBe(200);
  return (await response.json<{ code: string }>()).code;
}

async function kvRecord(key: string): Promise<KeyRecord | null> {
  return env.KEY_CACHE.get<KeyRecord>(cacheKey(await sha256Hex(key)), "json");
}

/** Revokes the key in D1 only, as another location's DELETE would: this isolate and KV are not told. */
async function revokeElsewhere(id: string): Promise<void> {
  const result = await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
    .bind(Date.now(), id)
    .run();
  expect(result.meta.changes).toBe(1);
}

/** A key used once, so that it is cached in this isolate's memory and in KV. */
async function warmKey(body: Record<string, unknown> = {}): Promise<{ id: string; key: string }> {
  const { id, key } = await createKey(await token(uniqueSub()), body);
  expect((await whoami(key, fastSync)).status).toBe(200); // also makes this isolate's sync fresh
  expect(isolateCache.records.get(await sha256Hex(key), Date.now())?.id).toBe(id);
  expect(await kvRecord(key)).toMatchObject({ id, revokedAt: null });
  return { id, key };
}

describe("a revocation made at another location", () => {
  it("is not seen before the sync interval, and is honoured once it has passed, though KV still holds the key", async () => {
    const { id, key } = await warmKey();
    await revokeElsewhere(id);

    // Right after: answered from this isolate's cache, within the (default, 5 s) sync interval.
    expect((await whoami(key)).status).toBe(200);
    expect(await verifyCode(key)).toBe("VALID");

    // Once twice the interval has passed, the isolate syncs before answering: the key fails.
    await pause(2 * SYNC_SECONDS * 1000 + 50);
    const refused = await whoami(key, fastSync);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/revoked/);
    expect(await verifyCode(key, fastSync)).toBe("REVOKED");
    expect(await verifyCode(key)).toBe("REVOKED");

    // Sync did this, not an eviction: KV still holds the pre-revocation record.
    expect(await kvRecord(key)).toMatchObject({ id, revokedAt: null });
  });

  it("past one interval, is picked up after the response and refused from the next request on", async () => {
    const { id, key } = await warmKey();
    await revokeElsewhere(id);
    await pause(SYNC_SECONDS * 1000 + 50);
    // Due: this request may still be answered from cache, but it starts a sync (waited for by `call`).
    expect([200, 401]).toContain((await whoami(key, fastSync)).status);
    expect((await whoami(key)).status).toBe(401);
    expect(await kvRecord(key)).toMatchObject({ id, revokedAt: null });
  });

  it("is honoured by a fresh isolate at once, whatever KV holds", async () => {
    const { id, key } = await warmKey();
    await revokeElsewhere(id);
    isolateCache.clear();
    expect(await kvRecord(key)).toMatchObject({ id, revokedAt: null });
    expect(await verifyCode(key)).toBe("REVOKED");
    expect((await whoami(key)).status).toBe(401);
  });

  it("leaves other keys of the same isolate working", async () => {
    const revoked = await warmKey();
    const kept = await warmKey();
    await revokeElsewhere(revoked.id);
    await pause(2 * SYNC_SECONDS * 1000 + 50);
    expect(await verifyCode(revoked.key, fastSync)).toBe("REVOKED");
    expect(await verifyCode(kept.key, fastSync)).toBe("VALID");
    expect((await whoami(kept.key)).status).toBe(200);
  });
});

/** Changes the key in D1 only, as another location's PATCH or rotation would: this isolate and KV are not told. */
async function changeElsewhere(id: string, set: string, ...values: unknown[]): Promise<void> {
  const result = await env.DB.prepare(`UPDATE api_keys SET ${set}, updated_at = ? WHERE id = ?`)
    .bind(...values, Date.now(), id)
    .run();
  expect(result.meta.changes).toBe(1);
}

describe("a change made at another location", () => {
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
      expect(await kvRecord(key)).toMatchObject({ id, updatedAt: null, enabled: true, allowedIps: null });

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
    expect(await kvRecord(key)).toMatchObject({ id, updatedAt: null });
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
    expect(await kvRecord(key)).toBeNull();
    expect((await whoami(key)).status).toBe(401);
    expect(await verifyCode(key)).toBe("DISABLED");
  });
});
