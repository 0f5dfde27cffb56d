/**
 * Every promise on every path: a key's lineage holds every key minted at its request (create, import,
 * rotate) and a cascade revokes them all; every insert a key asks for is conditional on it being live;
 * a key changes limits, credits or a cascade's tree only if it may manage every row the write reaches;
 * narrowing a key with stronger live keys in its lineage is refused, and so is giving limits to a key
 * whose minted keys spend no limits or other counters; import is a trusted migration tool;
 * import and rotate count against the owner's quota and the creation limiter; a rotated-away key's
 * expiry may only be brought forward. Each over HTTP, as a client meets it.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import type { Env } from "../../src/env";
import { sha256Hex } from "../../src/keys/hash";
import {
  d1Proxy,
  type CreatedKey,
  call,
  captureLogs,
  createKey,
  envWith,
  expectProblem,
  token,
  uniqueSub,
  type CapturedLogs,
} from "../helpers";

// The service's log lines (info on changes, warnings on refusals) are captured, not printed: the run stays quiet.
let quiet: CapturedLogs;
beforeEach(() => {
  quiet = captureLogs();
});
afterEach(() => quiet.restore());

const PERSONAL_IMPORT = envWith({ IMPORT_ALLOWED: "personal" });

async function verifyCode(key: string): Promise<string> {
  const response = await call("POST", "/v1/verify", { body: { key } });
  return (await response.json<{ code: string }>()).code;
}

/** An opaque legacy key (the suite accepts `sk_live_`) and its import item. */
async function legacyItem(name = "legacy") {
  const key = `sk_live_${crypto.randomUUID().replace(/-/g, "")}`;
  return { key, item: { name, hash: await sha256Hex(key), format: "opaque", start: "sk_live_" } };
}

async function importAs(auth: string, items: Record<string, unknown>[], testEnv: Env = PERSONAL_IMPORT) {
  return call("POST", "/v1/keys/import", { auth, body: { keys: items }, env: testEnv });
}

async function liveCount(ownerId: string): Promise<number> {
  const row = await env.DB.prepare(
    "SELECT COUNT(*) AS n FROM api_keys WHERE owner_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
  )
    .bind(ownerId, Date.now())
    .first<{ n: number }>();
  return row?.n ?? -1;
}

