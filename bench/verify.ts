/**
 * Microbenchmark cases for the verification function itself (src/service/verify.ts), without HTTP:
 * the same module the Worker runs, with the KeyStore and RecordCache interfaces implemented in
 * memory. bench/verify.mjs runs every case twice over: in Node (this file bundled, WebCrypto
 * included, CPU read with process.cpuUsage) and in workerd (bench/verify-worker.ts, each timed loop
 * one request, its CPU read from outside). So this file holds no clock and needs no Node types.
 *
 * The stores count their calls: a warm run that touched storage would be measuring the wrong thing,
 * so the benchmark fails instead of reporting a number.
 *
 * The "router" suite adds the cost of the HTTP layer (src/http/app.ts: routing, authentication, the
 * response) by calling the Worker's router directly, with stand-in D1 and KV bindings: the CPU a
 * request costs inside the Worker, without wrangler dev's proxies and sockets.
 */
import type { Config } from "../src/config";
import type { Env } from "../src/env";
import { createApp } from "../src/http/app";
import { routes } from "../src/http/routes";
import { generateKey, isWellFormedKey, keyStart } from "../src/keys/format";
import { sha256Hex } from "../src/keys/hash";
import { NO_LEGACY_FORMATS } from "../src/keys/legacy";
import type { AuditEvent, KeyRecord } from "../src/model";
import { compact } from "../src/model";
import { type CachedRecord, type RecordCache, cacheKey } from "../src/store/cache";
import type { KeyChange, KeyStore, ListPage, StampedRecord } from "../src/store/store";
import type { VerifyChecks } from "../src/schemas";
import { IsolateCache, Verifier, isolateCache } from "../src/service/verify";
import { lastUseTiming } from "../src/service/last-use";
import { usageTiming } from "../src/service/usage-tally";

// The loops below wait for every deferred write; a queued last use would wait its 15 s window (no CPU):
// here it is written at once, so the loops measure CPU, not the window. Verification counts would wait
// their 20 s window too, and written at once they would be a write per verification: here no window
// opens, so counts are written only when a tally fills (500 entries).
lastUseTiming.windowMs = 0;
usageTiming.windowMs = Infinity;

/** The D1 stand-in: a map by hash and by id, and an empty change feed (nothing is revoked here). */
class MemoryKeyStore implements KeyStore {
  readonly byHash = new Map<string, KeyRecord>();
  readonly count = { reads: 0, writes: 0, syncs: 0 };

  async insert(record: KeyRecord): Promise<{ seq: number }> {
    this.count.writes++;
    this.byHash.set(record.hash, record);
    return { seq: 0 };
  }
  async insertNew(records: readonly KeyRecord[]): Promise<{ inserted: boolean[] }> {
    const inserted: boolean[] = [];
    for (const record of records) {
      inserted.push(!this.byHash.has(record.hash));
      if (inserted.at(-1)) await this.insert(record);
    }
    return { inserted };
  }
  async replacementOf(): Promise<never> {
    throw new Error("the benchmark rotates no key");
  }
  async reach(): Promise<never> {
    throw new Error("the benchmark reads no lineage");
  }
  async findByHash(hash: string): Promise<StampedRecord | null> {
    this.count.reads++;
    const record = this.byHash.get(hash);
    return record ? { record, seq: 0 } : null;
  }
  async upgradeLegacyHash(id: string, from: string, to: string): Promise<number | null> {
    this.count.writes++;
    for (const [hash, record] of this.byHash) {
      if (record.id === id && record.legacyHash === from) {
        this.byHash.set(hash, { ...record, legacyHash: to });
        return 0;
      }
    }
    return null;
  }
  async upgradeHmacDigest(id: string, digest: string, sha: string): Promise<number | null> {
    this.count.writes++;
    const record = this.byHash.get(digest);
    if (record?.id !== id || record.legacyHash !== undefined || this.byHash.has(sha)) return null;
    this.byHash.delete(digest);
    this.byHash.set(sha, { ...record, hash: sha, legacyHash: digest });
    return 0;
  }
  async findUpgradedHmac(digest: string): Promise<KeyRecord | null> {
    this.count.reads++;
    for (const record of this.byHash.values()) if (record.legacyHash === digest) return record;
    return null;
  }
  async findById(id: string): Promise<KeyRecord | null> {
    this.count.reads++;
    for (const record of this.byHash.values()) if (record.id === id) return record;
    return null;
  }
  async list(_page: ListPage): Promise<KeyRecord[]> {
    this.count.reads++;
    return [];
  }
  async revoke(): Promise<KeyRecord[]> {
    throw new Error("the benchmark revokes nothing");
  }
  async update(): Promise<number | null> {
    throw new Error("the benchmark changes no key");
  }
  async rotate(): Promise<null> {
    throw new Error("the benchmark rotates no key");
  }
  async listEvents(): Promise<AuditEvent[]> {
    throw new Error("the benchmark reads no audit log");
  }
  async purgeEvents(): Promise<number> {
    throw new Error("the benchmark purges no audit log");
  }
  async changesAfter(): Promise<KeyChange[]> {
    this.count.syncs++;
    return [];
  }
  async latestChanges(): Promise<KeyChange[]> {
    this.count.syncs++;
    return [];
  }
  async touchLastUsed(): Promise<void> {
    this.count.writes++;
  }
}

