/**
 * The keys page's pure rules (ui/words.ts, ui/patch.ts): a key's settings in
 * words, the search and status filter over loaded keys, and the edit's PATCH body holding only what
 * changed. Apart from test/http/ui.test.ts so a mutant of these rules is caught here, not by the check that
 * the built files are fresh.
 */
import { describe, expect, it } from "vitest";
import type { ApiKey } from "../../packages/client/src/types";
import { patchFor } from "../../ui/patch";
import {
  allowListInWords,
  creditsInWords,
  eventInWords,
  filterKeys,
  rateLimitInWords,
  resourcesInWords,
  scopeChip,
  scopeInWords,
  usageTotals,
} from "../../ui/words";

const now = Date.parse("2030-01-10T00:00:00Z");

function key(fields: Partial<ApiKey> = {}): ApiKey {
  return {
    id: "k1",
    name: "Billing",
    start: "lk_abc123",
    owner_type: "user",
    owner_id: "carol",
    scopes: ["*"],
    resources: null,
    created_by: "user:carol",
    created_at: "2030-01-01T00:00:00Z",
    expires_at: null,
    revoked_at: null,
    last_used_at: null,
    metadata: null,
    parent_id: null,
    enabled: true,
    updated_at: "2030-01-01T00:00:00Z",
    allowed_ips: null,
    rotated_from: null,
    ratelimits: [],
    credits: null,
    ...fields,
  };
}

describe("a key in words", () => {
  it("`*` is Full access, never a bare star; other scopes read as an action on a resource", () => {
    expect(scopeChip("*")).toBe("Full access");
    expect(scopeChip("keys:read")).toBe("keys:read");
    expect(scopeInWords("*")).toBe("Full access: every action on every resource");
    expect(scopeInWords("models:*")).toBe("Every action on models");
    expect(scopeInWords("keys:read")).toBe("read on keys");
  });

  it("resources, allow-list, rate limits, credits and events", () => {
    expect(resourcesInWords(null)).toBe("Every resource");
    expect(resourcesInWords(["model_a", "model_b"])).toBe("Only model_a, model_b");
    expect(allowListInWords(null)).toBe("Any address");
    expect(allowListInWords(["10.0.0.0/8", "::1"])).toBe("10.0.0.0/8, ::1");
    expect(rateLimitInWords({ name: "burst", limit: 10, duration_ms: 1000 })).toBe("10 requests per second (burst)");
    expect(rateLimitInWords({ name: "daily", limit: 1, duration_ms: 86_400_000 })).toBe("1 request per day (daily)");
    expect(rateLimitInWords({ name: "odd", limit: 5000, duration_ms: 30_000 })).toBe(
      "5,000 requests per 30 seconds (odd)",
    );
    expect(creditsInWords(null)).toBe("None");
    expect(creditsInWords({ remaining: 950, refill: { amount: 1000, interval: "month" }, low_threshold: null })).toBe(
      "950 left · Refilled to 1,000 every month",
    );
    expect(creditsInWords({ remaining: 3, refill: null, low_threshold: null })).toBe("3 left · No refill");
    expect(eventInWords({ action: "updated", actor: "user:carol", changes: { name: { old: "a", new: "b" } } })).toBe(
      "Updated by user:carol: name",
    );
    expect(eventInWords({ action: "revoked", actor: "key:k2", changes: { revoked_at: { old: null, new: "x" } } })).toBe(
      "Revoked by key:k2",
    );
  });
});

