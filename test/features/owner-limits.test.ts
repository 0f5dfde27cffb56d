/**
 * Per-customer limits over HTTP (and RPC): an owner's rate limits and credits are shared exactly by
 * all its keys under concurrency, on top of each key's own; the verdict and the 429 say whose limit
 * refused; clearing them; who may read and change them; caches learn of a change at once here (the
 * feed); other owners' keys pay nothing; credits operations, usage per owner and the audit log.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { requireOwnerLimitsAccess } from "../../src/service/owner-rules";
import { ownerLimitsAfter } from "../../src/keys/owner-usage";
import { sha256Hex } from "../../src/keys/hash";
import { isolateCache } from "../../src/service/verify";
import { call, createKey, expectProblem, token, uniqueSub } from "../helpers";

const verify = async (body: Record<string, unknown>) => {
  const response = await call("POST", "/v1/verify", { body });
  expect(response.status).toBe(200);
  return response.json<Record<string, unknown>>();
};

const codes = (verdicts: Record<string, unknown>[]) =>
  verdicts.reduce<Record<string, number>>((n, v) => ({ ...n, [String(v.code)]: (n[String(v.code)] ?? 0) + 1 }), {});

/** A workspace with an admin's token and two keys of its own. */
async function workspace(keyBodies: Record<string, unknown>[] = [{}, {}]) {
  const org = uniqueSub("org");
  const admin = await token(uniqueSub(), { org });
  const keys = [];
  for (const body of keyBodies) keys.push(await createKey(admin, { owner: "workspace", ...body }));
  return { org, admin, keys, path: `/v1/owners/workspace/${org}` };
}

async function putLimits(auth: string, path: string, body: Record<string, unknown>) {
  const response = await call("PUT", `${path}/limits`, { auth, body });
  expect(response.status, await response.clone().text()).toBe(200);
  return response.json<Record<string, unknown>>();
}

