/**
 * Migrating existing keys: POST /v1/keys/import (and KeyService.import over RPC) registers keys by
 * their SHA-256, all or nothing, with conflicts per item; the imported keys then verify in their own
 * format on every path (HTTP auth, POST /v1/verify, RPC) and revoke like any key; no plaintext is
 * accepted or stored. The suite enables `sanctum` and `opaque:sk_live_` (vitest.config.ts).
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import { generateKey } from "../../src/keys/format";
import { sha256Hex } from "../../src/keys/hash";
import { NO_LEGACY_FORMATS, parseLegacyFormats } from "../../src/keys/legacy";
import { importedStartProblem } from "../../src/keys/legacy-start";
import { isolateCache } from "../../src/service/verify";
import { cacheKey } from "../../src/store/cache";
import { call, createKey, envWith, expectProblem, tableSnapshot, token, uniqueSub } from "../helpers";

declare global {
  namespace Cloudflare {
    interface GlobalProps {
      mainModule: typeof import("../../src/index");
    }
  }
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
function randomAlnum(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => ALNUM[b % ALNUM.length]).join("");
}

/** A Laravel Sanctum token as Laravel hands it out: `<id>|<40 characters>`, stored as SHA-256 of the secret. */
async function sanctumToken(id = 17) {
  const secret = randomAlnum(40);
  return { token: `${id}|${secret}`, secret, hash: await sha256Hex(secret) };
}

/** A Stripe-style opaque key, stored as the SHA-256 of the whole key. */
async function opaqueKey() {
  const key = `sk_live_${randomAlnum(24)}`;
  return { key, hash: await sha256Hex(key) };
}

interface ImportResponse {
  imported: number;
  conflicts: number;
  results: { hash: string; status: "imported" | "conflict"; id: string | null }[];
}

async function importKeys(auth: string, keys: Record<string, unknown>[], testEnv?: Env, named = true) {
  // People import their own keys here only because the operator allows it (IMPORT_ALLOWED=personal).
  // The suite enables two formats, so items must name theirs: opaque unless the test says otherwise.
  return call("POST", "/v1/keys/import", {
    auth,
    body: { keys: named ? keys.map((key) => ({ format: "opaque", ...key })) : keys },
    env: { ...(testEnv ?? env), IMPORT_ALLOWED: "personal" },
  });
}

const onlyId = (body: ImportResponse): string => body.results[0]!.id!;

async function importOk(auth: string, keys: Record<string, unknown>[]): Promise<ImportResponse> {
  const response = await importKeys(auth, keys);
  expect(response.status, await response.clone().text()).toBe(200);
  return response.json();
}

const whoami = (credential: string, scheme = "Bearer") =>
  call("GET", "/v1/whoami", {
    headers: { authorization: `${scheme} ${credential}`, "cf-connecting-ip": uniqueSub("client") },
  });

const verify = async (key: string, options: Record<string, string> = {}) =>
  (await call("POST", "/v1/verify", { body: { key, ...options } })).json<{ valid: boolean; code: string }>();

