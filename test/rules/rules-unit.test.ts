/**
 * The permission rules (src/service/rules.ts) called directly, without a request or storage:
 * attenuation, management (one key and every key a write reaches), narrowing, visibility, the owner,
 * powers and limits of a new key, limits given to a key that has minted keys, trusted import, and a
 * rotated-away key's expiry.
 */
import { describe, expect, it } from "vitest";
import type { Actor, KeyRecord } from "../../src/model";
import { ForbiddenError, ValidationError } from "../../src/service/errors";
import {
  authorizeNewKey,
  exceededPower,
  limitsForNewKey,
  mayImport,
  outsideChain,
  ownerForNewKey,
  requireManagement,
  requireManagementOfAll,
  requireScope,
  rotatedExpiryAllowed,
  strongerThan,
  usageOutgrows,
  visibleOwners,
} from "../../src/service/rules";

const HOUR = 3_600_000;

function record(id: string, settings: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id,
    hash: id,
    start: "lk_",
    name: id,
    owner: { type: "user", id: "alice" },
    scopes: ["*"],
    resources: null,
    createdBy: "user:alice",
    createdAt: 0,
    expiresAt: null,
    revokedAt: null,
    lastUsedAt: null,
    metadata: null,
    parentId: null,
    enabled: true,
    updatedAt: null,
    allowedIps: null,
    rotatedFrom: null,
    ...settings,
  };
}

const keyActor = (settings: Partial<KeyRecord>): Actor => ({
  kind: "api_key",
  key: record("actor", settings),
});
const person = (workspaceAdmin = false, orgId: string | null = "acme"): Actor => ({
  kind: "user",
  sub: "alice",
  orgId,
  roles: workspaceAdmin ? ["admin"] : [],
  workspaceAdmin,
  operator: false,
});
const service: Actor = { kind: "service", owner: { type: "user", id: "alice" } };

describe("attenuation: exceededPower(holder, key)", () => {
  const holder = record("h", {
    scopes: ["models:*"],
    resources: ["a", "b"],
    expiresAt: 10 * HOUR,
    allowedIps: ["10.0.0.0/8"],
  });

  it("is null for a key within every power, and names the first power exceeded", () => {
    expect(exceededPower(holder, record("k", { ...holder, scopes: ["models:invoke"], resources: ["a"] }))).toBeNull();
    expect(exceededPower(holder, { ...holder, scopes: ["keys:write"] })).toBe("scopes");
    expect(exceededPower(holder, { ...holder, resources: null })).toBe("resources");
    expect(exceededPower(holder, { ...holder, resources: ["c"] })).toBe("resources");
    expect(exceededPower(holder, { ...holder, expiresAt: null })).toBe("expires_at");
    expect(exceededPower(holder, { ...holder, expiresAt: 11 * HOUR })).toBe("expires_at");
    expect(exceededPower(holder, { ...holder, expiresAt: 10 * HOUR })).toBeNull();
    expect(exceededPower(holder, { ...holder, allowedIps: null })).toBe("allowed_ips");
    expect(exceededPower(holder, { ...holder, allowedIps: ["10.1.0.0/16"] })).toBeNull();
  });
});

describe("management", () => {
  it("a key manages keys within its powers; a member may not manage workspace keys", () => {
    const narrow = keyActor({ scopes: ["keys:write", "metrics:read"] });
    expect(() => requireManagement(narrow, record("w", { scopes: ["metrics:read"] }), "The key")).not.toThrow();
    expect(() => requireManagement(narrow, record("a"), "The key")).toThrow(ForbiddenError);
    const workspaceKey = record("ws", { owner: { type: "workspace", id: "acme" } });
    expect(() => requireManagement(person(false), workspaceKey, "The key")).toThrow(/workspace admin/);
    expect(() => requireManagement(person(true), workspaceKey, "The key")).not.toThrow();
    expect(() => requireManagement(service, record("a"), "The key")).not.toThrow();
  });

  it("chain-wide: every row reached must be manageable, and the refusal names those out of reach", () => {
    const narrow = keyActor({ scopes: ["keys:write", "metrics:read"] });
    const rows = [record("strong-1"), record("weak", { scopes: ["metrics:read"] }), record("strong-2")];
    let error: unknown;
    try {
      requireManagementOfAll(narrow, rows, "The cascade would revoke");
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ForbiddenError);
    expect((error as Error).message).toContain("strong-1, strong-2");
    expect((error as Error).message).not.toContain("weak");
    expect(() => requireManagementOfAll(narrow, [rows[1]!], "x")).not.toThrow();
    // People and services are bound by ownership and roles, not by attenuation.
    expect(() => requireManagementOfAll(person(), rows, "x")).not.toThrow();
    expect(() => requireManagementOfAll(service, rows, "x")).not.toThrow();
  });

  it("narrowing: the keys stronger than the new powers", () => {
    const powers = record("p", { scopes: ["metrics:read"], expiresAt: HOUR });
    const lineage = [
      record("c1", { scopes: ["metrics:read"], expiresAt: HOUR }),
      record("c2", { scopes: ["metrics:read"] }),
      record("c3", { scopes: ["models:invoke"], expiresAt: HOUR / 2 }),
    ];
    expect(strongerThan(powers, lineage)).toEqual(["c2", "c3"]);
    expect(strongerThan(record("root"), lineage)).toEqual([]);
  });

  it("requireScope binds keys only", () => {
    expect(() => requireScope(keyActor({ scopes: ["keys:read"] }), "keys:write")).toThrow(/keys:write/);
    expect(() => requireScope(keyActor({ scopes: ["keys:*"] }), "keys:write")).not.toThrow();
    expect(() => requireScope(person(), "keys:write")).not.toThrow();
  });
});

