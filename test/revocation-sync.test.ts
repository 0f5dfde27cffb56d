/**
 * Revocation across locations. (That the revoking location refuses the key on the very next request is
 * tested in storage.test.ts.) Any other location learns of it from D1 by revocation sync (src/service/verify.ts) within twice the sync
 * interval, even while its memory and KV still hold the key's pre-revocation record. "Another
 * location" here is a direct UPDATE of D1, which evicts nothing from this isolate or from KV.
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

async function verifyCode(key: string, testEnv: Env = env): Promise<string> {
  const response = await call("POST", "/v1/verify", { body: { key }, env: testEnv });
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
async function warmKey(): Promise<{ id: string; key: string }> {
  const { id, key } = await createKey(await token(uniqueSub()));
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
