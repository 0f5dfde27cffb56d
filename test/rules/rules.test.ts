/**
 * The security rules that single-line bugs could slip past, each pinned by a test that fails when the line guarding it is broken: the mutant ids in
 * test/mutants.json name them. Most go over HTTP, as a client would see the bug; a second test at the
 * service or function level makes every rule fail in two places.
 */
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createContext } from "../../src/context";
import type { Env } from "../../src/env";
import { BODY_LENGTH, CHECKSUM_LENGTH, crc32, generateKey, isWellFormedKey } from "../../src/keys/format";
import { sha256Hex } from "../../src/keys/hash";
import { covers, resourcesWithin } from "../../src/keys/scopes";
import { compact } from "../../src/model";
import { ForbiddenError } from "../../src/service/errors";
import { Keys } from "../../src/service/keys";
import { isolateCache } from "../../src/service/verify";
import { cacheKey } from "../../src/store/cache";
import { D1KeyStore } from "../../src/store/d1";
import {
  d1Proxy,
  type CreatedKey,
  call,
  logsOf,
  createKey,
  envWith,
  expectProblem,
  recordingEnv,
  token,
  uniqueSub,
} from "../helpers";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HOUR = 3_600_000;
const inHours = (hours: number) => new Date(Date.now() + hours * HOUR).toISOString();

/**
 * An independent implementation of the key's checksum (six base62 digits of the CRC32 of everything
 * before it), to forge strings that pass it: only the other checks can refuse them.
 */
function withChecksum(head: string): string {
  let value = crc32(head);
  let sum = "";
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    sum = ALPHABET[value % 62] + sum;
    value = Math.floor(value / 62);
  }
  return head + sum;
}

/** A client no other test shares, so failed authentications never reach the rate limit. */
const freshClient = () => ({ "cf-connecting-ip": `2001:db8:16::${crypto.randomUUID().slice(0, 4)}` });

async function verdict(
  body: Record<string, unknown>,
  testEnv: Env = env,
): Promise<{ code: string; key_id: string | null }> {
  const response = await call("POST", "/v1/verify", { body, env: testEnv });
  expect(response.status).toBe(200);
  return response.json();
}

