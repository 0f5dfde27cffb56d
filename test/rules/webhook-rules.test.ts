/**
 * Webhooks' pure rules, called directly: the action → event type table (fabricated events of every
 * action, those other features write included), who may register what, which endpoint receives
 * which event, the retry schedule and Retry-After, the URL and address rules, the signature against
 * the Standard Webhooks test vector, and secrets at rest.
 */
import { describe, expect, it } from "vitest";
import { isRefusedAddress, webhookUrlProblem } from "../../src/keys/webhook-address";
import { newSigningSecret, signature, signatureHeader, verifySignature } from "../../src/keys/webhook-signature";
import type { Actor, AuditEvent, RootKeyRecord } from "../../src/model";
import { ForbiddenError, ValidationError } from "../../src/service/errors";
import {
  DEPLOYMENT,
  MAX_ATTEMPTS,
  WEBHOOK_EVENT_TYPES,
  endpointReceives,
  eventTypeOf,
  mayManageWebhooksOf,
  ownerOfNewEndpoint,
  retryAfterMs,
  retryDelayMs,
  rootEndpointOwner,
  webhookOwnersOf,
  webhookPayload,
} from "../../src/service/webhook-rules";
import { decryptSecret, encryptSecret } from "../../src/service/webhook-secrets";

const person = (sub: string, extra: Partial<Omit<Extract<Actor, { kind: "user" }>, "kind">> = {}): Actor => ({
  kind: "user",
  sub,
  orgId: null,
  roles: [],
  workspaceAdmin: false,
  operator: false,
  ...extra,
});

const event = (action: string, owner: AuditEvent["owner"] = { type: "user", id: "alice" }): AuditEvent => ({
  id: "7d9f1c2e-1111-4222-8333-444455556666",
  keyId: "0b6a3f2e-aaaa-4bbb-8ccc-ddddeeeeffff",
  owner,
  action: action as AuditEvent["action"],
  actor: "user:alice",
  at: Date.UTC(2026, 0, 2, 3, 4, 5),
  changes: { enabled: { old: true, new: false } },
  ip: "203.0.113.9",
  userAgent: "curl/8",
});

describe("event types", () => {
  it.each([
    ["created", "key.created"],
    ["imported", "key.created"],
    ["updated", "key.updated"],
    ["disabled", "key.disabled"],
    ["enabled", "key.enabled"],
    ["rotated", "key.rotated"],
    ["revoked", "key.revoked"],
    ["expiring", "key.expiring"],
    ["expired", "key.expired"],
    ["leaked", "key.leaked"],
    ["credits_low", "credits.low"],
    ["credits_exhausted", "credits.exhausted"],
  ])("%s → %s", (action, type) => {
    expect(eventTypeOf(action)).toBe(type);
  });

  it("emits nothing for an action without a type (nor for an inherited property name)", () => {
    expect(eventTypeOf("purged")).toBeNull();
    expect(eventTypeOf("toString")).toBeNull();
    expect(eventTypeOf("constructor")).toBeNull();
  });

  it("every type is reachable from some action", () => {
    const actions = [
      "created",
      "updated",
      "disabled",
      "enabled",
      "rotated",
      "revoked",
      "expiring",
      "expired",
      "leaked",
      "credits_low",
      "credits_exhausted",
    ];
    expect(new Set(actions.map(eventTypeOf))).toEqual(new Set(WEBHOOK_EVENT_TYPES));
  });

  it("a payload is thin: type, timestamp and data of ids, owner, action, actor and changes; no address or agent", () => {
    const body = JSON.parse(webhookPayload(event("disabled"), "key.disabled"));
    expect(body).toEqual({
      type: "key.disabled",
      timestamp: "2026-01-02T03:04:05.000Z",
      data: {
        event_id: "7d9f1c2e-1111-4222-8333-444455556666",
        key_id: "0b6a3f2e-aaaa-4bbb-8ccc-ddddeeeeffff",
        owner: { type: "user", id: "alice" },
        action: "disabled",
        actor: "user:alice",
        changes: { enabled: { old: true, new: false } },
      },
    });
  });
});

