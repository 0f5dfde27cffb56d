/**
 * HMAC-imported keys upgraded on first use (src/service/hmac-upgrade.ts), over HTTP: the first
 * verification stores the key under the SHA-256 of its token in place of its HMAC digest, with one
 * `upgraded` audit event whatever the concurrency; later verifications (and, once every key is
 * upgraded, a deployment without the pepper) find it by that SHA-256; a wrong token upgrades nothing;
 * the digest it was imported under finds nothing any more but an import of it (a conflict); and the
 * key's later changes (disable, rotate, revoke) hold at once. Across isolates: hmac-upgrade-sync.test.ts.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/keys/hash";
import { hmacSha256Hex } from "../../src/keys/legacy-digest";
import type { AuditEvent } from "../../src/model";
import { isolateCache } from "../../src/service/verify";
import { D1KeyStore } from "../../src/store/d1";
import { ConcurrentChangeError } from "../../src/store/store";
import { call, captureLogs, envWith, token, uniqueSub, type CapturedLogs } from "../helpers";

let quiet: CapturedLogs;
beforeEach(() => {
  quiet = captureLogs();
});
afterEach(() => quiet.restore());

const PEPPER = "pepper-for-upgrade-tests-7d21";
const HMAC = envWith({
  LEGACY_KEY_FORMATS: "hmac-sha256:opaque:hk_,hmac-sha256:hex64",
  LEGACY_HMAC_PEPPER: PEPPER,
  IMPORT_ALLOWED: "personal",
});
/** The same deployment once the pepper is retired. */
const NO_PEPPER = envWith({ ...HMAC, LEGACY_HMAC_PEPPER: "" });

