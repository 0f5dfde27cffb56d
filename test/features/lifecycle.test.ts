/**
 * The key lifecycle beyond create and revoke: PATCH (each field, null clears, 404, 422, 409, the empty
 * patch), disable/enable (DISABLED, reversible), rotation with and without a grace period (controllable
 * time), IP allow-lists on latchkey's own routes and in verification, attenuation on PATCH and rotate,
 * and rows written before the migration.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { generateKey } from "../../src/keys/format";
import { sha256Hex } from "../../src/keys/hash";
import { isolateCache } from "../../src/service/verify";
import { call, createKey, envWith, expectProblem, tableSnapshot, token, uniqueSub } from "../helpers";

interface KeyView {
  id: string;
  name: string;
  enabled: boolean;
  updated_at: string;
  created_at: string;
  expires_at: string | null;
  scopes: string[];
  resources: string[] | null;
  allowed_ips: string[] | null;
  metadata: Record<string, unknown> | null;
  rotated_from: string | null;
  owner_id: string;
  owner_type: string;
  key?: string;
}

const patch = (id: string, auth: string, body: unknown, headers: Record<string, string> = {}) =>
  call("PATCH", `/v1/keys/${id}`, { auth, body, headers });

const rotate = (id: string, auth: string, body: unknown = {}) => call("POST", `/v1/keys/${id}/rotate`, { auth, body });

const whoami = (key: string, ip?: string) =>
  call("GET", "/v1/whoami", { auth: key, headers: ip === undefined ? {} : { "cf-connecting-ip": ip } });

async function verify(key: string, options: Record<string, unknown> = {}): Promise<{ code: string; enabled: boolean }> {
  const response = await call("POST", "/v1/verify", { body: { key, ...options } });
  expect(response.status).toBe(200);
  return response.json();
}

async function eventCount(keyId: string): Promise<number> {
  const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM key_events WHERE key_id = ?").bind(keyId).first<{
    n: number;
  }>();
  return row?.n ?? 0;
}

const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();
const inADay = () => new Date(Date.now() + 86_400_000).toISOString();

async function person() {
  const sub = uniqueSub();
  return { sub, jwt: await token(sub) };
}

describe("PATCH /v1/keys/{id}", () => {
  it("changes each field, returns the view with enabled and updated_at, and null clears", async () => {
    const { jwt } = await person();
    const created = await createKey(jwt, { scopes: ["models:invoke"] });
    const expires = inADay();
    const response = await patch(created.id, jwt, {
      name: "  renamed  ",
      metadata: { team: "ml" },
      expires_at: expires,
      scopes: ["models:invoke", "metrics:read", "models:invoke"],
      resources: ["m1", "m2"],
      allowed_ips: ["203.0.113.0/24", "2001:db8::1"],
    });
    expect(response.status).toBe(200);
    const view = await response.json<KeyView>();
    expect(view).toMatchObject({
      id: created.id,
      name: "renamed",
      enabled: true,
      metadata: { team: "ml" },
      expires_at: new Date(expires).toISOString(),
      scopes: ["models:invoke", "metrics:read"],
      resources: ["m1", "m2"],
      allowed_ips: ["203.0.113.0/24", "2001:db8::1"],
      rotated_from: null,
    });
    expect(view).not.toHaveProperty("key");
    expect(Date.parse(view.updated_at)).toBeGreaterThan(Date.parse(view.created_at) - 1);

    // GET shows the same; null clears the nullable fields; fields left out stay.
    expect(await (await call("GET", `/v1/keys/${created.id}`, { auth: jwt })).json()).toEqual(view);
    const cleared = await patch(created.id, jwt, {
      metadata: null,
      expires_at: null,
      resources: null,
      allowed_ips: null,
    });
    expect(cleared.status).toBe(200);
    expect(await cleared.json()).toMatchObject({
      name: "renamed",
      metadata: null,
      expires_at: null,
      resources: null,
      allowed_ips: null,
      scopes: ["models:invoke", "metrics:read"],
    });
  });

  it("is seen by the very next verification here", async () => {
    const { jwt } = await person();
    const { id, key } = await createKey(jwt, { scopes: ["models:invoke"] });
    expect((await verify(key, { scope: "models:invoke" })).code).toBe("VALID");
    expect((await patch(id, jwt, { scopes: ["metrics:read"] })).status).toBe(200);
    expect((await verify(key, { scope: "models:invoke" })).code).toBe("INSUFFICIENT_SCOPE");
    expect((await verify(key, { scope: "metrics:read" })).code).toBe("VALID");
  });

  it("answers an empty patch, or one that changes nothing, with the key unchanged and no event", async () => {
    const { jwt } = await person();
    const created = await createKey(jwt, { name: "same" });
    const before = await (await call("GET", `/v1/keys/${created.id}`, { auth: jwt })).json<KeyView>();
    const snapshot = await tableSnapshot();
    for (const body of [{}, { name: "same" }, { enabled: true, scopes: ["*"] }]) {
      const response = await patch(created.id, jwt, body);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual(before);
    }
    expect(await tableSnapshot()).toEqual(snapshot);
    expect(await eventCount(created.id)).toBe(1); // its creation only
  });

  it("is 404 for unknown, malformed and other owners' ids, changing nothing", async () => {
    const { jwt } = await person();
    const other = await createKey(await token(uniqueSub()));
    const snapshot = await tableSnapshot();
    for (const id of [other.id, crypto.randomUUID(), "not-a-uuid"]) {
      await expectProblem(await patch(id, jwt, { name: "mine now" }), 404);
    }
    expect(await tableSnapshot()).toEqual(snapshot);
  });

  it("is 422 naming each bad field, changing nothing", async () => {
    const { jwt } = await person();
    const { id } = await createKey(jwt);
    const snapshot = await tableSnapshot();
    const body = await expectProblem(
      await patch(id, jwt, {
        name: "",
        enabled: "no",
        expires_at: "2001-01-01T00:00:00Z",
        scopes: [],
        resources: ["bad id!"],
        allowed_ips: ["10.0.0.1/8", "300.1.1.1"],
        metadata: "x",
        owner: "workspace",
      }),
      422,
    );
    expect(Object.keys(body.errors as object).sort()).toEqual(
      [
        "allowed_ips.0",
        "allowed_ips.1",
        "enabled",
        "expires_at",
        "metadata",
        "name",
        "owner",
        "resources.0",
        "scopes",
      ].sort(),
    );
    expect(await tableSnapshot()).toEqual(snapshot);
  });

  it("refuses a revoked key with 409", async () => {
    const { jwt } = await person();
    const { id } = await createKey(jwt);
    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt })).status).toBe(204);
    const snapshot = await tableSnapshot();
    const body = await expectProblem(await patch(id, jwt, { name: "again" }), 409);
    expect(body.detail).toMatch(/revoked/);
    expect(await tableSnapshot()).toEqual(snapshot);
  });
});

describe("disable and enable", () => {
  it("a disabled key fails with DISABLED (401 on latchkey's routes) until enabled again", async () => {
    const { jwt } = await person();
    const { id, key } = await createKey(jwt, { scopes: ["keys:read"] });
    expect((await whoami(key)).status).toBe(200);

    const disabled = await patch(id, jwt, { enabled: false });
    expect(await disabled.json()).toMatchObject({ enabled: false });
    const refused = await expectProblem(await whoami(key), 401);
    expect(refused.detail).toMatch(/disabled/);
    // Like a dead key's: the code and the id only (docs/api.md, "Verify says less about dead keys").
    expect(await verify(key)).toEqual({ valid: false, code: "DISABLED", key_id: id });
    await expectProblem(await call("GET", "/v1/keys", { auth: key }), 401);

    // Reversible, unlike revocation.
    expect(await (await patch(id, jwt, { enabled: true })).json()).toMatchObject({ enabled: true });
    expect(await (await whoami(key)).json()).toMatchObject({ key_id: id, enabled: true });
    expect(await verify(key)).toMatchObject({ valid: true, code: "VALID", enabled: true });
  });

  it("a key can disable itself, and then cannot enable itself", async () => {
    const { jwt } = await person();
    const { id, key } = await createKey(jwt, { scopes: ["keys:write"] });
    expect((await patch(id, key, { enabled: false })).status).toBe(200);
    await expectProblem(await patch(id, key, { enabled: true }), 401);
    expect((await verify(key)).code).toBe("DISABLED");
  });
});

describe("attenuation on PATCH", () => {
  async function parentAndChild() {
    const { jwt } = await person();
    const expires = inADay();
    const parent = await createKey(jwt, {
      scopes: ["keys:write", "models:invoke"],
      resources: ["m1", "m2"],
      expires_at: expires,
      allowed_ips: ["10.0.0.0/8"],
    });
    const made = await call("POST", "/v1/keys", {
      auth: parent.key,
      body: { name: "child", scopes: ["models:invoke"], resources: ["m1"] },
      headers: { "cf-connecting-ip": "10.1.2.3" },
    });
    expect(made.status).toBe(201);
    const child = await made.json<KeyView & { key: string }>();
    return { jwt, parent, child, expires };
  }
  const asParent = (key: string, id: string, body: unknown) =>
    call("PATCH", `/v1/keys/${id}`, { auth: key, body, headers: { "cf-connecting-ip": "10.1.2.3" } });

  it("a key cannot widen the scopes, resources, expiry or allowed IPs of any key, itself included", async () => {
    const { parent, child } = await parentAndChild();
    const widenings: [string, Record<string, unknown>][] = [
      ["scopes", { scopes: ["*"] }],
      ["scopes", { scopes: ["models:invoke", "metrics:read"] }],
      ["resources", { resources: null }],
      ["resources", { resources: ["m1", "m3"] }],
      ["expires_at", { expires_at: null }],
      ["expires_at", { expires_at: new Date(Date.now() + 2 * 86_400_000).toISOString() }],
      ["allowed_ips", { allowed_ips: null }],
      ["allowed_ips", { allowed_ips: ["0.0.0.0/0"] }],
    ];
    const snapshot = await tableSnapshot();
    for (const target of [parent.id, child.id]) {
      for (const [exceeded, body] of widenings) {
        const refused = await expectProblem(await asParent(parent.key, target, body), 403);
        expect(refused.exceeded, `${target} ${JSON.stringify(body)}`).toBe(exceeded);
      }
    }
    expect(await tableSnapshot()).toEqual(snapshot);
  });

  it("a key may narrow itself and keys within its powers", async () => {
    const { parent, child } = await parentAndChild();
    const narrowed = await asParent(parent.key, child.id, {
      scopes: ["models:invoke"],
      resources: ["m2"],
      allowed_ips: ["10.9.0.0/16"],
      name: "narrower",
    });
    expect(narrowed.status).toBe(200);
    expect(await narrowed.json()).toMatchObject({ resources: ["m2"], allowed_ips: ["10.9.0.0/16"] });
    // Narrowing itself below its child is refused while the child keeps more (the lineage rule).
    const below = await asParent(parent.key, parent.id, { resources: ["m1"], expires_at: inAnHour() });
    expect((await expectProblem(below, 409, "conflict")).key_ids).toEqual([child.id]);
    const first = await asParent(parent.key, child.id, { resources: ["m1"], expires_at: inAnHour() });
    expect(first.status).toBe(200);
    const self = await asParent(parent.key, parent.id, { resources: ["m1"], expires_at: inAnHour() });
    expect(self.status).toBe(200);
  });

  it("a person may set anything on keys they manage", async () => {
    const { jwt, parent, child } = await parentAndChild();
    for (const id of [parent.id, child.id]) {
      const response = await patch(id, jwt, { scopes: ["*"], resources: null, expires_at: null, allowed_ips: null });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({
        scopes: ["*"],
        resources: null,
        expires_at: null,
        allowed_ips: null,
      });
    }
  });

  it("a key needs keys:write to change keys", async () => {
    const { jwt } = await person();
    const reader = await createKey(jwt, { scopes: ["keys:read"] });
    const refused = await expectProblem(await patch(reader.id, reader.key, { name: "x" }), 403);
    expect(refused.detail).toMatch(/keys:write/);
  });
});

describe("POST /v1/keys/{id}/rotate", () => {
  afterEach(() => vi.useRealTimers());

  it("without grace: a new key shown once, copying the old key's settings; the old key stops at once", async () => {
    const { jwt } = await person();
    const expires = inADay();
    const old = await createKey(jwt, {
      name: "ci",
      scopes: ["models:invoke"],
      resources: ["m1"],
      metadata: { team: "ml" },
      expires_at: expires,
      allowed_ips: ["2001:db8::/32"],
    });
    const response = await rotate(old.id, jwt);
    expect(response.status).toBe(201);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const created = await response.json<KeyView & { key: string }>();
    expect(response.headers.get("location")).toBe(`/v1/keys/${created.id}`);
    expect(created).toMatchObject({
      name: "ci",
      scopes: ["models:invoke"],
      resources: ["m1"],
      metadata: { team: "ml" },
      expires_at: new Date(expires).toISOString(),
      allowed_ips: ["2001:db8::/32"],
      owner_id: old.owner_id,
      owner_type: "user",
      rotated_from: old.id,
      enabled: true,
    });
    expect(created.id).not.toBe(old.id);
    expect(created.key).not.toBe(old.key);
    expect(await (await call("GET", `/v1/keys/${created.id}`, { auth: jwt })).json()).not.toHaveProperty("key");

    expect((await verify(old.key, { ip: "2001:db8::7" })).code).toBe("EXPIRED");
    expect((await verify(created.key, { ip: "2001:db8::7" })).code).toBe("VALID");
    const oldView = await (await call("GET", `/v1/keys/${old.id}`, { auth: jwt })).json<KeyView>();
    expect(Date.parse(oldView.expires_at ?? "")).toBeLessThanOrEqual(Date.now());
  });

  it("with grace: the old key works until the grace ends, then fails; the new one keeps working", async () => {
    const { jwt } = await person();
    const old = await createKey(jwt);
    vi.useFakeTimers({ toFake: ["Date"] });
    const start = Date.now();
    const response = await rotate(old.id, jwt, { grace_seconds: 3600 });
    expect(response.status).toBe(201);
    const created = await response.json<KeyView & { key: string }>();
    const oldView = await (await call("GET", `/v1/keys/${old.id}`, { auth: jwt })).json<KeyView>();
    expect(oldView.expires_at).toBe(new Date(start + 3_600_000).toISOString());

    vi.setSystemTime(start + 3_599_000);
    expect((await verify(old.key)).code).toBe("VALID");
    expect((await whoami(old.key)).status).toBe(200);
    vi.setSystemTime(start + 3_600_000);
    expect((await verify(old.key)).code).toBe("EXPIRED");
    await expectProblem(await whoami(old.key), 401);
    // Past the grace in a fresh isolate too (D1 holds the new expiry).
    isolateCache.clear();
    expect((await verify(old.key)).code).toBe("EXPIRED");
    expect((await verify(created.key)).code).toBe("VALID");
  });

  it("keeps the old key's own expiry when it comes before the grace ends", async () => {
    const { jwt } = await person();
    const expires = inAnHour();
    const old = await createKey(jwt, { expires_at: expires });
    expect((await rotate(old.id, jwt, { grace_seconds: 604800 })).status).toBe(201);
    const oldView = await (await call("GET", `/v1/keys/${old.id}`, { auth: jwt })).json<KeyView>();
    expect(oldView.expires_at).toBe(new Date(expires).toISOString());
    expect((await verify(old.key)).code).toBe("VALID");
  });

  it("refuses revoked (409) and expired (409) keys, bad grace (422), and others' keys (404), storing nothing", async () => {
    const { sub, jwt } = await person();
    const revoked = await createKey(jwt);
    await call("DELETE", `/v1/keys/${revoked.id}`, { auth: jwt });
    const live = await createKey(jwt);
    const foreign = await createKey(await token(uniqueSub()));
    const snapshot = await tableSnapshot();

    expect((await expectProblem(await rotate(revoked.id, jwt), 409)).detail).toMatch(/revoked/);
    for (const grace of [-1, 604801, 1.5, "60", null]) {
      const body = await expectProblem(await rotate(live.id, jwt, { grace_seconds: grace }), 422);
      expect(Object.keys(body.errors as object)).toEqual(["grace_seconds"]);
    }
    await expectProblem(await rotate(live.id, jwt, { grace: 10 }), 422);
    await expectProblem(await rotate(foreign.id, jwt), 404);
    expect(await tableSnapshot()).toEqual(snapshot);

    vi.useFakeTimers({ toFake: ["Date"] });
    const expiring = await createKey(jwt, { expires_at: inAnHour() });
    vi.setSystemTime(Date.now() + 3_600_001);
    const later = await token(sub); // the first token has expired by then
    expect((await expectProblem(await rotate(expiring.id, later), 409)).detail).toMatch(/expired/);
  });

  it("takes no body, or an empty one, as {} (grace 0); a body that is sent is still read as JSON", async () => {
    const { jwt } = await person();
    const path = (id: string) => `/v1/keys/${id}/rotate`;
    // No body and no Content-Type, as `curl -X POST` and many generated clients send it.
    const bare = await createKey(jwt);
    const noBody = await call("POST", path(bare.id), { auth: jwt });
    expect(noBody.status).toBe(201);
    expect(await noBody.json()).toMatchObject({ rotated_from: bare.id });
    expect((await verify(bare.key)).code).toBe("EXPIRED");
    // An empty body, with a JSON Content-Type or with another one.
    for (const type of ["application/json", "text/plain"]) {
      const empty = await createKey(jwt);
      const answer = await call("POST", path(empty.id), { auth: jwt, raw: "", headers: { "content-type": type } });
      expect(answer.status, type).toBe(201);
      expect((await verify(empty.key)).code).toBe("EXPIRED");
    }
    // A body that is sent must still be JSON, and valid: nothing is rotated otherwise.
    const live = await createKey(jwt);
    const snapshot = await tableSnapshot();
    const untyped = await call("POST", path(live.id), { auth: jwt, raw: '{"grace_seconds":60}' });
    await expectProblem(untyped, 415);
    const notJson = await call("POST", path(live.id), {
      auth: jwt,
      raw: " ",
      headers: { "content-type": "application/json" },
    });
    await expectProblem(notJson, 400);
    expect(await tableSnapshot()).toEqual(snapshot);
    // Other routes' bodies stay required.
    await expectProblem(await call("PATCH", `/v1/keys/${live.id}`, { auth: jwt }), 415);
  });

  it("a key cannot rotate a key stronger than itself (the new key would be stronger)", async () => {
    const { jwt } = await person();
    const strong = await createKey(jwt, { scopes: ["*"] });
    const weak = await createKey(jwt, { scopes: ["keys:write"] });
    const snapshot = await tableSnapshot([weak.id]); // its use writes its last_used_at
    expect((await expectProblem(await rotate(strong.id, weak.key), 403)).exceeded).toBe("scopes");
    expect(await tableSnapshot([weak.id])).toEqual(snapshot);
    // It may rotate itself: the new key has exactly its powers.
    const self = await rotate(weak.id, weak.key);
    expect(self.status).toBe(201);
    expect(await self.json()).toMatchObject({ scopes: ["keys:write"], created_by: `key:${weak.id}` });
  });
});

describe("who may change and rotate a key: the same rules as revoke", () => {
  it("only a workspace admin changes or rotates workspace keys; a member still manages their own", async () => {
    const org = uniqueSub("org");
    const admin = await token(uniqueSub(), { org }); // the helper's default with an org: roles ["admin"]
    const member = await token(uniqueSub(), { org, roles: ["member"] });
    const ws = await createKey(admin, { owner: "workspace" });
    const snapshot = await tableSnapshot();
    for (const body of [{ enabled: false }, { name: "renamed" }]) {
      expect((await expectProblem(await patch(ws.id, member, body), 403)).exceeded).toBe("role");
    }
    expect((await expectProblem(await rotate(ws.id, member), 403)).exceeded).toBe("role");
    expect(await tableSnapshot()).toEqual(snapshot);
    expect(await eventCount(ws.id)).toBe(1); // its creation only
    expect((await verify(ws.key)).code).toBe("VALID");

    const own = await createKey(member);
    expect((await patch(own.id, member, { name: "mine" })).status).toBe(200);
    expect((await rotate(own.id, member)).status).toBe(201);
    expect((await patch(ws.id, admin, { enabled: false })).status).toBe(200);
    expect((await rotate(ws.id, admin)).status).toBe(201);
  });

  it("a key may not change a key more powerful than itself, not even to narrow it within its own powers", async () => {
    const { jwt } = await person();
    const strong = await createKey(jwt, { scopes: ["*"] });
    const weak = await createKey(jwt, { scopes: ["keys:write"] });
    const snapshot = await tableSnapshot([weak.id]); // its use writes its last_used_at
    for (const body of [{ enabled: false }, { name: "renamed" }, { scopes: ["keys:write"] }]) {
      const refused = await expectProblem(await patch(strong.id, weak.key, body), 403);
      expect(refused.exceeded, JSON.stringify(body)).toBe("scopes");
    }
    expect(await tableSnapshot([weak.id])).toEqual(snapshot);
    expect((await verify(strong.key)).code).toBe("VALID");
  });
});

describe("rotating an imported key", () => {
  it("replaces it with a key in latchkey's own format; the imported key works through the grace", async () => {
    const { jwt } = await person();
    const legacy = `sk_live_${crypto.randomUUID().replace(/-/g, "").slice(0, 24)}`;
    const imported = await call("POST", "/v1/keys/import", {
      auth: jwt,
      env: envWith({ IMPORT_ALLOWED: "personal" }),
      body: { keys: [{ hash: await sha256Hex(legacy), name: "legacy", format: "opaque", scopes: ["models:invoke"] }] },
    });
    expect(imported.status).toBe(200);
    const id = (await imported.json<{ results: { id: string }[] }>()).results[0]!.id;
    expect((await verify(legacy)).code).toBe("VALID");

    const rotated = await rotate(id, jwt, { grace_seconds: 3600 });
    expect(rotated.status).toBe(201);
    const replacement = await rotated.json<KeyView & { key: string }>();
    expect(replacement).toMatchObject({ name: "legacy", scopes: ["models:invoke"], rotated_from: id });
    expect(replacement.key).not.toMatch(/^sk_live_/);
    const row = await env.DB.prepare("SELECT hash, format FROM api_keys WHERE id = ?").bind(replacement.id).first();
    expect(row).toEqual({ hash: await sha256Hex(replacement.key), format: null });
    expect((await verify(replacement.key)).code).toBe("VALID");
    expect((await verify(legacy)).code).toBe("VALID"); // within the grace
  });
});

describe("IP allow-lists", () => {
  it("are checked against CF-Connecting-IP on latchkey's own routes", async () => {
    const { jwt } = await person();
    const { key } = await createKey(jwt, { allowed_ips: ["192.0.2.0/24", "2001:db8:1::/48"] });
    for (const ip of ["192.0.2.0", "192.0.2.255", "::ffff:192.0.2.9", "2001:db8:1:ffff::1"]) {
      expect((await whoami(key, ip)).status, ip).toBe(200);
    }
    for (const ip of ["192.0.3.0", "2001:db8:2::1", "garbage", ""]) {
      const refused = await expectProblem(await whoami(key, ip), 401);
      expect(refused.detail, ip).toMatch(/address/);
    }
    await expectProblem(await whoami(key), 401); // no address at all
  });

  it("are checked against `ip` in POST /v1/verify; a key with a list fails without one", async () => {
    const { jwt } = await person();
    const { id, key } = await createKey(jwt, { allowed_ips: ["198.51.100.7"] });
    expect(await verify(key, { ip: "198.51.100.7" })).toMatchObject({ valid: true, code: "VALID" });
    expect(await verify(key, { ip: "198.51.100.8" })).toMatchObject({ valid: false, code: "IP_NOT_ALLOWED" });
    expect(await verify(key)).toEqual({ valid: false, code: "IP_NOT_ALLOWED", key_id: id });
    const open = await createKey(jwt);
    expect((await verify(open.key)).code).toBe("VALID");
    expect((await verify(open.key, { ip: "203.0.113.1" })).code).toBe("VALID");
  });

  it("a malformed `ip` in verification is a 422 naming it", async () => {
    const { key } = await createKey(await token(uniqueSub()));
    for (const ip of ["10.0.0.0/8", "1.2.3", "::g", 7]) {
      const body = await expectProblem(await call("POST", "/v1/verify", { body: { key, ip } }), 422);
      expect(Object.keys(body.errors as object)).toEqual(["ip"]);
    }
  });

  it("malformed lists are a 422 naming each bad entry, and nothing is stored", async () => {
    const jwt = await token(uniqueSub());
    const snapshot = await tableSnapshot();
    const bad = [
      "10.0.0.1/8",
      "256.0.0.1",
      "01.2.3.4",
      "1.2.3.4/33",
      "::/129",
      "fe80::1%eth0",
      "1:2:3:4:5:6:7:8:9",
      "x",
    ];
    const response = await call("POST", "/v1/keys", {
      auth: jwt,
      body: { name: "n", allowed_ips: ["10.0.0.0/8", ...bad] },
    });
    const body = await expectProblem(response, 422);
    expect(Object.keys(body.errors as object).sort()).toEqual(bad.map((_, i) => `allowed_ips.${i + 1}`).sort());
    const empty = await call("POST", "/v1/keys", { auth: jwt, body: { name: "n", allowed_ips: [] } });
    expect(Object.keys((await expectProblem(empty, 422)).errors as object)).toEqual(["allowed_ips"]);
    expect(await tableSnapshot()).toEqual(snapshot);
  });

  it("a key made by a key inherits its allow-list, and can only narrow it", async () => {
    const { jwt } = await person();
    const parent = await createKey(jwt, { scopes: ["keys:write", "models:invoke"], allowed_ips: ["10.0.0.0/8"] });
    const headers = { "cf-connecting-ip": "10.0.0.1" };
    const inherited = await call("POST", "/v1/keys", { auth: parent.key, body: { name: "c" }, headers });
    expect(await inherited.json()).toMatchObject({ allowed_ips: ["10.0.0.0/8"] });
    const wider = await call("POST", "/v1/keys", {
      auth: parent.key,
      body: { name: "c", allowed_ips: ["10.0.0.0/7"] },
      headers,
    });
    expect((await expectProblem(wider, 403)).exceeded).toBe("allowed_ips");
  });
});

describe("rows written before the lifecycle migration", () => {
  it("keep working: enabled, open to every address, never updated", async () => {
    const sub = uniqueSub();
    // A row with only the first migration's columns, as it was stored before 0005.
    const real = generateKey("lk");
    const id = crypto.randomUUID();
    await env.DB.prepare(
      "INSERT INTO api_keys (id, hash, start, name, owner_type, owner_id, scopes, resources, created_by, created_at, expires_at, revoked_at, last_used_at, metadata) VALUES (?, ?, ?, 'old', 'user', ?, '[\"*\"]', NULL, ?, ?, NULL, NULL, NULL, NULL)",
    )
      .bind(id, await sha256Hex(real), real.slice(0, 9), sub, `user:${sub}`, Date.now() - 86_400_000)
      .run();
    expect(await verify(real, { ip: "192.0.2.1" })).toMatchObject({ valid: true, code: "VALID", enabled: true });
    const view = await (await call("GET", `/v1/keys/${id}`, { auth: await token(sub) })).json<KeyView>();
    expect(view).toMatchObject({ enabled: true, allowed_ips: null, rotated_from: null });
    expect(view.updated_at).toBe(view.created_at);
    // And can be changed like any other.
    expect((await patch(id, await token(sub), { enabled: false })).status).toBe(200);
    expect((await verify(real)).code).toBe("DISABLED");
  });
});

describe("KeyService RPC", () => {
  const failure = (pending: Promise<unknown>): Promise<string> =>
    pending.then(
      () => {
        throw new Error("expected the call to fail");
      },
      (error: Error) => error.message,
    );

  it("updates, disables, rotates and verifies with `ip` as over HTTP, with coded errors", async () => {
    const keys = exports.KeyService;
    const owner = { type: "user", id: uniqueSub() } as const;
    const made = await keys.create(owner, { name: "rpc", allowed_ips: ["192.0.2.0/24"] });
    expect(await keys.verify(made.key, { ip: "192.0.2.1" })).toMatchObject({ code: "VALID", enabled: true });
    expect(await keys.verify(made.key)).toMatchObject({ code: "IP_NOT_ALLOWED" });

    const updated = await keys.update(owner, made.id, { name: "renamed", enabled: false });
    expect(updated).toMatchObject({ name: "renamed", enabled: false });
    expect(await keys.verify(made.key, { ip: "192.0.2.1" })).toEqual({
      valid: false,
      code: "DISABLED",
      key_id: made.id,
    });

    const rotated = await keys.rotate(owner, made.id, { grace_seconds: 0 });
    expect(rotated).toMatchObject({ name: "renamed", rotated_from: made.id, enabled: true });
    expect(await keys.verify(rotated.key, { ip: "192.0.2.1" })).toMatchObject({ code: "VALID" });

    expect(await failure(keys.update(owner, made.id, { allowed_ips: ["10.0.0.1/8"] }))).toMatch(
      /^\[invalid\] input: allowed_ips\.0: /,
    );
    expect(await failure(keys.rotate(owner, made.id, { grace_seconds: 604801 }))).toMatch(/^\[invalid\] options/);
    expect(await failure(keys.verify(made.key, { ip: "nope" }))).toMatch(/^\[invalid\] options: ip/);
    expect(await failure(keys.update({ type: "user", id: uniqueSub() }, made.id, { name: "x" }))).toMatch(
      /^\[not_found\]/,
    );
    await keys.revoke(owner, made.id);
    expect(await failure(keys.rotate(owner, made.id))).toMatch(/^\[conflict\] The key is revoked/);
    expect(await failure(keys.update(owner, made.id, { name: "x" }))).toMatch(/^\[conflict\]/);
  });
});
