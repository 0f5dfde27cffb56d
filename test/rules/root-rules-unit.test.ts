/**
 * The rules of root keys and of naming an owner (src/service/root-rules.ts, src/keys/owner-patterns.ts
 * and their use in src/service/rules.ts), called directly: owner patterns, a root key's scopes and
 * liveness, the owner a request names, who manages root keys, and the verdict on a root key's shape.
 */
import { describe, expect, it } from "vitest";
import { generateKey } from "../../src/keys/format";
import { ownerPatternProblem, patternCovers, patternWithin } from "../../src/keys/owner-patterns";
import type { Actor, RootKeyRecord } from "../../src/model";
import { ForbiddenError, ValidationError } from "../../src/service/errors";
import {
  malformedOrRoot,
  ownerCovered,
  requireOperator,
  requireOwnOwner,
  requireRootScope,
  rootKeyRefusal,
  rootNamedOwner,
} from "../../src/service/root-rules";
import { listedOwners, mayImport, maySee, ownerForNewKey, requireScope } from "../../src/service/rules";

function root(settings: Partial<RootKeyRecord> = {}): RootKeyRecord {
  return {
    id: "r1",
    hash: "h",
    start: "lk_root_",
    name: "backend",
    owners: ["user:*", "workspace:*"],
    scopes: ["keys:read", "keys:write"],
    allowedIps: null,
    createdBy: "user:op",
    createdAt: 0,
    expiresAt: null,
    revokedAt: null,
    revokedBy: null,
    rotatedFrom: null,
    chain: "r1",
    lastUsedAt: null,
    ...settings,
  };
}

const rootActor = (settings: Partial<RootKeyRecord> = {}): Actor => ({ kind: "root", root: root(settings) });
const person = (sub: string, orgId: string | null = null, operator = false): Actor => ({
  kind: "user",
  sub,
  orgId,
  roles: [],
  workspaceAdmin: orgId !== null,
  operator,
});

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return null;
}

describe("owner patterns", () => {
  it("accept a type with * or one id; refuse partial wildcards, unknown types and control characters", () => {
    for (const ok of ["user:*", "workspace:*", "user:cust_42", "workspace:acme", "user:a:b"]) {
      expect(ownerPatternProblem(ok), ok).toBeNull();
    }
    for (const bad of [
      "*",
      "user",
      "user:",
      "team:*",
      "user:cust_*",
      "workspace:*acme",
      "User:*",
      "user:a\u0000",
      "user:a\u200b",
    ]) {
      expect(ownerPatternProblem(bad), bad).not.toBeNull();
    }
  });

  it("cover an owner of their type: every id with *, else exactly one", () => {
    expect(patternCovers("user:*", { type: "user", id: "cust_42" })).toBe(true);
    expect(patternCovers("user:*", { type: "workspace", id: "cust_42" })).toBe(false);
    expect(patternCovers("workspace:acme", { type: "workspace", id: "acme" })).toBe(true);
    expect(patternCovers("workspace:acme", { type: "workspace", id: "acme2" })).toBe(false);
    expect(patternCovers("workspace:acme", { type: "workspace", id: "acm" })).toBe(false);
    expect(patternCovers("workspace:acme", { type: "user", id: "acme" })).toBe(false);
    expect(patternCovers("user:*", { type: "user", id: "*" })).toBe(true);
    expect(ownerCovered(["user:a", "workspace:*"], { type: "workspace", id: "z" })).toBe(true);
    expect(ownerCovered(["user:a", "workspace:b"], { type: "user", id: "b" })).toBe(false);
    expect(ownerCovered([], { type: "user", id: "a" })).toBe(false);
  });

  it("lie within others when every owner they cover is covered (a wildcard only within itself)", () => {
    expect(patternWithin("user:*", ["user:*"])).toBe(true);
    expect(patternWithin("user:*", ["user:a", "user:b"])).toBe(false);
    expect(patternWithin("user:*", ["workspace:*"])).toBe(false);
    expect(patternWithin("user:a", ["user:*"])).toBe(true);
    expect(patternWithin("user:a", ["user:a"])).toBe(true);
    expect(patternWithin("user:a", ["user:ab", "workspace:a"])).toBe(false);
    expect(patternWithin("workspace:acme", ["user:*", "workspace:acme"])).toBe(true);
    expect(patternWithin("workspace:acme", [])).toBe(false);
  });
});

describe("a root key's powers", () => {
  it("keys:read and keys:write are separate scopes", () => {
    expect(() => requireRootScope(root({ scopes: ["keys:read"] }), "keys:read")).not.toThrow();
    const error = thrown(() => requireRootScope(root({ scopes: ["keys:read"] }), "keys:write"));
    expect(error).toBeInstanceOf(ForbiddenError);
    expect(error).toMatchObject({ exceeded: "scopes", kind: "scope" });
    expect(() => requireScope(rootActor({ scopes: ["keys:write"] }), "keys:read")).toThrow(ForbiddenError);
    expect(() => requireScope(rootActor({ scopes: ["keys:write"] }), "keys:write")).not.toThrow();
  });

  it("is refused when revoked, expired (at its expiry instant) or used from outside its allow-list", () => {
    const now = 1_000_000;
    expect(rootKeyRefusal(root(), now, undefined)).toBeNull();
    expect(rootKeyRefusal(root({ revokedAt: now + 5 }), now, undefined)).toBe("revoked");
    expect(rootKeyRefusal(root({ expiresAt: now }), now, undefined)).toBe("expired");
    expect(rootKeyRefusal(root({ expiresAt: now + 1 }), now, undefined)).toBeNull();
    const fenced = root({ allowedIps: ["203.0.113.0/24"] });
    expect(rootKeyRefusal(fenced, now, "203.0.113.7")).toBeNull();
    expect(rootKeyRefusal(fenced, now, "198.51.100.7")).toBe("ip_not_allowed");
    expect(rootKeyRefusal(fenced, now, undefined)).toBe("ip_not_allowed");
  });

  it("sees the keys of owners its patterns cover, and imports for them", () => {
    const actor = rootActor({ owners: ["workspace:acme"] });
    expect(maySee(actor, { type: "workspace", id: "acme" })).toBe(true);
    expect(maySee(actor, { type: "workspace", id: "other" })).toBe(false);
    expect(maySee(actor, { type: "user", id: "acme" })).toBe(false);
    expect(mayImport(actor, { type: "workspace", id: "acme" }, "admins")).toBe(true);
  });
});

