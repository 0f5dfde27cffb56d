/**
 * SERVER_TIMING: a response that verified a key says where the verdict was answered (this isolate's
 * memory, Workers KV or D1), so a load test can count hit rates (bench/hit-rates.mjs); off by default.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/keys/hash";
import { isolateCache } from "../../src/service/verify";
import { cacheKey } from "../../src/store/cache";
import { call, createKey, envWith, token, uniqueSub } from "../helpers";

const timed = envWith({ SERVER_TIMING: "true" });

/** A new isolate, and no KV copy of `key` (creation writes one): the next verification reads D1. */
async function forget(key: string): Promise<void> {
  isolateCache.clear();
  await env.KEY_CACHE.delete(cacheKey(await sha256Hex(key)));
}

async function lookup(key: string, testEnv = timed): Promise<string | null> {
  const response = await call("POST", "/v1/verify", { body: { key }, env: testEnv });
  expect(response.status).toBe(200);
  expect((await response.json<{ code: string }>()).code).toBe("VALID");
  return response.headers.get("server-timing");
}

describe("Server-Timing", () => {
  it("names D1, then memory, then KV once memory is gone", async () => {
    const created = await createKey(await token(uniqueSub()));
    await forget(created.key);
    expect(await lookup(created.key)).toBe('lookup;desc="d1"');
    expect(await lookup(created.key)).toBe('lookup;desc="memory"');
    isolateCache.clear(); // a new isolate: the KV copy the first read left answers
    expect(await lookup(created.key)).toBe('lookup;desc="kv"');
    expect(await lookup(created.key)).toBe('lookup;desc="memory"');
  });

  it("answers on authentication by key too, and not on requests that verify no key", async () => {
    const auth = await token(uniqueSub());
    const created = await createKey(auth, { scopes: ["keys:read"] });
    await forget(created.key);
    const whoami = await call("GET", "/v1/whoami", { auth: created.key, env: timed });
    expect(whoami.status).toBe(200);
    expect(whoami.headers.get("server-timing")).toBe('lookup;desc="d1"');
    const listed = await call("GET", "/v1/keys", { auth, env: timed });
    expect(listed.status).toBe(200);
    expect(listed.headers.has("server-timing")).toBe(false);
  });

  it("is off unless SERVER_TIMING is true", async () => {
    const created = await createKey(await token(uniqueSub()));
    isolateCache.clear();
    expect(await lookup(created.key, envWith({}))).toBeNull();
    expect(await lookup(created.key, envWith({ SERVER_TIMING: "1" }))).toBeNull();
  });
});
