/**
 * The imported key formats beside `sanctum` and `opaque:<prefix>` (src/keys/legacy.ts), over HTTP:
 * unprefixed tokens by exact shape, HMAC-SHA256 digests under LEGACY_HMAC_PEPPER, and bcrypt hashes
 * found by a lookup id and upgraded to the SHA-256 of the whole token on first use (one `upgraded`
 * audit event, whatever the concurrency); `format` is required once several formats are enabled.
 */
import { env } from "cloudflare:workers";
import bcrypt from "bcryptjs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/keys/hash";
import { bcryptLookupHash, hmacSha256Hex } from "../../src/keys/legacy-digest";
import {
  call,
  envWith,
  expectProblem,
  tableSnapshot,
  token,
  uniqueSub,
  captureLogs,
  type CapturedLogs,
} from "../helpers";

// The service's log lines (info on changes, warnings on refusals) are captured, not printed: the run stays quiet.
let quiet: CapturedLogs;
beforeEach(() => {
  quiet = captureLogs();
});
afterEach(() => quiet.restore());

const PEPPER = "pepper-for-tests-only-3f9c1a";
/**
 * The new formats at once (no two overlap: base64url43 would overlap the HMAC prefix hk_, so it has a
 * deployment of its own), plus opaque sk_live_.
 */