describe("naming an owner", () => {
  it("a root key must name both parts (422 naming each missing field), never defaulted", () => {
    const r = root();
    const fields = { type: "owner", id: "owner_id" };
    const missingId = thrown(() => rootNamedOwner(r, { type: "user" }, fields));
    expect(missingId).toBeInstanceOf(ValidationError);
    expect((missingId as ValidationError).errors).toHaveProperty("owner_id");
    const missingType = thrown(() => rootNamedOwner(r, { id: "cust_42" }, fields));
    expect((missingType as ValidationError).errors).toHaveProperty("owner");
    expect(rootNamedOwner(r, { type: "user", id: "cust_42" }, fields)).toEqual({ type: "user", id: "cust_42" });
    expect(() => ownerForNewKey(rootActor(), "user", undefined)).toThrow(ValidationError);
    expect(() => listedOwners(rootActor(), {})).toThrow(ValidationError);
  });

  it("a root key naming an owner outside its patterns is refused (403 naming owner_id)", () => {
    const actor = rootActor({ owners: ["user:cust_42"] });
    expect(ownerForNewKey(actor, "user", "cust_42")).toEqual({ type: "user", id: "cust_42" });
    const error = thrown(() => ownerForNewKey(actor, "user", "cust_43"));
    expect(error).toBeInstanceOf(ForbiddenError);
    expect(error).toMatchObject({ exceeded: "owner_id" });
    expect(() => listedOwners(actor, { type: "workspace", id: "cust_42" })).toThrow(ForbiddenError);
    expect(listedOwners(actor, { type: "user", id: "cust_42" })).toEqual([{ type: "user", id: "cust_42" }]);
  });

  it("anyone else may name only an owner they act for", () => {
    const alice = person("alice", "acme");
    expect(ownerForNewKey(alice, undefined, "alice")).toEqual({ type: "user", id: "alice" });
    expect(ownerForNewKey(alice, "workspace", "acme")).toEqual({ type: "workspace", id: "acme" });
    for (const [type, id] of [
      [undefined, "bob"],
      ["user", "acme"],
      [undefined, "acme"],
      ["workspace", "alice"],
      ["workspace", "other"],
    ] as const) {
      expect(
        thrown(() => ownerForNewKey(alice, type, id)),
        `${type}:${id}`,
      ).toMatchObject({ exceeded: "owner_id" });
    }
    // A person without a workspace naming one is refused as naming another owner.
    expect(thrown(() => ownerForNewKey(person("carol"), "workspace", "acme"))).toBeInstanceOf(ForbiddenError);

    const key: Actor = {
      kind: "api_key",
      key: {
        id: "k",
        hash: "h",
        owner: { type: "workspace", id: "acme" },
        scopes: ["*"],
        resources: null,
        expiresAt: null,
        revokedAt: null,
        lastUsedAt: null,
        enabled: true,
        allowedIps: null,
      },
    };
    expect(ownerForNewKey(key, undefined, "acme")).toEqual({ type: "workspace", id: "acme" });
    expect(() => ownerForNewKey(key, undefined, "other")).toThrow(ForbiddenError);
    const service: Actor = { kind: "service", owner: { type: "user", id: "cust_42" } };
    expect(() => ownerForNewKey(service, undefined, "cust_43")).toThrow(ForbiddenError);
    expect(ownerForNewKey(service, undefined, "cust_42")).toEqual({ type: "user", id: "cust_42" });

    expect(listedOwners(alice, { id: "acme" })).toEqual([{ type: "workspace", id: "acme" }]);
    expect(listedOwners(alice, {})).toHaveLength(2);
    expect(() => listedOwners(alice, { id: "bob" })).toThrow(ForbiddenError);
    expect(() => listedOwners(alice, { type: "user", id: "acme" })).toThrow(ForbiddenError);
    expect(requireOwnOwner([{ type: "user", id: "a" }], {})).toEqual([]);
  });
});

describe("operators and a root key's shape", () => {
  it("only a person holding an operator role manages root keys", () => {
    expect(() => requireOperator(person("op", null, true))).not.toThrow();
    expect(thrown(() => requireOperator(person("admin", "acme")))).toMatchObject({ kind: "operator" });
    expect(() => requireOperator(rootActor())).toThrow(ForbiddenError);
    expect(() => requireOperator({ kind: "service", owner: { type: "user", id: "op" } })).toThrow(ForbiddenError);
  });

  it("a well-formed root key is NOT_FOUND as a product key; anything else malformed", () => {
    const config = { rootKeyPrefix: "lk_root" };
    const key = generateKey("lk_root");
    expect(malformedOrRoot(key, config)).toBe("NOT_FOUND");
    expect(malformedOrRoot(`${key.slice(0, -1)}${key.endsWith("0") ? "1" : "0"}`, config)).toBe("MALFORMED");
    expect(malformedOrRoot(key, { rootKeyPrefix: null })).toBe("MALFORMED");
    expect(malformedOrRoot("lk_nope", config)).toBe("MALFORMED");
  });
});
