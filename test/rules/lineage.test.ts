/**
 * Management re-checks the caller, and a key's lineage: a key acting on /v1/keys is read
 * again from D1 (not the caches); a key is created only if its parent is still live, in the INSERT
 * itself, so no create lands after its parent's revocation; `parent_id` records the lineage, and
 * `DELETE ?cascade=true` revokes a key and all its descendants in one write, each fed to every
 * isolate. Also the list filters (created_by, owner_type, status), over HTTP and RPC.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import { KeyService } from "../../src/rpc";
import type { Env } from "../../src/env";
import { sha256Hex } from "../../src/keys/hash";
import { isolateCache } from "../../src/service/verify";
import {
  d1Proxy,
  BASE,
  type CreatedKey,
  call,
  captureLogs,
  createKey,
  envWith,
  expectProblem,
  token,
  uniqueSub,
} from "../helpers";

afterEach(() => vi.useRealTimers());

interface KeyView {
  id: string;
  parent_id: string | null;
  created_by: string;
  revoked_at: string | null;
}

async function verifyCode(key: string): Promise<string> {
  const response = await call("POST", "/v1/verify", { body: { key } });
  return (await response.json<{ code: string }>()).code;
}

async function listIds(auth: string, query = ""): Promise<string[]> {
  const response = await call("GET", `/v1/keys?limit=100${query}`, { auth });
  expect(response.status).toBe(200);
  return (await response.json<{ data: KeyView[] }>()).data.map((k) => k.id);
}

/** A D1 that logs each statement's SQL, and holds back INSERTs until `release()`, when asked to. */
function watchedDb(holdInserts = false) {
  const statements: string[] = [];
  let release = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  /** Each wrapped statement's SQL and the real statement, for batches (D1 takes only real ones). */
  const unwrapped = new WeakMap<object, { sql: string; real: D1PreparedStatement }>();
  const wrap = (sql: string, real: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(real, {
      get(target, prop) {
        if (prop === "bind") return (...values: unknown[]) => wrap(sql, target.bind(...values));
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== "function") return value;
        return async (...args: unknown[]) => {
          statements.push(sql);
          if (holdInserts && sql.trimStart().startsWith("INSERT")) await gate;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    unwrapped.set(proxy, { sql, real });
    return proxy;
  };
  const db = d1Proxy(env.DB, {
    get(target, prop) {
      if (prop === "prepare") return (sql: string) => wrap(sql, target.prepare(sql));
      if (prop === "batch") {
        return async (batch: D1PreparedStatement[]) => {
          const parts = batch.map((s) => unwrapped.get(s) ?? { sql: "", real: s });
          statements.push(...parts.map((p) => p.sql));
          if (holdInserts && parts.some((p) => p.sql.trimStart().startsWith("INSERT"))) await gate;
          return target.batch(parts.map((p) => p.real));
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { db, statements, release };
}

/** Revokes in D1 only, as another location would: this isolate and KV still hold the key. */
const revokeInD1 = (id: string) =>
  env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(Date.now(), id).run();

async function parentKey(scopes = ["keys:*", "models:invoke"]): Promise<{ jwt: string; parent: CreatedKey }> {
  const jwt = await token(uniqueSub());
  return { jwt, parent: await createKey(jwt, { scopes }) };
}

describe("a key acting on /v1/keys is re-checked in D1", () => {
  it("cannot create once revoked in D1, though it is warm in this isolate and in KV and inside the sync bound", async () => {
    const { jwt, parent } = await parentKey();
    expect((await call("GET", "/v1/whoami", { auth: parent.key })).status).toBe(200); // warm here and in KV
    await revokeInD1(parent.id);
    expect(await verifyCode(parent.key)).toBe("VALID"); // the hot path has not heard yet (5 s sync)

    const { db, statements } = watchedDb();
    const response = await call("POST", "/v1/keys", {
      auth: parent.key,
      body: { name: "late" },
      env: envWith({ DB: db }),
    });
    const problem = await expectProblem(response, 401);
    expect(problem.detail).toMatch(/revoked or has expired/);
    expect(response.headers.get("www-authenticate")).toContain("Api-Key");
    expect(statements.filter((sql) => sql.trimStart().startsWith("INSERT"))).toEqual([]); // refused before writing
    expect(await listIds(jwt, "&include_revoked=true")).toEqual([parent.id]);
    // The re-check also told this isolate: the key is refused on the hot path from now on.
    expect(await verifyCode(parent.key)).toBe("REVOKED");
  });

  it("cannot revoke other keys once revoked in D1", async () => {
    const { jwt, parent } = await parentKey();
    const other = await createKey(jwt);
    expect((await call("GET", "/v1/whoami", { auth: parent.key })).status).toBe(200);
    await revokeInD1(parent.id);
    await expectProblem(await call("DELETE", `/v1/keys/${other.id}`, { auth: parent.key }), 401);
    expect(await verifyCode(other.key)).toBe("VALID");
  });

  it("cannot import keys once revoked in D1, though it is warm in this isolate", async () => {
    const { jwt, parent } = await parentKey();
    expect((await call("GET", "/v1/whoami", { auth: parent.key })).status).toBe(200);
    await revokeInD1(parent.id);
    const hash = await sha256Hex("legacy_secret_of_a_revoked_importer");
    const imported = await call("POST", "/v1/keys/import", {
      auth: parent.key,
      body: { keys: [{ hash, name: "legacy", format: "opaque" }] },
    });
    await expectProblem(imported, 401);
    expect(await listIds(jwt, "&include_revoked=true")).toEqual([parent.id]);
  });

  it("cannot create once expired, though its cached record still says live", async () => {
    const jwt = await token(uniqueSub());
    const parent = await createKey(jwt, { expires_at: new Date(Date.now() + 60_000).toISOString() });
    expect((await call("GET", "/v1/whoami", { auth: parent.key })).status).toBe(200);
    await env.DB.prepare("UPDATE api_keys SET expires_at = ? WHERE id = ?")
      .bind(Date.now() - 1, parent.id)
      .run();
    await expectProblem(await call("POST", "/v1/keys", { auth: parent.key, body: { name: "late" } }), 401);
  });

  it("cannot create or revoke once its allow-list no longer holds its address in D1, though its cached record does", async () => {
    const jwt = await token(uniqueSub());
    const parent = await createKey(jwt, { scopes: ["keys:*"], allowed_ips: ["198.51.100.0/24"] });
    const other = await createKey(jwt);
    const from = { "cf-connecting-ip": "198.51.100.7" };
    expect((await call("GET", "/v1/whoami", { auth: parent.key, headers: from })).status).toBe(200); // warm
    // Narrowed in D1 only, as another location's PATCH would be before the feed reaches this isolate.
    await env.DB.prepare("UPDATE api_keys SET allowed_ips = ? WHERE id = ?")
      .bind(JSON.stringify(["203.0.113.0/24"]), parent.id)
      .run();
    expect((await call("GET", "/v1/whoami", { auth: parent.key, headers: from })).status).toBe(200); // cached
    const create = await call("POST", "/v1/keys", { auth: parent.key, headers: from, body: { name: "late" } });
    expect((await expectProblem(create, 401)).detail).toMatch(/may not be used from this address/);
    await expectProblem(await call("DELETE", `/v1/keys/${other.id}`, { auth: parent.key, headers: from }), 401);
    expect(await verifyCode(other.key)).toBe("VALID");
    expect((await listIds(jwt)).sort()).toEqual([parent.id, other.id].sort()); // nothing created
  });

  it("a create racing its parent's revocation in one isolate never lands after the 204", async () => {
    const { jwt, parent } = await parentKey();
    expect((await call("GET", "/v1/whoami", { auth: parent.key })).status).toBe(200);
    const { db, statements, release } = watchedDb(true);
    // The create authenticates and passes the re-check; its INSERT is held back...
    const ctx = createExecutionContext();
    const creating = worker.fetch(
      new Request(`${BASE}/v1/keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${parent.key}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "racer" }),
      }),
      envWith({ DB: db }),
      ctx,
    );
    while (!statements.some((sql) => sql.trimStart().startsWith("INSERT"))) await new Promise((r) => setTimeout(r, 5));
    // ...while the parent is revoked: committed, 204...
    expect((await call("DELETE", `/v1/keys/${parent.id}`, { auth: jwt })).status).toBe(204);
    // ...and only then reaches D1, which refuses it: the parent is no longer live.
    release();
    const response = await creating;
    await waitOnExecutionContext(ctx);
    await expectProblem(response, 401);
    const { results } = await env.DB.prepare("SELECT id FROM api_keys WHERE created_by = ?")
      .bind(`key:${parent.id}`)
      .all();
    expect(results).toEqual([]);
  });
});

describe("lineage and cascading revocation", () => {
  it("records parent_id, and DELETE ?cascade=true revokes the key and every descendant at once, everywhere", async () => {
    const { jwt, parent } = await parentKey();
    const child = await createKey(parent.key, { name: "child" });
    const grandchild = await createKey(child.key, { name: "grandchild", scopes: ["models:invoke"] });
    const sibling = await createKey(jwt, { name: "made by a person" });
    expect(parent.parent_id).toBeNull();
    expect(child.parent_id).toBe(parent.id);
    expect(grandchild.parent_id).toBe(child.id);
    for (const k of [parent, child, grandchild, sibling]) expect(await verifyCode(k.key)).toBe("VALID");

    const watcher = await sha256Hex(grandchild.key);
    expect((await call("DELETE", `/v1/keys/${parent.id}?cascade=true`, { auth: jwt })).status).toBe(204);
    for (const k of [parent, child, grandchild]) expect(await verifyCode(k.key)).toBe("REVOKED");
    expect(await verifyCode(sibling.key)).toBe("VALID");

    // One write: one revoked_at for all three, and each in the feed for every other isolate.
    const { results } = await env.DB.prepare(
      `SELECT revoked_at FROM api_keys WHERE id IN (?, ?, ?) GROUP BY revoked_at`,
    )
      .bind(parent.id, child.id, grandchild.id)
      .all();
    expect(results).toHaveLength(1);
    const fed = await env.DB.prepare("SELECT key_id FROM key_changes WHERE kind = 'revoked' AND key_id IN (?, ?, ?)")
      .bind(parent.id, child.id, grandchild.id)
      .all<{ key_id: string }>();
    expect(fed.results.map((r) => r.key_id).sort()).toEqual([parent.id, child.id, grandchild.id].sort());
    isolateCache.clear();
    expect(isolateCache.feed.change(watcher)).toBeUndefined();
    expect(await verifyCode(grandchild.key)).toBe("REVOKED");
    expect(isolateCache.feed.change(watcher)?.revoked).toBe(true); // learnt from the feed's tail
  });

  it("cascades below a descendant already revoked, and without cascade revokes the key alone", async () => {
    const { jwt, parent } = await parentKey();
    const child = await createKey(parent.key, { name: "child" });
    const grandchild = await createKey(child.key, { name: "grandchild" });
    expect((await call("DELETE", `/v1/keys/${child.id}`, { auth: jwt })).status).toBe(204);
    expect(await verifyCode(grandchild.key)).toBe("VALID"); // no cascade: left alone
    expect((await call("DELETE", `/v1/keys/${parent.id}?cascade=1`, { auth: jwt })).status).toBe(204);
    expect(await verifyCode(grandchild.key)).toBe("REVOKED");
    await expectProblem(await call("DELETE", `/v1/keys/${parent.id}?cascade=maybe`, { auth: jwt }), 400);
  });

  it("over RPC: revoke(owner, id, { cascade: true })", async () => {
    const service = exports.KeyService;
    const alice = { type: "user", id: uniqueSub() } as const;
    const root = await service.create(alice, { name: "root", scopes: ["keys:write", "models:invoke"] });
    expect(root.parent_id).toBeNull();
    const child = await createKey(root.key, { name: "child" });
    await service.revoke(alice, root.id, { cascade: true });
    expect(await service.verify(child.key)).toEqual({ valid: false, code: "REVOKED", key_id: child.id });
  });
});

describe("GET /v1/keys filters", () => {
  it("by created_by, owner_type and status (active, revoked, expired), across pages", async () => {
    const org = uniqueSub("org");
    const sub = uniqueSub();
    const jwt = await token(sub, { org, ttl: 4 * 3600 });
    const parent = await createKey(jwt, {
      scopes: ["keys:*"],
      expires_at: new Date(Date.now() + 7_200_000).toISOString(),
    });
    const children: CreatedKey[] = [];
    for (let i = 0; i < 3; i++) children.push(await createKey(parent.key, { name: `child ${i}` }));
    const soon = await createKey(jwt, { expires_at: new Date(Date.now() + 3_600_000).toISOString() });
    const workspace = await createKey(jwt, { owner: "workspace" });
    const revoked = await createKey(jwt);
    expect((await call("DELETE", `/v1/keys/${revoked.id}`, { auth: jwt })).status).toBe(204);

    const newestFirst = (keys: CreatedKey[]) => keys.map((k) => k.id).reverse();
    expect(await listIds(jwt, `&created_by=key:${parent.id}`)).toEqual(newestFirst(children));
    // Two per page: the cursor keeps the filter's order.
    const first = await (
      await call("GET", `/v1/keys?limit=2&created_by=key:${parent.id}`, { auth: jwt })
    ).json<{
      data: KeyView[];
      next_cursor: string;
    }>();
    const second = await (
      await call("GET", `/v1/keys?limit=2&created_by=key:${parent.id}&cursor=${first.next_cursor}`, { auth: jwt })
    ).json<{ data: KeyView[]; next_cursor: string | null }>();
    expect([...first.data, ...second.data].map((k) => k.id)).toEqual(newestFirst(children));
    expect(second.next_cursor).toBeNull();

    expect(await listIds(jwt, "&owner_type=workspace")).toEqual([workspace.id]);
    expect(await listIds(jwt, "&status=revoked")).toEqual([revoked.id]);
    expect(await listIds(jwt, "&status=revoked&include_revoked=false")).toEqual([revoked.id]); // status decides
    expect(await listIds(jwt, "&status=expired")).toEqual([]);
    expect((await listIds(jwt, "&status=active")).sort()).toEqual(
      [parent, ...children, soon, workspace].map((k) => k.id).sort(),
    );

    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() + 5_400_000); // soon has expired; the parent (and so its children) not yet
    expect(await listIds(jwt, "&status=expired")).toEqual([soon.id]);
    expect(await listIds(jwt, "&status=active&owner_type=user")).not.toContain(soon.id);
    vi.setSystemTime(Date.parse(String(soon.expires_at))); // the exact instant of expiry: expired
    expect(await listIds(jwt, "&status=expired")).toEqual([soon.id]);
    vi.useRealTimers();

    for (const query of ["status=dead", "owner_type=team", "created_by="]) {
      const problem = await expectProblem(await call("GET", `/v1/keys?${query}`, { auth: jwt }), 400);
      expect(Object.keys(problem.errors as object)).toEqual([query.split("=")[0]]);
    }
  });

  it("over RPC: list(owner, { created_by, owner_type, status })", async () => {
    const service = exports.KeyService;
    const alice = { type: "user", id: uniqueSub() } as const;
    const kept = await service.create(alice, { name: "kept" });
    const gone = await service.create(alice, { name: "gone" });
    await service.revoke(alice, gone.id);
    const ids = async (options: Parameters<typeof service.list>[1]) =>
      (await service.list(alice, options)).data.map((k) => k.id);
    expect(await ids({ status: "revoked" })).toEqual([gone.id]);
    expect(await ids({ status: "active", created_by: "service", owner_type: "user" })).toEqual([kept.id]);
    expect(await ids({ created_by: "user:nobody" })).toEqual([]);
  });
});

describe("per-owner limits", () => {
  const withLimits = (vars: Partial<Env>) => envWith(vars);

  it("MAX_KEYS_PER_OWNER counts live keys, inside the insert, so concurrent creates cannot exceed it", async () => {
    const limited = withLimits({ MAX_KEYS_PER_OWNER: "3" });
    const jwt = await token(uniqueSub());
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        call("POST", "/v1/keys", { auth: jwt, body: { name: `k${i}` }, env: limited }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 201, 201, 403, 403, 403, 403, 403]);
    const refused = results.find((r) => r.status === 403)!;
    const problem = await expectProblem(refused, 403);
    expect(problem).toMatchObject({ limit: "MAX_KEYS_PER_OWNER" });
    expect(problem.detail).toMatch(/3 live keys/);
    expect(await listIds(jwt)).toHaveLength(3);

    // Revoked and expired keys do not count: revoking one frees a place.
    const [first] = await listIds(jwt);
    expect((await call("DELETE", `/v1/keys/${first}`, { auth: jwt })).status).toBe(204);
    expect((await call("POST", "/v1/keys", { auth: jwt, body: { name: "again" }, env: limited })).status).toBe(201);
    // Another owner has its own count.
    expect(
      (await call("POST", "/v1/keys", { auth: await token(uniqueSub()), body: { name: "x" }, env: limited })).status,
    ).toBe(201);
  });

  it("KEY_CREATION_LIMITER: 429 with Retry-After per owner; a failing limiter lets creates through", async () => {
    const counts = new Map<string, number>();
    const limiter: RateLimit = {
      limit: async ({ key }) => {
        counts.set(key, (counts.get(key) ?? 0) + 1);
        return { success: (counts.get(key) ?? 0) <= 2 };
      },
    };
    expect(typeof env.KEY_CREATION_LIMITER?.limit).toBe("function"); // wrangler.toml binds the real one
    const limited = withLimits({ KEY_CREATION_LIMITER: limiter });
    const sub = uniqueSub();
    const jwt = await token(sub);
    for (let i = 0; i < 2; i++) {
      expect((await call("POST", "/v1/keys", { auth: jwt, body: { name: `k${i}` }, env: limited })).status).toBe(201);
    }
    const refused = await call("POST", "/v1/keys", { auth: jwt, body: { name: "k2" }, env: limited });
    expect(await expectProblem(refused, 429)).toMatchObject({ limit: "KEY_CREATION_LIMITER" });
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect([...counts.keys()]).toEqual([`user:${sub}`]);
    expect(await listIds(jwt)).toHaveLength(2);
    // A second owner is counted apart.
    expect(
      (await call("POST", "/v1/keys", { auth: await token(uniqueSub()), body: { name: "x" }, env: limited })).status,
    ).toBe(201);

    const broken = withLimits({
      KEY_CREATION_LIMITER: { limit: () => Promise.reject(new Error("limiter down")) },
    });
    const logs = captureLogs();
    const created = await call("POST", "/v1/keys", { auth: jwt, body: { name: "k3" }, env: broken });
    logs.restore();
    expect(created.status).toBe(201);
    expect(logs.lines()).toMatchObject([
      { level: "warn", event: "key_creation_limiter_failed", error: "limiter down" },
    ]);
  });

  it("over RPC, the quota is `[quota_exceeded]` and the creation limiter `[rate_limited]`, each naming its limit", async () => {
    // The entrypoint over a configured env (exports.KeyService runs on the default one).
    const service = (vars: Partial<Env>) => new KeyService(createExecutionContext(), withLimits(vars));
    const owner = { type: "user" as const, id: uniqueSub() };
    const quota = service({ MAX_KEYS_PER_OWNER: "1" });
    await quota.create(owner, { name: "first" });
    await expect(quota.create(owner, { name: "second" })).rejects.toThrow(/^\[quota_exceeded\] MAX_KEYS_PER_OWNER: /);
    const creations = service({ KEY_CREATION_LIMITER: { limit: async () => ({ success: false }) } });
    await expect(creations.create({ type: "user", id: uniqueSub() }, { name: "x" })).rejects.toThrow(
      /^\[rate_limited\] KEY_CREATION_LIMITER: /,
    );
  });
});