describe("POST /v1/keys/import", () => {
  it("imports one key with its name, owner, scopes, resources, expiry, created_at and metadata", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub, { org: `org-${sub}` });
    const { hash } = await opaqueKey();
    const body = await importOk(jwt, [
      {
        hash,
        name: "legacy CI key",
        start: "sk_live_ab",
        owner: "workspace",
        scopes: ["models:invoke"],
        resources: ["m1"],
        expires_at: "2031-01-01T00:00:00Z",
        created_at: "2020-05-01T10:00:00Z",
        metadata: { from: "stripe-style" },
      },
    ]);
    expect(body).toEqual({
      imported: 1,
      conflicts: 0,
      results: [{ hash: hash.slice(0, 12), status: "imported", id: expect.any(String) }],
    });
    const id = body.results[0]!.id!;
    const view = await (await call("GET", `/v1/keys/${id}`, { auth: jwt })).json();
    expect(view).toMatchObject({
      id,
      name: "legacy CI key",
      start: "sk_live_ab",
      owner_type: "workspace",
      owner_id: `org-${sub}`,
      scopes: ["models:invoke"],
      resources: ["m1"],
      created_by: `user:${sub}`,
      created_at: "2020-05-01T10:00:00.000Z",
      expires_at: "2031-01-01T00:00:00.000Z",
      revoked_at: null,
      metadata: { from: "stripe-style" },
    });
    const row = await env.DB.prepare("SELECT hash, format FROM api_keys WHERE id = ?").bind(id).first();
    expect(row).toEqual({ hash, format: "opaque" });
  });

  it("imports a batch in input order; the defaults are those of a create", async () => {
    const jwt = await token(uniqueSub());
    const items = [await sanctumToken(1), await sanctumToken(2), await opaqueKey()];
    const body = await importOk(jwt, [
      { hash: items[0]!.hash, name: "a", format: "sanctum" },
      { hash: items[1]!.hash, name: "b", format: "sanctum" },
      { hash: items[2]!.hash, name: "c" },
    ]);
    expect(body.imported).toBe(3);
    expect(body.results.map((r) => r.hash)).toEqual(items.map((i) => i.hash.slice(0, 12)));
    const list = await (await call("GET", "/v1/keys", { auth: jwt })).json<{ data: Record<string, unknown>[] }>();
    expect(list.data.map((k) => k.name).sort()).toEqual(["a", "b", "c"]);
    for (const key of list.data) expect(key).toMatchObject({ scopes: ["*"], resources: null, expires_at: null });
  });

  it("reports a hash already stored, or repeated in the batch, as a conflict: never a second row", async () => {
    const jwt = await token(uniqueSub());
    const first = await opaqueKey();
    const second = await opaqueKey();
    const own = await createKey(jwt); // a latchkey key's hash is taken too
    await importOk(jwt, [{ hash: first.hash, name: "first" }]);

    const body = await importOk(jwt, [
      { hash: second.hash, name: "new" },
      { hash: first.hash, name: "again" },
      { hash: second.hash, name: "repeated" },
      { hash: await sha256Hex(own.key), name: "latchkey's" },
    ]);
    expect(body).toMatchObject({ imported: 1, conflicts: 3 });
    expect(body.results.map((r) => r.status)).toEqual(["imported", "conflict", "conflict", "conflict"]);
    expect(body.results.slice(1).map((r) => r.id)).toEqual([null, null, null]);
    for (const hash of [first.hash, second.hash]) {
      const { results } = await env.DB.prepare("SELECT name FROM api_keys WHERE hash = ?").bind(hash).all();
      expect(results.length).toBe(1);
    }
    const kept = await env.DB.prepare("SELECT name FROM api_keys WHERE hash = ?").bind(second.hash).first();
    expect(kept).toEqual({ name: "new" });
  });

  it("refuses the whole batch with a 422 naming keys.<i>.<field> when any item is invalid", async () => {
    const jwt = await token(uniqueSub());
    const good = await opaqueKey();
    const sanctum = await sanctumToken();
    const before = await tableSnapshot();
    const cases: [Record<string, unknown>, string][] = [
      [{ hash: good.hash.toUpperCase(), name: "x" }, "keys.1.hash"],
      [{ hash: good.hash.slice(1), name: "x" }, "keys.1.hash"],
      [{ hash: good.key, name: "plaintext in hash" }, "keys.1.hash"],
      [{ hash: sanctum.token, name: "plaintext in hash", format: "sanctum" }, "keys.1.hash"],
      [{ hash: (await opaqueKey()).hash }, "keys.1.name"],
      [{ hash: (await opaqueKey()).hash, name: "x", scopes: ["Not A Scope"] }, "keys.1.scopes.0"],
      [{ hash: (await opaqueKey()).hash, name: "x", created_at: "2999-01-01T00:00:00Z" }, "keys.1.created_at"],
      [{ hash: (await opaqueKey()).hash, name: "x", format: "bcrypt" }, "keys.1.format"],
      [{ hash: (await opaqueKey()).hash, name: "x", start: "pk_test_ab" }, "keys.1.start"],
      [{ hash: (await opaqueKey()).hash, name: "x", start: "sk_live_abcdefgh" }, "keys.1.start"],
      [{ hash: (await opaqueKey()).hash, name: "x", plaintext: "nope" }, "keys.1.plaintext"],
    ];
    for (const [item, field] of cases) {
      const response = await importKeys(jwt, [{ hash: good.hash, name: "fine" }, item]);
      const problem = await expectProblem(response, 422);
      expect(Object.keys(problem.errors as object), JSON.stringify(item)).toContain(field);
      expect(JSON.stringify(problem)).not.toContain(good.key);
    }
    expect((await expectProblem(await importKeys(jwt, []), 422)).errors).toHaveProperty("keys");
    const many = await Promise.all(
      Array.from({ length: 101 }, async (_, i) => ({ hash: await sha256Hex(`k${i}`), name: "n" })),
    );
    expect((await expectProblem(await importKeys(jwt, many), 422)).errors).toHaveProperty("keys");
    expect(await tableSnapshot()).toEqual(before);
  });

  it("refuses a start with control, bidirectional or invisible characters, or not shaped like its format's key (422 naming it)", async () => {
    const jwt = await token(uniqueSub());
    const before = await tableSnapshot();
    const refused: [string, "opaque" | "sanctum", RegExp][] = [
      ["sk_live_\u202eab", "opaque", /U\+202E/], // right-to-left override
      ["\u2066lk_ab\u2069", "opaque", /U\+2066/], // isolate: poses as latchkey's lk_ in the page
      ["sk_live_\u200ba", "opaque", /U\+200B/], // zero-width space
      ["\ufeffsk_live_a", "opaque", /U\+FEFF/], // byte order mark
      ["sk_live_\u200fa", "opaque", /U\+200F/], // right-to-left mark
      ["sk_live_\u00ada", "opaque", /U\+00AD/], // soft hyphen
      ["sk_live_a\ufe0f", "opaque", /U\+FE0F/], // variation selector
      ["sk_live_\u3164", "opaque", /U\+3164/], // Hangul filler
      ["sk_live_ a", "opaque", /U\+0020/],
      ["lk_abcdef", "opaque", /accepted prefix \(sk_live_\)/],
      ["sk_live_ab.c", "opaque", /first characters/],
      ["lk_abcdef", "sanctum", /Sanctum token/],
      ["5|ab|c", "sanctum", /Sanctum token/],
      ["5|\u202eab", "sanctum", /U\+202E/],
      ["\u061c5|ab", "sanctum", /U\+061C/], // Arabic letter mark
    ];
    for (const [start, format, message] of refused) {
      const item = { hash: (await opaqueKey()).hash, name: "x", start, format };
      const problem = await expectProblem(
        await importKeys(jwt, [{ hash: (await opaqueKey()).hash, name: "ok" }, item]),
        422,
      );
      expect((problem.errors as Record<string, string[]>)["keys.1.start"], JSON.stringify(start)).toEqual([
        expect.stringMatching(message),
      ]);
    }
    // Over RPC, the same rule.
    const owner = { type: "user", id: uniqueSub() } as const;
    const rpc = await exports.KeyService.import(owner, {
      keys: [{ hash: (await opaqueKey()).hash, name: "x", format: "opaque", start: "sk_live_\u202eab" }],
    }).then(
      () => "resolved",
      (error: Error) => error.message,
    );
    expect(rpc).toMatch(/^\[invalid\] keys\.0\.start: Must not contain/);
    expect(await tableSnapshot()).toEqual(before);

    // A start shaped like its format's key is kept as given.
    const accepted = await importOk(jwt, [
      { hash: (await opaqueKey()).hash, name: "o", start: "sk_live_a-/=" },
      { hash: (await sanctumToken()).hash, name: "s", format: "sanctum", start: "5|aB3" },
      { hash: (await sanctumToken()).hash, name: "b", format: "sanctum", start: "aB3cD4" },
    ]);
    const starts = await Promise.all(
      accepted.results.map(
        async (r) => (await (await call("GET", `/v1/keys/${r.id}`, { auth: jwt })).json<{ start: string }>()).start,
      ),
    );
    expect(starts).toEqual(["sk_live_a-/=", "5|aB3", "aB3cD4"]);
  });

  it("refuses an item that carries the key itself anywhere, and stores nothing", async () => {
    const jwt = await token(uniqueSub());
    const opaque = await opaqueKey();
    const sanctum = await sanctumToken(9);
    const before = await tableSnapshot();
    const cases: [Record<string, unknown>, string][] = [
      [{ hash: opaque.hash, name: opaque.key }, "keys.0.name"],
      [{ hash: opaque.hash, name: `key ${opaque.key} for CI` }, "keys.0.name"],
      [{ hash: opaque.hash, name: "x", metadata: { note: { original: opaque.key } } }, "keys.0.metadata.note.original"],
      [{ hash: sanctum.hash, name: "x", resources: [sanctum.secret], format: "sanctum" }, "keys.0.resources.0"],
      [{ hash: sanctum.hash, name: sanctum.token, format: "sanctum" }, "keys.0.name"],
      [
        { hash: sanctum.hash, name: "x", metadata: { token: sanctum.secret }, format: "sanctum" },
        "keys.0.metadata.token",
      ],
    ];
    for (const [item, field] of cases) {
      const problem = await expectProblem(await importKeys(jwt, [item]), 422);
      expect(problem.errors).toEqual({ [field]: [expect.stringMatching(/key itself/)] });
    }
    expect(await tableSnapshot()).toEqual(before);
  });

  it("refuses formats the deployment does not accept (LEGACY_KEY_FORMATS)", async () => {
    const jwt = await token(uniqueSub());
    const none = envWith({ LEGACY_KEY_FORMATS: "" });
    const sanctumOnly = envWith({ LEGACY_KEY_FORMATS: "sanctum" });
    const before = await tableSnapshot();
    const sanctum = await sanctumToken();
    const opaque = await opaqueKey();
    for (const [item, testEnv] of [
      [{ hash: sanctum.hash, name: "s", format: "sanctum" }, none],
      [{ hash: opaque.hash, name: "o" }, none],
      [{ hash: opaque.hash, name: "o", format: "opaque" }, sanctumOnly],
    ] as const) {
      const problem = await expectProblem(await importKeys(jwt, [item], testEnv), 422);
      expect(problem.errors).toEqual({ "keys.0.format": [expect.stringMatching(/LEGACY_KEY_FORMATS/)] });
    }
    expect(await tableSnapshot()).toEqual(before);
  });

  it("authorizes every item as a create: a key imports only keys no stronger than itself, with keys:write", async () => {
    const jwt = await token(uniqueSub());
    const writer = await createKey(jwt, { scopes: ["keys:write", "models:invoke"], resources: ["m1"] });
    const reader = await createKey(jwt, { scopes: ["keys:read"] });
    const before = await tableSnapshot([writer.id, reader.id]); // their last use is written
    const hash = (await opaqueKey()).hash;

    await expectProblem(await importKeys(reader.key, [{ hash, name: "x" }]), 403);
    for (const [item, exceeded] of [
      [{ hash, name: "x", scopes: ["*"] }, "keys.1.scopes"],
      [{ hash, name: "x", resources: ["m2"] }, "keys.1.resources"],
      [{ hash, name: "x", owner: "workspace" }, "keys.1.owner"],
    ] as const) {
      const problem = await expectProblem(
        await importKeys(writer.key, [{ hash: (await opaqueKey()).hash, name: "ok" }, item]),
        403,
      );
      expect(problem.exceeded).toBe(exceeded);
    }
    expect(await tableSnapshot([writer.id, reader.id])).toEqual(before);

    const body = await importOk(writer.key, [{ hash, name: "child" }]);
    const view = await (await call("GET", `/v1/keys/${body.results[0]!.id}`, { auth: jwt })).json();
    expect(view).toMatchObject({
      scopes: ["keys:write", "models:invoke"],
      resources: ["m1"],
      created_by: `key:${writer.id}`,
    });
  });
});

