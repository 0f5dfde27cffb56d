/**
 * Who may manage which keys: in a workspace any member lists and reads the keys, only an admin
 * (WORKSPACE_ADMIN_ROLES, from the JWT_ROLES_CLAIM claim) creates and revokes them; and a key may
 * revoke only keys no more powerful than itself (attenuation applied to management), while a person
 * is not bound by that.
 */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import type { Env } from "../../src/env";
import { call, createKey, envWith, expectProblem, token, uniqueSub } from "../helpers";

const verifyCode = async (key: string) =>
  (await (await call("POST", "/v1/verify", { body: { key } })).json<{ code: string }>()).code;

const create = (auth: string, body: Record<string, unknown>, testEnv?: Env) =>
  call("POST", "/v1/keys", { auth, body: { name: "k", ...body }, ...(testEnv ? { env: testEnv } : {}) });

const revoke = (auth: string, id: string, testEnv?: Env) =>
  call("DELETE", `/v1/keys/${id}`, { auth, ...(testEnv ? { env: testEnv } : {}) });

async function expectForbidden(response: Response, exceeded: string): Promise<void> {
  // Lacking the admin role has a code of its own; exceeding a key's powers is `forbidden`.
  const problem = await expectProblem(response, 403, exceeded === "role" ? "role_required" : "forbidden");
  expect(problem.exceeded).toBe(exceeded);
}

describe("workspace roles", () => {
  it("any member lists and reads workspace keys; only an admin creates or revokes them", async () => {
    const org = uniqueSub("org");
    const admin = await token(uniqueSub(), { org }); // the helper's default with an org: roles ["admin"]
    const member = await token(uniqueSub(), { org, roles: ["member"] });
    const ws = await createKey(admin, { owner: "workspace" });

    await expectForbidden(await create(member, { owner: "workspace" }), "role");
    const listed = await (await call("GET", "/v1/keys", { auth: member })).json<{ data: { id: string }[] }>();
    expect(listed.data.map((k) => k.id)).toEqual([ws.id]); // and nothing was created by the refused call
    expect((await call("GET", `/v1/keys/${ws.id}`, { auth: member })).status).toBe(200);
    await expectForbidden(await revoke(member, ws.id), "role");
    expect(await verifyCode(ws.key)).toBe("VALID");

    // Their own keys are theirs to manage, admin or not.
    const own = await createKey(member);
    expect((await revoke(member, own.id)).status).toBe(204);

    expect((await revoke(admin, ws.id)).status).toBe(204);
    expect(await verifyCode(ws.key)).toBe("REVOKED");
  });

  it("reads JWT_ROLES_CLAIM as a string or an array of strings, against WORKSPACE_ADMIN_ROLES", async () => {
    const claim = "https://example.test/roles";
    const testEnv = envWith({ JWT_ROLES_CLAIM: claim, WORKSPACE_ADMIN_ROLES: " owner, key-manager " });
    const org = uniqueSub("org");
    const withRoles = (roles: unknown) => token(uniqueSub(), { org, roles: [], claims: { [claim]: roles } });

    for (const roles of ["key-manager", ["viewer", "owner"]]) {
      expect((await create(await withRoles(roles), { owner: "workspace" }, testEnv)).status, String(roles)).toBe(201);
    }
    for (const roles of ["viewer", ["admin"], [42, { owner: true }], { owner: true }, "owner,key-manager", null]) {
      await expectForbidden(await create(await withRoles(roles), { owner: "workspace" }, testEnv), "role");
    }
    // The standard claim is not read when another is configured.
    const standard = await token(uniqueSub(), { org, roles: ["owner"] });
    await expectForbidden(await create(standard, { owner: "workspace" }, testEnv), "role");
  });

  it("WORKSPACE_ADMIN_ROLES set empty: membership suffices; unset: admin", async () => {
    const org = uniqueSub("org");
    const member = await token(uniqueSub(), { org, roles: [] });
    const open = envWith({ WORKSPACE_ADMIN_ROLES: "" });
    const created = await create(member, { owner: "workspace" }, open);
    expect(created.status).toBe(201);
    const { id } = await created.json<{ id: string }>();
    expect((await revoke(member, id, open)).status).toBe(204);

    expect(loadConfig(envWith({ WORKSPACE_ADMIN_ROLES: undefined })).jwt.adminRoles).toEqual(["admin"]);
    await expectForbidden(
      await create(member, { owner: "workspace" }, envWith({ WORKSPACE_ADMIN_ROLES: undefined })),
      "role",
    );
  });
});

describe("revoking with a key", () => {
  const inHours = (hours: number) => new Date(Date.now() + hours * 3_600_000).toISOString();

  it("revokes only keys no more powerful than itself; a person revokes any of theirs", async () => {
    const jwt = await token(uniqueSub());
    const manager = await createKey(jwt, {
      scopes: ["keys:write", "models:invoke"],
      resources: ["m1", "m2"],
      expires_at: inHours(24),
    });
    const stronger: [string, Record<string, unknown>][] = [
      ["scopes", { scopes: ["*"], resources: ["m1"], expires_at: inHours(1) }],
      ["scopes", { scopes: ["models:*"], resources: ["m1"], expires_at: inHours(1) }],
      ["resources", { scopes: ["models:invoke"], resources: ["m1", "m3"], expires_at: inHours(1) }],
      ["resources", { scopes: ["models:invoke"], resources: null, expires_at: inHours(1) }],
      ["expires_at", { scopes: ["models:invoke"], resources: ["m1"], expires_at: inHours(48) }],
      ["expires_at", { scopes: ["models:invoke"], resources: ["m1"], expires_at: null }],
    ];
    for (const [exceeded, powers] of stronger) {
      const target = await createKey(jwt, powers);
      await expectForbidden(await revoke(manager.key, target.id), exceeded);
      expect(await verifyCode(target.key)).toBe("VALID");
      expect((await revoke(jwt, target.id)).status).toBe(204); // a person is not bound by attenuation
    }

    const weaker = await createKey(jwt, { scopes: ["models:invoke"], resources: ["m2"], expires_at: inHours(1) });
    const equal = await createKey(jwt, {
      scopes: ["models:invoke", "keys:write"],
      resources: ["m2", "m1"],
      expires_at: manager.expires_at,
    });
    for (const target of [weaker, equal, manager]) {
      expect((await revoke(manager.key, target.id)).status).toBe(204);
      expect(await verifyCode(target.key)).toBe("REVOKED");
    }
  });
});
