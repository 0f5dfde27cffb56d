/**
 * The isolate's caches are bounded by bytes, not counts: a record may hold 50 scopes of 100
 * characters and 100 resources of 128, so 10,000 of them would not fit an isolate's 128 MB. The record
 * cache estimates each record once, as it enters, and evicts the least recently used beyond its budget.
 */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { env } from "cloudflare:workers";
import type { CompactRecord, KeyRecord } from "../../src/model";
import { RECORD_MEMORY_BYTES, type MemoryRecord, SchemeCounts } from "../../src/service/memory-record";
import { IsolateCache, Verifier } from "../../src/service/verify";
import { D1KeyStore } from "../../src/store/d1";
import { TtlLru } from "../../src/util/lru";

/** The largest record the API accepts (src/schemas/keys.ts), with a 255-character owner id. */
function maximumRecord(i: number): KeyRecord {
  const pad = (prefix: string, length: number) => `${prefix}${"x".repeat(length - prefix.length)}`;
  return {
    id: crypto.randomUUID(),
    hash: `${i.toString(16).padStart(8, "0")}${"0".repeat(56)}`,
    start: "lk_abcdef",
    name: "n".repeat(100),
    owner: { type: "user", id: pad(`owner-${i}-`, 255) },
    scopes: Array.from({ length: 50 }, (_, s) => pad(`s${s}:`, 100)),
    resources: Array.from({ length: 100 }, (_, r) => pad(`r${r}-`, 128)),
    createdBy: "user:someone",
    createdAt: 0,
    expiresAt: null,
    revokedAt: null,
    lastUsedAt: null,
    metadata: { note: "m".repeat(2000) },
    parentId: null,
    enabled: true,
    updatedAt: null,
    allowedIps: Array.from({ length: 100 }, (_, a) => `2001:db8:${a.toString(16)}:ffff:ffff:ffff:ffff:0/128`),
    rotatedFrom: null,
  };
}

describe("the isolate's record cache", () => {
  it("filled with maximum-size records stays under its byte budget, keeping the most recent", () => {
    const local = new IsolateCache();
    const deps = { store: new D1KeyStore(env.DB), config: loadConfig(env), defer: () => {} };
    const cache = { get: async () => null, put: async () => {}, delete: async () => {} };
    const verifier = new Verifier({ ...deps, cache }, local);
    const records = Array.from({ length: 1500 }, (_, i) => maximumRecord(i));
    for (const record of records) verifier.remember(record, 0);

    expect(local.records.bytes).toBeLessThanOrEqual(RECORD_MEMORY_BYTES);
    // The estimate is no smaller than the compact record's own JSON (a floor for its heap size), so
    // the budget bounds the real memory, not just the estimate.
    const kept = local.records.get(records.at(-1)!.hash, Date.now())!;
    const jsonBytes = JSON.stringify(kept.record).length;
    expect(local.records.size * jsonBytes).toBeLessThanOrEqual(RECORD_MEMORY_BYTES);
    expect(local.records.size).toBeGreaterThan(RECORD_MEMORY_BYTES / (2 * jsonBytes)); // and not far below it
    // The compact record: no name, no metadata.
    expect(kept.record).not.toHaveProperty("name");
    expect(kept.record).not.toHaveProperty("metadata");
    expect(local.records.get(records[0]!.hash, Date.now())).toBeUndefined(); // the oldest went first
  });
});

describe("TtlLru with a byte budget", () => {
  it("evicts the least recently used until it fits, and accounts for deletes, expiry and replacement", () => {
    const lru = new TtlLru<string, string>(100, 1000, { maxBytes: 10, sizeOf: (_, value) => value.length });
    lru.set("a", "xxxx", 0);
    lru.set("b", "xxxx", 0);
    expect(lru.get("a", 0)).toBe("xxxx"); // a is now the most recent
    lru.set("c", "xxxx", 0); // 12 bytes: b goes
    expect([lru.get("a", 0), lru.get("b", 0), lru.get("c", 0)]).toEqual(["xxxx", undefined, "xxxx"]);
    expect(lru.bytes).toBe(8);
    lru.set("a", "xx", 0); // replaced, not added
    expect(lru.bytes).toBe(6);
    lru.delete("c");
    expect(lru.bytes).toBe(2);
    expect(lru.get("a", 1000)).toBeUndefined(); // expired
    expect(lru.bytes).toBe(0);
    lru.set("huge", "x".repeat(11), 0); // larger than the budget: not kept
    expect([lru.size, lru.bytes]).toEqual([0, 0]);
  });
});

describe("the records in memory by lookup scheme", () => {
  const entry = (format?: CompactRecord["format"]) =>
    ({ record: { format } as CompactRecord, seq: 0, checkedAt: 0 }) as MemoryRecord;

  it("follow every way a record enters and leaves: set, replacement, delete, eviction, expiry, clear", () => {
    const schemes = new SchemeCounts();
    const lru = new TtlLru<string, MemoryRecord>(2, 1000, undefined, schemes);
    const holds = () => [null, "sanctum", "sha256", "hmac", "bcrypt"].filter((s) => schemes.holds(s as never));
    expect(holds()).toEqual([]);
    lru.set("a", entry(), 0);
    lru.set("b", entry("sanctum"), 0);
    expect(holds()).toEqual([null, "sanctum"]);
    lru.set("b", entry("hex64"), 0); // replaced: another scheme
    expect(holds()).toEqual([null, "sha256"]);
    expect(lru.get("a", 0)).toBeDefined(); // a read changes nothing
    lru.set("c", entry("bcrypt"), 0); // over the count: b, the least recent, is evicted
    expect(holds()).toEqual([null, "bcrypt"]);
    lru.delete("c");
    expect(holds()).toEqual([null]);
    expect(lru.get("a", 1000)).toBeUndefined(); // found expired
    expect(holds()).toEqual([]);
    lru.set("d", entry("opaque"), 0);
    lru.set("e", entry("hmac-sha256"), 0);
    expect(holds()).toEqual(["sha256", "hmac"]);
    lru.clear();
    expect(holds()).toEqual([]);
  });
});
