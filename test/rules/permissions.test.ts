/**
 * Scopes, resources and owners on keys; workspace keys; managing keys with a key (keys:read /
 * keys:write, own owner only); and attenuation, so a key can never make a key stronger than itself.
 */
import { describe, expect, it } from "vitest";
import { isolateCache } from "../../src/service/verify";
import { type CreatedKey, call, createKey, expectProblem, token, uniqueSub } from "../helpers";

interface KeyView {
  id: string;
  name: string;
  owner_type: string;
  owner_id: string;
  scopes: string[];
  resources: string[] | null;
  created_by: string;
  expires_at: string | null;
  revoked_at: string | null;
}

interface Problem {
  detail?: string;
  exceeded?: string;
  errors?: Record<string, string[]>;
}

const HOUR = 3_600_000;
const inHours = (hours: number) => new Date(Date.now() + hours * HOUR).toISOString();

async function listIds(auth: string): Promise<string[]> {
  const response = await call("GET", "/v1/keys?limit=100", { auth });
  expect(response.status).toBe(200);
  return (await response.json<{ data: KeyView[] }>()).data.map((k) => k.id);
}

async function verifyCode(key: string): Promise<string> {
  const response = await call("POST", "/v1/verify", { body: { key } });
  expect(response.status).toBe(200);
  return (await response.json<{ code: string }>()).code;
}

/** Asserts a 403 problem naming `exceeded`, both as the member and in `errors`. */
async function expectForbidden(response: Response, exceeded: string): Promise<Problem> {
  const body = (await expectProblem(response, 403)) as Problem;
  expect(body.exceeded).toBe(exceeded);
  expect(body.errors?.[exceeded]?.length).toBeGreaterThan(0);
  return body;
}

describe("scopes, resources and owner", () => {
  it("default to every scope, every resource and the JWT subject, and show in create, get and list", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    const created = await createKey(jwt);
    expect(created).toMatchObject({
      scopes: ["*"],
      resources: null,
      owner_type: "user",
      owner_id: sub,
      created_by: `user:${sub}`,
    });

    const got = await call("GET", `/v1/keys/${created.id}`, { auth: jwt });
    expect(got.status).toBe(200);
    const { key: _plaintext, ...view } = created;
    expect(await got.json()).toEqual(view);

    const list = await call("GET", "/v1/keys", { auth: jwt });
    expect((await list.json<{ data: KeyView[] }>()).data).toEqual([view]);
  });

  it("keeps requested scopes and resources, de-duplicated, in every response", async () => {
    const jwt = await token(uniqueSub());
    const created = await createKey(jwt, {
      scopes: ["models:invoke", "metrics:read", "models:invoke", "keys:*", "models:invoke:stream"],
      resources: ["model_a", "org/x@1.2:y", "model_a"],
    });
    const scopes = ["models:invoke", "metrics:read", "keys:*", "models:invoke:stream"];
    const resources = ["model_a", "org/x@1.2:y"];
    expect(created).toMatchObject({ scopes, resources });
    const got = await (await call("GET", `/v1/keys/${created.id}`, { auth: jwt })).json<KeyView>();
    expect(got).toMatchObject({ scopes, resources });
    const list = await (await call("GET", "/v1/keys", { auth: jwt })).json<{ data: KeyView[] }>();
    expect(list.data[0]).toMatchObject({ id: created.id, scopes, resources });
  });

  it.each([
    [{ scopes: [] }, "scopes"],
    [{ scopes: "models:invoke" }, "scopes"],
    [{ scopes: null }, "scopes"],
    [{ scopes: ["Models:invoke"] }, "scopes.0"],
    [{ scopes: ["models:INVOKE"] }, "scopes.0"],
    [{ scopes: ["models"] }, "scopes.0"],
    [{ scopes: ["models:"] }, "scopes.0"],
    [{ scopes: ["models:invoke", ":invoke"] }, "scopes.1"],
    [{ scopes: ["*:*"] }, "scopes.0"],
    [{ scopes: ["**"] }, "scopes.0"],
    [{ scopes: ["models:*:invoke"] }, "scopes.0"],
    [{ scopes: ["models:in voke"] }, "scopes.0"],
    [{ scopes: [` models:invoke`] }, "scopes.0"],
    [{ scopes: [42] }, "scopes.0"],
    [{ scopes: [`models:${"a".repeat(100)}`] }, "scopes.0"],
    [{ scopes: Array.from({ length: 51 }, (_, i) => `s${i}:read`) }, "scopes"],
    [{ resources: [] }, "resources"],
    [{ resources: "model_a" }, "resources"],
    [{ resources: [""] }, "resources.0"],
    [{ resources: ["model_a", "has space"] }, "resources.1"],
    [{ resources: ["-leading"] }, "resources.0"],
    [{ resources: ["model\u0000x"] }, "resources.0"],
    [{ resources: ["a".repeat(129)] }, "resources.0"],
    [{ resources: [7] }, "resources.0"],
    [{ owner: "team" }, "owner"],
    [{ owner: "Workspace" }, "owner"],
    [{ scope: ["models:invoke"] }, "scope"],
  ])("rejects %j with a 422 naming %s and stores nothing", async (body, field) => {
    const jwt = await token(uniqueSub(), { org: uniqueSub("org") });
    const response = await call("POST", "/v1/keys", { auth: jwt, body: { name: "bad", ...body } });
    const problem = (await expectProblem(response, 422)) as Problem;
    expect(Object.keys(problem.errors ?? {})).toEqual([field]);
    expect(problem.errors?.[field]?.[0]).toEqual(expect.any(String));
    expect(await listIds(jwt)).toEqual([]);
  });
});