describe("who receives what", () => {
  const alice = { type: "user" as const, id: "alice" };
  it("an endpoint receives its own owner's events only; a deployment endpoint every owner's", () => {
    const mine = { owner: alice, events: null, enabled: true };
    expect(endpointReceives(mine, event("created"), "key.created")).toBe(true);
    expect(endpointReceives(mine, event("created", { type: "user", id: "bob" }), "key.created")).toBe(false);
    expect(endpointReceives(mine, event("created", { type: "workspace", id: "alice" }), "key.created")).toBe(false);
    const everyone = { owner: DEPLOYMENT, events: null, enabled: true };
    expect(endpointReceives(everyone, event("created", { type: "workspace", id: "acme" }), "key.created")).toBe(true);
  });

  it("a root key's endpoint: the events of the owners its stored patterns cover, nothing else", () => {
    const root = { type: "root" as const, id: "chain-1" };
    const one = { owner: root, owners: ["user:alice"], events: null, enabled: true };
    expect(endpointReceives(one, event("created"), "key.created")).toBe(true);
    expect(endpointReceives(one, event("created", { type: "user", id: "bob" }), "key.created")).toBe(false);
    expect(endpointReceives(one, event("created", { type: "workspace", id: "alice" }), "key.created")).toBe(false);
    const users = { owner: root, owners: ["user:*"], events: null, enabled: true };
    expect(endpointReceives(users, event("created", { type: "user", id: "bob" }), "key.created")).toBe(true);
    expect(endpointReceives(users, event("created", { type: "workspace", id: "acme" }), "key.created")).toBe(false);
    // Stored without patterns (never written so): nothing, rather than everything.
    expect(
      endpointReceives({ owner: root, owners: null, events: null, enabled: true }, event("created"), "key.created"),
    ).toBe(false);
    // A person's endpoint whose subject is `*` is that person's only (never a wildcard).
    const star = { owner: { type: "user" as const, id: "*" }, events: null, enabled: true };
    expect(endpointReceives(star, event("created"), "key.created")).toBe(false);
  });

  it("only subscribed types, and nothing while disabled", () => {
    expect(
      endpointReceives({ owner: alice, events: ["key.revoked"], enabled: true }, event("created"), "key.created"),
    ).toBe(false);
    expect(
      endpointReceives({ owner: alice, events: ["key.revoked"], enabled: true }, event("revoked"), "key.revoked"),
    ).toBe(true);
    expect(endpointReceives({ owner: alice, events: null, enabled: false }, event("revoked"), "key.revoked")).toBe(
      false,
    );
  });
});

describe("who may register and manage", () => {
  it("a person: their own; a workspace admin: the workspace; an operator: the deployment", () => {
    expect(webhookOwnersOf(person("alice"))).toEqual([{ type: "user", id: "alice" }]);
    expect(webhookOwnersOf(person("alice", { orgId: "acme" }))).toEqual([{ type: "user", id: "alice" }]);
    expect(webhookOwnersOf(person("alice", { orgId: "acme", workspaceAdmin: true }))).toContainEqual({
      type: "workspace",
      id: "acme",
    });
    expect(webhookOwnersOf(person("alice", { operator: true }))).toContainEqual(DEPLOYMENT);
    expect(ownerOfNewEndpoint(person("alice"), {})).toEqual({ owner: { type: "user", id: "alice" }, owners: null });
    expect(() => ownerOfNewEndpoint(person("alice", { orgId: "acme" }), { owner: "workspace" })).toThrow(
      ForbiddenError,
    );
    expect(() => ownerOfNewEndpoint(person("alice"), { owner: "deployment" })).toThrow(ForbiddenError);
    const admin = person("alice", { orgId: "acme", workspaceAdmin: true });
    expect(() => ownerOfNewEndpoint(admin, { owner: "deployment" })).toThrow(ForbiddenError);
    expect(mayManageWebhooksOf(admin, DEPLOYMENT)).toBe(false);
    expect(mayManageWebhooksOf(person("bob"), { type: "user", id: "alice" })).toBe(false);
  });

  it("a trusted service: the owner it names; an API key: nothing", () => {
    const service: Actor = { kind: "service", owner: { type: "workspace", id: "acme" } };
    expect(ownerOfNewEndpoint(service, {})).toEqual({ owner: { type: "workspace", id: "acme" }, owners: null });
    expect(() => ownerOfNewEndpoint(service, { owner: "deployment" })).toThrow(ForbiddenError);
    expect(mayManageWebhooksOf(service, { type: "workspace", id: "other" })).toBe(false);
    const key: Actor = {
      kind: "api_key",
      key: {
        id: "k",
        hash: "h",
        owner: { type: "user", id: "alice" },
        scopes: ["*"],
        resources: null,
        expiresAt: null,
        revokedAt: null,
        lastUsedAt: null,
        enabled: true,
        allowedIps: null,
      },
    };
    expect(() => ownerOfNewEndpoint(key, {})).toThrow(ForbiddenError);
    expect(mayManageWebhooksOf(key, { type: "user", id: "alice" })).toBe(false);
  });
});

