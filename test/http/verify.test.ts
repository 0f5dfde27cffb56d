/**
 * POST /v1/verify: every verdict code, wildcard scopes, input validation, the promise that
 * a malformed key costs no storage lookup, and both Authorization schemes that carry a key.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env } from "../../src/env";
import { generateKey } from "../../src/keys/format";
import { isolateCache } from "../../src/service/verify";
import { call, createKey, expectProblem, recordingEnv, token, uniqueSub } from "../helpers";

interface Verdict {
  valid: boolean;
  code: string;
  key_id: string | null;
  owner?: { type: string; id: string };
  scopes?: string[];
  resources?: string[] | null;
  expires_at?: string | null;
}

/** A dead or unknown key's answer holds nothing but the verdict and the key's id. */
const NO_KEY = { key_id: null };
const HOUR = 3_600_000;

async function verify(body: Record<string, unknown>, testEnv?: Env): Promise<Verdict> {
  const response = await call("POST", "/v1/verify", { body, ...(testEnv ? { env: testEnv } : {}) });
  expect(response.status).toBe(200);
  return response.json<Verdict>();
}

/** A client no other test shares, so failed authentications never reach the rate limit. */
const freshClient = () => ({ "cf-connecting-ip": `2001:db8::${crypto.randomUUID().slice(0, 4)}` });

afterEach(() => {
  vi.useRealTimers();
});

describe("POST /v1/verify", () => {
  it("answers VALID with the key's id, owner, scopes, resources and expiry", async () => {
    const sub = uniqueSub();
    const expiresAt = new Date(Date.now() + HOUR).toISOString();
    const created = await createKey(await token(sub), {
      scopes: ["models:invoke", "metrics:read"],
      resources: ["m1", "m2"],
      expires_at: expiresAt,
    });
    const expected = {
      valid: true,
      code: "VALID",
      key_id: created.id,
      owner: { type: "user", id: sub },
      scopes: ["models:invoke", "metrics:read"],
      resources: ["m1", "m2"],
      expires_at: expiresAt,
      enabled: true,
    };
    expect(await verify({ key: created.key })).toEqual(expected);
    expect(await verify({ key: created.key, scope: "metrics:read", resource: "m2" })).toEqual(expected);
    isolateCache.clear();
    expect(await verify({ key: created.key, scope: "models:invoke", resource: "m1" })).toEqual(expected);
  });

  it("names a workspace owner and a key without limits", async () => {
    const org = uniqueSub("org");
    const created = await createKey(await token(uniqueSub(), { org }), { owner: "workspace" });
    expect(await verify({ key: created.key, scope: "anything:at:all", resource: "whatever" })).toEqual({
      valid: true,
      code: "VALID",
      key_id: created.id,
      owner: { type: "workspace", id: org },
      scopes: ["*"],
      resources: null,
      expires_at: null,
      enabled: true,
    });
  });

  it("answers MALFORMED for strings that are not keys", async () => {
    const real = generateKey("lk");
    const flipped = real.slice(0, 10) + (real[10] === "a" ? "b" : "a") + real.slice(11);
    for (const key of [
      "",
      "lk_",
      "not a key",
      real.slice(0, -1),
      `${real}x`,
      flipped,
      generateKey("other"),
      "x".repeat(5000),
    ]) {
      expect(await verify({ key }), key.slice(0, 20)).toEqual({ valid: false, code: "MALFORMED", ...NO_KEY });
    }
  });

  it("answers NOT_FOUND for a well-formed key that was never issued", async () => {
    const key = generateKey("lk");
    expect(await verify({ key })).toEqual({ valid: false, code: "NOT_FOUND", ...NO_KEY });
    isolateCache.clear();
    expect(await verify({ key, scope: "models:invoke" })).toEqual({ valid: false, code: "NOT_FOUND", ...NO_KEY });
  });

  it("answers REVOKED once the key is revoked, here and in a fresh isolate", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    const created = await createKey(jwt, { scopes: ["models:invoke"] });
    expect((await verify({ key: created.key })).code).toBe("VALID");
    expect((await call("DELETE", `/v1/keys/${created.id}`, { auth: jwt })).status).toBe(204);

    // Only the id: whoever holds a revoked key learns nothing of its owner or powers.
    const revoked = { valid: false, code: "REVOKED", key_id: created.id };
    expect(await verify({ key: created.key })).toEqual(revoked);
    expect(await verify({ key: created.key, scope: "metrics:read" })).toEqual(revoked);
    isolateCache.clear();
    expect(await verify({ key: created.key })).toEqual(revoked);
  });

  it("answers EXPIRED once the key's expiry has passed, warm or cold", async () => {
    const expiresAt = new Date(Date.now() + HOUR).toISOString();
    const created = await createKey(await token(uniqueSub()), { scopes: ["models:invoke"], expires_at: expiresAt });
    expect((await verify({ key: created.key })).code).toBe("VALID");

    vi.setSystemTime(Date.parse(expiresAt) + 1);
    const expired = await verify({ key: created.key });
    expect(expired).toEqual({ valid: false, code: "EXPIRED", key_id: created.id });
    expect((await verify({ key: created.key, scope: "nope:nope" })).code).toBe("EXPIRED");
    isolateCache.clear();
    expect((await verify({ key: created.key })).code).toBe("EXPIRED");
    vi.useRealTimers();
    isolateCache.clear(); // forget the sync bookkeeping done in the future
    expect((await verify({ key: created.key })).code).toBe("VALID");
  });

  it("answers INSUFFICIENT_SCOPE and RESOURCE_NOT_ALLOWED with the key's details", async () => {
    const created = await createKey(await token(uniqueSub()), { scopes: ["models:invoke"], resources: ["m1"] });
    const scope = await verify({ key: created.key, scope: "metrics:read", resource: "m1" });
    expect(scope).toMatchObject({
      valid: false,
      code: "INSUFFICIENT_SCOPE",
      key_id: created.id,
      scopes: ["models:invoke"],
    });
    const resource = await verify({ key: created.key, scope: "models:invoke", resource: "m2" });
    expect(resource).toMatchObject({
      valid: false,
      code: "RESOURCE_NOT_ALLOWED",
      key_id: created.id,
      resources: ["m1"],
    });
  });

  it.each([
    [["models:*"], "models:invoke", "VALID"],
    [["models:*"], "models:invoke:stream", "VALID"],
    [["models:*"], "metrics:read", "INSUFFICIENT_SCOPE"],
    [["models:*"], "modelsx:read", "INSUFFICIENT_SCOPE"],
    [["models:*"], "*", "INSUFFICIENT_SCOPE"],
    [["models:invoke"], "models:*", "INSUFFICIENT_SCOPE"],
    [["models:invoke"], "models:invoke:stream", "INSUFFICIENT_SCOPE"],
    [["metrics:read", "models:*"], "models:delete", "VALID"],
    [["*"], "metrics:read", "VALID"],
    [["*"], "keys:write", "VALID"],
    [["*"], "*", "VALID"],
  ])("a key with %j asked for %s is %s", async (scopes, scope, code) => {
    const created = await createKey(await token(uniqueSub()), { scopes });
    expect((await verify({ key: created.key, scope })).code).toBe(code);
  });

  it.each([
    [{}, "key"],
    [{ key: 123 }, "key"],
    [{ key: null }, "key"],
    [{ key: ["lk_x"] }, "key"],
    [{ key: { value: "lk_x" } }, "key"],
    [{ key: "lk_x", scope: "Models:Invoke" }, "scope"],
    [{ key: "lk_x", scope: 5 }, "scope"],
    [{ key: "lk_x", resource: "has space" }, "resource"],
    [{ key: "lk_x", keys: "lk_y" }, "keys"],
  ])("refuses %j with a 422 problem naming %s", async (body, field) => {
    const response = await call("POST", "/v1/verify", { body });
    const problem = await expectProblem(response, 422);
    expect(Object.keys(problem.errors as Record<string, string[]>)).toEqual([field]);
  });

  it("never echoes the key in a problem", async () => {
    const created = await createKey(await token(uniqueSub()));
    const response = await call("POST", "/v1/verify", { body: { key: created.key, scope: "BAD" } });
    expect(response.status).toBe(422);
    expect(await response.text()).not.toContain(created.key.slice(3));
  });
});