async function whoamiStatus(key: string, scheme = "Bearer"): Promise<number> {
  const response = await call("GET", "/v1/whoami", {
    headers: { authorization: `${scheme} ${key}`, ...freshClient() },
  });
  return response.status;
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("key format: only a key latchkey issued reaches storage", () => {
  it("a key with another prefix of the same length and a valid checksum is MALFORMED, with no storage call", async () => {
    const foreign = generateKey("xy"); // as long as an lk_ key, and its checksum is right
    expect(foreign).toHaveLength(generateKey("lk").length);
    expect(isWellFormedKey(foreign, "xy")).toBe(true);
    expect(isWellFormedKey(foreign, "lk")).toBe(false);

    const { testEnv, uses } = recordingEnv();
    isolateCache.clear();
    expect(await verdict({ key: foreign }, testEnv)).toMatchObject({ code: "MALFORMED", key_id: null });
    const refused = await call("GET", "/v1/whoami", {
      headers: { authorization: `Api-Key ${foreign}`, ...freshClient() },
      env: testEnv,
    });
    expect(((await expectProblem(refused, 401)) as { detail: string }).detail).toMatch(/malformed/);
    expect(uses).toEqual([]);
  });

  it("characters outside base62, or one character too many, are MALFORMED even with a matching checksum", async () => {
    const body = generateKey("lk").slice(3, 3 + BODY_LENGTH);
    const forged = [
      withChecksum(`lk_${body.slice(0, 20)}-${body.slice(21)}`), // a '-' in the body
      withChecksum(`lk_${body.slice(0, 20)}.${body.slice(21)}`),
      withChecksum(`lk_${body}A`), // 44 characters of body
    ];
    const { testEnv, uses } = recordingEnv();
    isolateCache.clear();
    for (const key of forged) {
      expect(isWellFormedKey(key, "lk"), key).toBe(false);
      expect(await verdict({ key }, testEnv), key).toMatchObject({ code: "MALFORMED" });
    }
    expect(uses).toEqual([]);
  });

  it("a forged key sharing a real key's first 40 characters (with its own valid checksum) finds nothing", async () => {
    const jwt = await token(uniqueSub());
    const real = await createKey(jwt);
    const head = real.key.slice(0, real.key.length - CHECKSUM_LENGTH);
    const last = head[head.length - 1] === "a" ? "b" : "a";
    const forged = withChecksum(head.slice(0, -1) + last);
    expect(forged.slice(0, 40)).toBe(real.key.slice(0, 40));
    expect(isWellFormedKey(forged, "lk")).toBe(true);

    expect(await verdict({ key: forged })).toMatchObject({ code: "NOT_FOUND", key_id: null });
    isolateCache.clear();
    expect(await verdict({ key: forged })).toMatchObject({ code: "NOT_FOUND", key_id: null });
    expect(await whoamiStatus(forged)).toBe(401);
    expect(await whoamiStatus(forged, "Api-Key")).toBe(401);
    expect(await verdict({ key: real.key })).toMatchObject({ code: "VALID", key_id: real.id });
  });
});

describe("scopes: a wildcard covers its resource only (models:* never grants modelsx:read)", () => {
  it("as a function", () => {
    expect(covers("models:*", "models:read")).toBe(true);
    expect(covers("models:*", "modelsx:read")).toBe(false);
    expect(covers("models:*", "models")).toBe(false);
  });

  it("over HTTP: verification and attenuation", async () => {
    const jwt = await token(uniqueSub());
    const { key } = await createKey(jwt, { scopes: ["keys:write", "models:*"] });
    expect(await verdict({ key, scope: "models:read" })).toMatchObject({ code: "VALID" });
    expect(await verdict({ key, scope: "modelsx:read" })).toMatchObject({ code: "INSUFFICIENT_SCOPE" });
    const child = await call("POST", "/v1/keys", { auth: key, body: { name: "x", scopes: ["modelsx:read"] } });
    expect(await expectProblem(child, 403)).toMatchObject({ exceeded: "scopes" });
  });
});

describe("attenuation: a key never makes a key stronger than itself", () => {
  /** A limited, expiring parent key, and the service as it runs for that key (no HTTP). */
  async function limitedParent() {
    const jwt = await token(uniqueSub());
    const parent = await createKey(jwt, {
      scopes: ["keys:write", "models:invoke"],
      resources: ["m1", "m2"],
      expires_at: inHours(1),
    });
    // A key actor holds the compact record authentication gives it (the isolate's or KV's copy).
    const stored = await new D1KeyStore(env.DB).findByHash(await sha256Hex(parent.key));
    const keys = createContext(env, createExecutionContext()).keys;
    return { jwt, parent, keys, actor: { kind: "api_key" as const, key: compact(stored!.record) } };
  }

  async function forbidden(keys: Keys, run: () => Promise<unknown>): Promise<string> {
    expect(keys).toBeInstanceOf(Keys);
    const error = await run().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ForbiddenError);
    return (error as ForbiddenError).exceeded;
  }

  it("resources: every resource (null) is not within a limited list, as a function", () => {
    expect(resourcesWithin(["m1", "m2"], ["m1"])).toBe(true);
    expect(resourcesWithin(["m1", "m2"], null)).toBe(false);
    expect(resourcesWithin(["m1", "m2"], ["m1", "m3"])).toBe(false);
    expect(resourcesWithin(null, null)).toBe(true);
  });

  it("resources and expiry, in the service: a child with every resource or no expiry is refused", async () => {
    const { keys, actor } = await limitedParent();
    expect(
      await forbidden(keys, () => keys.create(actor, { name: "all", resources: null, scopes: ["models:invoke"] })),
    ).toBe("resources");
    expect(await forbidden(keys, () => keys.create(actor, { name: "part", resources: ["m1", "m3"] }))).toBe(
      "resources",
    );
    expect(await forbidden(keys, () => keys.create(actor, { name: "forever", expires_at: null }))).toBe("expires_at");
    expect(await forbidden(keys, () => keys.create(actor, { name: "more", scopes: ["keys:read"] }))).toBe("scopes");
    // Within every limit, it works.
    const ok = await keys.create(actor, { name: "weaker", resources: ["m2"], expires_at: inHours(0.5) });
    expect(ok).toMatchObject({ resources: ["m2"], scopes: ["keys:write", "models:invoke"] });
  });

  it("over HTTP, with the Api-Key scheme: no child with every resource, none without expiry, nothing stored", async () => {
    const { jwt, parent } = await limitedParent();
    const attempts: [Record<string, unknown>, string][] = [
      [{ resources: null }, "resources"],
      [{ resources: ["m1", "m9"] }, "resources"],
      [{ expires_at: null }, "expires_at"],
      [{ resources: null, expires_at: null, scopes: ["models:invoke"] }, "resources"],
    ];
    for (const [attempt, exceeded] of attempts) {
      const response = await call("POST", "/v1/keys", {
        headers: { authorization: `Api-Key ${parent.key}` },
        body: { name: "escalation", ...attempt },
      });
      expect(await expectProblem(response, 403)).toMatchObject({ exceeded });
    }
    const list = await (await call("GET", "/v1/keys", { auth: jwt })).json<{ data: { id: string }[] }>();
    expect(list.data.map((k) => k.id)).toEqual([parent.id]);
  });
});