describe("a root key's endpoints", () => {
  const root = (settings: Partial<RootKeyRecord> = {}): RootKeyRecord => ({
    id: "r2",
    hash: "h",
    start: "lk_root_",
    name: "backend",
    owners: ["user:*", "workspace:acme"],
    scopes: ["keys:read", "keys:write"],
    allowedIps: null,
    createdBy: "user:op",
    createdAt: 0,
    expiresAt: null,
    revokedAt: null,
    revokedBy: null,
    rotatedFrom: "r1",
    chain: "r1",
    lastUsedAt: null,
    ...settings,
  });
  const chain = { type: "root", id: "r1" };

  it("belong to its chain, for one owner it covers or for patterns within its own", () => {
    expect(rootEndpointOwner(root(), { owner: "user", owner_id: "cust_42" })).toEqual({
      owner: chain,
      owners: ["user:cust_42"],
    });
    expect(rootEndpointOwner(root(), { owners: ["user:*", "workspace:acme"] })).toEqual({
      owner: chain,
      owners: ["user:*", "workspace:acme"],
    });
    expect(rootEndpointOwner(root(), { owners: ["user:bob"] }).owners).toEqual(["user:bob"]);
    expect(webhookOwnersOf({ kind: "root", root: root() })).toEqual([chain]);
    expect(mayManageWebhooksOf({ kind: "root", root: root({ id: "r3" }) }, { type: "root", id: "r1" })).toBe(true);
    expect(mayManageWebhooksOf({ kind: "root", root: root({ chain: "r9" }) }, { type: "root", id: "r1" })).toBe(false);
  });

  it("refuses owners and patterns beyond its own, a missing or doubled name, a `*` id, and missing scopes", () => {
    expect(() => rootEndpointOwner(root(), { owner: "workspace", owner_id: "beta" })).toThrow(ForbiddenError);
    expect(() => rootEndpointOwner(root(), { owners: ["workspace:*"] })).toThrow(ForbiddenError);
    expect(() => rootEndpointOwner(root(), {})).toThrow(ValidationError);
    expect(() => rootEndpointOwner(root(), { owner: "user" })).toThrow(ValidationError);
    expect(() => rootEndpointOwner(root(), { owners: ["user:*"], owner_id: "x" })).toThrow(ValidationError);
    expect(() => rootEndpointOwner(root(), { owner: "user", owner_id: "*" })).toThrow(ValidationError);
    expect(() => rootEndpointOwner(root(), { owner: "deployment" })).toThrow(ForbiddenError);
    expect(() => rootEndpointOwner(root({ scopes: ["keys:read"] }), { owners: ["user:*"] })).toThrow(ForbiddenError);
    expect(() => webhookOwnersOf({ kind: "root", root: root({ scopes: ["keys:read"] }) }, "write")).toThrow(
      ForbiddenError,
    );
    expect(() => webhookOwnersOf({ kind: "root", root: root({ scopes: ["keys:write"] }) }, "read")).toThrow(
      ForbiddenError,
    );
  });

  it("only a root key gives patterns; anyone else naming an owner id names their own", () => {
    expect(() => ownerOfNewEndpoint(person("alice"), { owners: ["user:alice"] })).toThrow(ForbiddenError);
    expect(() => ownerOfNewEndpoint(person("alice"), { owner_id: "bob" })).toThrow(ForbiddenError);
    expect(ownerOfNewEndpoint(person("alice"), { owner_id: "alice" }).owner).toEqual({ type: "user", id: "alice" });
    const service: Actor = { kind: "service", owner: { type: "user", id: "alice" } };
    expect(() => ownerOfNewEndpoint(service, { owner_id: "bob" })).toThrow(ForbiddenError);
  });
});