describe("an owner's limits are shared by all its keys", () => {
  it("two keys share the owner's credits exactly: 50 parallel verifications against 20 credits give 20 VALID", async () => {
    const { admin, keys, path } = await workspace();
    const view = await putLimits(admin, path, { credits: { remaining: 20 } });
    expect(view).toMatchObject({ ratelimits: [], credits: { remaining: 20, refill: null } });
    const [a, b] = keys;
    const verdicts = await Promise.all(
      Array.from({ length: 50 }, (_, i) => verify({ key: (i % 2 === 0 ? a : b)!.key })),
    );
    expect(codes(verdicts)).toEqual({ VALID: 20, USAGE_EXCEEDED: 30 });
    for (const verdict of verdicts.filter((v) => v.code === "USAGE_EXCEEDED")) {
      expect(verdict).toMatchObject({ valid: false, limited_by: "owner", owner_limits: { credits: { remaining: 0 } } });
      // The key has no limits of its own: nothing of its own is shown.
      expect(verdict).not.toHaveProperty("credits");
    }
    expect(verdicts.find((v) => v.code === "VALID")).not.toHaveProperty("limited_by");
    const after = await call("GET", `${path}/limits`, { auth: admin });
    expect(await after.json()).toMatchObject({ credits: { remaining: 0 } });
  });

  it("a rate limit is shared: 5 a minute across two keys admits exactly 5 of 12", async () => {
    const { admin, keys, path } = await workspace();
    await putLimits(admin, path, { ratelimits: [{ name: "minute", limit: 5, duration_ms: 60_000 }] });
    const verdicts = await Promise.all(Array.from({ length: 12 }, (_, i) => verify({ key: keys[i % 2]!.key })));
    expect(codes(verdicts)).toEqual({ VALID: 5, RATE_LIMITED: 7 });
    expect(verdicts.find((v) => v.code === "RATE_LIMITED")).toMatchObject({
      limited_by: "owner",
      owner_limits: { ratelimits: [{ name: "minute", limit: 5, remaining: 0 }] },
    });
  });

  it("the key's own limit still applies, and what it refuses never reaches the owner's balance", async () => {
    const { admin, keys, path } = await workspace([{ credits: { remaining: 3 } }, {}]);
    await putLimits(admin, path, { credits: { remaining: 20 } });
    const verdicts = await Promise.all(Array.from({ length: 10 }, () => verify({ key: keys[0]!.key })));
    expect(codes(verdicts)).toEqual({ VALID: 3, USAGE_EXCEEDED: 7 });
    const refused = verdicts.find((v) => v.code === "USAGE_EXCEEDED");
    expect(refused).toMatchObject({ limited_by: "key", credits: { remaining: 0 } });
    expect(refused).not.toHaveProperty("owner_limits");
    expect(verdicts.find((v) => v.code === "VALID")).toMatchObject({ owner_limits: { credits: {} } });
    const owner = await call("GET", `${path}/limits`, { auth: admin });
    expect(await owner.json()).toMatchObject({ credits: { remaining: 17 } });
  });

  it("when the owner's limit refuses, the key's own credits are given back exactly", async () => {
    const { admin, keys, path } = await workspace([{ credits: { remaining: 100 } }]);
    await putLimits(admin, path, { credits: { remaining: 5 } });
    const verdicts = await Promise.all(Array.from({ length: 12 }, () => verify({ key: keys[0]!.key })));
    expect(codes(verdicts)).toEqual({ VALID: 5, USAGE_EXCEEDED: 7 });
    expect(verdicts.find((v) => v.code === "USAGE_EXCEEDED")).toMatchObject({ limited_by: "owner" });
    const key = await call("GET", `/v1/keys/${keys[0]!.id}`, { auth: admin });
    expect(await key.json()).toMatchObject({ credits: { remaining: 95 } });
  });

  it("latchkey's own routes answer 429 naming the owner's limit", async () => {
    const { admin, keys, path } = await workspace([{ scopes: ["keys:read"] }]);
    await putLimits(admin, path, { ratelimits: [{ name: "burst", limit: 1, duration_ms: 60_000 }] });
    expect((await call("GET", "/v1/whoami", { auth: keys[0]!.key })).status).toBe(200);
    const refused = await call("GET", "/v1/whoami", { auth: keys[0]!.key });
    const problem = await expectProblem(refused, 429, "key_rate_limited");
    expect(problem).toMatchObject({
      limited_by: "owner",
      owner_limits: { ratelimits: [{ name: "burst", remaining: 0 }] },
    });
    expect(refused.headers.get("RateLimit-Limit")).toBe("1");
    expect(refused.headers.get("Retry-After")).not.toBeNull();
  });

  it("a key verified before the owner got limits learns them at once; clearing them frees the keys", async () => {
    const { admin, keys, path } = await workspace([{}]);
    const key = keys[0]!.key;
    expect(await verify({ key })).not.toHaveProperty("owner_limits");
    await putLimits(admin, path, { credits: { remaining: 1 } });
    expect(await verify({ key })).toMatchObject({ code: "VALID", owner_limits: { credits: { remaining: 0 } } });
    expect(await verify({ key })).toMatchObject({ code: "USAGE_EXCEEDED", limited_by: "owner" });
    const cleared = await putLimits(admin, path, { credits: null, ratelimits: null });
    expect(cleared).toMatchObject({ ratelimits: [], credits: null, updated_at: null });
    const free = await verify({ key });
    expect(free).toMatchObject({ code: "VALID" });
    expect(free).not.toHaveProperty("owner_limits");
  });

  it("a key created after the owner got limits is metered from its first verification", async () => {
    const { admin, path } = await workspace([]);
    await putLimits(admin, path, { credits: { remaining: 1 } });
    const late = await createKey(admin, { owner: "workspace" });
    expect(await verify({ key: late.key })).toMatchObject({
      code: "VALID",
      owner_limits: { credits: { remaining: 0 } },
    });
    expect(await verify({ key: late.key })).toMatchObject({ code: "USAGE_EXCEEDED", limited_by: "owner" });
  });

  it("a key of an owner without limits carries nothing for them in its cached record; one with them does", async () => {
    const plain = await workspace([{}]);
    const limited = await workspace([{}]);
    await putLimits(limited.admin, limited.path, { credits: { remaining: 5 } });
    const cached = async (key: string) => {
      await verify({ key });
      return isolateCache.records.get(await sha256Hex(key), Date.now())?.record;
    };
    const record = await cached(plain.keys[0]!.key);
    expect(record).toBeDefined();
    expect(Object.keys(record!)).not.toContain("ownerLimits");
    expect((await cached(limited.keys[0]!.key))?.ownerLimits).toMatchObject({ credits: { remaining: 5 } });
  });

  it("a key of another owner is unaffected", async () => {
    const limited = await workspace([{}]);
    await putLimits(limited.admin, limited.path, { credits: { remaining: 0 } });
    const other = await workspace([{}]);
    const verdicts = await Promise.all(Array.from({ length: 5 }, () => verify({ key: other.keys[0]!.key })));
    expect(codes(verdicts)).toEqual({ VALID: 5 });
    for (const verdict of verdicts) expect(verdict).not.toHaveProperty("owner_limits");
    expect(await verify({ key: limited.keys[0]!.key })).toMatchObject({ code: "USAGE_EXCEEDED" });
  });
});