describe("ownership: an owner is its type and its id", () => {
  it("over HTTP: user x neither sees nor revokes the keys of workspace x, by JWT or by key", async () => {
    const x = uniqueSub("x");
    const member = await token(uniqueSub(), { org: x });
    const workspaceKey = await createKey(member, { owner: "workspace" });
    expect(workspaceKey).toMatchObject({ owner_type: "workspace", owner_id: x });

    const userX = await token(x); // a person whose user id is the workspace's id, in no workspace
    const userXKey = await createKey(userX, { scopes: ["keys:read", "keys:write"] });
    for (const auth of [userX, userXKey.key]) {
      await expectProblem(await call("GET", `/v1/keys/${workspaceKey.id}`, { auth }), 404);
      await expectProblem(await call("DELETE", `/v1/keys/${workspaceKey.id}`, { auth }), 404);
      const list = await (await call("GET", "/v1/keys", { auth })).json<{ data: { id: string }[] }>();
      expect(list.data.map((k) => k.id)).toEqual([userXKey.id]);
    }
    expect(await verdict({ key: workspaceKey.key })).toMatchObject({ code: "VALID" });
    // And the other way round: the workspace's member cannot reach user x's key.
    await expectProblem(await call("GET", `/v1/keys/${userXKey.id}`, { auth: member }), 404);
  });
});

describe("revocation", () => {
  it("a key revoked long ago (beyond any sync window) is REVOKED when read from D1", async () => {
    const jwt = await token(uniqueSub());
    const { id, key } = await createKey(jwt);
    await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?")
      .bind(Date.now() - 30 * 24 * HOUR, id)
      .run();
    // The feed keeps about a day (its retention trigger): a month on, only the row itself says "revoked".
    await env.DB.prepare("DELETE FROM key_changes WHERE key_id = ?").bind(id).run();
    await env.KEY_CACHE.delete(cacheKey(await sha256Hex(key)));
    isolateCache.clear(); // a fresh isolate: its first sync reads the feed's tail, which no longer names this key
    expect(await verdict({ key })).toMatchObject({ code: "REVOKED", key_id: id });
    expect(await whoamiStatus(key)).toBe(401);
    expect(await verdict({ key })).toMatchObject({ code: "REVOKED" });
  });

  it("a second revocation keeps the first revoked_at, even when it read a stale, unrevoked row (HTTP)", async () => {
    const jwt = await token(uniqueSub());
    const { id, key } = await createKey(jwt);
    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt })).status).toBe(204);
    const first = (await (await call("GET", `/v1/keys/${id}`, { auth: jwt })).json<{ revoked_at: string }>())
      .revoked_at;
    expect(first).not.toBeNull();

    // A read replica behind the primary: the second DELETE finds the key unrevoked and sends the UPDATE.
    const stale = d1Proxy(env.DB, {
      get(target, prop) {
        if (prop === "prepare") {
          return (sql: string) =>
            target.prepare(sql.startsWith("SELECT") ? sql.replace("revoked_at,", "NULL AS revoked_at,") : sql);
        }
        const value: unknown = Reflect.get(target, prop);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 300_000 }); // later, within the token's life
    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt, env: envWith({ DB: stale }) })).status).toBe(204);
    vi.useRealTimers();

    const after = await (await call("GET", `/v1/keys/${id}`, { auth: jwt })).json<{ revoked_at: string }>();
    expect(after.revoked_at).toBe(first);
    expect(await verdict({ key })).toMatchObject({ code: "REVOKED" });
  });
});