describe("a malformed key costs no storage lookup", () => {
  it("touches neither D1 nor KV for bad-checksum, truncated, foreign or garbage keys", async () => {
    const { testEnv, uses } = recordingEnv();
    const real = (await createKey(await token(uniqueSub()))).key;
    const flipped = real.slice(0, -1) + (real.endsWith("0") ? "1" : "0");
    isolateCache.clear();
    for (const key of [flipped, real.slice(0, -2), generateKey("acme"), "lk_" + "A".repeat(49), "garbage", ""]) {
      expect((await verify({ key }, testEnv)).code).toBe("MALFORMED");
    }
    expect(uses).toEqual([]);
  });

  it("does record the lookups of a well-formed key (so the proxies would see them)", async () => {
    const { testEnv, uses } = recordingEnv();
    isolateCache.clear();
    expect((await verify({ key: generateKey("lk") }, testEnv)).code).toBe("NOT_FOUND");
    expect(uses).toContain("KEY_CACHE.get");
    expect(uses).toContain("DB.prepare");
  });
});

describe("Authorization with a key", () => {
  it.each(["Bearer", "Api-Key", "api-key", "bearer"])("authenticates with the %s scheme", async (scheme) => {
    const created = await createKey(await token(uniqueSub()), { scopes: ["metrics:read"] });
    const response = await call("GET", "/v1/whoami", { headers: { authorization: `${scheme} ${created.key}` } });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ principal: "api_key", key_id: created.id, scopes: ["metrics:read"] });
  });

  it("refuses revoked, unknown and malformed keys and a JWT sent as Api-Key, with 401 and WWW-Authenticate", async () => {
    const jwt = await token(uniqueSub());
    const revoked = await createKey(jwt);
    expect((await call("DELETE", `/v1/keys/${revoked.id}`, { auth: jwt })).status).toBe(204);
    const attempts = [
      [`Bearer ${revoked.key}`, /revoked/],
      [`Api-Key ${revoked.key}`, /revoked/],
      [`Bearer ${generateKey("lk")}`, /not valid/],
      [`Api-Key ${revoked.key.slice(0, -1)}`, /malformed/],
      [`Bearer lk_short`, /malformed/],
      [`Api-Key ${jwt}`, /malformed/],
    ] as const;
    for (const [authorization, detail] of attempts) {
      const response = await call("GET", "/v1/whoami", { headers: { authorization, ...freshClient() } });
      expect(response.status, authorization.slice(0, 12)).toBe(401);
      expect(response.headers.get("www-authenticate")).toContain("Api-Key");
      expect((await response.json<{ detail: string }>()).detail).toMatch(detail);
    }
  });
});
