/**
 * In-process microbenchmark of the verification function itself (src/service/verify.ts), without
 * HTTP: the same module the Worker runs, with the KeyStore and RecordCache interfaces implemented in
 * memory. bench/verify.mjs bundles this file with esbuild, runs it under Node (WebCrypto included)
 * and supplies the clocks, so this file needs no Node types.
 *
 * The stores count their calls: a warm run that touched storage would be measuring the wrong thing,
 * so the benchmark fails instead of reporting a number.
 *
 * `runRouterBench` adds the cost of the HTTP layer (src/http/app.ts: routing, authentication, the
 * response) by calling the Worker's router directly, with stand-in D1 and KV bindings: the CPU a
 * request costs inside the Worker, without wrangler dev's proxies and sockets.
 */
import type { Config } from "../src/config";
import type { Env } from "../src/env";
import { createApp } from "../src/http/app";
import { routes } from "../src/http/routes";
import { generateKey, isWellFormedKey, keyStart } from "../src/keys/format";
import { sha256Hex } from "../src/keys/hash";
import type { KeyRecord } from "../src/model";
import { type RecordCache, cacheKey } from "../src/store/cache";
import type { KeyStore, ListPage, Revocation } from "../src/store/store";
import type { VerifyChecks } from "../src/schemas";
import { IsolateCache, Verifier, isolateCache } from "../src/service/verify";

/** The D1 stand-in: a map by hash and by id. */
export class MemoryKeyStore implements KeyStore {
  readonly byHash = new Map<string, KeyRecord>();
  readonly count = { reads: 0, writes: 0, syncs: 0 };

  async insert(record: KeyRecord): Promise<void> {
    this.count.writes++;
    this.byHash.set(record.hash, record);
  }
  async findByHash(hash: string): Promise<KeyRecord | null> {
    this.count.reads++;
    return this.byHash.get(hash) ?? null;
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
  async revoke(id: string, at: number): Promise<KeyRecord | null> {
    const record = await this.findById(id);
    this.count.writes++;
    if (!record) return null;
    const revoked = { ...record, revokedAt: record.revokedAt ?? at };
    this.byHash.set(revoked.hash, revoked);
    return revoked;
  }
  async revokedAfter(after: Revocation, limit: number): Promise<Revocation[]> {
    this.count.syncs++;
    const later = (r: Revocation) =>
      r.revokedAt > after.revokedAt || (r.revokedAt === after.revokedAt && r.hash > after.hash);
    return [...this.byHash.values()]
      .flatMap((r) => (r.revokedAt === null ? [] : [{ hash: r.hash, revokedAt: r.revokedAt }]))
      .filter(later)
      .sort((a, b) => a.revokedAt - b.revokedAt || (a.hash < b.hash ? -1 : 1))
      .slice(0, limit);
  }
  async touchLastUsed(): Promise<void> {
    this.count.writes++;
  }
}

/** The KV stand-in: JSON strings by hash, as KV holds them. */
export class MemoryRecordCache implements RecordCache {
  readonly values = new Map<string, string>();
  readonly count = { reads: 0, writes: 0 };