const ALL = envWith({
  LEGACY_KEY_FORMATS: "hex32,hex64,hmac-sha256:opaque:hk_,bcrypt,opaque:sk_live_",
  LEGACY_HMAC_PEPPER: PEPPER,
  IMPORT_ALLOWED: "personal",
});

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}
function randomBase64url(bytes: number): string {
  const raw = String.fromCharCode(...crypto.getRandomValues(new Uint8Array(bytes)));
  return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

interface ImportResponse {
  imported: number;
  conflicts: number;
  results: { hash: string; status: "imported" | "conflict"; id: string | null }[];
}

const importKeys = (jwt: string, keys: Record<string, unknown>[], testEnv = ALL) =>
  call("POST", "/v1/keys/import", { auth: jwt, body: { keys }, env: testEnv });

async function importOk(jwt: string, keys: Record<string, unknown>[], testEnv = ALL): Promise<ImportResponse> {
  const response = await importKeys(jwt, keys, testEnv);
  expect(response.status, await response.clone().text()).toBe(200);
  return response.json();
}

const verify = async (key: string, testEnv = ALL) =>
  (await call("POST", "/v1/verify", { body: { key }, env: testEnv })).json<{ valid: boolean; code: string }>();

const whoami = async (key: string, testEnv = ALL) =>
  call("GET", "/v1/whoami", {
    headers: { authorization: `Bearer ${key}`, "cf-connecting-ip": uniqueSub("client") },
    env: testEnv,
  });

/** A bcrypt-hashed token as a hand-rolled table holds it: `<id>.<secret>`, bcrypt of the secret. */
function bcryptToken(cost = 4) {
  const lookupId = `k${randomHex(6)}`;
  const secret = randomBase64url(24);
  return { token: `${lookupId}.${secret}`, lookupId, hash: bcrypt.hashSync(secret, cost) };
}

async function events(jwt: string, id: string): Promise<{ action: string; actor: string; changes: object }[]> {
  const response = await call("GET", `/v1/keys/${id}/events`, { auth: jwt, env: ALL });
  expect(response.status).toBe(200);
  return (await response.json<{ data: { action: string; actor: string; changes: object }[] }>()).data;
}

describe("unprefixed tokens by shape", () => {
  it("hex32, hex64 and base64url43 tokens verify, each by the SHA-256 of the whole token", async () => {
    const jwt = await token(uniqueSub());
    const tokens = { hex32: randomHex(16), hex64: randomHex(32), base64url43: randomBase64url(32) };
    const b64 = envWith({ LEGACY_KEY_FORMATS: "base64url43,hex64,hex32", IMPORT_ALLOWED: "personal" });
    for (const [format, key] of Object.entries(tokens)) {
      expect(key.length, format).toBe({ hex32: 32, hex64: 64, base64url43: 43 }[format]);
      await importOk(jwt, [{ hash: await sha256Hex(key), name: format, format, start: key.slice(0, 6) }], b64);
      expect(await verify(key, b64), format).toMatchObject({ valid: true, code: "VALID" });
      expect((await whoami(key, b64)).status, format).toBe(200);
    }
    // One character more or less is no shape at all: refused before any lookup.
    expect(await verify(`${tokens.hex64}0`)).toMatchObject({ code: "MALFORMED" });
    expect(await verify(tokens.base64url43.slice(1), b64)).toMatchObject({ code: "MALFORMED" });
    // A shape the deployment does not enable is malformed too.
    const onlyHex32 = envWith({ LEGACY_KEY_FORMATS: "hex32" });
    expect(await verify(tokens.hex64, onlyHex32)).toMatchObject({ code: "MALFORMED" });
  });

  it("a deployment with one format enabled takes items without `format` as that format; with several, it is required", async () => {
    const jwt = await token(uniqueSub());
    const onlyHex64 = envWith({ LEGACY_KEY_FORMATS: "hex64", IMPORT_ALLOWED: "personal" });
    const key = randomHex(32);
    await importOk(jwt, [{ hash: await sha256Hex(key), name: "one format" }], onlyHex64);
    expect(await verify(key, onlyHex64)).toMatchObject({ valid: true });

    const before = await tableSnapshot();
    const problem = await expectProblem(
      await importKeys(jwt, [{ hash: await sha256Hex(randomHex(32)), name: "which?" }]),
      422,
    );
    expect(problem.errors).toEqual({ "keys.0.format": [expect.stringMatching(/^Required: .*opaque, hex32, hex64/)] });
    // Never defaulted to opaque: the suite's own configuration (sanctum and opaque) asks for it too.
    const suite = envWith({ IMPORT_ALLOWED: "personal" });
    const again = await expectProblem(
      await importKeys(jwt, [{ hash: await sha256Hex(randomHex(32)), name: "which?" }], suite),
      422,
    );
    expect(again.errors).toEqual({ "keys.0.format": [expect.stringMatching(/^Required/)] });
    expect(await tableSnapshot()).toEqual(before);
  });
});

describe("hmac-sha256", () => {
  it("a token whose table holds its HMAC-SHA256 under the pepper verifies; the pepper is required", async () => {
    const jwt = await token(uniqueSub());
    const key = `hk_${randomBase64url(24)}`;
    const digest = await hmacSha256Hex(PEPPER, key);
    await importOk(jwt, [{ hash: digest, name: "hmac", format: "hmac-sha256", start: "hk_" }]);
    expect(await verify(key)).toMatchObject({ valid: true, code: "VALID" });
    expect((await whoami(key)).status).toBe(200);

    // Before its first use, another pepper gives another digest: not found; no pepper: not found either
    // (without it only keys already upgraded are found: test/features/hmac-upgrade.test.ts).
    const other = `hk_${randomBase64url(24)}`;
    await importOk(jwt, [{ hash: await hmacSha256Hex(PEPPER, other), name: "unused", format: "hmac-sha256" }]);
    const otherPepper = envWith({ ...ALL, LEGACY_HMAC_PEPPER: "another-pepper" });
    expect(await verify(other, otherPepper)).toMatchObject({ code: "NOT_FOUND" });
    const noPepper = envWith({ ...ALL, LEGACY_HMAC_PEPPER: "" });
    expect(await verify(other, noPepper)).toMatchObject({ code: "NOT_FOUND" });
    // Importing needs the pepper (the item is checked for its own token with it).
    const refused = await expectProblem(
      await importKeys(
        jwt,
        [{ hash: await hmacSha256Hex(PEPPER, `hk_${randomBase64url(24)}`), name: "h", format: "hmac-sha256" }],
        noPepper,
      ),
      422,
    );
    expect(refused.errors).toEqual({ "keys.0.format": [expect.stringMatching(/LEGACY_HMAC_PEPPER/)] });
  });

  it("a plain SHA-256 of an hmac-shaped token does not verify it, nor an HMAC digest a SHA-256 shape", async () => {
    const jwt = await token(uniqueSub());
    const key = `hk_${randomBase64url(24)}`;
    // Imported as hex64 (a SHA-256 format), its SHA-256 is stored, but the token is in an HMAC shape.
    await importOk(jwt, [{ hash: await sha256Hex(key), name: "wrong scheme", format: "hex64" }]);
    expect(await verify(key)).toMatchObject({ code: "NOT_FOUND" });
    const hex = randomHex(32);
    await importOk(jwt, [{ hash: await hmacSha256Hex(PEPPER, hex), name: "wrong scheme", format: "hmac-sha256" }]);
    expect(await verify(hex)).toMatchObject({ code: "NOT_FOUND" });
  });

  it("refuses an item holding the key itself (its HMAC found in the name)", async () => {
    const jwt = await token(uniqueSub());
    const key = `hk_${randomBase64url(24)}`;
    const problem = await expectProblem(
      await importKeys(jwt, [{ hash: await hmacSha256Hex(PEPPER, key), name: `ci ${key}`, format: "hmac-sha256" }]),
      422,
    );
    expect(problem.errors).toEqual({ "keys.0.name": [expect.stringMatching(/Holds the key itself/)] });
  });
});

describe("bcrypt", () => {
  it("verifies <lookup id>.<secret>, then stores the SHA-256 of the whole token in the bcrypt hash's place, with one upgraded event", async () => {
    const jwt = await token(uniqueSub());
    const { token: key, lookupId, hash } = bcryptToken();
    const body = await importOk(jwt, [
      {
        hash,
        lookup_id: lookupId,
        name: "bcrypt",
        format: "bcrypt",
        start: lookupId.slice(0, 8),
        last_used_at: "2026-01-02T03:04:05Z",
      },
    ]);
    const id = body.results[0]!.id!;
    const row = () =>
      env.DB.prepare("SELECT hash, format, legacy_format, legacy_hash, last_used_at FROM api_keys WHERE id = ?")
        .bind(id)
        .first<{ hash: string; format: string; legacy_format: string; legacy_hash: string; last_used_at: number }>();
    expect(await row()).toEqual({
      hash: await bcryptLookupHash(lookupId),
      format: "opaque",
      legacy_format: "bcrypt",
      legacy_hash: hash,
      last_used_at: Date.parse("2026-01-02T03:04:05Z"),
    });
    // A wrong secret under a real lookup id is not found, and upgrades nothing.
    expect(await verify(`${lookupId}.${randomBase64url(24)}`)).toMatchObject({ code: "NOT_FOUND" });
    expect((await row())?.legacy_hash).toBe(hash);

    expect(await verify(key)).toMatchObject({ valid: true, code: "VALID" });
    expect((await row())?.legacy_hash).toBe(await sha256Hex(key));
    const upgraded = (await events(jwt, id)).filter((e) => e.action === "upgraded");
    expect(upgraded).toEqual([
      expect.objectContaining({
        actor: `key:${id}`,
        changes: { hash_scheme: { old: "bcrypt (cost 4)", new: "sha256" } },
      }),
    ]);

    // Every later verification compares the digest: still valid, nothing more written.
    expect(await verify(key)).toMatchObject({ valid: true });
    expect((await whoami(key)).status).toBe(200);
    expect(await verify(`${lookupId}.${randomBase64url(24)}`)).toMatchObject({ code: "NOT_FOUND" });
    expect((await events(jwt, id)).filter((e) => e.action === "upgraded")).toHaveLength(1);
  });

  it("concurrent first uses all verify, and the key is upgraded once (one event)", async () => {
    const jwt = await token(uniqueSub());
    const { token: key, lookupId, hash } = bcryptToken();
    const id = (await importOk(jwt, [{ hash, lookup_id: lookupId, name: "race", format: "bcrypt" }])).results[0]!.id!;
    const verdicts = await Promise.all(Array.from({ length: 6 }, () => verify(key)));
    expect(verdicts.map((v) => v.code)).toEqual(Array(6).fill("VALID"));
    expect((await events(jwt, id)).filter((e) => e.action === "upgraded")).toHaveLength(1);
  });

  it("a revoked bcrypt key is REVOKED only for its own secret", async () => {
    const jwt = await token(uniqueSub());
    const { token: key, lookupId, hash } = bcryptToken();
    const id = (await importOk(jwt, [{ hash, lookup_id: lookupId, name: "gone", format: "bcrypt" }])).results[0]!.id!;
    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt, env: ALL })).status).toBe(204);
    expect(await verify(`${lookupId}.${randomBase64url(24)}`)).toMatchObject({ code: "NOT_FOUND" });
    expect(await verify(key)).toMatchObject({ code: "REVOKED" });
  });

  it("refuses items whose hash is not of the format's kind, without a lookup id, or holding the token (422 naming the field)", async () => {
    const jwt = await token(uniqueSub());
    const good = bcryptToken();
    const before = await tableSnapshot();
    for (const [item, field] of [
      [{ hash: await sha256Hex(good.token), lookup_id: good.lookupId, name: "x", format: "bcrypt" }, "keys.0.hash"],
      [{ hash: good.hash, name: "x", format: "bcrypt" }, "keys.0.lookup_id"],
      [{ hash: good.hash, lookup_id: "not.an.id", name: "x", format: "bcrypt" }, "keys.0.lookup_id"],
      [{ hash: good.hash, lookup_id: good.lookupId, name: "x", format: "hex64" }, "keys.0.hash"],
      [{ hash: await sha256Hex(randomHex(32)), lookup_id: "abc", name: "x", format: "hex64" }, "keys.0.lookup_id"],
      [{ hash: good.hash, lookup_id: good.lookupId, name: `token ${good.token}`, format: "bcrypt" }, "keys.0.name"],
      [{ hash: good.hash, lookup_id: good.lookupId, name: "x", format: "bcrypt", start: "lk_abc" }, "keys.0.start"],
    ] as const) {
      const problem = await expectProblem(await importKeys(jwt, [item]), 422);
      expect(Object.keys(problem.errors as object), JSON.stringify(item)).toEqual([field]);
    }
    expect(await tableSnapshot()).toEqual(before);
  });

  it("re-importing the same lookup id is a conflict, never a second row", async () => {
    const jwt = await token(uniqueSub());
    const first = bcryptToken();
    const item = { hash: first.hash, lookup_id: first.lookupId, name: "b", format: "bcrypt" };
    await importOk(jwt, [item]);
    expect(await importOk(jwt, [item])).toMatchObject({ imported: 0, conflicts: 1 });
  });
});
