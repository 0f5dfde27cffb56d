/**
 * Key prefixes: KEY_PREFIX may contain underscores (`sk_live`), and ACCEPTED_PREFIXES keeps keys of
 * older prefixes verifying, so a deployment can change its prefix without invalidating a single key.
 */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { generateKey, isValidPrefix, isWellFormedKey, isWellFormedKeyOf, keyStart } from "../../src/keys/format";
import { call, captureLogs, createKey, envWith, expectProblem, token, uniqueSub } from "../helpers";

describe("prefixes with underscores", () => {
  it("accepts lowercase parts joined by single underscores, up to 16 characters", () => {
    for (const prefix of ["lk", "sk_live", "sk_test", "acme_prod_v2", "a".repeat(16)]) {
      expect(isValidPrefix(prefix), prefix).toBe(true);
    }
    for (const prefix of ["", "_sk", "sk_", "sk__live", "Sk_live", "1sk", "sk-live", "sk live", "a".repeat(17)]) {
      expect(isValidPrefix(prefix), prefix).toBe(false);
    }
  });

  it("makes and checks keys whose prefix has an underscore", () => {
    const key = generateKey("sk_live");
    expect(key).toMatch(/^sk_live_[0-9A-Za-z]{49}$/);
    expect(isWellFormedKey(key, "sk_live")).toBe(true);
    expect(isWellFormedKey(key, "sk")).toBe(false);
    expect(isWellFormedKey(generateKey("sk"), "sk_live")).toBe(false);
    expect(keyStart(key, "sk_live")).toMatch(/^sk_live_[0-9A-Za-z]{6}$/);
  });

  it("serves keys with an underscore prefix end to end (Bearer detection, verify)", async () => {
    const env = envWith({ KEY_PREFIX: "sk_live", LEGACY_KEY_FORMATS: "sanctum" });
    const sub = uniqueSub();
    const created = await createKey(await token(sub), {}, env);
    expect(created.key).toMatch(/^sk_live_/);
    const whoami = await call("GET", "/v1/whoami", { auth: created.key, env });
    expect(whoami.status).toBe(200);
    expect(await whoami.json()).toMatchObject({ principal: "api_key", key_id: created.id });
    const verdict = await call("POST", "/v1/verify", { body: { key: created.key }, env });
    expect(await verdict.json()).toMatchObject({ valid: true, code: "VALID" });
  });
});

describe("ACCEPTED_PREFIXES", () => {
  it("keeps keys of an older prefix verifying after KEY_PREFIX changes", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    const old = await createKey(jwt, {}, envWith({ KEY_PREFIX: "lk" }));
    const migrated = envWith({
      KEY_PREFIX: "sk_live",
      ACCEPTED_PREFIXES: "lk, sk_test",
      LEGACY_KEY_FORMATS: "sanctum",
    });

    expect((await call("GET", "/v1/whoami", { auth: old.key, env: migrated })).status).toBe(200);
    expect(
      (await call("GET", "/v1/whoami", { headers: { authorization: `Api-Key ${old.key}` }, env: migrated })).status,
    ).toBe(200);
    const verdict = await call("POST", "/v1/verify", { body: { key: old.key }, env: migrated });
    expect(await verdict.json()).toMatchObject({ valid: true, key_id: old.id });
    // New keys get the new prefix.
    expect((await createKey(jwt, {}, migrated)).key).toMatch(/^sk_live_/);
  });

  it("without it, a key of another prefix is malformed, and refused as a Bearer token", async () => {
    const old = await createKey(await token(uniqueSub()), {}, envWith({ KEY_PREFIX: "lk" }));
    const moved = envWith({ KEY_PREFIX: "sk_live", LEGACY_KEY_FORMATS: "sanctum" });
    const verdict = await call("POST", "/v1/verify", { body: { key: old.key }, env: moved });
    expect(await verdict.json()).toMatchObject({ valid: false, code: "MALFORMED" });
    await expectProblem(await call("GET", "/v1/whoami", { auth: old.key, env: moved }), 401, "token_invalid");
  });

  it("lists the current prefix first, drops duplicates and reports invalid entries by name", () => {
    const logs = captureLogs();
    // LEGACY_KEY_FORMATS off: the test env's opaque:sk_live_ would (rightly) be reported as overlapping sk_live.
    const config = loadConfig(
      envWith({ KEY_PREFIX: "sk_live", ACCEPTED_PREFIXES: "lk,,sk_live, bad-one ,sk_test", LEGACY_KEY_FORMATS: "" }),
    );
    logs.restore();
    expect(config.acceptedPrefixes).toEqual(["sk_live", "lk", "sk_test"]);
    expect(logs.events("configuration_invalid").map((line) => line.problem)).toEqual([
      'ACCEPTED_PREFIXES: "bad-one" is not a valid prefix; ignored',
    ]);
    expect(isWellFormedKeyOf(generateKey("sk_test"), config.acceptedPrefixes)).toBe(true);
    expect(isWellFormedKeyOf(generateKey("zz"), config.acceptedPrefixes)).toBe(false);
  });
});