/** The KV stand-in: JSON strings by hash, as KV holds them. */
class MemoryRecordCache implements RecordCache {
  readonly values = new Map<string, string>();
  readonly count = { reads: 0, writes: 0 };

  async get(hash: string): Promise<CachedRecord | null> {
    this.count.reads++;
    const value = this.values.get(hash);
    return value === undefined ? null : (JSON.parse(value) as CachedRecord);
  }
  async put(entry: CachedRecord): Promise<void> {
    this.count.writes++;
    this.values.set(entry.record.hash, JSON.stringify(entry));
  }
  async delete(hash: string): Promise<void> {
    this.count.writes++;
    this.values.delete(hash);
  }
}

/** KV and D1 calls made during a timed loop. */
export interface StorageCounts {
  readonly reads: number;
  readonly writes: number;
  /** Change feed syncs: one per isolate every revocationSyncMs, not per verify. */
  readonly syncs: number;
  /**
   * Usage tally flushes (service/usage-tally.ts): one batch per isolate about every 20 s or 500 keys, not per
   * verify (here only full tallies: no window opens); counted apart, as syncs are, and allowed in a warm loop.
   */
  readonly flushes?: number;
}

export interface BenchCase {
  readonly name: string;
  /** Calls kept in flight at once (1: one after the other). */
  readonly inFlight: number;
  /** Untimed: puts the isolate in the state the case measures (warm caches, writes settled). */
  prepare(): Promise<void>;
  /** The timed loop: `calls` calls; fails if a call gives the wrong answer or a warm one touches storage. */
  run(calls: number): Promise<StorageCounts>;
}

export type Suites = Record<"verify" | "router", BenchCase[]>;

const PREFIX = "lk";
/**
 * In Node, crypto.subtle.digest runs on the thread pool, so one verification at a time pays two
 * thread hand-offs per call (mostly system CPU, and very sensitive to other load on the machine);
 * workerd hashes synchronously. Keeping several calls in flight, as an isolate serving concurrent
 * requests does, amortises the hand-off.
 */
const IN_FLIGHT = 16;
const config: Config = {
  keyPrefix: PREFIX,
  acceptedPrefixes: [PREFIX],
  rootKeyPrefix: `${PREFIX}_root`,
  purgeAfterDays: null,
  jwt: {
    secret: null,
    jwksUrl: null,
    issuer: null,
    audience: null,
    orgClaim: "org_id",
    clockToleranceSeconds: 30,
    maxAgeSeconds: 86_400,
    rolesClaim: "roles",
    adminRoles: ["admin"],
    operatorRoles: ["operator"],
  },
  revocationSyncMs: 5000,
  shards: { count: 1, problem: null },
  auditRetentionDays: 90,
  verifyAccess: { kind: "open" },
  legacyFormats: NO_LEGACY_FORMATS,
  legacyHmacPepper: null,
  dialects: [],
  cors: { origins: new Set(), verifyOrigins: new Set() },
  ui: { frameAncestors: "'none'", devTokens: false },
  maxStalenessMs: 60_000,
  serverTiming: false,
  maxKeysPerOwner: 10_000,
  importAllowed: "admins",
  leaks: { action: "revoke", githubKeysUrl: new URL("https://api.github.com/meta/public_keys/secret_scanning") },
  expiryWarningMs: [],
  webhooks: {
    secretKey: null,
    allowLoopback: false,
    dnsResolver: new URL("https://cloudflare-dns.com/dns-query"),
    timeoutMs: 10_000,
  },
  errors: [],
};