describe("visibility and owners", () => {
  it("a person sees their own keys and their workspace's; a key its owner's", () => {
    expect(visibleOwners(person())).toEqual([
      { type: "user", id: "alice" },
      { type: "workspace", id: "acme" },
    ]);
    expect(visibleOwners(person(false, null))).toEqual([{ type: "user", id: "alice" }]);
    expect(visibleOwners(keyActor({ owner: { type: "workspace", id: "acme" } }))).toEqual([
      { type: "workspace", id: "acme" },
    ]);
  });

  it("owner of a new key: workspace keys for admins only; a key makes keys of its own owner", () => {
    expect(ownerForNewKey(person(true), "workspace")).toEqual({ type: "workspace", id: "acme" });
    expect(() => ownerForNewKey(person(false), "workspace")).toThrow(ForbiddenError);
    expect(() => ownerForNewKey(person(true, null), "workspace")).toThrow(ValidationError);
    expect(() => ownerForNewKey(keyActor({}), "workspace")).toThrow(ForbiddenError);
    expect(ownerForNewKey(service, undefined)).toEqual({ type: "user", id: "alice" });
  });
});

describe("a new key", () => {
  it("inherits the powers of the key making it, and may not exceed them", () => {
    const maker = keyActor({ scopes: ["models:*"], resources: ["a"], expiresAt: HOUR, allowedIps: ["10.0.0.0/8"] });
    expect(authorizeNewKey(maker, {})).toMatchObject({
      scopes: ["models:*"],
      resources: ["a"],
      expiresAt: HOUR,
      allowedIps: ["10.0.0.0/8"],
    });
    expect(() => authorizeNewKey(maker, { expires_at: null })).toThrow(ForbiddenError);
    expect(authorizeNewKey(person(), {})).toMatchObject({ scopes: ["*"], resources: null, expiresAt: null });
  });

  it("a key with limits makes keys sharing its limits and counters, and may not ask for others", () => {
    const limits = { ratelimits: [], credits: { remaining: 5, refill: null } };
    const limited = keyActor({ limits, usageId: "chain" });
    expect(limitsForNewKey(limited, {})).toEqual({ limits, usageId: "chain" });
    expect(() => limitsForNewKey(limited, { credits: { remaining: 1, refill: null } })).toThrow(ForbiddenError);
    expect(limitsForNewKey(person(), {})).toEqual({});
  });
});

describe("limits reach the lineage", () => {
  const limits = { ratelimits: [], credits: { remaining: 5, refill: null } };

  it("outsideChain: the unexpired keys of a chain's lineage that spend other counters, or none", () => {
    const lineage = [
      record("root", { limits }),
      record("shares", { limits, usageId: "root" }),
      record("unlimited"),
      record("own-counters", { limits, usageId: "elsewhere" }),
      record("expired", { expiresAt: 10 }),
      record("expiring", { expiresAt: 30 }),
    ];
    expect(outsideChain("root", lineage, 20)).toEqual(["unlimited", "own-counters", "expiring"]);
    expect(outsideChain("root", lineage.slice(0, 2), 20)).toEqual([]);
  });

  it("usageOutgrows: a key outgrows a minter with limits unless it spends the minter's counters", () => {
    const minter = record("m", { limits, usageId: "chain" });
    expect(usageOutgrows(minter, record("k"))).toBe(true);
    expect(usageOutgrows(minter, record("k", { usageId: "other" }))).toBe(true);
    expect(usageOutgrows(minter, record("k", { usageId: "chain" }))).toBe(false);
    expect(usageOutgrows(record("m"), record("k"))).toBe(false);
    expect(usageOutgrows(record("m", { limits: { ratelimits: [], credits: null } }), record("k"))).toBe(false);
  });
});

describe("trusted import", () => {
  const mine = { type: "user", id: "alice" } as const;
  const workspace = { type: "workspace", id: "acme" } as const;

  it("services and workspace admins (for the workspace) always; people and keys only with IMPORT_ALLOWED=personal", () => {
    expect(mayImport(service, mine, "admins")).toBe(true);
    expect(mayImport(person(true), workspace, "admins")).toBe(true);
    expect(mayImport(person(true), mine, "admins")).toBe(false);
    expect(mayImport(person(false), workspace, "admins")).toBe(false);
    expect(mayImport(person(false), mine, "admins")).toBe(false);
    expect(mayImport(keyActor({}), mine, "admins")).toBe(false);
    expect(mayImport(person(false), mine, "personal")).toBe(true);
    expect(mayImport(keyActor({}), mine, "personal")).toBe(true);
  });
});

describe("a rotated-away key's expiry", () => {
  it("may be brought forward, never extended or removed", () => {
    expect(rotatedExpiryAllowed(2 * HOUR, HOUR)).toBe(true);
    expect(rotatedExpiryAllowed(2 * HOUR, 2 * HOUR)).toBe(true);
    expect(rotatedExpiryAllowed(2 * HOUR, 3 * HOUR)).toBe(false);
    expect(rotatedExpiryAllowed(2 * HOUR, null)).toBe(false);
    expect(rotatedExpiryAllowed(null, HOUR)).toBe(true);
  });
});