describe("the retry schedule", () => {
  it("grows by 3 from 30 s up to 6 hours, with ±20 % jitter, for about a day", () => {
    const nominal = Array.from({ length: MAX_ATTEMPTS - 1 }, (_, i) => retryDelayMs(i + 1, 0.5, null)!);
    expect(nominal.slice(0, 4)).toEqual([30_000, 90_000, 270_000, 810_000]);
    expect(Math.max(...nominal)).toBe(6 * 3600_000);
    const total = nominal.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(20 * 3600_000);
    expect(total).toBeLessThan(26 * 3600_000);
    expect(retryDelayMs(1, 0, null)).toBe(24_000);
    expect(retryDelayMs(1, 0.999999, null)).toBe(36_000);
    expect(retryDelayMs(MAX_ATTEMPTS, 0.5, null)).toBeNull();
  });

  it("never retries sooner than Retry-After, nor later than a queue message may wait (12 h)", () => {
    expect(retryDelayMs(1, 0.5, 120_000)).toBe(120_000);
    expect(retryDelayMs(5, 0.5, 1000)).toBe(2_430_000);
    expect(retryDelayMs(1, 0.5, 48 * 3600_000)).toBe(12 * 3600_000);
    expect(retryAfterMs("120", 0)).toBe(120_000);
    expect(retryAfterMs(new Date(90_000).toUTCString(), 30_000)).toBe(60_000);
    expect(retryAfterMs("soon", 0)).toBeNull();
    expect(retryAfterMs(null, 0)).toBeNull();
  });
});

describe("where a webhook may go", () => {
  it.each([
    "10.0.0.1",
    "172.16.5.4",
    "192.168.0.1",
    "127.0.0.1",
    "169.254.169.254",
    "100.64.1.1",
    "0.0.0.0",
    "::1",
    "::",
    "fd12::1",
    "fe80::1",
    "::ffff:192.168.0.1",
    "64:ff9b::a00:1",
    "ff02::1",
    "224.0.0.1",
    "not-an-ip",
  ])("refuses %s", (ip) => expect(isRefusedAddress(ip)).toBe(true));

  it.each(["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1", "172.32.0.1"])("allows %s", (ip) =>
    expect(isRefusedAddress(ip)).toBe(false),
  );

  it("https to a public host; http://127.0.0.1 only with the loopback exception", () => {
    expect(webhookUrlProblem("https://hooks.example.com/x", false)).toBeNull();
    expect(webhookUrlProblem("https://93.184.216.34/x", false)).toBeNull();
    expect(webhookUrlProblem("http://hooks.example.com/x", false)).toMatch(/https/);
    expect(webhookUrlProblem("http://127.0.0.1:8860/x", false)).toMatch(/https/);
    expect(webhookUrlProblem("http://127.0.0.1:8860/x", true)).toBeNull();
    expect(webhookUrlProblem("http://10.0.0.1/x", true)).not.toBeNull();
    expect(webhookUrlProblem("https://service.local/x", false)).toMatch(/public host/);
  });
});

describe("signatures (Standard Webhooks)", () => {
  it("reproduces the specification's test vector", async () => {
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    expect(await signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}')).toBe(
      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    );
  });

  it("one signature per live secret, space-separated; a receiver accepts any one of them", async () => {
    const [a, b] = [newSigningSecret(), newSigningSecret()];
    const header = await signatureHeader([a, b], "msg_1", 1000, "{}");
    expect(header.split(" ")).toHaveLength(2);
    for (const secret of [a, b]) {
      expect(await verifySignature(secret, { id: "msg_1", timestamp: "1000", signature: header }, "{}", 1000)).toBe(
        true,
      );
    }
    expect(
      await verifySignature(newSigningSecret(), { id: "msg_1", timestamp: "1000", signature: header }, "{}", 1000),
    ).toBe(false);
    expect(await verifySignature(a, { id: "msg_1", timestamp: "1000", signature: header }, "{} ", 1000)).toBe(false);
    expect(await verifySignature(a, { id: "msg_1", timestamp: "1000", signature: header }, "{}", 2000)).toBe(false);
  });
});

describe("secrets at rest", () => {
  it("decrypt only with the same deployment key and endpoint id", async () => {
    const secret = newSigningSecret();
    const key = "k".repeat(32);
    const sealed = await encryptSecret(key, "endpoint-1", secret);
    expect(sealed).not.toContain(secret.slice(6));
    expect(await decryptSecret(key, "endpoint-1", sealed)).toBe(secret);
    await expect(decryptSecret(key, "endpoint-2", sealed)).rejects.toThrow();
    await expect(decryptSecret("j".repeat(32), "endpoint-1", sealed)).rejects.toThrow();
  });
});