function randomToken(): string {
  const raw = String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24)));
  return `hk_${btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
}

interface Imported {
  imported: number;
  conflicts: number;
  results: { status: string; id: string | null }[];
}

async function importDigest(jwt: string, hash: string, name = "hmac"): Promise<Imported> {
  const response = await call("POST", "/v1/keys/import", {
    auth: jwt,
    body: { keys: [{ hash, name, format: "hmac-sha256" }] },
    env: HMAC,
  });
  expect(response.status, await response.clone().text()).toBe(200);
  return response.json();
}

/** A token of `jwt`'s owner, imported by its HMAC digest: the key's id, the token, the digest. */
async function imported(jwt: string): Promise<{ id: string; key: string; digest: string }> {
  const key = randomToken();
  const digest = await hmacSha256Hex(PEPPER, key);
  const { results } = await importDigest(jwt, digest);
  return { id: results[0]!.id!, key, digest };
}

async function verify(key: string, testEnv = HMAC): Promise<{ code: string; key_id?: string | null }> {
  const response = await call("POST", "/v1/verify", { body: { key }, env: testEnv });
  expect(response.status).toBe(200);
  return response.json();
}

const row = (id: string) =>
  env.DB.prepare("SELECT hash, legacy_format, legacy_hash FROM api_keys WHERE id = ?")
    .bind(id)
    .first<{ hash: string; legacy_format: string; legacy_hash: string | null }>();

async function events(jwt: string, id: string): Promise<{ action: string; actor: string; changes: object }[]> {
  const response = await call("GET", `/v1/keys/${id}/events`, { auth: jwt, env: HMAC });
  expect(response.status).toBe(200);
  return (await response.json<{ data: { action: string; actor: string; changes: object }[] }>()).data;
}
const upgradedEvents = async (jwt: string, id: string) =>
  (await events(jwt, id)).filter((e) => e.action === "upgraded");

describe("an HMAC-imported key's first use", () => {
  it("stores it under the SHA-256 of its token with one upgraded event; later uses verify; a wrong token upgrades nothing", async () => {
    const jwt = await token(uniqueSub());
    const { id, key, digest } = await imported(jwt);
    expect(await row(id)).toEqual({ hash: digest, legacy_format: "hmac-sha256", legacy_hash: null });

    // A token of the same shape that is not the key: not found, and nothing changes.
    expect(await verify(randomToken())).toMatchObject({ code: "NOT_FOUND" });
    expect(await row(id)).toEqual({ hash: digest, legacy_format: "hmac-sha256", legacy_hash: null });
    expect(await upgradedEvents(jwt, id)).toEqual([]);

    expect(await verify(key)).toMatchObject({ code: "VALID", key_id: id });
    expect(await row(id)).toEqual({ hash: await sha256Hex(key), legacy_format: "hmac-sha256", legacy_hash: digest });
    expect(await upgradedEvents(jwt, id)).toEqual([
      expect.objectContaining({ actor: `key:${id}`, changes: { hash_scheme: { old: "hmac-sha256", new: "sha256" } } }),
    ]);

    // Later uses: still valid (over /v1/verify and as a credential), nothing more written.
    expect(await verify(key)).toMatchObject({ code: "VALID", key_id: id });
    const whoami = await call("GET", "/v1/whoami", {
      headers: { authorization: `Bearer ${key}`, "cf-connecting-ip": uniqueSub("client") },
      env: HMAC,
    });
    expect(whoami.status).toBe(200);
    expect(await verify(randomToken())).toMatchObject({ code: "NOT_FOUND" });
    expect(await upgradedEvents(jwt, id)).toHaveLength(1);
  });

  it("concurrent first uses all verify, and the key is upgraded once (one event)", async () => {
    const jwt = await token(uniqueSub());
    const { id, key } = await imported(jwt);
    const verdicts = await Promise.all(Array.from({ length: 6 }, () => verify(key)));
    expect(verdicts.map((v) => v.code)).toEqual(Array(6).fill("VALID"));
    expect(await upgradedEvents(jwt, id)).toHaveLength(1);
    expect((await row(id))?.hash).toBe(await sha256Hex(key));
  });
});

describe("once upgraded", () => {
  it("the digest finds nothing: without the pepper the upgraded key verifies, a key never used does not", async () => {
    const jwt = await token(uniqueSub());
    const used = await imported(jwt);
    const unused = await imported(jwt);
    expect(await verify(used.key)).toMatchObject({ code: "VALID" });
    const holders = await env.DB.prepare("SELECT COUNT(*) AS n FROM api_keys WHERE hash = ?")
      .bind(used.digest)
      .first<{ n: number }>();
    expect(holders?.n).toBe(0);

    // The pepper retired (the same formats, no LEGACY_HMAC_PEPPER): read afresh from storage.
    isolateCache.clear();
    expect(await verify(used.key, NO_PEPPER)).toMatchObject({ code: "VALID", key_id: used.id });
    expect(await verify(unused.key, NO_PEPPER)).toMatchObject({ code: "NOT_FOUND" });
    expect(await row(unused.id)).toMatchObject({ hash: unused.digest, legacy_hash: null });
  });

  it("an import of the same digest is a conflict, never a second key, whoever imports it", async () => {
    const jwt = await token(uniqueSub());
    const { id, key, digest } = await imported(jwt);
    expect(await verify(key)).toMatchObject({ code: "VALID" });

    expect(await importDigest(jwt, digest)).toMatchObject({ imported: 0, conflicts: 1 });
    const other = await importDigest(await token(uniqueSub()), digest);
    expect(other).toMatchObject({ imported: 0, conflicts: 1, results: [{ status: "conflict", id: null }] });
    // The operator learns whose it is (as for any hash another owner holds).
    expect(quiet.events("import_conflict_other_owner")).toEqual([expect.objectContaining({ existing_key_id: id })]);
    const copies = await env.DB.prepare("SELECT COUNT(*) AS n FROM api_keys WHERE hash = ? OR legacy_hash = ?")
      .bind(digest, digest)
      .first<{ n: number }>();
    expect(copies?.n).toBe(1);
    expect(await verify(key)).toMatchObject({ code: "VALID", key_id: id });
  });

  it("is disabled, rotated and revoked like any key, each change holding at once", async () => {
    const jwt = await token(uniqueSub());
    const { id, key } = await imported(jwt);
    expect(await verify(key)).toMatchObject({ code: "VALID" });

    const patch = (enabled: boolean) => call("PATCH", `/v1/keys/${id}`, { auth: jwt, body: { enabled }, env: HMAC });
    expect((await patch(false)).status).toBe(200);
    expect(await verify(key)).toMatchObject({ code: "DISABLED" });
    expect((await patch(true)).status).toBe(200);
    expect(await verify(key)).toMatchObject({ code: "VALID" });

    const rotated = await call("POST", `/v1/keys/${id}/rotate`, {
      auth: jwt,
      body: { grace_seconds: 3600 },
      env: HMAC,
    });
    expect(rotated.status).toBe(201);
    const replacement = await rotated.json<{ key: string; id: string }>();
    expect(await verify(replacement.key)).toMatchObject({ code: "VALID", key_id: replacement.id });
    expect(await verify(key)).toMatchObject({ code: "VALID", key_id: id }); // its grace

    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt, env: HMAC })).status).toBe(204);
    expect(await verify(key)).toMatchObject({ code: "REVOKED" });
    expect(await verify(key, NO_PEPPER)).toMatchObject({ code: "REVOKED" });
  });

  it("a change read before the upgrade is not written after it: the write aborts, to be read and decided again", async () => {
    const jwt = await token(uniqueSub());
    const { id, key } = await imported(jwt);
    const store = new D1KeyStore(env.DB);
    const stale = (await store.findById(id))!;
    expect(await verify(key)).toMatchObject({ code: "VALID" });

    const event: AuditEvent = {
      id: crypto.randomUUID(),
      keyId: id,
      owner: stale.owner,
      action: "disabled",
      actor: "user:test",
      at: Date.now(),
      changes: { enabled: { old: true, new: false } },
      ip: null,
      userAgent: null,
    };
    await expect(store.update(stale, { enabled: false }, event)).rejects.toBeInstanceOf(ConcurrentChangeError);
    expect((await store.findById(id))?.enabled).toBe(true);
    expect((await events(jwt, id)).map((e) => e.action)).not.toContain("disabled");
  });
});

describe("a client over the failed-authentication limit", () => {
  it("is judged from memory: its upgraded key works, a token memory cannot settle is 429", async () => {
    const jwt = await token(uniqueSub());
    const { key } = await imported(jwt);
    expect(await verify(key)).toMatchObject({ code: "VALID" }); // upgraded here, so in this isolate's memory
    let failures = 0;
    const limiter = { limit: async () => ({ success: ++failures <= 1 }) } as unknown as RateLimit;
    const limited = envWith({ ...HMAC, AUTH_FAILURE_LIMITER: limiter });
    const ip = `10.${crypto.getRandomValues(new Uint8Array(3)).join(".")}`;
    const whoami = (credential: string) =>
      call("GET", "/v1/whoami", {
        headers: { authorization: `Bearer ${credential}`, "cf-connecting-ip": ip },
        env: limited,
      });
    expect((await whoami(randomToken())).status).toBe(401);
    expect((await whoami(randomToken())).status).toBe(429); // now over the limit
    expect((await whoami(key)).status).toBe(200);
    expect((await whoami(randomToken())).status).toBe(429);
  });
});

describe("a digest that is not the token's HMAC", () => {
  it("an item whose `hash` is the token's plain SHA-256 is no upgraded key: the token does not verify", async () => {
    const jwt = await token(uniqueSub());
    const key = randomToken();
    const { results } = await importDigest(jwt, await sha256Hex(key));
    expect(await verify(key)).toMatchObject({ code: "NOT_FOUND" });
    expect(await verify(key, NO_PEPPER)).toMatchObject({ code: "NOT_FOUND" });
    expect((await upgradedEvents(jwt, results[0]!.id!)).length).toBe(0);
  });

  it("a digest under another pepper is never found, and upgrades nothing", async () => {
    const jwt = await token(uniqueSub());
    const key = randomToken();
    const { results } = await importDigest(jwt, await hmacSha256Hex("another-pepper", key), "other pepper");
    expect(await verify(key)).toMatchObject({ code: "NOT_FOUND" });
    expect(await verify(key, NO_PEPPER)).toMatchObject({ code: "NOT_FOUND" });
    expect(await upgradedEvents(jwt, results[0]!.id!)).toEqual([]);
  });
});