describe("expiry", () => {
  it("a key is EXPIRED at its exact expiry instant, valid a millisecond before (verify and management)", async () => {
    const jwt = await token(uniqueSub());
    const expiresAt = Date.now() + HOUR + 123; // a millisecond-precise instant
    const { key } = await createKey(jwt, { expires_at: new Date(expiresAt).toISOString() });
    const management = await createKey(jwt, {
      scopes: ["keys:read"],
      expires_at: new Date(expiresAt).toISOString(),
    });

    vi.useFakeTimers({ toFake: ["Date"], now: expiresAt - 1 });
    expect(await verdict({ key })).toMatchObject({ code: "VALID" });
    expect(await whoamiStatus(management.key)).toBe(200);

    vi.setSystemTime(expiresAt);
    expect(await verdict({ key })).toMatchObject({ code: "EXPIRED" });
    const refused = await call("GET", "/v1/keys", { auth: management.key, headers: freshClient() });
    expect(((await expectProblem(refused, 401)) as { detail: string }).detail).toMatch(/expired/);
  });
});

describe("list: a member's page holds exactly the right keys", () => {
  it("personal and workspace keys, revoked ones filtered, walked with a cursor: each live key once, newest first", async () => {
    const org = uniqueSub("org");
    const member = await token(uniqueSub(), { org });
    const created: CreatedKey[] = [];
    for (let i = 0; i < 8; i++) {
      created.push(await createKey(member, { name: `k${i}`, ...(i % 2 === 1 ? { owner: "workspace" } : {}) }));
    }
    // Revoke one personal and one workspace key.
    for (const revoked of [created[2]!, created[5]!]) {
      expect((await call("DELETE", `/v1/keys/${revoked.id}`, { auth: member })).status).toBe(204);
    }
    const live = created.filter((_, i) => i !== 2 && i !== 5);
    const expected = [...live]
      .sort((a, b) => Date.parse(String(b.created_at)) - Date.parse(String(a.created_at)) || (a.id < b.id ? 1 : -1))
      .map((k) => k.id);

    const seen: string[][] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? "limit=2" : `limit=2&cursor=${cursor}`;
      const response = await call("GET", `/v1/keys?${query}`, { auth: member });
      expect(response.status).toBe(200);
      const page = (await response.json()) as { data: { id: string }[]; next_cursor: string | null };
      seen.push(page.data.map((k) => k.id));
      cursor = page.next_cursor;
      expect(seen.length).toBeLessThanOrEqual(4);
    } while (cursor !== null);
    expect(seen).toEqual([expected.slice(0, 2), expected.slice(2, 4), expected.slice(4, 6)]);
  });
});