describe("search and status filter over the loaded keys", () => {
  const keys = [
    key({ id: "a", name: "Billing prod", start: "lk_aaa111" }),
    key({ id: "b", name: "Billing staging", start: "lk_bbb222", expires_at: "2030-01-12T00:00:00Z" }),
    key({ id: "c", name: "Exporter", start: "lk_ccc333", enabled: false }),
    key({ id: "d", name: "Old", start: "lk_ddd444", revoked_at: "2030-01-02T00:00:00Z" }),
    key({ id: "e", name: "Load test", start: "lk_eee555", expires_at: "2030-01-09T00:00:00Z" }),
  ];
  const ids = (query: string, status: Parameters<typeof filterKeys>[2]) =>
    filterKeys(keys, query, status, now, 7).map((k) => k.id);

  it("by name (any case, trimmed) or by the key's start", () => {
    expect(ids("", "all")).toEqual(["a", "b", "c", "d", "e"]);
    expect(ids("  BILLING ", "all")).toEqual(["a", "b"]);
    expect(ids("staging", "all")).toEqual(["b"]);
    expect(ids("lk_ccc", "all")).toEqual(["c"]);
    expect(ids("ccc", "all")).toEqual([]);
    expect(ids("nothing", "all")).toEqual([]);
  });

  it("by status: active includes expiring soon; the others are exact", () => {
    expect(ids("", "active")).toEqual(["a", "b"]);
    expect(ids("", "expiring")).toEqual(["b"]);
    expect(ids("", "disabled")).toEqual(["c"]);
    expect(ids("", "revoked")).toEqual(["d"]);
    expect(ids("", "expired")).toEqual(["e"]);
    expect(ids("prod", "expiring")).toEqual([]);
  });
});

describe("the edit's PATCH body", () => {
  const values = (k: ApiKey) => ({
    name: k.name,
    scopes: [...k.scopes],
    resources: k.resources,
    expires_at: undefined,
    allowed_ips: k.allowed_ips,
    ratelimits: k.ratelimits.map((r) => ({ ...r })),
    credits: k.credits ? { remaining: k.credits.remaining, refill: k.credits.refill } : null,
  });

  it("holds nothing when nothing changed", () => {
    const limited = key({
      ratelimits: [{ name: "burst", limit: 10, duration_ms: 1000 }],
      credits: { remaining: 5, refill: { amount: 10, interval: "day" }, low_threshold: null },
      allowed_ips: ["10.0.0.0/8"],
      expires_at: "2030-02-01T00:00:00Z",
    });
    expect(patchFor(limited, values(limited))).toEqual({});
    expect(patchFor(key(), values(key()))).toEqual({});
  });

  it("holds exactly the fields that changed, with null to clear", () => {
    const k = key({ resources: ["a"], allowed_ips: ["10.0.0.1"], expires_at: "2030-02-01T00:00:00Z" });
    expect(patchFor(k, { ...values(k), name: "Renamed" })).toEqual({ name: "Renamed" });
    expect(patchFor(k, { ...values(k), scopes: ["keys:read"] })).toEqual({ scopes: ["keys:read"] });
    expect(patchFor(k, { ...values(k), resources: null, allowed_ips: null, expires_at: null })).toEqual({
      resources: null,
      allowed_ips: null,
      expires_at: null,
    });
    expect(patchFor(k, { ...values(k), expires_at: "2030-02-01T00:00:00Z" })).toEqual({});
    const limits = [{ name: "burst", limit: 5, duration_ms: 1000 }];
    expect(patchFor(k, { ...values(k), ratelimits: limits })).toEqual({ ratelimits: limits });
    const credits = { remaining: 100, refill: { amount: 100, interval: "month" as const } };
    expect(patchFor(k, { ...values(k), credits })).toEqual({ credits });
    const metered = key({ credits: { remaining: 100, refill: null, low_threshold: null } });
    expect(patchFor(metered, { ...values(metered), credits: null })).toEqual({ credits: null });
    expect(patchFor(metered, { ...values(metered), credits: { remaining: 99, refill: null } })).toEqual({
      credits: { remaining: 99, refill: null },
    });
  });
});

describe("usage totals (the chart's summary)", () => {
  const bucket = (start: string, total: number, valid: number) => ({
    start,
    total,
    valid,
    rate_limited: total - valid,
    usage_exceeded: 0,
    revoked: 0,
    expired: 0,
    disabled: 0,
    ip_not_allowed: 0,
    insufficient_scope: 0,
    resource_not_allowed: 0,
  });
  it("sums every day and names the busiest", () => {
    const days = [
      bucket("2030-01-01T00:00:00Z", 0, 0),
      bucket("2030-01-02T00:00:00Z", 7, 5),
      bucket("2030-01-03T00:00:00Z", 3, 3),
    ];
    expect(usageTotals(days)).toEqual({ total: 10, valid: 8, busiest: days[1] });
    expect(usageTotals([bucket("2030-01-01T00:00:00Z", 0, 0)])).toEqual({ total: 0, valid: 0, busiest: null });
  });
});