describe("workspace keys", () => {
  it("need an org claim: without one, a 422 naming owner and nothing stored", async () => {
    const jwt = await token(uniqueSub());
    const response = await call("POST", "/v1/keys", { auth: jwt, body: { name: "ws", owner: "workspace" } });
    const problem = (await expectProblem(response, 422)) as Problem;
    expect(Object.keys(problem.errors ?? {})).toEqual(["owner"]);
    expect(await listIds(jwt)).toEqual([]);
  });

  it("belong to the workspace: every member lists and gets them, outsiders see nothing", async () => {
    const org = uniqueSub("org");
    const creator = uniqueSub();
    const creatorJwt = await token(creator, { org });
    const memberJwt = await token(uniqueSub(), { org });
    const outsiderJwt = await token(uniqueSub(), { org: uniqueSub("org") });
    const loneJwt = await token(uniqueSub());

    const ws = await createKey(creatorJwt, { owner: "workspace", scopes: ["models:invoke"] });
    expect(ws).toMatchObject({ owner_type: "workspace", owner_id: org, created_by: `user:${creator}` });
    const personal = await createKey(creatorJwt);

    expect(await listIds(creatorJwt)).toEqual(expect.arrayContaining([ws.id, personal.id]));
    expect(await listIds(memberJwt)).toEqual([ws.id]);
    const got = await call("GET", `/v1/keys/${ws.id}`, { auth: memberJwt });
    expect(got.status).toBe(200);
    expect(await got.json()).toMatchObject({ id: ws.id, owner_type: "workspace", owner_id: org });
    expect((await call("GET", `/v1/keys/${personal.id}`, { auth: memberJwt })).status).toBe(404);

    for (const outsider of [outsiderJwt, loneJwt]) {
      expect(await listIds(outsider)).toEqual([]);
      expect((await call("GET", `/v1/keys/${ws.id}`, { auth: outsider })).status).toBe(404);
      expect((await call("DELETE", `/v1/keys/${ws.id}`, { auth: outsider })).status).toBe(404);
    }
    expect(await verifyCode(ws.key)).toBe("VALID");
  });

  it("are revoked by any member", async () => {
    const org = uniqueSub("org");
    const ws = await createKey(await token(uniqueSub(), { org }), { owner: "workspace" });
    const memberJwt = await token(uniqueSub(), { org });
    expect((await call("DELETE", `/v1/keys/${ws.id}`, { auth: memberJwt })).status).toBe(204);
    expect(await verifyCode(ws.key)).toBe("REVOKED");
    const got = await (await call("GET", `/v1/keys/${ws.id}`, { auth: memberJwt })).json<KeyView>();
    expect(got.revoked_at).not.toBeNull();
  });

  it("survive their creator leaving the workspace", async () => {
    const org = uniqueSub("org");
    const creator = uniqueSub();
    const ws = await createKey(await token(creator, { org }), { owner: "workspace" });
    const formerJwt = await token(creator, { org: uniqueSub("org") });
    const memberJwt = await token(uniqueSub(), { org });

    expect(await listIds(formerJwt)).toEqual([]);
    expect((await call("GET", `/v1/keys/${ws.id}`, { auth: formerJwt })).status).toBe(404);
    expect((await call("DELETE", `/v1/keys/${ws.id}`, { auth: formerJwt })).status).toBe(404);
    expect(await verifyCode(ws.key)).toBe("VALID");
    expect(await listIds(memberJwt)).toEqual([ws.id]);
  });
});