describe("secrecy of errors and logs", () => {
  it("a 401 for a refused key never quotes the key", async () => {
    const jwt = await token(uniqueSub());
    const revoked = await createKey(jwt);
    expect((await call("DELETE", `/v1/keys/${revoked.id}`, { auth: jwt })).status).toBe(204);
    const real = revoked.key;
    const candidates = [real, generateKey("lk"), `${real.slice(0, -1)}${real.endsWith("a") ? "b" : "a"}`];
    for (const key of candidates) {
      for (const scheme of ["Bearer", "Api-Key"]) {
        const response = await call("GET", "/v1/keys", {
          headers: { authorization: `${scheme} ${key}`, ...freshClient() },
        });
        expect(response.status).toBe(401);
        const text = await response.text();
        expect(text).not.toContain(key.slice(3, 30));
      }
    }
  });

  it("an unexpected error is a 500 that discloses nothing, and the log holds no credential", async () => {
    const jwt = await token(uniqueSub());
    const { key } = await createKey(jwt);
    const internal = "internal detail: connection string postgres://admin:hunter2@db";
    vi.spyOn(Keys.prototype, "whoami").mockImplementation(() => {
      throw new TypeError(internal);
    });
    const answers: string[] = [];
    const lines = await logsOf(async () => {
      for (const auth of [key, jwt]) {
        const response = await call("GET", "/v1/whoami", { auth });
        expect(response.status).toBe(500);
        expect(response.headers.get("content-type")).toBe("application/problem+json");
        expect(response.headers.get("cache-control")).toBe("no-store");
        answers.push(await response.text());
      }
      // A failed authentication is logged by nobody with its credential either.
      await call("GET", "/v1/whoami", { auth: generateKey("lk"), headers: freshClient() });
    });
    for (const text of answers) {
      expect(JSON.parse(text)).toEqual({
        type: "https://latchkey.dev/problems/internal-error",
        title: "Internal error",
        status: 500,
        detail: "Something went wrong on our side",
        code: "internal_error",
      });
      expect(text).not.toContain("hunter2");
      expect(text).not.toContain("TypeError");
    }
    // The operator's log has the error (so the scan below is not vacuous), and no key or token.
    expect(lines.some((line) => line.includes("unexpected_error") && line.includes("hunter2"))).toBe(true);
    for (const line of lines) {
      expect(line).not.toContain(key.slice(3, 30));
      expect(line).not.toContain(jwt.split(".")[2]!);
      expect(line).not.toMatch(/lk_[0-9A-Za-z]{20}/);
    }
  });
});

describe("JWT claims", () => {
  it("a subject with a control character is refused, and so is a token whose org claim has one", async () => {
    for (const sub of ["alice\u0000", "ali\nce", "\u007fbob", "carol\u0085"]) {
      const response = await call("GET", "/v1/whoami", { auth: await token(sub), headers: freshClient() });
      expect(((await expectProblem(response, 401)) as { detail: string }).detail).toMatch(/subject/);
    }
    // A lookalike org id is the provider's mistake: refused, never quietly read as "no workspace".
    for (const org of ["acme\r\nx", "ac\u202eme"]) {
      const response = await call("GET", "/v1/whoami", {
        auth: await token(uniqueSub(), { org }),
        headers: freshClient(),
      });
      expect(((await expectProblem(response, 401)) as { detail: string }).detail).toMatch(/org_id claim/);
    }
  });
});

describe("configuration fails closed", () => {
  it("a JWT_SECRET shorter than 32 characters disables token authentication", async () => {
    const short = "x".repeat(31);
    const weak = envWith({ JWT_SECRET: short });
    const lines = await logsOf(async () => {
      const response = await call("GET", "/v1/whoami", {
        auth: await token(uniqueSub(), { secret: short }),
        headers: freshClient(),
        env: weak,
      });
      await expectProblem(response, 401);
    });
    expect(lines.some((line) => line.includes("JWT_SECRET must be at least 32 characters"))).toBe(true);
    // One character more is enough.
    const ok = "y".repeat(32);
    const response = await call("GET", "/v1/whoami", {
      auth: await token(uniqueSub(), { secret: ok }),
      env: envWith({ JWT_SECRET: ok }),
    });
    expect(response.status).toBe(200);
  });
});