describe("an imported key", () => {
  it("opaque: verifies over HTTP auth (Bearer and Api-Key), POST /v1/verify and RPC, for its scopes", async () => {
    const jwt = await token(uniqueSub());
    const { key, hash } = await opaqueKey();
    const id = onlyId(await importOk(jwt, [{ hash, name: "o", scopes: ["models:invoke"] }]));

    for (const scheme of ["Bearer", "Api-Key"]) {
      const response = await whoami(key, scheme);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ principal: "api_key", key_id: id });
    }
    expect(await verify(key, { scope: "models:invoke" })).toMatchObject({ valid: true, code: "VALID", key_id: id });
    expect(await verify(key, { scope: "keys:write" })).toMatchObject({ valid: false, code: "INSUFFICIENT_SCOPE" });
    expect(await exports.KeyService.verify(key, { scope: "models:invoke" })).toMatchObject({ valid: true, key_id: id });
    expect(await exports.KeyVerifier.verify(key)).toMatchObject({ valid: true, key_id: id });

    // A fresh isolate reads it from KV, then from D1.
    isolateCache.clear();
    expect(await verify(key)).toMatchObject({ valid: true });
    isolateCache.clear();
    await env.KEY_CACHE.delete(cacheKey(hash));
    expect(await verify(key)).toMatchObject({ valid: true });

    // Another string of the same shape is unknown; a string in no accepted form is malformed.
    expect(await verify((await opaqueKey()).key)).toMatchObject({ code: "NOT_FOUND" });
    expect(await verify(`pk_live_${key.slice(8)}`)).toMatchObject({ code: "MALFORMED" });
    expect(await verify(key.slice(0, 20))).toMatchObject({ code: "MALFORMED" });
  });

  it("sanctum: the token <id>|<secret> and the bare secret both verify, on every path", async () => {
    const jwt = await token(uniqueSub());
    const sanctum = await sanctumToken(42);
    const id = onlyId(await importOk(jwt, [{ hash: sanctum.hash, name: "laravel", format: "sanctum" }]));
    for (const credential of [sanctum.token, sanctum.secret, `7|${sanctum.secret}`]) {
      const response = await whoami(credential);
      expect(response.status, credential).toBe(200);
      expect(await response.json()).toMatchObject({ key_id: id });
      expect((await call("GET", "/v1/keys", { auth: credential })).status).toBe(200);
      expect(await verify(credential)).toMatchObject({ valid: true, key_id: id });
      expect(await exports.KeyService.verify(credential)).toMatchObject({ valid: true, key_id: id });
    }
    // Laravel hashes the secret part, not the token: a token hashed whole is not this key.
    expect(await verify(`42|${randomAlnum(40)}`)).toMatchObject({ code: "NOT_FOUND" });
    expect(await verify(`x|${sanctum.secret}`)).toMatchObject({ code: "MALFORMED" });
  });

  it("counts only in its own format", async () => {
    const jwt = await token(uniqueSub());
    // A string that is a bare Sanctum secret, imported as an opaque key (hashed whole, the same string):
    const bare = randomAlnum(40);
    await importOk(jwt, [{ hash: await sha256Hex(bare), name: "opaque" }]);
    expect(await verify(bare)).toMatchObject({ code: "NOT_FOUND" });
    expect(await verify(`3|${bare}`)).toMatchObject({ code: "NOT_FOUND" });
    // A latchkey-format string whose hash was imported is not one of latchkey's keys.
    const lookalike = generateKey("lk");
    await importOk(jwt, [{ hash: await sha256Hex(lookalike), name: "lookalike" }]);
    expect(await verify(lookalike)).toMatchObject({ code: "NOT_FOUND" });
    expect((await whoami(lookalike)).status).toBe(401);
  });

  it("a latchkey key in Sanctum's form <id>|<key> verifies under its own id only", async () => {
    const jwt = await token(uniqueSub());
    const created = await createKey(jwt);
    const other = await createKey(jwt);
    expect(await verify(`${created.id}|${created.key}`)).toMatchObject({ valid: true, key_id: created.id });
    expect((await whoami(`${created.id}|${created.key}`)).status).toBe(200);
    expect(await verify(`${other.id}|${created.key}`)).toMatchObject({ code: "NOT_FOUND" });
    expect(await verify(`1|${created.key}`)).toMatchObject({ code: "MALFORMED" });
    expect(await verify(`${created.id}|${created.key.slice(0, -1)}`)).toMatchObject({ code: "MALFORMED" });
  });

  it("is refused once its format is no longer accepted, without a lookup", async () => {
    const jwt = await token(uniqueSub());
    const sanctum = await sanctumToken();
    await importOk(jwt, [{ hash: sanctum.hash, name: "s", format: "sanctum" }]);
    const response = await call("POST", "/v1/verify", {
      body: { key: sanctum.token },
      env: envWith({ LEGACY_KEY_FORMATS: "" }),
    });
    expect(await response.json()).toMatchObject({ valid: false, code: "MALFORMED" });
  });

  it("is revoked like any key, at once", async () => {
    const jwt = await token(uniqueSub());
    const sanctum = await sanctumToken();
    const id = onlyId(await importOk(jwt, [{ hash: sanctum.hash, name: "s", format: "sanctum" }]));
    expect((await whoami(sanctum.token)).status).toBe(200);
    expect((await call("DELETE", `/v1/keys/${id}`, { auth: sanctum.token })).status).toBe(204);
    for (const credential of [sanctum.token, sanctum.secret]) {
      expect((await whoami(credential)).status).toBe(401);
      expect(await verify(credential)).toMatchObject({ valid: false, code: "REVOKED" });
    }
  });

  it("leaves no plaintext in D1 or KV", async () => {
    const jwt = await token(uniqueSub());
    const sanctum = await sanctumToken(5);
    const opaque = await opaqueKey();
    await importOk(jwt, [
      { hash: sanctum.hash, name: "s", format: "sanctum", start: "5|ab" },
      { hash: opaque.hash, name: "o", start: "sk_live_ab" },
    ]);
    for (const credential of [sanctum.token, opaque.key]) expect((await whoami(credential)).status).toBe(200);

    const pieces = [sanctum.secret, opaque.key.slice(10)].flatMap((secret) =>
      Array.from({ length: secret.length - 11 }, (_, i) => secret.slice(i, i + 12)),
    );
    const { results: rows } = await env.DB.prepare("SELECT * FROM api_keys").all();
    const kv: string[] = [];
    for (const { name } of (await env.KEY_CACHE.list()).keys) kv.push(name, (await env.KEY_CACHE.get(name)) ?? "");
    const stored = [...rows.flatMap((row) => Object.values(row).map(String)), ...kv];
    expect(pieces.filter((piece) => stored.some((value) => value.includes(piece)))).toEqual([]);
    expect(kv).toContain(cacheKey(opaque.hash));
  });
});