describe("managing keys with a key", () => {
  it("needs keys:read to list and get", async () => {
    const jwt = await token(uniqueSub());
    const target = await createKey(jwt);
    const reader = await createKey(jwt, { scopes: ["keys:read"] });

    expect(await listIds(reader.key)).toEqual(expect.arrayContaining([target.id, reader.id]));
    expect((await call("GET", `/v1/keys/${target.id}`, { auth: reader.key })).status).toBe(200);
    await expectForbidden(await call("POST", "/v1/keys", { auth: reader.key, body: { name: "no" } }), "scopes");
    const revoke = await call("DELETE", `/v1/keys/${target.id}`, { auth: reader.key });
    expect((await expectForbidden(revoke, "scopes")).detail).toContain("keys:write");
    expect(await verifyCode(target.key)).toBe("VALID");
    expect(await listIds(jwt)).toHaveLength(2);
  });

  it("needs keys:write to create and revoke", async () => {
    const jwt = await token(uniqueSub());
    const target = await createKey(jwt);
    const writer = await createKey(jwt, { scopes: ["keys:write"] });

    const list = await expectForbidden(await call("GET", "/v1/keys", { auth: writer.key }), "scopes");
    expect(list.detail).toContain("keys:read");
    await expectForbidden(await call("GET", `/v1/keys/${target.id}`, { auth: writer.key }), "scopes");

    const child = await createKey(writer.key);
    expect(child).toMatchObject({ scopes: ["keys:write"], created_by: `key:${writer.id}` });
    // It may revoke only keys no more powerful than itself (test/rules/roles.test.ts): its child, not `target`.
    expect((await call("DELETE", `/v1/keys/${child.id}`, { auth: writer.key })).status).toBe(204);
    expect(await verifyCode(child.key)).toBe("REVOKED");
    expect(await verifyCode(target.key)).toBe("VALID");
  });

  it("is refused every route without a keys scope", async () => {
    const jwt = await token(uniqueSub());
    const target = await createKey(jwt);
    const invoker = await createKey(jwt, { scopes: ["models:*", "metrics:read"] });
    await expectForbidden(await call("GET", "/v1/keys", { auth: invoker.key }), "scopes");
    await expectForbidden(await call("GET", `/v1/keys/${target.id}`, { auth: invoker.key }), "scopes");
    await expectForbidden(await call("POST", "/v1/keys", { auth: invoker.key, body: { name: "x" } }), "scopes");
    await expectForbidden(await call("DELETE", `/v1/keys/${target.id}`, { auth: invoker.key }), "scopes");
    expect(await verifyCode(target.key)).toBe("VALID");
    expect(await listIds(jwt)).toHaveLength(2);
  });

  it.each([["keys:*"], ["*"]])("gets read and write from %s", async (scope) => {
    const jwt = await token(uniqueSub());
    const manager = await createKey(jwt, { scopes: [scope] });
    const child = await createKey(manager.key, { scopes: ["keys:read"] });
    expect(await listIds(manager.key)).toEqual(expect.arrayContaining([manager.id, child.id]));
    expect((await call("GET", `/v1/keys/${child.id}`, { auth: manager.key })).status).toBe(200);
    expect((await call("DELETE", `/v1/keys/${child.id}`, { auth: manager.key })).status).toBe(204);
  });

  it("works with the Api-Key scheme as with Bearer", async () => {
    const jwt = await token(uniqueSub());
    const manager = await createKey(jwt, { scopes: ["keys:*"] });
    const headers = { authorization: `Api-Key ${manager.key}` };
    const list = await call("GET", "/v1/keys", { headers });
    expect(list.status).toBe(200);
    expect((await list.json<{ data: KeyView[] }>()).data.map((k) => k.id)).toEqual([manager.id]);
    const created = await call("POST", "/v1/keys", { headers, body: { name: "by api-key" } });
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ created_by: `key:${manager.id}` });
  });

  it("acts for its own owner only", async () => {
    const org = uniqueSub("org");
    const sub = uniqueSub();
    const jwt = await token(sub, { org });
    const personalManager = await createKey(jwt, { scopes: ["keys:*"] });
    const workspaceManager = await createKey(jwt, { scopes: ["keys:*"], owner: "workspace" });
    const personal = await createKey(jwt);
    const workspace = await createKey(jwt, { owner: "workspace" });
    const stranger = await createKey(await token(uniqueSub()));
    const otherWorkspace = await createKey(await token(uniqueSub(), { org: uniqueSub("org") }), {
      owner: "workspace",
    });

    expect((await listIds(personalManager.key)).sort()).toEqual([personalManager.id, personal.id].sort());
    expect((await listIds(workspaceManager.key)).sort()).toEqual([workspaceManager.id, workspace.id].sort());

    for (const foreign of [workspace, stranger, otherWorkspace]) {
      expect((await call("GET", `/v1/keys/${foreign.id}`, { auth: personalManager.key })).status).toBe(404);
      expect((await call("DELETE", `/v1/keys/${foreign.id}`, { auth: personalManager.key })).status).toBe(404);
      expect(await verifyCode(foreign.key)).toBe("VALID");
    }
    for (const foreign of [personal, stranger, otherWorkspace]) {
      expect((await call("GET", `/v1/keys/${foreign.id}`, { auth: workspaceManager.key })).status).toBe(404);
      expect((await call("DELETE", `/v1/keys/${foreign.id}`, { auth: workspaceManager.key })).status).toBe(404);
      expect(await verifyCode(foreign.key)).toBe("VALID");
    }
    for (const id of [crypto.randomUUID(), "not-a-uuid"]) {
      expect((await call("GET", `/v1/keys/${id}`, { auth: personalManager.key })).status).toBe(404);
    }

    expect(await createKey(personalManager.key)).toMatchObject({ owner_type: "user", owner_id: sub });
    expect(await createKey(workspaceManager.key)).toMatchObject({ owner_type: "workspace", owner_id: org });
  });
});