/** Makes `count` keys, hands each record to `save`, and returns the keys. */
async function seed(count: number, save: (record: KeyRecord) => Promise<void>): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < count; i++) {
    const key = generateKey(PREFIX);
    await save({
      id: crypto.randomUUID(),
      hash: await sha256Hex(key),
      start: keyStart(key, PREFIX),
      name: `bench ${i}`,
      owner: { type: "user", id: `bench-${i % 50}` },
      scopes: ["models:invoke", "keys:read"],
      resources: null,
      createdBy: "user:bench",
      createdAt: Date.now(),
      expiresAt: null,
      revokedAt: null,
      lastUsedAt: null,
      metadata: null,
      parentId: null,
      enabled: true,
      updatedAt: null,
      allowedIps: null,
      rotatedFrom: null,
    });
    keys.push(key);
  }
  return keys;
}

/** A key with a correct shape whose last checksum character is wrong. */
function corrupt(key: string): string {
  const last = key[key.length - 1] === "A" ? "B" : "A";
  return key.slice(0, -1) + last;
}

/** Runs `call(0)` ... `call(calls - 1)`, `inFlight` at a time. */
async function loop(calls: number, inFlight: number, call: (i: number) => unknown): Promise<void> {
  if (inFlight === 1) {
    for (let i = 0; i < calls; i++) await call(i);
    return;
  }
  for (let i = 0; i < calls; i += inFlight) {
    const batch: unknown[] = [];
    for (let j = i; j < Math.min(i + inFlight, calls); j++) batch.push(call(j));
    await Promise.all(batch);
  }
}

/** A case that counts the storage calls of its loop and refuses a warm loop that made any. */
function storageCase(
  name: string,
  inFlight: number,
  counts: () => StorageCounts,
  prepare: () => Promise<void>,
  call: (i: number) => Promise<void>,
  warm: boolean,
): BenchCase {
  return {
    name,
    inFlight,
    prepare,
    async run(calls) {
      const before = counts();
      await loop(calls, inFlight, call);
      const after = counts();
      const made = {
        reads: after.reads - before.reads,
        writes: after.writes - before.writes,
        syncs: after.syncs - before.syncs,
        flushes: (after.flushes ?? 0) - (before.flushes ?? 0),
      };
      if (warm && made.reads + made.writes > 0) {
        throw new Error(`${name}: a warm loop touched storage (${JSON.stringify(made)})`);
      }
      return made;
    },
  };
}