describe("who may read and change an owner's limits", () => {
  it("refuses a member without the admin role, an admin of another workspace, a person for a personal owner, and a key (403)", async () => {
    const { org, keys, path } = await workspace([{ scopes: ["keys:read", "keys:write"] }]);
    const member = await token(uniqueSub(), { org, roles: [] });
    const stranger = await token(uniqueSub(), { org: uniqueSub("org") });
    const sub = uniqueSub();
    const person = await token(sub);
    const body = { credits: { remaining: 1000 } };
    expect((await expectProblem(await call("PUT", `${path}/limits`, { auth: member, body }), 403)).code).toBe(
      "role_required",
    );
    await expectProblem(await call("PUT", `${path}/limits`, { auth: stranger, body }), 403, "forbidden");
    await expectProblem(await call("GET", `${path}/limits`, { auth: stranger }), 403, "forbidden");
    await expectProblem(await call("PUT", `/v1/owners/user/${sub}/limits`, { auth: person, body }), 403, "forbidden");
    await expectProblem(await call("PUT", `${path}/limits`, { auth: keys[0]!.key, body }), 403, "forbidden");
    await expectProblem(
      await call("POST", `${path}/credits`, { auth: keys[0]!.key, body: { op: "increment", amount: 5 } }),
      403,
    );
    await expectProblem(await call("GET", `${path}/usage`, { auth: stranger }), 403);
    // Nothing was set by any of them.
    const admin = await token(uniqueSub(), { org });
    expect(await (await call("GET", `${path}/limits`, { auth: admin })).json()).toMatchObject({ credits: null });
  });

  it("404 for a path that names no owner; 422 for bad limits, changing nothing", async () => {
    const { admin, path } = await workspace([]);
    await expectProblem(await call("GET", "/v1/owners/team/x/limits", { auth: admin }), 404);
    const bad = await call("PUT", `${path}/limits`, {
      auth: admin,
      body: { ratelimits: [{ name: "a", limit: 0, duration_ms: 1000 }] },
    });
    expect(JSON.stringify(await expectProblem(bad))).toContain("ratelimits.0.limit");
    expect(await (await call("GET", `${path}/limits`, { auth: admin })).json()).toMatchObject({ ratelimits: [] });
  });

  it("the pure rule: a trusted Worker only for the owner it names, an admin only for their workspace", () => {
    const owner = { type: "workspace" as const, id: "acme" };
    const admin = { kind: "user" as const, sub: "a", orgId: "acme", roles: [], workspaceAdmin: true, operator: false };
    expect(() => requireOwnerLimitsAccess(admin, owner, "write")).not.toThrow();
    expect(() => requireOwnerLimitsAccess({ ...admin, workspaceAdmin: false }, owner, "write")).toThrow(/admin/);
    expect(() => requireOwnerLimitsAccess({ ...admin, orgId: "other" }, owner, "write")).toThrow();
    expect(() => requireOwnerLimitsAccess(admin, { type: "user", id: "acme" }, "write")).toThrow();
    expect(() => requireOwnerLimitsAccess({ kind: "service", owner }, owner, "write")).not.toThrow();
    expect(() =>
      requireOwnerLimitsAccess({ kind: "service", owner: { type: "workspace", id: "x" } }, owner, "write"),
    ).toThrow();
  });

  it("a trusted Worker sets and reads limits over RPC for the owner it names", async () => {
    const service = exports.KeyService as unknown as import("../../src/rpc").KeyService;
    const owner = { type: "user" as const, id: uniqueSub() };
    const set = await service.setOwnerLimits(owner, { credits: { remaining: 7 } });
    expect(set).toMatchObject({ owner_type: "user", owner_id: owner.id, credits: { remaining: 7 } });
    expect(await service.ownerCredits(owner, { op: "decrement", amount: 2 })).toEqual({ remaining: 5 });
    expect(await service.ownerLimits(owner)).toMatchObject({ credits: { remaining: 5 } });
  });
});

