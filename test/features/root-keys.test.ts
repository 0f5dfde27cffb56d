/**
 * Root keys over HTTP: an operator makes one; a backend then creates, lists, changes, rotates and
 * revokes the keys of any owner the root key covers, naming that owner in each request. Its
 * refusals (owner patterns, scopes, expiry, allow-list, revocation), and what no one else may do
 * with it: verify it as a product key, make root keys with it, or act for another owner without one.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/keys/hash";
import { call, createKey, envWith, expectProblem, token, uniqueSub, captureLogs, type CapturedLogs } from "../helpers";

// The service's log lines (info on changes, warnings on refusals) are captured, not printed: the run stays quiet.
let quiet: CapturedLogs;
beforeEach(() => {
  quiet = captureLogs();
});
afterEach(() => quiet.restore());

interface RootKeyBody {
  id: string;
  key: string;
  start: string;
  owners: string[];
  scopes: string[];
  created_by: string;
  revoked_at: string | null;
  rotated_from: string | null;
  expires_at: string | null;
}

const operator = () => token(uniqueSub("op"), { roles: ["operator"] });

async function rootKey(body: Record<string, unknown> = {}, auth?: string): Promise<RootKeyBody> {
  const response = await call("POST", "/v1/root-keys", {
    auth: auth ?? (await operator()),
    body: { name: "backend", ...body },
  });
  expect(response.status, await response.clone().text()).toBe(201);
  return response.json();
}

const create = (auth: string, body: Record<string, unknown>) =>
  call("POST", "/v1/keys", { auth, body: { name: "customer key", ...body } });

const verifyCode = async (key: string) =>
  (await (await call("POST", "/v1/verify", { body: { key } })).json<{ code: string }>()).code;

const listIds = async (auth: string, query: string) => {
  const response = await call("GET", `/v1/keys?${query}`, { auth });
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json<{ data: { id: string }[] }>()).data.map((k) => k.id);
};

describe("root keys: the happy path", () => {
  it("an operator makes a root key (shown once, no-store); with it a backend creates, lists and revokes a customer's keys over plain HTTP", async () => {
    const op = await operator();
    const response = await call("POST", "/v1/root-keys", { auth: op, body: { name: "billing backend" } });
    expect(response.status).toBe(201);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const root = await response.json<RootKeyBody>();
    expect(response.headers.get("location")).toBe(`/v1/root-keys/${root.id}`);
    expect(root.key.startsWith("lk_root_")).toBe(true);
    expect(root.start).toBe(root.key.slice(0, "lk_root_".length + 6));
    expect(root.owners).toEqual(["user:*", "workspace:*"]);
    expect(root.scopes).toEqual(["keys:read", "keys:write"]);
    // The key itself is stored nowhere: only its hash.
    const row = await env.DB.prepare("SELECT * FROM root_keys WHERE id = ?")
      .bind(root.id)
      .first<Record<string, unknown>>();
    expect(row?.hash).toBe(await sha256Hex(root.key));
    expect(JSON.stringify(row)).not.toContain(root.key);
    // Shown once: reading it back never shows the key.
    const read = await (await call("GET", `/v1/root-keys/${root.id}`, { auth: op })).json<Record<string, unknown>>();
    expect(read).not.toHaveProperty("key");
    expect(read.created_by).toMatch(/^user:op-/);

    const customer = uniqueSub("cust");
    const first = await create(root.key, { owner: "user", owner_id: customer });
    expect(first.status, await first.clone().text()).toBe(201);
    expect(first.headers.get("cache-control")).toBe("no-store");
    const one = await first.json<{
      id: string;
      key: string;
      owner_type: string;
      owner_id: string;
      created_by: string;
      parent_id: string | null;
    }>();
    expect(one).toMatchObject({
      owner_type: "user",
      owner_id: customer,
      created_by: `root:${root.id}`,
      parent_id: null,
    });
    expect(await verifyCode(one.key)).toBe("VALID");
    const two = await (await create(root.key, { owner: "user", owner_id: customer })).json<{ id: string }>();

    expect(await listIds(root.key, `owner_type=user&owner_id=${customer}`)).toEqual([two.id, one.id]);
    // The customer sees them as their own.
    const own = await token(customer);
    expect(await listIds(own, "")).toEqual([two.id, one.id]);

    expect((await call("DELETE", `/v1/keys/${one.id}`, { auth: root.key })).status).toBe(204);
    expect(await verifyCode(one.key)).toBe("REVOKED");
    expect(await listIds(root.key, `owner_type=user&owner_id=${customer}`)).toEqual([two.id]);
  });

  it("acts on every management route for an owner it covers: get, PATCH, rotate, credits, usage, events, import", async () => {
    const root = await rootKey({ owners: ["workspace:*"] });
    const ws = uniqueSub("acme");
    const created = await (
      await create(root.key, { owner: "workspace", owner_id: ws, credits: { remaining: 10 } })
    ).json<{
      id: string;
    }>();
    const get = await call("GET", `/v1/keys/${created.id}`, { auth: root.key });
    expect(get.status).toBe(200);
    const patched = await call("PATCH", `/v1/keys/${created.id}`, { auth: root.key, body: { name: "renamed" } });
    expect(await patched.json()).toMatchObject({ name: "renamed" });
    const credits = await call("POST", `/v1/keys/${created.id}/credits`, {
      auth: root.key,
      body: { op: "increment", amount: 5 },
    });
    expect(credits.status, await credits.clone().text()).toBe(200);
    expect((await call("GET", `/v1/keys/${created.id}/usage`, { auth: root.key })).status).toBe(200);
    const rotated = await call("POST", `/v1/keys/${created.id}/rotate`, { auth: root.key, body: {} });
    expect(rotated.status).toBe(201);
    expect(await rotated.json()).toMatchObject({
      owner_id: ws,
      created_by: `root:${root.id}`,
      rotated_from: created.id,
    });

    const events = await call("GET", `/v1/events?owner_type=workspace&owner_id=${ws}`, { auth: root.key });
    const log = await events.json<{ data: { actor: string; action: string }[] }>();
    expect(log.data.length).toBeGreaterThan(0);
    expect(log.data.every((e) => e.actor === `root:${root.id}`)).toBe(true);
    const keyEvents = await call("GET", `/v1/keys/${created.id}/events`, { auth: root.key });
    expect(keyEvents.status).toBe(200);

    const legacy = `sk_live_${crypto.randomUUID().replace(/-/g, "")}`;
    const imported = await call("POST", "/v1/keys/import", {
      auth: root.key,
      body: {
        keys: [{ name: "legacy", hash: await sha256Hex(legacy), format: "opaque", owner: "workspace", owner_id: ws }],
      },
    });
    expect(imported.status, await imported.clone().text()).toBe(200);
    expect(await imported.json()).toMatchObject({ imported: 1 });
    expect(await verifyCode(legacy)).toBe("VALID");
  });

  it("keys a root key created survive its revocation, which stops the root key at once", async () => {
    const op = await operator();
    const root = await rootKey({}, op);
    const customer = uniqueSub("cust");
    const made = await (
      await create(root.key, { owner: "user", owner_id: customer })
    ).json<{ id: string; key: string }>();
    expect(await listIds(root.key, `owner_type=user&owner_id=${customer}`)).toEqual([made.id]);

    expect((await call("DELETE", `/v1/root-keys/${root.id}`, { auth: op })).status).toBe(204);
    // At once, on every path: reads and writes alike.
    await expectProblem(
      await call("GET", `/v1/keys?owner_type=user&owner_id=${customer}`, { auth: root.key }),
      401,
      "key_revoked",
    );
    await expectProblem(await create(root.key, { owner: "user", owner_id: customer }), 401, "key_revoked");
    await expectProblem(await call("DELETE", `/v1/keys/${made.id}`, { auth: root.key }), 401, "key_revoked");
    // Its keys are their owner's, not in its lineage: still working.
    expect(await verifyCode(made.key)).toBe("VALID");
    const revoked = await (
      await call("GET", `/v1/root-keys/${root.id}`, { auth: op })
    ).json<{ revoked_at: string; revoked_by: string }>();
    expect(revoked.revoked_at).not.toBeNull();
    expect(revoked.revoked_by).toMatch(/^user:op-/);
    // Idempotent.
    expect((await call("DELETE", `/v1/root-keys/${root.id}`, { auth: op })).status).toBe(204);
  });

  it("operators list, read and rotate root keys; a rotation keeps the old one for its grace period", async () => {
    const op = await operator();
    const root = await rootKey({ owners: ["user:*"], scopes: ["keys:read"] }, op);
    const listed = await (
      await call("GET", "/v1/root-keys?limit=100", { auth: op })
    ).json<{ data: { id: string }[] }>();
    expect(listed.data.map((r) => r.id)).toContain(root.id);

    const rotated = await call("POST", `/v1/root-keys/${root.id}/rotate`, { auth: op, body: { grace_seconds: 60 } });
    expect(rotated.status).toBe(201);
    expect(rotated.headers.get("cache-control")).toBe("no-store");
    const next = await rotated.json<RootKeyBody>();
    expect(next).toMatchObject({ owners: ["user:*"], scopes: ["keys:read"], rotated_from: root.id });
    expect(next.key).not.toBe(root.key);
    const customer = uniqueSub("cust");
    // Both work during the grace period.
    expect(await listIds(next.key, `owner_type=user&owner_id=${customer}`)).toEqual([]);
    expect(await listIds(root.key, `owner_type=user&owner_id=${customer}`)).toEqual([]);
    const old = await (await call("GET", `/v1/root-keys/${root.id}`, { auth: op })).json<RootKeyBody>();
    expect(Date.parse(old.expires_at ?? "")).toBeGreaterThan(Date.now());

    // Without grace, the old one stops at once.
    const again = await (await call("POST", `/v1/root-keys/${next.id}/rotate`, { auth: op })).json<RootKeyBody>();
    await expectProblem(
      await call("GET", `/v1/keys?owner_type=user&owner_id=${customer}`, { auth: next.key }),
      401,
      "key_expired",
    );
    expect(await listIds(again.key, `owner_type=user&owner_id=${customer}`)).toEqual([]);
    await expectProblem(await call("POST", `/v1/root-keys/${next.id}/rotate`, { auth: op }), 409, "conflict");
  });

  it("the list takes only its own cursors: a time and a key id, nothing after them (else a 400 naming cursor)", async () => {
    const op = await operator();
    const cursor = (items: unknown[]) =>
      btoa(JSON.stringify(items)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
    const id = crypto.randomUUID();
    expect((await call("GET", `/v1/root-keys?cursor=${cursor([Date.now(), id])}`, { auth: op })).status).toBe(200);
    const longer = await call("GET", `/v1/root-keys?cursor=${cursor([Date.now(), id, "more"])}`, { auth: op });
    expect((await expectProblem(longer, 400)).errors).toHaveProperty("cursor");
  });

  it("a rotation never extends a root key: the grace ends no later than its own expiry, which the replacement keeps", async () => {
    const op = await operator();
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const root = await rootKey({ expires_at: expiresAt }, op);
    const next = await (
      await call("POST", `/v1/root-keys/${root.id}/rotate`, { auth: op, body: { grace_seconds: 604_800 } })
    ).json<RootKeyBody>();
    expect(next.expires_at).toBe(expiresAt);
    const old = await (await call("GET", `/v1/root-keys/${root.id}`, { auth: op })).json<RootKeyBody>();
    expect(old.expires_at).toBe(expiresAt);
    const revoked = await rootKey({}, op);
    expect((await call("DELETE", `/v1/root-keys/${revoked.id}`, { auth: op })).status).toBe(204);
    await expectProblem(await call("POST", `/v1/root-keys/${revoked.id}/rotate`, { auth: op }), 409, "conflict");
  });
});

describe("root keys: refusals", () => {
  it("without owner_id (or the owner's type) a root key is refused with 422 naming the field, never defaulted", async () => {
    const root = await rootKey();
    const missingId = await expectProblem(await create(root.key, { owner: "user" }), 422);
    expect(missingId.errors).toHaveProperty("owner_id");
    const missingType = await expectProblem(await create(root.key, { owner_id: "cust_42" }), 422);
    expect(missingType.errors).toHaveProperty("owner");
    const list = await expectProblem(await call("GET", "/v1/keys?owner_type=user", { auth: root.key }), 422);
    expect(list.errors).toHaveProperty("owner_id");
    const events = await expectProblem(await call("GET", "/v1/events", { auth: root.key }), 422);
    expect(events.errors).toHaveProperty("owner_id");
    expect(events.errors).toHaveProperty("owner_type");
    const imported = await expectProblem(
      await call("POST", "/v1/keys/import", {
        auth: root.key,
        body: { keys: [{ name: "legacy", hash: "a".repeat(64), format: "opaque", owner: "user" }] },
      }),
      422,
    );
    expect(imported.errors).toHaveProperty(["keys.0.owner_id"]);
  });

  it("owner patterns: outside them, 403 naming owner_id; a key of an owner outside them is not found", async () => {
    const acme = uniqueSub("acme");
    const root = await rootKey({ owners: [`workspace:${acme}`] });
    expect((await create(root.key, { owner: "workspace", owner_id: acme })).status).toBe(201);
    for (const [owner, id] of [
      ["workspace", `${acme}-other`],
      ["user", acme],
    ] as const) {
      const refused = await expectProblem(await create(root.key, { owner, owner_id: id }), 403, "forbidden");
      expect(refused.exceeded).toBe("owner_id");
      await expectProblem(await call("GET", `/v1/keys?owner_type=${owner}&owner_id=${id}`, { auth: root.key }), 403);
      await expectProblem(await call("GET", `/v1/events?owner_type=${owner}&owner_id=${id}`, { auth: root.key }), 403);
    }
    const imported = await expectProblem(
      await call("POST", "/v1/keys/import", {
        auth: root.key,
        body: {
          keys: [{ name: "legacy", hash: "b".repeat(64), format: "opaque", owner: "user", owner_id: "someone" }],
        },
      }),
      403,
    );
    expect(imported.exceeded).toBe("keys.0.owner_id");
    // Someone else's key, by id: not found, as for anyone who cannot see it.
    const other = await createKey(await token(uniqueSub()));
    await expectProblem(await call("GET", `/v1/keys/${other.id}`, { auth: root.key }), 404, "not_found");
    await expectProblem(await call("DELETE", `/v1/keys/${other.id}`, { auth: root.key }), 404, "not_found");
    expect(await verifyCode(other.key)).toBe("VALID");
  });

  it("scopes: keys:read cannot write, keys:write cannot read", async () => {
    const writer = await rootKey({ scopes: ["keys:write"] });
    const reader = await rootKey({ scopes: ["keys:read"] });
    const customer = uniqueSub("cust");
    const made = await (await create(writer.key, { owner: "user", owner_id: customer })).json<{ id: string }>();
    const readRefused = await expectProblem(
      await call("GET", `/v1/keys?owner_type=user&owner_id=${customer}`, { auth: writer.key }),
      403,
      "insufficient_scope",
    );
    expect(readRefused.exceeded).toBe("scopes");
    await expectProblem(await call("GET", `/v1/keys/${made.id}`, { auth: writer.key }), 403, "insufficient_scope");
    await expectProblem(await create(reader.key, { owner: "user", owner_id: customer }), 403, "insufficient_scope");
    await expectProblem(await call("DELETE", `/v1/keys/${made.id}`, { auth: reader.key }), 403, "insufficient_scope");
    expect(await listIds(reader.key, `owner_type=user&owner_id=${customer}`)).toEqual([made.id]);
  });

  it("an expired root key is refused; one with an allow-list only from its addresses", async () => {
    const op = await operator();
    const soon = await rootKey({ expires_at: new Date(Date.now() + 60_000).toISOString() }, op);
    await env.DB.prepare("UPDATE root_keys SET expires_at = ? WHERE id = ?")
      .bind(Date.now() - 1, soon.id)
      .run();
    await expectProblem(await create(soon.key, { owner: "user", owner_id: "cust_42" }), 401, "key_expired");

    const fenced = await rootKey({ allowed_ips: ["203.0.113.0/24"] }, op);
    const from = (ip: string) =>
      call("GET", "/v1/keys?owner_type=user&owner_id=cust_42", {
        auth: fenced.key,
        headers: { "cf-connecting-ip": ip },
      });
    expect((await from("203.0.113.9")).status).toBe(200);
    await expectProblem(await from("198.51.100.1"), 401, "key_ip_not_allowed");
  });

  it("bad root key settings are refused with 422 naming the field", async () => {
    const op = await operator();
    for (const [field, value] of [
      ["owners", ["user:cust_*"]],
      ["owners", ["team:*"]],
      ["owners", ["*"]],
      ["scopes", ["keys:*"]],
      ["scopes", ["*"]],
      ["expires_at", "2001-01-01T00:00:00Z"],
      ["allowed_ips", ["not an address"]],
    ] as const) {
      const problem = await expectProblem(
        await call("POST", "/v1/root-keys", { auth: op, body: { name: "bad", [field]: value } }),
        422,
      );
      expect(Object.keys(problem.errors as object).join(), `${field}: ${JSON.stringify(value)}`).toContain(field);
    }
  });
});

describe("root keys: security", () => {
  it("only an operator manages root keys; the role gives nothing else", async () => {
    const person = await token(uniqueSub());
    await expectProblem(
      await call("POST", "/v1/root-keys", { auth: person, body: { name: "x" } }),
      403,
      "operator_required",
    );
    await expectProblem(await call("GET", "/v1/root-keys", { auth: person }), 403, "operator_required");
    const root = await rootKey();
    await expectProblem(await call("DELETE", `/v1/root-keys/${root.id}`, { auth: person }), 403, "operator_required");
    await expectProblem(await call("GET", `/v1/root-keys/${root.id}`, { auth: person }), 403, "operator_required");
    await expectProblem(
      await call("POST", `/v1/root-keys/${root.id}/rotate`, { auth: person }),
      403,
      "operator_required",
    );

    // An operator's JWT acts for the operator alone on /v1/keys.
    const op = await operator();
    const someone = await createKey(await token(uniqueSub()));
    await expectProblem(await create(op, { owner: "user", owner_id: "cust_42" }), 403, "forbidden");
    await expectProblem(await call("GET", "/v1/keys?owner_id=cust_42", { auth: op }), 403, "forbidden");
    await expectProblem(await call("DELETE", `/v1/keys/${someone.id}`, { auth: op }), 404, "not_found");
    expect(await verifyCode(someone.key)).toBe("VALID");
  });

  it("a root key cannot make, read or revoke root keys, nor be made through /v1/keys", async () => {
    const root = await rootKey();
    await expectProblem(
      await call("POST", "/v1/root-keys", { auth: root.key, body: { name: "x" } }),
      401,
      "token_required",
    );
    await expectProblem(await call("GET", "/v1/root-keys", { auth: root.key }), 401, "token_required");
    await expectProblem(await call("DELETE", `/v1/root-keys/${root.id}`, { auth: root.key }), 401, "token_required");
    // /v1/keys makes product keys only: a root key's fields are not among its own.
    const problem = await expectProblem(
      await create(root.key, { owner: "user", owner_id: "cust_42", owners: ["user:*"] }),
      422,
    );
    expect(problem.errors).toHaveProperty("owners");
    const made = await (await create(root.key, { owner: "user", owner_id: uniqueSub("cust") })).json<{ key: string }>();
    expect(made.key.startsWith("lk_root_")).toBe(false);
    const count = await env.DB.prepare("SELECT COUNT(*) AS n FROM root_keys WHERE id = ?")
      .bind(root.id)
      .first<{ n: number }>();
    expect(count?.n).toBe(1);
  });

  it("a root key never verifies as a product key: /v1/verify and a dialect answer NOT_FOUND / refuse it", async () => {
    const root = await rootKey();
    expect(await verifyCode(root.key)).toBe("NOT_FOUND");
    for (const scope of ["keys:read", "keys:write"]) {
      const verdict = await (
        await call("POST", "/v1/verify", { body: { key: root.key, scope } })
      ).json<{ valid: boolean; code: string }>();
      expect(verdict).toMatchObject({ valid: false, code: "NOT_FOUND" });
    }
    // A malformed root key is malformed, refused before any storage.
    const broken = root.key.slice(0, -1) + (root.key.endsWith("A") ? "B" : "A");
    expect(await verifyCode(broken)).toBe("MALFORMED");
    await expectProblem(
      await call("GET", "/v1/keys?owner_type=user&owner_id=x", { auth: broken }),
      401,
      "key_malformed",
    );
    // As a product key it authenticates nothing: whoami is for people and keys.
    await expectProblem(await call("GET", "/v1/whoami", { auth: root.key }), 403);
  });

  it("a person's JWT or a customer's key naming another owner_id is refused (403), and nothing changes", async () => {
    const sub = uniqueSub();
    const person = await token(sub);
    const own = await create(person, { owner_id: sub });
    expect(own.status).toBe(201);
    for (const body of [
      { owner_id: "cust_42" },
      { owner: "user", owner_id: "cust_42" },
      { owner: "workspace", owner_id: "cust_42" },
    ]) {
      const refused = await create(person, body);
      expect(refused.status, JSON.stringify(body)).toBe(403);
    }
    const org = uniqueSub("org");
    const admin = await token(uniqueSub(), { org });
    expect((await create(admin, { owner: "workspace", owner_id: org })).status).toBe(201);
    await expectProblem(await create(admin, { owner: "workspace", owner_id: `${org}-other` }), 403, "forbidden");
    expect((await call("GET", `/v1/keys?owner_type=workspace&owner_id=${org}`, { auth: admin })).status).toBe(200);
    await expectProblem(
      await call("GET", `/v1/events?owner_type=workspace&owner_id=${org}-other`, { auth: admin }),
      403,
    );

    const key = await createKey(person, { scopes: ["keys:read", "keys:write"] });
    const byKey = await expectProblem(await create(key.key, { owner_id: "cust_42" }), 403, "forbidden");
    expect(byKey.exceeded).toBe("owner_id");
    await expectProblem(await call("GET", "/v1/keys?owner_id=cust_42", { auth: key.key }), 403, "forbidden");
    expect(await listIds(key.key, `owner_id=${sub}`)).toContain(key.id);
    const theirs = await token("cust_42");
    expect(await listIds(theirs, "")).toEqual([]);
  });

  it("a deployment's ROOT_KEY_PREFIX is the root keys' prefix; one colliding with a key prefix is refused", async () => {
    const custom = envWith({ ROOT_KEY_PREFIX: "lkadmin" });
    const op = await operator();
    const made = await call("POST", "/v1/root-keys", { auth: op, body: { name: "x" }, env: custom });
    const root = await made.json<RootKeyBody>();
    expect(root.key.startsWith("lkadmin_")).toBe(true);
    const listed = await call("GET", "/v1/keys?owner_type=user&owner_id=cust_42", { auth: root.key, env: custom });
    expect(listed.status).toBe(200);

    // ROOT_KEY_PREFIX equal to the key prefix falls back to the default.
    const colliding = envWith({ ROOT_KEY_PREFIX: "lk" });
    const fallback = await (
      await call("POST", "/v1/root-keys", { auth: op, body: { name: "y" }, env: colliding })
    ).json<RootKeyBody>();
    expect(fallback.key.startsWith("lk_root_")).toBe(true);
  });

  it("RPC names the owner in each call: an input naming another owner_id is refused, the named one accepted", async () => {
    const keys = exports.KeyService;
    const owner = { type: "user", id: uniqueSub("cust") } as const;
    const made = await keys.create(owner, { name: "rpc", owner: "user", owner_id: owner.id });
    expect(made).toMatchObject({ owner_id: owner.id, created_by: "service" });
    const refused = await keys.create(owner, { name: "rpc", owner_id: "cust_42" }).then(
      () => "created",
      (error: Error) => error.message,
    );
    expect(refused).toMatch(/^\[forbidden\] owner_id:/);
    const listed = await keys.list(owner, { owner_id: owner.id });
    expect(listed.data.map((k) => k.id)).toEqual([made.id]);
    const other = await keys.list(owner, { owner_id: "cust_42" }).then(
      () => "listed",
      (error: Error) => error.message,
    );
    expect(other).toMatch(/^\[forbidden\]/);
  });

  it("a dialect's routes take a root key only as /v1/keys does: no owner named, nothing made", async () => {
    const root = await rootKey();
    const response = await call("POST", "/api/auth/api-keys/", { auth: root.key, body: { name: "x" } });
    expect(response.status).toBe(422);
    expect(await response.text()).toContain("owner_id");
  });
});

describe("root keys: per-customer limits", () => {
  it("set an owner's limits it covers (keys:write), read them with keys:read, and are refused outside", async () => {
    const customer = uniqueSub("cust");
    const path = `/v1/owners/workspace/${customer}/limits`;
    const writer = await rootKey({ owners: ["workspace:*"] });
    const put = await call("PUT", path, { auth: writer.key, body: { credits: { remaining: 3 } } });
    expect(put.status, await put.clone().text()).toBe(200);
    expect((await put.json<{ credits: { remaining: number } }>()).credits.remaining).toBe(3);

    // The customer's keys spend from the shared balance the root key set.
    const customerKey = await (
      await create(writer.key, { owner: "workspace", owner_id: customer })
    ).json<{ key: string }>();
    expect(await verifyCode(customerKey.key)).toBe("VALID");
    const reader = await rootKey({ owners: [`workspace:${customer}`], scopes: ["keys:read"] });
    const got = await call("GET", path, { auth: reader.key });
    expect(got.status).toBe(200);
    expect((await got.json<{ credits: { remaining: number } }>()).credits.remaining).toBe(2);
    await expectProblem(await call("PUT", path, { auth: reader.key, body: { credits: null } }), 403);

    // Owners outside the patterns: refused, and nothing changes.
    const usersOnly = await rootKey({ owners: ["user:*"] });
    await expectProblem(await call("PUT", path, { auth: usersOnly.key, body: { credits: null } }), 403);
    await expectProblem(await call("GET", path, { auth: usersOnly.key }), 403);
    const after = await call("GET", path, { auth: writer.key });
    expect((await after.json<{ credits: { remaining: number } }>()).credits.remaining).toBe(2);
  });
});