async function verifySuite(keyCount: number): Promise<BenchCase[]> {
  const store = new MemoryKeyStore();
  const cache = new MemoryRecordCache();
  const deferred: Promise<unknown>[] = [];
  const local = new IsolateCache();
  const verifier = new Verifier({ store, cache, config, defer: (work) => void deferred.push(work) }, local);

  const keys = await seed(keyCount, async (record) => {
    await store.insert(record);
    await cache.put({ record: compact(record), seq: 0 });
  });
  let unknownKey = generateKey(PREFIX);
  while (store.byHash.has(await sha256Hex(unknownKey))) unknownKey = generateKey(PREFIX);
  const malformedKey = corrupt(keys[0]!);

  /**
   * A fresh isolate that has just used every key: records in memory, last use written (its
   * deferred writes settled), revocations synced, the unknown key remembered.
   */
  async function warm(): Promise<void> {
    local.clear();
    for (const key of keys) await verifier.verify(key);
    await verifier.verify(unknownKey);
    while (deferred.length > 0) await Promise.all(deferred.splice(0));
  }
  const counts = (): StorageCounts => ({
    reads: store.count.reads + cache.count.reads,
    writes: store.count.writes + cache.count.writes,
    syncs: store.count.syncs,
  });
  const verifying = (
    name: string,
    pick: (i: number) => string,
    expected: string,
    { options, inFlight = 1 }: { options?: VerifyChecks; inFlight?: number } = {},
  ) =>
    storageCase(
      name,
      inFlight,
      counts,
      warm,
      async (i) => {
        const { code } = await verifier.verify(pick(i), options);
        if (code !== expected) throw new Error(`${name}: call ${i} gave ${code}, expected ${expected}`);
      },
      expected === "VALID",
    );
  const part = (name: string, call: (i: number) => unknown, inFlight = 1): BenchCase => ({
    name,
    inFlight,
    prepare: async () => undefined,
    run: async (calls) => (await loop(calls, inFlight, call), { reads: 0, writes: 0, syncs: 0 }),
  });

  const key = (i: number) => keys[i % keyCount]!;
  const hashes = await Promise.all(keys.map((k) => sha256Hex(k)));

  /**
   * The cold paths, for the capacity model (bench/simulate.mjs): the CPU a verification pays in the
   * isolate when its record comes from KV, or from D1 (then written to KV), without the network's
   * latency (the stand-ins answer at once); and a change-feed poll on every call (an isolate polls once
   * per revocationSyncMs: subtract the warm case to get one poll's CPU).
   */
  const cold = (name: string, evict: (i: number) => void): BenchCase =>
    storageCase(
      name,
      1,
      counts,
      warm,
      async (i) => {
        evict(i);
        const { code } = await verifier.verify(key(i));
        if (code !== "VALID") throw new Error(`${name}: call ${i} gave ${code}`);
        if (deferred.length > 64) await Promise.all(deferred.splice(0));
      },
      false,
    );
  const pollingLocal = new IsolateCache();
  const polling = new Verifier(
    { store, cache, config: { ...config, revocationSyncMs: 0 }, defer: (work) => void deferred.push(work) },
    pollingLocal,
  );
  const pollingCase: BenchCase = {
    name: "warm verify, a feed poll every call",
    inFlight: 1,
    async prepare() {
      pollingLocal.clear();
      for (const k of keys) await polling.verify(k);
      while (deferred.length > 0) await Promise.all(deferred.splice(0));
    },
    async run(calls) {
      const before = counts();
      for (let i = 0; i < calls; i++) {
        const { code } = await polling.verify(key(i));
        if (code !== "VALID") throw new Error(`feed poll case: call ${i} gave ${code}`);
        if (deferred.length > 64) await Promise.all(deferred.splice(0));
      }
      const after = counts();
      return {
        reads: after.reads - before.reads,
        writes: after.writes - before.writes,
        syncs: after.syncs - before.syncs,
      };
    },
  };
  return [
    verifying("warm verify (1,000 keys)", key, "VALID"),
    verifying(`warm verify, ${IN_FLIGHT} in flight`, key, "VALID", { inFlight: IN_FLIGHT }),
    verifying("warm verify with scope", key, "VALID", { options: { scope: "models:invoke" } }),
    verifying("unknown key (negative cache)", () => unknownKey, "NOT_FOUND"),
    verifying("malformed key (checksum)", () => malformedKey, "MALFORMED"),
    part("  of which: checksum check", (i) => isWellFormedKey(key(i), PREFIX)),
    part("  of which: SHA-256 (WebCrypto)", (i) => sha256Hex(key(i))),
    part(`  of which: SHA-256, ${IN_FLIGHT} in flight`, (i) => sha256Hex(key(i)), IN_FLIGHT),
    cold("KV-hit verify (not in memory)", (i) => local.records.delete(hashes[i % keyCount]!)),
    cold("D1-hit verify (not in memory nor KV)", (i) => {
      local.records.delete(hashes[i % keyCount]!);
      cache.values.delete(hashes[i % keyCount]!);
    }),
    pollingCase,
  ];
}

/**
 * Requests through the Worker's router (app.fetch), D1 and KV replaced by stand-ins: D1 has no rows
 * (so the change feed is empty), KV holds the seeded records. In Node, Node's Request and Response
 * (undici) stand in for workerd's, so absolute numbers differ from a Worker's.
 */