describe("credits operations, usage and the audit log of an owner", () => {
  it("increment, decrement (stops at 0) and set the shared balance; 409 without credits", async () => {
    const { admin, path } = await workspace([]);
    const op = (body: Record<string, unknown>) => call("POST", `${path}/credits`, { auth: admin, body });
    await expectProblem(await op({ op: "increment", amount: 5 }), 409, "conflict");
    await putLimits(admin, path, { credits: { remaining: 10, refill: { amount: 10, interval: "month" } } });
    expect(await (await op({ op: "increment", amount: 5 })).json()).toEqual({ remaining: 15 });
    expect(await (await op({ op: "decrement", amount: 100 })).json()).toEqual({ remaining: 0 });
    expect(await (await op({ op: "set", amount: 42 })).json()).toEqual({ remaining: 42 });
    // Changing only the rate limits keeps the balance.
    const view = await putLimits(admin, path, { ratelimits: [{ name: "s", limit: 100, duration_ms: 1000 }] });
    expect(view).toMatchObject({ credits: { remaining: 42, refill: { amount: 10, interval: "month" } } });
  });

  it("audits every change with who made it", async () => {
    const { admin, path } = await workspace([]);
    await putLimits(admin, path, { credits: { remaining: 10 } });
    await call("POST", `${path}/credits`, { auth: admin, body: { op: "increment", amount: 5 } });
    const events = await (
      await call("GET", `${path}/events`, { auth: admin })
    ).json<{ data: Record<string, unknown>[] }>();
    expect(events.data.map((e) => e.action)).toEqual(["credits_updated", "limits_updated"]);
    expect(events.data[1]).toMatchObject({
      actor: expect.stringMatching(/^user:/),
      changes: { credits: { old: null, new: { remaining: 10, refill: null } } },
    });
    expect(events.data[0]).toMatchObject({ changes: { credits: { new: { op: "increment", amount: 5 } } } });
  });

  it("counts verifications per owner: the sum over its keys", async () => {
    const { admin, keys, path } = await workspace();
    const hour = Date.now() - (Date.now() % 3_600_000);
    await env.DB.batch(
      keys.map((key, i) =>
        env.DB.prepare("INSERT INTO key_usage (key_id, hour, outcome, count) VALUES (?, ?, 'VALID', ?)").bind(
          key.id,
          hour,
          i + 2,
        ),
      ),
    );
    const report = await (
      await call("GET", `${path}/usage`, { auth: admin })
    ).json<{
      buckets: { start: string; valid: number; total: number }[];
    }>();
    expect(report.buckets.at(-1)).toMatchObject({ start: new Date(hour).toISOString(), valid: 5, total: 5 });
  });
});

describe("the PUT's arithmetic", () => {
  it("left out: unchanged; null: cleared; credits given: a set of the balance", () => {
    const current = {
      ratelimits: [{ name: "a", limit: 1, duration_ms: 1000 }],
      credits: { remaining: 5, refill: null },
    };
    expect(ownerLimitsAfter(current, {}, 1)).toEqual(current);
    expect(ownerLimitsAfter(current, { ratelimits: null }, 1)).toEqual({ ratelimits: [], credits: current.credits });
    expect(ownerLimitsAfter(current, { ratelimits: null, credits: null }, 1)).toBeNull();
    expect(ownerLimitsAfter(null, { credits: { remaining: 3, refill: null } }, 7)?.credits).toMatchObject({
      remaining: 3,
      set: { amount: 3 },
    });
  });
});
