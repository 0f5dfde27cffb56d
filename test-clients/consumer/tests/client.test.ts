/**
 * @latchkey/client's HTTP client against a running latchkey: every method, the problems it throws,
 * the verify cache, and the operations it calls checked against the served /openapi.json.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CLIENT_OPERATIONS,
  type ApiKey,
  type CreatedApiKey,
  LatchkeyClient,
  LatchkeyError,
  createClient,
} from "@latchkey/client";
import { BASE, countingFetch, token, uniqueSub } from "./helpers.js";

function clientFor(sub = uniqueSub()) {
  return createClient({ baseUrl: BASE, token: token(sub) });
}

async function rejection(promise: Promise<unknown>): Promise<LatchkeyError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof LatchkeyError, `expected a LatchkeyError, got ${String(error)}`);
    return error;
  }
  throw new Error("expected the call to fail");
}

describe("the HTTP client against latchkey", () => {
  it("creates, gets, lists, verifies and revokes a key", async () => {
    const sub = uniqueSub();
    const client = clientFor(sub);
    const created: CreatedApiKey = await client.create({
      name: "from the client",
      scopes: ["models:invoke"],
      resources: ["m1"],
      metadata: { plan: "pro" },
    });
    assert.match(created.key, /^lk_/);
    assert.equal(created.owner_id, sub);
    assert.deepEqual(created.scopes, ["models:invoke"]);

    const { key, ...view } = created;
    assert.deepEqual(await client.get(created.id), view);
    assert.deepEqual(await client.list(), { data: [view], next_cursor: null });
    assert.deepEqual(await client.whoami(), { principal: "user", owner_id: sub, owner_type: "user", org_id: null });

    const verdict = await client.verify(key, { scope: "models:invoke", resource: "m1" });
    assert.deepEqual(verdict, {
      valid: true,
      code: "VALID",
      key_id: created.id,
      owner: { type: "user", id: sub },
      scopes: ["models:invoke"],
      resources: ["m1"],
      expires_at: null,
      enabled: true,
    });
    assert.equal((await client.verify(key, { scope: "metrics:read" })).code, "INSUFFICIENT_SCOPE");
    assert.equal((await client.verify(key, { resource: "m2" })).code, "RESOURCE_NOT_ALLOWED");

    assert.equal(await client.revoke(created.id), undefined);
    assert.equal((await client.verify(key)).code, "REVOKED");
    assert.notEqual((await client.get(created.id)).revoked_at, null);
    assert.deepEqual((await client.list()).data, []);
    assert.deepEqual(
      (await client.list({ include_revoked: true })).data.map((k) => k.id),
      [created.id],
    );
  });

  it("revokes with { cascade: true }: the key, the keys it made and theirs; without it, only the key", async () => {
    const owner = clientFor();
    const verifier = new LatchkeyClient({ baseUrl: BASE });
    const parentScopes = ["keys:write", "keys:read", "models:invoke"];
    const make = async (maker: LatchkeyClient, name: string) => {
      const created = await maker.create({ name, scopes: parentScopes });
      return { created, client: createClient({ baseUrl: BASE, token: created.key }) };
    };
    const root = await make(owner, "root");
    const child = await make(root.client, "child");
    const grandchild = await make(child.client, "grandchild");
    const sibling = await make(owner, "sibling");
    const spared = await make(sibling.client, "spared");
    assert.equal(root.created.parent_id, null);
    assert.equal(child.created.parent_id, root.created.id);
    assert.equal(grandchild.created.parent_id, child.created.id);
    assert.equal((await owner.get(grandchild.created.id)).created_by, `key:${child.created.id}`);

    // Without cascade, the keys a key made live on.
    await owner.revoke(sibling.created.id);
    assert.equal((await verifier.verify(sibling.created.key)).code, "REVOKED");
    assert.equal((await verifier.verify(spared.created.key)).code, "VALID");

    await owner.revoke(root.created.id, { cascade: true });
    for (const { created } of [root, child, grandchild]) {
      assert.deepEqual(await verifier.verify(created.key), { valid: false, code: "REVOKED", key_id: created.id });
      assert.notEqual((await owner.get(created.id)).revoked_at, null);
    }
    assert.equal((await verifier.verify(spared.created.key)).code, "VALID");
  });

  it("lists by status, created_by and owner_type", async () => {
    const owner = clientFor();
    const active = await owner.create({ name: "active", scopes: ["keys:write", "models:invoke"] });
    const revoked = await owner.create({ name: "revoked" });
    await owner.revoke(revoked.id);
    const expired = await owner.create({ name: "expired", expires_at: new Date(Date.now() + 1_500).toISOString() });
    const made = await createClient({ baseUrl: BASE, token: active.key }).create({ name: "made by a key" });
    await new Promise((resolve) => setTimeout(resolve, 1_600));

    const names = async (options: Parameters<LatchkeyClient["list"]>[0]) =>
      (await owner.list(options)).data.map((k) => k.name);
    assert.deepEqual(await names({ status: "active" }), ["made by a key", "active"]);
    assert.deepEqual(await names({ status: "revoked" }), ["revoked"]);
    assert.deepEqual(await names({ status: "expired" }), ["expired"]);
    // No status: every key but the revoked ones, expired included (as before the filters).
    assert.deepEqual(await names({}), ["made by a key", "expired", "active"]);
    assert.deepEqual(await names({ include_revoked: true }), ["made by a key", "expired", "revoked", "active"]);
    assert.deepEqual(await names({ created_by: `key:${active.id}` }), ["made by a key"]);
    assert.deepEqual(await names({ created_by: `key:${active.id}`, status: "revoked" }), []);
    assert.deepEqual(await names({ owner_type: "user", status: "active" }), ["made by a key", "active"]);
    assert.deepEqual(await names({ owner_type: "workspace" }), []);
    assert.equal((await owner.get(made.id)).parent_id, active.id);
    assert.equal(expired.revoked_at, null);
  });

  it("verifies without a token", async () => {
    const created = await clientFor().create({ name: "anonymous verify" });
    const anonymous = new LatchkeyClient({ baseUrl: BASE });
    assert.equal((await anonymous.verify(created.key)).code, "VALID");
    assert.equal((await anonymous.verify("lk_nope")).code, "MALFORMED");
    const refused = await rejection(anonymous.list());
    assert.equal(refused.status, 401);
  });

  it("walks every page with pages(), newest first", async () => {
    const client = clientFor();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.unshift((await client.create({ name: `page ${i}` })).id);
    const pages: ApiKey[][] = [];
    for await (const page of client.pages({ limit: 2 })) pages.push(page.data);
    assert.deepEqual(
      pages.map((page) => page.length),
      [2, 2, 1],
    );
    assert.deepEqual(
      pages.flat().map((k) => k.id),
      ids,
    );
  });

  it("updates, disables, rotates and reads the audit log, of one key or of all, page by page", async () => {
    const client = clientFor();
    const created = await client.create({ name: "lifecycle", scopes: ["models:invoke"] });
    const other = await client.create({ name: "other" });
    const updated = await client.update(created.id, { name: "renamed", allowed_ips: ["203.0.113.0/24"] });
    assert.equal(updated.name, "renamed");
    assert.deepEqual(updated.allowed_ips, ["203.0.113.0/24"]);
    assert.equal((await client.update(created.id, { allowed_ips: null })).allowed_ips, null);
    assert.equal((await client.update(created.id, { enabled: false })).enabled, false);
    assert.equal((await client.verify(created.key)).code, "DISABLED");
    await client.update(created.id, { enabled: true });

    const rotated = await client.rotate(created.id, { grace_seconds: 60 });
    assert.equal(rotated.rotated_from, created.id);
    assert.equal((await client.verify(rotated.key)).code, "VALID");
    assert.equal((await client.verify(created.key)).code, "VALID", "the old key, within its grace period");
    const unknown = await rejection(client.rotate(crypto.randomUUID()));
    assert.equal(unknown.status, 404);

    const ofKey = await client.events({ keyId: created.id });
    assert.deepEqual(
      ofKey.data.map((event) => event.action),
      ["rotated", "enabled", "disabled", "updated", "updated", "created"],
    );
    assert.deepEqual(ofKey.data[0]?.changes.rotated_to, { old: null, new: rotated.id });
    const rotations = await client.events({ action: "rotated" });
    assert.deepEqual(
      rotations.data.map((event) => event.key_id),
      [created.id],
    );
    const pages: string[][] = [];
    for await (const page of client.eventPages({ limit: 3 })) pages.push(page.data.map((event) => event.id));
    assert.deepEqual(
      pages.map((page) => page.length),
      [3, 3, 2],
    );
    const all = (await client.events({ limit: 100 })).data;
    assert.deepEqual(
      pages.flat(),
      all.map((event) => event.id),
    );
    assert.ok(all.some((event) => event.key_id === other.id));
    // The six of `created`, and the creations of `other` and of the rotated key.
    assert.equal(all.length, 8);
  });

  it("adjusts a key's credits and reads its usage by outcome", async () => {
    const client = clientFor();
    const created = await client.create({ name: "metered", credits: { remaining: 2 } });
    assert.deepEqual(await client.credits(created.id, { op: "increment", amount: 3 }), { remaining: 5 });
    assert.deepEqual(await client.credits(created.id, { op: "decrement", amount: 4 }), { remaining: 1 });
    assert.equal((await client.verify(created.key)).code, "VALID");
    assert.equal((await client.verify(created.key)).code, "USAGE_EXCEEDED");
    assert.deepEqual(await client.credits(created.id, { op: "set", amount: 10 }), { remaining: 10 });
    const report = await client.usage(created.id, { granularity: "day" });
    assert.equal(report.key_id, created.id);
    assert.equal(report.granularity, "day");
    assert.ok(report.buckets.length >= 30, `${report.buckets.length} buckets`);
    const refused = await rejection(client.credits(crypto.randomUUID(), { op: "set", amount: 1 }));
    assert.equal(refused.status, 404);
    const invalid = await rejection(client.credits(created.id, { op: "set", amount: -1 }));
    assert.equal(invalid.status, 422);
    assert.ok(invalid.problem.errors?.amount);
  });

  it("throws LatchkeyError carrying latchkey's RFC 9457 problem", async () => {
    const client = clientFor();
    const missing = await rejection(client.get(crypto.randomUUID()));
    assert.equal(missing.status, 404);
    assert.equal(missing.problem.status, 404);
    assert.equal(missing.problem.code, "not_found");
    assert.equal(missing.problem.title, "Not found");

    const invalid = await rejection(client.create({ name: "", scopes: ["Not A Scope"] }));
    assert.equal(invalid.status, 422);
    assert.deepEqual(Object.keys(invalid.problem.errors ?? {}).sort(), ["name", "scopes.0"]);

    const badToken = await rejection(new LatchkeyClient({ baseUrl: BASE, token: "not-a-jwt" }).whoami());
    assert.equal(badToken.status, 401);
    assert.equal(badToken.unavailable, false);
  });

  it("sends an Idempotency-Key with every create, a new one per create unless given", async () => {
    const counting = countingFetch();
    const client = new LatchkeyClient({ baseUrl: BASE, token: token(uniqueSub()), fetch: counting.fetch });
    await client.create({ name: "one" });
    await client.create({ name: "two" });
    await client.create({ name: "three" }, { idempotencyKey: "my-own-key-123" });
    const sent = counting.calls.map((request) => request.headers.get("idempotency-key"));
    assert.equal(sent.length, 3);
    assert.match(sent[0] ?? "", /^[0-9a-f-]{36}$/);
    assert.notEqual(sent[0], sent[1]);
    assert.equal(sent[2], "my-own-key-123");
  });

  it("with a verify cache, reuses a VALID verdict (so a revocation shows only after the TTL) and asks afresh otherwise", async () => {
    const owner = clientFor();
    const created = await owner.create({ name: "cached", scopes: ["models:invoke"] });
    const counting = countingFetch();
    const cached = new LatchkeyClient({ baseUrl: BASE, fetch: counting.fetch, verifyCacheTtlMs: 10_000 });

    assert.equal((await cached.verify(created.key)).code, "VALID");
    assert.equal((await cached.verify(created.key)).code, "VALID");
    assert.equal(counting.calls.length, 1);
    // Other checks are other entries; a refusal that may change is never cached.
    assert.equal((await cached.verify(created.key, { scope: "metrics:read" })).code, "INSUFFICIENT_SCOPE");
    assert.equal((await cached.verify(created.key, { scope: "metrics:read" })).code, "INSUFFICIENT_SCOPE");
    assert.equal(counting.calls.length, 3);

    await owner.revoke(created.id);
    // The trade: the cached VALID outlives the revocation, for at most the TTL...
    assert.equal((await cached.verify(created.key)).code, "VALID");
    // ...while an uncached client sees it at once.
    assert.equal((await new LatchkeyClient({ baseUrl: BASE }).verify(created.key)).code, "REVOKED");
  });
});

describe("the client and the served /openapi.json", () => {
  /** Operations the client already knows that the server under test does not serve yet (the import contract). */
  const AWAITING_SERVER = new Set<string>([]);

  async function document() {
    const response = await fetch(`${BASE}/openapi.json`);
    assert.equal(response.status, 200);
    return (await response.json()) as {
      paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown> }>>;
      components: { schemas: Record<string, { properties?: Record<string, unknown>; required?: string[] }> };
    };
  }

  it("calls only operations the document declares", async () => {
    const { paths } = await document();
    const served = new Set(
      Object.entries(paths).flatMap(([path, methods]) =>
        Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
      ),
    );
    for (const operation of CLIENT_OPERATIONS) {
      if (AWAITING_SERVER.has(operation))
        assert.ok(!served.has(operation), `${operation} is served now: remove it from AWAITING_SERVER`);
      else assert.ok(served.has(operation), `${operation} is not in /openapi.json`);
    }
  });

  it("gets responses whose fields are exactly the document's", async () => {
    const { components } = await document();
    const fields = (schema: string) => {
      const found = components.schemas[schema];
      assert.ok(found?.properties, `no schema ${schema}`);
      return { all: Object.keys(found.properties).sort(), required: (found.required ?? []).sort() };
    };
    const client = clientFor();
    const created = await client.create({ name: "shape" });
    const check = (value: object, schema: string) => {
      const { all, required } = fields(schema);
      const present = Object.keys(value).sort();
      for (const field of required) assert.ok(present.includes(field), `${schema}: ${field} is missing`);
      for (const field of present) assert.ok(all.includes(field), `${schema}: ${field} is not in the document`);
    };
    check(created, "CreatedApiKey");
    check(await client.get(created.id), "ApiKey");
    check(await client.list(), "KeyList");
    check(await client.whoami(), "WhoAmI");
    check(await client.usage(created.id), "UsageReport");
    check(await client.update(created.id, { name: "shape 2" }), "ApiKey");
    const events = await client.events({ keyId: created.id });
    check(events, "EventList");
    for (const event of events.data) check(event, "AuditEvent");
    const rotated = await client.rotate(created.id, { grace_seconds: 60 });
    check(rotated, "CreatedApiKey");
    // A verdict is one of the union's sides: a live key's (its details) or a dead key's (code and id only).
    const union = components.schemas.VerifyResult as { anyOf?: { $ref: string }[]; oneOf?: { $ref: string }[] };
    assert.deepEqual((union.anyOf ?? union.oneOf ?? []).map((side) => side.$ref).sort(), [
      "#/components/schemas/VerifyRefusal",
      "#/components/schemas/VerifyVerdict",
    ]);
    const live = await client.verify(created.key);
    check(live, "VerifyVerdict");
    // A key without limits gets every field the document says is always there, and no other.
    assert.deepEqual(Object.keys(live).sort(), fields("VerifyVerdict").required);
    await client.revoke(rotated.id);
    await client.revoke(created.id);
    const dead = await client.verify(created.key);
    check(dead, "VerifyRefusal");
    assert.deepEqual(dead, { valid: false, code: "REVOKED", key_id: created.id });
    assert.deepEqual(await client.verify("lk_nope"), { valid: false, code: "MALFORMED", key_id: null });
  });
});