describe("KeyService.import (RPC)", () => {
  it("imports for an owner, with the same validation and conflicts", async () => {
    const owner = { type: "user", id: uniqueSub() } as const;
    const sanctum = await sanctumToken();
    const result = await exports.KeyService.import(owner, {
      keys: [
        { hash: sanctum.hash, name: "rpc", format: "sanctum" },
        { hash: sanctum.hash, name: "rpc again", format: "sanctum" },
      ],
    });
    expect(result).toMatchObject({ imported: 1, conflicts: 1 });
    expect(result.results.map((r) => r.status)).toEqual(["imported", "conflict"]);
    expect(await exports.KeyService.verify(sanctum.token)).toMatchObject({ valid: true, owner: { id: owner.id } });
    const listed = await exports.KeyService.list(owner);
    expect(listed.data).toEqual([expect.objectContaining({ name: "rpc", created_by: "service" })]);

    const message = await exports.KeyService.import(owner, { keys: [{ hash: sanctum.token, name: "x" }] }).then(
      () => "resolved",
      (error: Error) => error.message,
    );
    expect(message).toMatch(/^\[invalid\] input: keys\.0\.hash/);
  });
});

describe("importedStartProblem", () => {
  const formats = { ...NO_LEGACY_FORMATS, sanctum: true, prefixes: ["sk_live_", "pk_"] };
  it("accepts the beginning of a key of the format, and nothing hidden", () => {
    for (const start of ["sk_live_", "sk_live_Ab9", "pk_~+/=-_", "pk_x"]) {
      expect(importedStartProblem(start, "opaque", formats), start).toBeNull();
    }
    for (const start of ["5", "5|", "12|aB", "aB3cD4", "12345678901234567890|a"]) {
      expect(importedStartProblem(start, "sanctum", formats), start).toBeNull();
    }
  });

  it("refuses control, bidirectional, invisible and space characters, whatever the format", () => {
    const hidden = [
      ..."\u0000\u0009\u001b\u007f\u0085\u009b", // controls
      ..."\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c", // bidirectional
      ..."\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u034f\ufe0f\u115f\u1160\u3164\uffa0\u2800", // invisible
      ..."\u0020\u00a0\u2007\u2028\u2029\u3000", // spaces and separators
      "\u{e0041}", // a tag character
      "\u{f0000}", // private use
    ];
    for (const char of hidden) {
      const code = char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
      for (const [start, format] of [
        [`sk_live_a${char}b`, "opaque"],
        [`${char}sk_live_a`, "opaque"],
        [`5|a${char}`, "sanctum"],
      ] as const) {
        expect(importedStartProblem(start, format, formats), `U+${code} in ${format}`).toBe(
          `Must not contain control, bidirectional, invisible or space characters (found U+${code})`,
        );
      }
    }
  });

  it("an opaque key's begins with an enabled prefix, then body characters; a Sanctum key's is <id>|<secret> or the secret", () => {
    expect(importedStartProblem("lk_abc", "opaque", formats)).toMatch(
      /^Must begin with an accepted prefix \(sk_live_, pk_\)/,
    );
    expect(importedStartProblem("sk_test_a", "opaque", formats)).toMatch(/accepted prefix/);
    expect(importedStartProblem("sk_live_ä", "opaque", formats)).toMatch(/first characters: sk_live_/);
    expect(importedStartProblem("pk_a.b", "opaque", formats)).toMatch(/first characters: pk_/);
    for (const start of ["lk_abc", "|abc", "a|b", "5|a|b", "5|a_b", "abc-def", "123456789012345678901|a"]) {
      expect(importedStartProblem(start, "sanctum", formats), start).toMatch(/Sanctum token/);
    }
  });
});

describe("LEGACY_KEY_FORMATS", () => {
  it("accepts sanctum and opaque:<prefix> entries, and reports and leaves out anything else", () => {
    expect(parseLegacyFormats(" sanctum , opaque:sk_live_,opaque:sk_live_", "lk")).toEqual({
      formats: { ...NO_LEGACY_FORMATS, sanctum: true, prefixes: ["sk_live_"] },
      errors: [],
    });
    for (const entry of [
      "argon2id",
      "hex48",
      "hmac-sha256:sanctum",
      "opaque:",
      "opaque:s",
      "opaque:1abc_",
      "opaque:lk",
      "opaque:lk_x_",
      "sk_live_",
    ]) {
      const { formats, errors } = parseLegacyFormats(`sanctum,${entry}`, "lk");
      expect(formats, entry).toEqual({ ...NO_LEGACY_FORMATS, sanctum: true });
      expect(errors, entry).toEqual([expect.stringContaining(`"${entry}"`)]);
    }
    expect(parseLegacyFormats(null, "lk")).toEqual({ formats: NO_LEGACY_FORMATS, errors: [] });
  });
});