/** A D1 whose `nth` batch runs `before` first, as a concurrent change landing just before it. */
function changingBeforeBatch(before: (db: D1Database) => Promise<unknown>, nth = 1): D1Database {
  let batches = 0;
  return d1Proxy(env.DB, {
    get(target, prop) {
      if (prop === "batch") {
        return async (statements: D1PreparedStatement[]) => {
          if (++batches === nth) await before(target);
          return target.batch(statements);
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** A D1 whose first batch is preceded by the revocation of `id`, as another location's revocation. */
const revokingBeforeBatch = (id: string) =>
  changingBeforeBatch((db) => db.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(Date.now(), id).run());

describe("lineage: a cascade revokes every key minted at the key's request", () => {
  it("reaches a key it imported and a sibling's replacement it rotated", async () => {
    const jwt = await token(uniqueSub());
    const k = await createKey(jwt, { scopes: ["keys:write", "keys:read", "models:invoke"] });
    const sibling = await createKey(jwt, { scopes: ["models:invoke"] });

    const { key: legacy, item } = await legacyItem();
    const imported = await importAs(k.key, [item]);
    expect(imported.status, await imported.clone().text()).toBe(200);
    const importedId = (await imported.json<{ results: { id: string }[] }>()).results[0]!.id;
    const view = await (await call("GET", `/v1/keys/${importedId}`, { auth: jwt })).json<Record<string, unknown>>();
    expect(view).toMatchObject({ parent_id: k.id, created_by: `key:${k.id}` });

    const rotated = await call("POST", `/v1/keys/${sibling.id}/rotate`, {
      auth: k.key,
      body: { grace_seconds: 7 * 86400 },
    });
    expect(rotated.status).toBe(201);
    const replacement = await rotated.json<CreatedKey & { created_by: string; parent_id: string | null }>();
    // It keeps the old key's place in the lineage (parent_id) and joins the asking key's (created_by).
    expect(replacement).toMatchObject({ created_by: `key:${k.id}`, parent_id: null });

    expect(await verifyCode(legacy)).toBe("VALID");
    expect(await verifyCode(replacement.key)).toBe("VALID");
    expect((await call("DELETE", `/v1/keys/${k.id}?cascade=true`, { auth: jwt })).status).toBe(204);
    expect(await verifyCode(legacy)).toBe("REVOKED");
    expect(await verifyCode(replacement.key)).toBe("REVOKED");
    // The sibling the person made is not in k's lineage: it lives out its grace period.
    expect(await verifyCode(sibling.key)).toBe("VALID");
  });

  it("a person's rotation of a key's child stays in that key's lineage", async () => {
    const jwt = await token(uniqueSub());
    const k = await createKey(jwt, { scopes: ["keys:write", "models:invoke"] });
    const child = await createKey(k.key, { scopes: ["models:invoke"] });
    const rotated = await call("POST", `/v1/keys/${child.id}/rotate`, { auth: jwt, body: { grace_seconds: 0 } });
    const replacement = await rotated.json<CreatedKey>();
    expect(replacement).toMatchObject({ parent_id: k.id, created_by: expect.stringMatching(/^user:/) });
    expect((await call("DELETE", `/v1/keys/${k.id}?cascade=true`, { auth: jwt })).status).toBe(204);
    expect(await verifyCode(replacement.key)).toBe("REVOKED");
  });

  it("reaches every generation: a person's rotation of a grandchild is revoked with the grandparent", async () => {
    const jwt = await token(uniqueSub());
    const k = await createKey(jwt, { scopes: ["keys:write", "models:invoke"] });
    const child = await createKey(k.key, { scopes: ["keys:write", "models:invoke"] });
    const grandchild = await createKey(child.key, { scopes: ["models:invoke"] });
    // The person's rotation puts the replacement in the lineage by its parent alone (not created by a key).
    const rotated = await call("POST", `/v1/keys/${grandchild.id}/rotate`, { auth: jwt, body: { grace_seconds: 0 } });
    const replacement = await rotated.json<CreatedKey>();
    expect(replacement).toMatchObject({ parent_id: child.id, created_by: expect.stringMatching(/^user:/) });
    expect((await call("DELETE", `/v1/keys/${k.id}?cascade=true`, { auth: jwt })).status).toBe(204);
    expect(await verifyCode(child.key)).toBe("REVOKED");
    expect(await verifyCode(replacement.key)).toBe("REVOKED");
  });

  it("a rotation or an import racing the asking key's revocation never lands after it", async () => {
    const jwt = await token(uniqueSub());
    const k = await createKey(jwt, { scopes: ["keys:write", "models:invoke"] });
    const sibling = await createKey(jwt, { scopes: ["models:invoke"] });
    const rotate = await call("POST", `/v1/keys/${sibling.id}/rotate`, {
      auth: k.key,
      body: { grace_seconds: 60 },
      env: envWith({ DB: revokingBeforeBatch(k.id) }),
    });
    await expectProblem(rotate, 401, "key_not_live");
    const after = await (await call("GET", `/v1/keys/${sibling.id}`, { auth: jwt })).json<{ expires_at: unknown }>();
    expect(after.expires_at).toBeNull(); // the old key was not touched either

    const k2 = await createKey(jwt, { scopes: ["keys:write", "models:invoke"] });
    const { key: legacy, item } = await legacyItem();
    const imported = await importAs(
      k2.key,
      [item],
      envWith({ IMPORT_ALLOWED: "personal", DB: revokingBeforeBatch(k2.id) }),
    );
    await expectProblem(imported, 401, "key_not_live");
    expect(await verifyCode(legacy)).toBe("NOT_FOUND");
    const { results } = await env.DB.prepare("SELECT id FROM api_keys WHERE created_by IN (?, ?)")
      .bind(`key:${k.id}`, `key:${k2.id}`)
      .all();
    expect(results).toEqual([]);
  });
});

describe("chain-wide powers: a key changes only rows it may manage, all of them", () => {
  async function strongChain() {
    const jwt = await token(uniqueSub());
    const a = await createKey(jwt, { scopes: ["*"], credits: { remaining: 100 } });
    const w = await createKey(a.key, { scopes: ["metrics:read"] }); // shares A's counters
    const n = await createKey(jwt, { scopes: ["keys:write", "metrics:read"] });
    return { jwt, a, w, n };
  }

  it("a narrow key cannot zero or lift a stronger key's credits through a weaker key sharing its counters", async () => {
    const { a, w, n } = await strongChain();
    await expectProblem(await call("PATCH", `/v1/keys/${a.id}`, { auth: n.key, body: { name: "x" } }), 403);

    const credits = await call("POST", `/v1/keys/${w.id}/credits`, { auth: n.key, body: { op: "set", amount: 0 } });
    const problem = await expectProblem(credits, 403, "forbidden");
    expect(problem.detail).toContain(a.id);
    const patch = await call("PATCH", `/v1/keys/${w.id}`, { auth: n.key, body: { credits: null, ratelimits: [] } });
    expect((await expectProblem(patch, 403, "forbidden")).detail).toContain(a.id);

    // Nothing changed: A still verifies with its balance, and has its credits.
    expect(await verifyCode(a.key)).toBe("VALID");
    const view = await (
      await call("GET", `/v1/keys/${a.id}`, { auth: a.key })
    ).json<{
      credits: { remaining: number };
    }>();
    expect(view.credits.remaining).toBeGreaterThan(90);
  });

  it("a key that may manage every key of the chain may change its credits", async () => {
    const jwt = await token(uniqueSub());
    const a = await createKey(jwt, { scopes: ["metrics:read"], credits: { remaining: 10 } });
    const n = await createKey(jwt, { scopes: ["keys:write", "metrics:read"] });
    const set = await call("POST", `/v1/keys/${a.id}/credits`, { auth: n.key, body: { op: "set", amount: 3 } });
    expect(set.status).toBe(200);
  });

  it("a key cannot cascade-revoke a key it may revoke when the cascade reaches a stronger one", async () => {
    const jwt = await token(uniqueSub());
    const b = await createKey(jwt, { scopes: ["keys:write", "metrics:read"] });
    const a = await createKey(jwt, { scopes: ["keys:write", "metrics:read"] });
    const c = await createKey(a.key, { scopes: ["metrics:read"] });
    // A child stronger than its parent and than B: a PATCH cannot make one (a key is never widened beyond
    // the key that minted it), so the row is written as a deployment that predates that rule may hold it.
    await env.DB.prepare("UPDATE api_keys SET scopes = ? WHERE id = ?")
      .bind(JSON.stringify(["*"]), c.id)
      .run();

    await expectProblem(await call("DELETE", `/v1/keys/${c.id}`, { auth: b.key }), 403);
    const cascade = await call("DELETE", `/v1/keys/${a.id}?cascade=true`, { auth: b.key });
    const problem = await expectProblem(cascade, 403, "forbidden");
    expect(problem.detail).toContain(c.id);
    expect(await verifyCode(a.key)).toBe("VALID");
    expect(await verifyCode(c.key)).toBe("VALID");
    // Without the stronger key, the same cascade goes through.
    expect((await call("DELETE", `/v1/keys/${c.id}`, { auth: jwt })).status).toBe(204);
    expect((await call("DELETE", `/v1/keys/${a.id}?cascade=true`, { auth: b.key })).status).toBe(204);
  });

  it("a key of the lineage made stronger between the check and the write stops the cascade (the write guard)", async () => {
    const jwt = await token(uniqueSub());
    const b = await createKey(jwt, { scopes: ["keys:write", "metrics:read"] });
    const a = await createKey(jwt, { scopes: ["keys:write", "metrics:read"] });
    const c = await createKey(a.key, { scopes: ["metrics:read"] });
    // B reads the lineage (all within its powers: the first batch); before its write (the second)
    // lands, C is given more elsewhere.
    const racing = changingBeforeBatch(
      (db) =>
        db.prepare("UPDATE api_keys SET scopes = '[\"*\"]', updated_at = ? WHERE id = ?").bind(Date.now(), c.id).run(),
      2,
    );
    const cascade = await call("DELETE", `/v1/keys/${a.id}?cascade=true`, {
      auth: b.key,
      env: envWith({ DB: racing }),
    });
    expect((await expectProblem(cascade, 403, "forbidden")).detail).toContain(c.id);
    expect(await verifyCode(c.key)).toBe("VALID");
    expect(await verifyCode(a.key)).toBe("VALID");
  });
});

describe("narrowing a key reaches its lineage: refused while stronger live keys descend from it", () => {
  it("409 naming them, and nothing changes; once they are gone, the narrowing goes through", async () => {
    const jwt = await token(uniqueSub());
    const p = await createKey(jwt, { scopes: ["keys:write", "models:invoke", "metrics:read"] });
    const c = await createKey(p.key, { scopes: ["models:invoke"] });
    const weak = await createKey(p.key, { scopes: ["metrics:read"] });

    const narrowed = await call("PATCH", `/v1/keys/${p.id}`, {
      auth: jwt,
      body: { scopes: ["keys:write", "metrics:read"] },
    });
    const problem = await expectProblem(narrowed, 409, "conflict");
    expect(problem.key_ids).toEqual([c.id]);
    expect(problem.detail).toContain(c.id);
    const view = await (await call("GET", `/v1/keys/${p.id}`, { auth: jwt })).json<{ scopes: string[] }>();
    expect(view.scopes).toEqual(["keys:write", "models:invoke", "metrics:read"]);

    // An expiry is a narrowing too: the children never expire.
    const expiring = await call("PATCH", `/v1/keys/${p.id}`, {
      auth: jwt,
      body: { expires_at: new Date(Date.now() + 3_600_000).toISOString() },
    });
    expect((await expectProblem(expiring, 409, "conflict")).key_ids).toEqual([c.id, weak.id].sort());

    expect((await call("DELETE", `/v1/keys/${c.id}`, { auth: jwt })).status).toBe(204);
    const ok = await call("PATCH", `/v1/keys/${p.id}`, { auth: jwt, body: { scopes: ["keys:write", "metrics:read"] } });
    expect(ok.status).toBe(200);
    expect(await verifyCode(weak.key)).toBe("VALID");
  });
});

describe("no key is stronger than a key that minted it, after any later change", () => {
  it("a PATCH widening a key beyond its live minting key is 409 naming it, whoever asks; once it is revoked, it goes through", async () => {
    const jwt = await token(uniqueSub());
    const p = await createKey(jwt, { scopes: ["keys:write", "metrics:read"] });
    const child = await createKey(p.key, { scopes: ["metrics:read"] });

    const widened = await call("PATCH", `/v1/keys/${child.id}`, {
      auth: jwt,
      body: { scopes: ["metrics:read", "models:invoke"] },
    });
    expect((await expectProblem(widened, 409, "conflict")).key_ids).toEqual([p.id]);
    const view = await (await call("GET", `/v1/keys/${child.id}`, { auth: jwt })).json<{ scopes: string[] }>();
    expect(view.scopes).toEqual(["metrics:read"]);

    // Narrowing is always allowed; widening within the minter too.
    const within = await call("PATCH", `/v1/keys/${child.id}`, { auth: jwt, body: { scopes: ["keys:write"] } });
    expect(within.status).toBe(200);

    expect((await call("DELETE", `/v1/keys/${p.id}`, { auth: jwt })).status).toBe(204);
    const freed = await call("PATCH", `/v1/keys/${child.id}`, { auth: jwt, body: { scopes: ["models:invoke"] } });
    expect(freed.status).toBe(200);
  });
});

describe("limits given to a key reach what it minted: refused while keys it minted spend no limits or other counters", () => {
  const credits = { credits: { remaining: 100 } };
  const ratelimits = { ratelimits: [{ name: "r", limit: 10, duration_ms: 60_000 }] };
  const expire = (id: string) =>
    env.DB.prepare("UPDATE api_keys SET expires_at = ? WHERE id = ?")
      .bind(Date.now() - 1000, id)
      .run();

  async function limitsOf(jwt: string, id: string) {
    return (await call("GET", `/v1/keys/${id}`, { auth: jwt })).json<{ credits: unknown; ratelimits: unknown[] }>();
  }

  it("409 naming them (a child, a sibling's replacement it asked for), and nothing changes; once they are gone, the limits go through and bind what it mints next", async () => {
    const jwt = await token(uniqueSub());
    const p = await createKey(jwt, { scopes: ["keys:write", "metrics:read"] });
    const child = await createKey(p.key, { scopes: ["metrics:read"] });
    const sibling = await createKey(jwt, { scopes: ["metrics:read"] });
    const rotate = await call("POST", `/v1/keys/${sibling.id}/rotate`, { auth: p.key, body: { grace_seconds: 0 } });
    const replacement = await rotate.json<CreatedKey>();

    for (const body of [credits, ratelimits, { ...credits, ...ratelimits }]) {
      const limited = await call("PATCH", `/v1/keys/${p.id}`, { auth: jwt, body });
      const problem = await expectProblem(limited, 409, "conflict");
      expect(problem.key_ids).toEqual([child.id, replacement.id].sort());
      expect(problem.detail).toContain(child.id);
    }
    expect(await limitsOf(jwt, p.id)).toMatchObject({ credits: null, ratelimits: [] });
    expect(await verifyCode(child.key)).toBe("VALID");

    expect((await call("DELETE", `/v1/keys/${child.id}`, { auth: jwt })).status).toBe(204);
    const one = await call("PATCH", `/v1/keys/${p.id}`, { auth: jwt, body: credits });
    expect((await expectProblem(one, 409, "conflict")).key_ids).toEqual([replacement.id]);
    expect((await call("DELETE", `/v1/keys/${replacement.id}`, { auth: jwt })).status).toBe(204);
    expect((await call("PATCH", `/v1/keys/${p.id}`, { auth: jwt, body: credits })).status).toBe(200);
    // A key minted now shares the limits and the counters (P's request to mint it spent one credit).
    const later = await createKey(p.key, { scopes: ["metrics:read"] });
    expect((await limitsOf(jwt, later.id)).credits).toMatchObject({ remaining: 99 });
    expect((await limitsOf(jwt, p.id)).credits).toMatchObject({ remaining: 99 });
  });

  it("a minted key expired when the limits came may not be extended past them (409 naming the minting key)", async () => {
    const jwt = await token(uniqueSub());
    const p = await createKey(jwt, { scopes: ["keys:write", "metrics:read"] });
    const child = await createKey(p.key, { scopes: ["metrics:read"] });
    await expire(child.id);
    expect((await call("PATCH", `/v1/keys/${p.id}`, { auth: jwt, body: credits })).status).toBe(200);

    const extended = await call("PATCH", `/v1/keys/${child.id}`, { auth: jwt, body: { expires_at: null } });
    expect((await expectProblem(extended, 409, "conflict")).key_ids).toEqual([p.id]);
    expect(await verifyCode(child.key)).toBe("EXPIRED");
    // Without the limits, the extension goes through.
    expect((await call("PATCH", `/v1/keys/${p.id}`, { auth: jwt, body: { credits: null } })).status).toBe(200);
    expect((await call("PATCH", `/v1/keys/${child.id}`, { auth: jwt, body: { expires_at: null } })).status).toBe(200);
  });

  it("a minted key brought back between the check and the write stops the limits (the write guard)", async () => {
    const jwt = await token(uniqueSub());
    const p = await createKey(jwt, { scopes: ["keys:write", "metrics:read"] });
    const child = await createKey(p.key, { scopes: ["metrics:read"] });
    await expire(child.id);
    // The lineage is read with the child expired (the first batch); before the write (the second)
    // lands, the child is extended elsewhere.
    const racing = changingBeforeBatch(
      (db) =>
        db
          .prepare("UPDATE api_keys SET expires_at = NULL, updated_at = ? WHERE id = ?")
          .bind(Date.now(), child.id)
          .run(),
      2,
    );
    const limited = await call("PATCH", `/v1/keys/${p.id}`, { auth: jwt, body: credits, env: envWith({ DB: racing }) });
    expect((await expectProblem(limited, 409, "conflict")).key_ids).toEqual([child.id]);
    expect(await limitsOf(jwt, p.id)).toMatchObject({ credits: null, ratelimits: [] });
  });
});

describe("trusted import", () => {
  it("IMPORT_ALLOWED: empty or admins (the default) or personal; anything else is reported and means admins", () => {
    expect(loadConfig({ ...env, IMPORT_ALLOWED: "" }).importAllowed).toBe("admins");
    expect(loadConfig({ ...env, IMPORT_ALLOWED: "admins" }).importAllowed).toBe("admins");
    expect(loadConfig({ ...env, IMPORT_ALLOWED: " personal " }).importAllowed).toBe("personal");
    const wrong = loadConfig({ ...env, IMPORT_ALLOWED: "everyone" });
    expect(wrong.importAllowed).toBe("admins");
    expect(wrong.errors).toContainEqual(expect.stringMatching(/^IMPORT_ALLOWED/));
  });

  it("is refused to a person for their own keys and to keys, unless IMPORT_ALLOWED=personal", async () => {
    const jwt = await token(uniqueSub());
    const { item } = await legacyItem();
    const refused = await importAs(jwt, [item], env);
    expect((await expectProblem(refused, 403, "forbidden")).detail).toMatch(/IMPORT_ALLOWED=personal/);
    const k = await createKey(jwt, { scopes: ["keys:write"] });
    await expectProblem(await importAs(k.key, [item], env), 403, "forbidden");
    expect((await importAs(jwt, [item], PERSONAL_IMPORT)).status).toBe(200);
  });

  it("is allowed to a workspace admin for the workspace, not for their own keys", async () => {
    const org = uniqueSub("org");
    const admin = await token(uniqueSub(), { org });
    const { item } = await legacyItem();
    const ok = await importAs(admin, [{ ...item, owner: "workspace" }], env);
    expect(ok.status, await ok.clone().text()).toBe(200);
    const { item: mine } = await legacyItem();
    await expectProblem(await importAs(admin, [mine], env), 403, "forbidden");
    const member = await token(uniqueSub(), { org, roles: [] });
    await expectProblem(await importAs(member, [{ ...mine, owner: "workspace" }], env), 403);
  });

  it("answers a hash of another owner exactly as a repeated hash, and tells the operator", async () => {
    const victim = await token(uniqueSub());
    const { item } = await legacyItem("victim's");
    expect((await importAs(victim, [item])).status).toBe(200);

    const admin = await token(uniqueSub(), { org: uniqueSub("org") });
    const { item: fresh } = await legacyItem("fresh");
    const logs = captureLogs();
    const response = await importAs(admin, [
      { ...fresh, owner: "workspace" },
      { ...fresh, owner: "workspace" },
      { ...item, owner: "workspace" },
    ]);
    logs.restore();
    expect(response.status).toBe(200);
    const body = await response.json<{ results: Record<string, unknown>[] }>();
    const [, repeated, foreign] = body.results;
    expect(foreign).toEqual({ ...repeated, hash: item.hash.slice(0, 12) });
    const [line, ...others] = logs.events("import_conflict_other_owner");
    expect(others).toEqual([]);
    expect(line).toMatchObject({ level: "warn", hash_prefix: item.hash.slice(0, 12) });
    expect(logs.raw.join("\n")).not.toContain(item.hash);
  });
});

describe("quotas on import and rotate", () => {
  const quota = envWith({ MAX_KEYS_PER_OWNER: "2", IMPORT_ALLOWED: "personal" });

  it("an import of N counts N, all or nothing; a rotation at the quota needs grace_seconds 0", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    const items = await Promise.all(Array.from({ length: 5 }, (_, i) => legacyItem(`k${i}`)));
    const five = await importAs(
      jwt,
      items.map((i) => i.item),
      quota,
    );
    expect(await expectProblem(five, 403, "quota_exceeded")).toMatchObject({ limit: "MAX_KEYS_PER_OWNER" });
    expect(await liveCount(sub)).toBe(0);

    const two = await importAs(
      jwt,
      items.slice(0, 2).map((i) => i.item),
      quota,
    );
    expect(two.status).toBe(200);
    const ids = (await two.json<{ results: { id: string }[] }>()).results.map((r) => r.id);
    expect(await liveCount(sub)).toBe(2);
    await expectProblem(await importAs(jwt, [items[2]!.item], quota), 403, "quota_exceeded");

    for (let i = 0; i < 3; i++) {
      const graced = await call("POST", `/v1/keys/${ids[0]}/rotate`, {
        auth: jwt,
        body: { grace_seconds: 3600 },
        env: quota,
      });
      await expectProblem(graced, 403, "quota_exceeded");
    }
    expect(await liveCount(sub)).toBe(2);
    const swapped = await call("POST", `/v1/keys/${ids[0]}/rotate`, {
      auth: jwt,
      body: { grace_seconds: 0 },
      env: quota,
    });
    expect(swapped.status).toBe(201);
    expect(await liveCount(sub)).toBe(2);
  });

  it("import and rotate go through the creation limiter, an import once per key", async () => {
    const calls: string[] = [];
    const limiter: RateLimit = {
      limit: async ({ key }) => {
        calls.push(key);
        return { success: calls.length <= 3 };
      },
    };
    const sub = uniqueSub();
    const jwt = await token(sub);
    const limited = envWith({ KEY_CREATION_LIMITER: limiter, IMPORT_ALLOWED: "personal" });
    const items = await Promise.all([legacyItem(), legacyItem()]);
    expect(
      (
        await importAs(
          jwt,
          items.map((i) => i.item),
          limited,
        )
      ).status,
    ).toBe(200);
    expect(calls).toEqual([`user:${sub}`, `user:${sub}`]);
    const key = await createKey(jwt, {}, limited);
    const rotated = await call("POST", `/v1/keys/${key.id}/rotate`, {
      auth: jwt,
      body: { grace_seconds: 0 },
      env: limited,
    });
    expect(await expectProblem(rotated, 429, "creation_rate_limited")).toMatchObject({ limit: "KEY_CREATION_LIMITER" });
    await expectProblem(await importAs(jwt, [(await legacyItem()).item], limited), 429);
  });
});

describe("a rotated-away key", () => {
  it("may have its expiry brought forward, never extended or removed (409 naming the replacement)", async () => {
    const jwt = await token(uniqueSub());
    const old = await createKey(jwt, { scopes: ["models:invoke"] });
    const rotated = await call("POST", `/v1/keys/${old.id}/rotate`, { auth: jwt, body: { grace_seconds: 3600 } });
    const replacement = await rotated.json<CreatedKey>();

    const cleared = await call("PATCH", `/v1/keys/${old.id}`, { auth: jwt, body: { expires_at: null } });
    const problem = await expectProblem(cleared, 409, "conflict");
    expect(problem.key_ids).toEqual([replacement.id]);
    expect(problem.detail).toContain(replacement.id);
    const later = new Date(Date.now() + 7_200_000).toISOString();
    await expectProblem(await call("PATCH", `/v1/keys/${old.id}`, { auth: jwt, body: { expires_at: later } }), 409);

    const sooner = new Date(Date.now() + 600_000).toISOString();
    const ok = await call("PATCH", `/v1/keys/${old.id}`, { auth: jwt, body: { expires_at: sooner } });
    expect(ok.status).toBe(200);
    // The replacement itself is no rotated-away key: its expiry is free.
    expect((await call("PATCH", `/v1/keys/${replacement.id}`, { auth: jwt, body: { expires_at: later } })).status).toBe(
      200,
    );
  });
});