async function routerSuite(keyCount: number): Promise<BenchCase[]> {
  const kv = new Map<string, string>();
  const count = { reads: 0, writes: 0, syncs: 0, flushes: 0 };
  const statement = {
    bind: () => statement,
    all: async () => (count.syncs++, { results: [] }),
    first: async () => (count.reads++, null),
    run: async () => (count.writes++, { success: true, meta: {}, results: [] }),
  };
  const env = {
    // batch: only the usage tally's flush uses it (store/usage-counts.ts), here once per full tally.
    DB: {
      prepare: () => statement,
      batch: async (statements: unknown[]) => (count.flushes++, statements.map(() => ({ success: true, results: [] }))),
    },
    KEY_CACHE: {
      get: async (name: string) => {
        count.reads++;
        const value = kv.get(name);
        return value === undefined ? null : JSON.parse(value);
      },
      put: async (name: string, value: string) => void (count.writes++, kv.set(name, value)),
      delete: async (name: string) => void (count.writes++, kv.delete(name)),
    },
    KEY_PREFIX: PREFIX,
    JWT_SECRET: "bench-only-secret-0123456789abcdef0123456789",
    REVOCATION_SYNC_SECONDS: "5",
  } as unknown as Env;
  const deferred: Promise<unknown>[] = [];
  const ctx = {
    waitUntil: (work: Promise<unknown>) => void deferred.push(work),
    passThroughOnException: () => undefined,
    props: {},
  } as unknown as ExecutionContext;
  const app = createApp(routes);
  const keys = await seed(
    keyCount,
    async (record) => void kv.set(cacheKey(record.hash), JSON.stringify({ record: compact(record), seq: 0 })),
  );
  const malformed = corrupt(keys[0]!);

  const healthz = () => new Request("https://bench/healthz");
  const whoamiWith = (key: string) =>
    new Request("https://bench/v1/whoami", { headers: { authorization: `Bearer ${key}` } });
  const whoami = (i: number) => whoamiWith(keys[i % keyCount]!);
  const malformedWhoami = () => whoamiWith(malformed);
  const verify = (i: number) =>
    new Request("https://bench/v1/verify", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: keys[i % keyCount], scope: "models:invoke" }),
    });
  const send = async (request: Request, status: number): Promise<void> => {
    const response = await app.fetch(request, env, ctx);
    await response.arrayBuffer();
    if (response.status !== status) throw new Error(`${request.url}: status ${response.status}, expected ${status}`);
  };
  /** A fresh isolate that has just used every key, its deferred work settled. */
  async function warm(): Promise<void> {
    isolateCache.clear();
    for (let i = 0; i < keyCount; i++) await send(whoami(i), 200);
    while (deferred.length > 0) await Promise.all(deferred.splice(0));
  }
  const counts = (): StorageCounts => ({ ...count });
  const requesting = (name: string, request: (i: number) => Request, status: number, inFlight = 1) =>
    storageCase(name, inFlight, counts, warm, (i) => send(request(i), status), true);

  /**
   * A client over its failed-authentication limit (bench/http.mjs cases 4 and 7), in a deployment that
   * accepts imported Sanctum keys: its requests are judged from memory alone and answered 429. The
   * limiter stand-in finds every client over; one failure in `prepare` marks this one.
   */
  const shedEnv = {
    ...env,
    LEGACY_KEY_FORMATS: "sanctum",
    AUTH_FAILURE_LIMITER: { limit: async () => ({ success: false }) },
  } as unknown as Env;
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const guesses = Array.from({ length: keyCount }, () =>
    Array.from(crypto.getRandomValues(new Uint8Array(40)), (b) => alphabet[b % alphabet.length]).join(""),
  );
  const shedRequest = (key: string) =>
    new Request("https://bench/v1/whoami", {
      headers: { authorization: `Bearer ${key}`, "cf-connecting-ip": "203.0.113.7" },
    });
  const sendShed = async (request: Request): Promise<void> => {
    const response = await app.fetch(request, shedEnv, ctx);
    await response.arrayBuffer();
    if (response.status !== 429) throw new Error(`${request.url}: status ${response.status}, expected 429`);
  };
  const shedCase = (name: string, key: (i: number) => string) =>
    storageCase(
      name,
      1,
      counts,
      async () => {
        await warm();
        await sendShed(shedRequest(malformed));
        while (deferred.length > 0) await Promise.all(deferred.splice(0));
      },
      (i) => sendShed(shedRequest(key(i))),
      // Not refused when it touches storage: the isolate remembers the client as over its limit for 10 s,
      // so a loop longer than that lets one guess through to storage (as in production) before the
      // limiter marks the client again. The counts are reported.
      false,
    );

  return [
    requesting("GET /healthz", healthz, 200),
    requesting("GET /v1/whoami, warm key", whoami, 200),
    requesting("GET /v1/whoami, malformed key", malformedWhoami, 401),
    requesting("POST /v1/verify, warm key with scope", verify, 200),
    requesting(`GET /healthz, ${IN_FLIGHT} in flight`, healthz, 200, IN_FLIGHT),
    requesting(`GET /v1/whoami, warm key, ${IN_FLIGHT} in flight`, whoami, 200, IN_FLIGHT),
    shedCase("GET /v1/whoami, malformed key, client over its failure limit", () => malformed),
    shedCase("GET /v1/whoami, Sanctum-shaped guesses, client over its failure limit", (i) => guesses[i % keyCount]!),
  ];
}

/** Both suites over `keyCount` keys. */
export async function benchSuites(keyCount = 1000): Promise<Suites> {
  return { verify: await verifySuite(keyCount), router: await routerSuite(keyCount) };
}