  async get(hash: string): Promise<KeyRecord | null> {
    this.count.reads++;
    const value = this.values.get(hash);
    return value === undefined ? null : (JSON.parse(value) as KeyRecord);
  }
  async put(record: KeyRecord): Promise<void> {
    this.count.writes++;
    this.values.set(record.hash, JSON.stringify(record));
  }
  async delete(hash: string): Promise<void> {
    this.count.writes++;
    this.values.delete(hash);
  }
}

export interface Clocks {
  /** CPU time of the process so far, in microseconds (all threads: WebCrypto may use a pool). */
  cpu(): { user: number; system: number };
  /** Wall time in milliseconds. */
  wallMillis(): number;
}

export interface CaseResult {
  readonly name: string;
  readonly calls: number;
  /** Calls kept in flight at once (1: one after the other). */
  readonly inFlight: number;
  readonly cpuMicrosPerCall: number;
  readonly userMicrosPerCall: number;
  readonly systemMicrosPerCall: number;
  readonly wallMicrosPerCall: number;
  /** KV and D1 reads and writes during the measured loop (0 for a warm key: the run fails otherwise). */
  readonly storageReads: number;
  readonly storageWrites: number;
  /** Revocation syncs during the loop: one per isolate every revocationSyncMs, not per verify. */
  readonly syncs: number;
}

const PREFIX = "lk";
/** Rounds per benchmark; each case keeps its least disturbed round. */
export const ROUNDS = 3;
/**
 * Node runs crypto.subtle.digest on its thread pool, so one verification at a time pays two thread
 * hand-offs per call (mostly system CPU, and very sensitive to other load on the machine); workerd
 * hashes synchronously. Keeping several calls in flight, as an isolate serving concurrent requests
 * does, amortises the hand-off: the "in flight" rows show the cost without most of it.
 */
export const IN_FLIGHT = 16;
const config: Config = {
  keyPrefix: PREFIX,
  jwt: { secret: null, jwksUrl: null, issuer: null, audience: null, orgClaim: "org_id", clockToleranceSeconds: 30 },
  revocationSyncMs: 5000,
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

type Timing = Pick<
  CaseResult,
  "calls" | "inFlight" | "cpuMicrosPerCall" | "userMicrosPerCall" | "systemMicrosPerCall" | "wallMicrosPerCall"
>;

/** Runs `run(0)` ... `run(calls - 1)`, `inFlight` at a time, and returns the cost per call. */
async function timed(clocks: Clocks, calls: number, inFlight: number, run: (i: number) => unknown): Promise<Timing> {
  const cpu0 = clocks.cpu();
  const wall0 = clocks.wallMillis();
  if (inFlight === 1) {
    for (let i = 0; i < calls; i++) await run(i);
  } else {
    for (let i = 0; i < calls; i += inFlight) {
      const batch: unknown[] = [];
      for (let j = i; j < Math.min(i + inFlight, calls); j++) batch.push(run(j));
      await Promise.all(batch);
    }
  }
  const cpu1 = clocks.cpu();
  const user = (cpu1.user - cpu0.user) / calls;
  const system = (cpu1.system - cpu0.system) / calls;
  return {
    calls,
    inFlight,
    cpuMicrosPerCall: user + system,
    userMicrosPerCall: user,
    systemMicrosPerCall: system,
    wallMicrosPerCall: ((clocks.wallMillis() - wall0) * 1000) / calls,
  };
}

/** Keeps, for each case, the round with the least CPU per call (the least disturbed). */
function keepBest(best: CaseResult[], round: CaseResult[]): void {
  round.forEach((result, i) => {
    const kept = best[i];
    if (!kept || result.cpuMicrosPerCall < kept.cpuMicrosPerCall) best[i] = result;
  });
}

export async function runVerifyBench(clocks: Clocks, calls: number, keyCount = 1000): Promise<CaseResult[]> {
  const store = new MemoryKeyStore();
  const cache = new MemoryRecordCache();
  const deferred: Promise<unknown>[] = [];
  const local = new IsolateCache();
  const verifier = new Verifier({ store, cache, config, defer: (work) => void deferred.push(work) }, local);

  const keys = await seed(keyCount, async (record) => {
    await store.insert(record);
    await cache.put(record);
  });
  let unknownKey = generateKey(PREFIX);
  while (store.byHash.has(await sha256Hex(unknownKey))) unknownKey = generateKey(PREFIX);
  const malformedKey = corrupt(keys[0]!);

  /**
   * A fresh isolate that has just used every key: records in memory for their full lifetime (60 s,
   * counted from when they were cached), last use written, revocations synced, the unknown key remembered.
   */
  async function warm(): Promise<void> {
    local.clear();
    for (const key of keys) await verifier.verify(key);
    await verifier.verify(unknownKey);
    await Promise.all(deferred.splice(0));
  }

  const counts = () => ({
    reads: store.count.reads + cache.count.reads,
    writes: store.count.writes + cache.count.writes,
    syncs: store.count.syncs,
  });

  async function measure(
    name: string,
    pick: (i: number) => string,
    expected: string,
    { options, inFlight = 1 }: { options?: VerifyChecks; inFlight?: number } = {},
  ): Promise<CaseResult> {
    await warm();
    const before = counts();
    const timing = await timed(clocks, calls, inFlight, async (i) => {
      const { code } = await verifier.verify(pick(i), options);
      if (code !== expected) throw new Error(`${name}: call ${i} gave ${code}, expected ${expected}`);
    });
    const after = counts();
    const result = {
      name,
      ...timing,
      storageReads: after.reads - before.reads,
      storageWrites: after.writes - before.writes,
      syncs: after.syncs - before.syncs,
    };
    if (expected === "VALID" && result.storageReads + result.storageWrites > 0) {
      throw new Error(`${name}: a warm verification touched storage (${JSON.stringify(result)})`);
    }
    return result;
  }

  async function measurePart(name: string, run: (i: number) => unknown, inFlight = 1): Promise<CaseResult> {
    const timing = await timed(clocks, calls, inFlight, run);
    return { name, ...timing, storageReads: 0, storageWrites: 0, syncs: 0 };
  }

  const key = (i: number) => keys[i % keyCount]!;
  const results: CaseResult[] = [];
  // Alternating rounds, so drift hits every case alike; each case keeps its least disturbed round.
  for (let round = 0; round < ROUNDS; round++) {
    keepBest(results, [
      await measure("warm verify (1,000 keys)", key, "VALID"),
      await measure("warm verify, 16 in flight", key, "VALID", { inFlight: IN_FLIGHT }),
      await measure("warm verify with scope", key, "VALID", { options: { scope: "models:invoke" } }),
      await measure("unknown key (negative cache)", () => unknownKey, "NOT_FOUND"),
      await measure("malformed key (checksum)", () => malformedKey, "MALFORMED"),
      await measurePart("  of which: checksum check", (i) => isWellFormedKey(key(i), PREFIX)),
      await measurePart("  of which: SHA-256 (WebCrypto)", (i) => sha256Hex(key(i))),
      await measurePart("  of which: SHA-256, 16 in flight", (i) => sha256Hex(key(i)), IN_FLIGHT),
    ]);
  }
  await Promise.all(deferred.splice(0));
  return results;
}

/**
 * CPU per request through the Worker's router (app.fetch), D1 and KV replaced by stand-ins: D1 has
 * no rows (so revocation sync finds none), KV holds the seeded records. Node's Request and Response
 * (undici) stand in for workerd's, so absolute numbers differ from a Worker's; differences between
 * cases are the point.
 */
export async function runRouterBench(clocks: Clocks, calls: number, keyCount = 1000): Promise<CaseResult[]> {
  const kv = new Map<string, string>();
  const count = { reads: 0, writes: 0, syncs: 0 };
  const statement = {
    bind: () => statement,
    all: async () => (count.syncs++, { results: [] }),
    first: async () => (count.reads++, null),
    run: async () => (count.writes++, { success: true, meta: {}, results: [] }),
  };
  const env = {
    DB: { prepare: () => statement },
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
  const keys = await seed(keyCount, async (record) => void kv.set(cacheKey(record.hash), JSON.stringify(record)));
  const malformed = corrupt(keys[0]!);

  const whoami = (i: number) =>
    new Request("https://bench/v1/whoami", { headers: { authorization: `Bearer ${keys[i % keyCount]}` } });
  const cases: { name: string; status: number; request: (i: number) => Request; inFlight?: number }[] = [
    { name: "GET /healthz", status: 200, request: () => new Request("https://bench/healthz") },
    { name: "GET /v1/whoami, warm key", status: 200, request: whoami },
    {
      name: "GET /v1/whoami, malformed key",
      status: 401,
      request: () => new Request("https://bench/v1/whoami", { headers: { authorization: `Bearer ${malformed}` } }),
    },
    {
      name: "POST /v1/verify, warm key with scope",
      status: 200,
      request: (i) =>
        new Request("https://bench/v1/verify", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ key: keys[i % keyCount], scope: "models:invoke" }),
        }),
    },
    {
      name: "GET /healthz, 16 in flight",
      status: 200,
      request: () => new Request("https://bench/healthz"),
      inFlight: IN_FLIGHT,
    },
    { name: "GET /v1/whoami, warm key, 16 in flight", status: 200, request: whoami, inFlight: IN_FLIGHT },
  ];

  async function send(c: (typeof cases)[number], i: number): Promise<void> {
    const response = await app.fetch(c.request(i), env, ctx);
    await response.arrayBuffer();
    if (response.status !== c.status) throw new Error(`${c.name}: status ${response.status}, expected ${c.status}`);
  }

  isolateCache.clear();
  for (const c of cases) for (let i = 0; i < 2 * keyCount; i++) await send(c, i);

  const results: CaseResult[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? cases : [...cases].reverse();
    for (const c of order) {
      isolateCache.clear(); // a fresh isolate that has just used every key (see warm() above)
      for (let i = 0; i < keyCount; i++) await send(cases[1]!, i);
      await Promise.all(deferred.splice(0));
      const before = { ...count };
      const timing = await timed(clocks, calls, c.inFlight ?? 1, (i) => send(c, i));
      const result: CaseResult = {
        name: c.name,
        ...timing,
        storageReads: count.reads - before.reads,
        storageWrites: count.writes - before.writes,
        syncs: count.syncs - before.syncs,
      };
      const index = cases.indexOf(c);
      if (!results[index] || result.cpuMicrosPerCall < results[index]!.cpuMicrosPerCall) results[index] = result;
      await Promise.all(deferred.splice(0));
    }
  }
  return results;
}