describe("attenuation: a key only makes keys weaker than itself", () => {
  async function parentKey(body: Record<string, unknown>): Promise<{ jwt: string; parent: CreatedKey }> {
    const jwt = await token(uniqueSub(), { org: uniqueSub("org") });
    return { jwt, parent: await createKey(jwt, body) };
  }

  it("creates keys within its scopes, resources and expiry, recorded as created by the key", async () => {
    const { jwt, parent } = await parentKey({
      scopes: ["keys:write", "models:*"],
      resources: ["m1", "m2"],
      expires_at: inHours(2),
    });
    const child = await createKey(parent.key, {
      scopes: ["models:invoke", "models:invoke:stream"],
      resources: ["m1"],
      expires_at: inHours(1),
    });
    expect(child).toMatchObject({
      scopes: ["models:invoke", "models:invoke:stream"],
      resources: ["m1"],
      owner_type: parent.owner_type,
      owner_id: parent.owner_id,
      created_by: `key:${parent.id}`,
    });
    const got = await (await call("GET", `/v1/keys/${child.id}`, { auth: jwt })).json<KeyView>();
    expect(got.created_by).toBe(`key:${parent.id}`);

    const atParentExpiry = await createKey(parent.key, { expires_at: parent.expires_at });
    expect(atParentExpiry.expires_at).toBe(parent.expires_at);
  });

  it("gives a new key the creating key's scopes, resources and expiry by default", async () => {
    const { parent } = await parentKey({
      scopes: ["keys:write", "metrics:read"],
      resources: ["r1"],
      expires_at: inHours(3),
    });
    const child = await createKey(parent.key);
    expect(child.scopes).toEqual(parent.scopes);
    expect(child.resources).toEqual(parent.resources);
    expect(child.expires_at).toBe(parent.expires_at);
    expect(child.expires_at).not.toBeNull();
  });

  it("lets an unlimited key make unlimited or limited keys", async () => {
    const { parent } = await parentKey({ scopes: ["keys:write", "models:*"] });
    expect(await createKey(parent.key, { expires_at: null, resources: null })).toMatchObject({
      expires_at: null,
      resources: null,
    });
    expect(await createKey(parent.key, { expires_at: inHours(100), resources: ["any"] })).toMatchObject({
      resources: ["any"],
    });
  });

  const parentExpiry = (parent: CreatedKey) => Date.parse(parent.expires_at as string);
  const escalations: [string, (parent: CreatedKey) => Record<string, unknown>, string][] = [
    ["a scope it lacks", () => ({ scopes: ["metrics:read"] }), "scopes"],
    ["every scope", () => ({ scopes: ["*"] }), "scopes"],
    ["a wildcard over its resource", () => ({ scopes: ["models:*"] }), "scopes"],
    ["a wildcard under its exact scope", () => ({ scopes: ["models:invoke:*"] }), "scopes"],
    ["one covered scope and one not", () => ({ scopes: ["models:invoke", "keys:read"] }), "scopes"],
    ["a resource it lacks", () => ({ resources: ["m1", "m3"] }), "resources"],
    ["every resource (null)", () => ({ resources: null }), "resources"],
    ["a later expiry", () => ({ expires_at: inHours(5) }), "expires_at"],
    [
      "a millisecond past its expiry",
      (p) => ({ expires_at: new Date(parentExpiry(p) + 1).toISOString() }),
      "expires_at",
    ],
    ["no expiry (explicit null)", () => ({ expires_at: null }), "expires_at"],
    ["a workspace key from a personal key", () => ({ owner: "workspace" }), "owner"],
  ];

  it.each(escalations)("refuses %s with a 403 naming it, storing nothing", async (_what, attempt, exceeded) => {
    const { jwt, parent } = await parentKey({
      scopes: ["keys:write", "models:invoke"],
      resources: ["m1", "m2"],
      expires_at: inHours(1),
    });
    const body = { name: "escalation", ...attempt(parent) };
    await expectForbidden(await call("POST", "/v1/keys", { auth: parent.key, body }), exceeded);
    expect(await listIds(jwt)).toEqual([parent.id]);
  });

  it("refuses a personal key from a workspace key", async () => {
    const { jwt, parent } = await parentKey({ scopes: ["keys:*"], owner: "workspace" });
    const response = await call("POST", "/v1/keys", { auth: parent.key, body: { name: "mine", owner: "user" } });
    await expectForbidden(response, "owner");
    expect(await listIds(jwt)).toEqual([parent.id]);
  });

  it("leaves a key's children working when it is revoked", async () => {
    const { jwt, parent } = await parentKey({ scopes: ["keys:*", "models:invoke"] });
    const child = await createKey(parent.key, { scopes: ["keys:read", "models:invoke"] });
    expect((await call("DELETE", `/v1/keys/${parent.id}`, { auth: jwt })).status).toBe(204);

    expect(await verifyCode(parent.key)).toBe("REVOKED");
    expect((await call("GET", "/v1/keys", { auth: parent.key })).status).toBe(401);
    expect(await verifyCode(child.key)).toBe("VALID");
    expect(await listIds(child.key)).toContain(child.id);

    isolateCache.clear(); // another isolate, which learns the revocation from D1
    expect(await verifyCode(parent.key)).toBe("REVOKED");
    expect(await verifyCode(child.key)).toBe("VALID");
    const got = await (await call("GET", `/v1/keys/${child.id}`, { auth: jwt })).json<KeyView>();
    expect(got.revoked_at).toBeNull();
  });
});
