// The capacity model behind `npm run simulate` (bench/simulate.mjs): pure arithmetic, no I/O, so
// bench/capacity.test.mjs checks it on a tiny deployment. What a deployment of latchkey asks of
// Cloudflare (isolate memory, KV, D1, Durable Objects) and what it costs, from:
// - a scenario (keys, verifications/s, popularity, locations, isolates, lifetimes, management writes);
// - latchkey's own settings (the defaults below mirror src/: memory and KV lifetimes, the feed, batches);
// - per-operation CPU costs MEASURED by the bench scripts (bench/costs.json), never guessed.
//
// Approximations, stated where they are made:
// - Popularity: Zipf with exponent `zipf` over the keys; the same in every location (traffic spread evenly
//   over locations and over the isolates of a location).
// - A cache that keeps an entry a fixed time after a miss (isolate memory: the record's lifetime, cut
//   short by the isolate's death; KV: the copy's lifetime): a key asked at rate λ hits with probability
//   λW / (1 + λW), W the expected life of the entry (renewal argument: one miss, then λW hits on average).
// - KV: a put is taken as visible everywhere at once, so the KV hit rate is an upper bound (KV takes up to
//   60 s to propagate and caches misses per location for 60 s).
// - Management reads (list, get, the audit log, usage): one D1 query each, reading a default page; the
//   share `replicaShare` is served by D1 read replicas (their session, src/store/d1-session.ts), the rest
//   by the primary; a replica is taken to answer in `replicaRoundTripSeconds`, the primary in
//   `d1WriteRoundTripSeconds` (both assumptions; a bookmark newer than the nearest replica is not modelled).

/**
 * Cloudflare list prices, December 2025 as known (Workers Paid plan): developers.cloudflare.com/workers/
 * platform/pricing, /kv/platform/pricing, /d1/platform/pricing, /durable-objects/platform/pricing.
 * Monthly; `included` is what the plan's base price covers each month.
 */
export const PRICES = {
  source: "Cloudflare list prices, December 2025 (Workers Paid plan)",
  base: 5, // USD per month, Workers Paid
  workersRequests: { included: 10e6, perMillion: 0.3 },
  workersCpuMs: { included: 30e6, perMillion: 0.02 },
  kvReads: { included: 10e6, perMillion: 0.5 },
  kvWrites: { included: 1e6, perMillion: 5 }, // puts and deletes alike
  d1RowsRead: { included: 25e9, perMillion: 0.001 },
  d1RowsWritten: { included: 50e6, perMillion: 1 },
  d1StorageGb: { included: 5, perUnit: 0.75 },
  doRequests: { included: 1e6, perMillion: 0.15 },
  doGbSeconds: { included: 400e3, perMillion: 12.5 },
};

/** Platform limits the model checks (docs/scaling.md). */
export const LIMITS = {
  d1QueriesPerSecond: 1000, // one database runs one query at a time: ~1 ms each
  d1Gb: 10,
  kvWritesPerKeyPerSecond: 1,
  doCallsPerObjectPerSecond: 1000,
};

/** latchkey's defaults, as in src/ (bench/capacity.test.mjs checks them against the source). */
export const LATCHKEY = {
  recordMemorySeconds: 270, // the mean of recordLifetime: 80-100 % of RECORD_MEMORY_MS = KV_TTL_SECONDS (src/service/memory-record.ts)
  kvCopySeconds: 300, // KV_TTL_SECONDS (src/store/cache.ts)
  feedSeconds: 5, // REVOCATION_SYNC_SECONDS default (src/config.ts)
  maxStalenessSeconds: 60, // MAX_STALENESS_SECONDS default
  lastUsedSeconds: 60, // LAST_USED_INTERVAL_MS (src/service/last-use.ts)
  lastUseWindowSeconds: 15, // lastUseTiming.windowMs: queued last uses wait this long to go together
  touchBatch: 90, // TOUCH_BATCH (src/store/store.ts)
  usageWindowSeconds: 20, // USAGE_WINDOW_MS (src/service/usage-tally.ts): counts wait this long to go together
  usageFlushEntries: 500, // USAGE_FLUSH_ENTRIES
  usageRowsPerStatement: 25, // ROWS_PER_STATEMENT (src/store/usage-counts.ts)
  feedStartRows: 1000, // the newest changes an isolate reads when it starts
  managementReadRows: 21, // a default page of keys (20) and the one that says whether more follow
  recordsPerIsolate: 100_000, // the isolate's record LRU bound
};

/** mulberry32: a small seeded generator, so a simulation or a check is the same run after run. */
export function generator(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SECONDS_PER_MONTH = 30.4375 * 86_400;

/** Σ_{i=1..n} i^-s, exact for the first 10,000 terms, Euler–Maclaurin beyond. */
export function harmonic(n, s) {
  const head = Math.min(n, 10_000);
  let sum = 0;
  for (let i = 1; i <= head; i++) sum += i ** -s;
  if (n <= head) return sum;
  const a = head;
  const integral = s === 1 ? Math.log(n / a) : (n ** (1 - s) - a ** (1 - s)) / (1 - s);
  return sum + integral + (n ** -s - a ** -s) / 2;
}

/**
 * The keys in groups of neighbouring popularity ranks (each group's upper rank ~5 % above its lower),
 * each with its number of keys and its share of all verifications.
 */
export function popularity(keys, s, ratio = 1.05) {
  const total = harmonic(keys, s);
  const groups = [];
  let from = 1;
  let below = 0;
  while (from <= keys) {
    const to = Math.min(keys, Math.max(from, Math.floor(from * ratio)));
    const upTo = harmonic(to, s);
    groups.push({ from, to, count: to - from + 1, share: (upTo - below) / total });
    below = upTo;
    from = to + 1;
  }
  return groups;
}

/** Hit probability of a cache entry kept `window` seconds after each miss, for a key asked `rate` times a second. */
export const hitRate = (rate, window) => (rate * window) / (1 + rate * window);

/**
 * Everything the model says about one scenario. `costs`: CPU µs per operation (bench/costs.json, read by
 * bench/simulate.mjs): warmRequest, kvHitExtra, d1HitExtra, feedPoll, doCallExtra (null: not measured).
 */
export function model(scenario, costs, settings = LATCHKEY) {
  const sc = {
    zipf: 1,
    limitedShare: 0.05,
    d1WriteRoundTripSeconds: 0.03,
    managementReadsPerSecond: 0,
    replicaShare: 0,
    replicaRoundTripSeconds: 0.005,
    ...scenario,
  };
  const set = { ...LATCHKEY, ...settings };
  const isolatesPerLocation = Math.max(1, Math.ceil(sc.verificationsPerSecond / sc.locations / sc.requestsPerIsolate));
  const isolates = sc.locations * isolatesPerLocation;
  // An entry lives `recordMemorySeconds` unless its isolate dies first (lifetimes taken as exponential).
  const memoryWindow = sc.isolateLifetimeSeconds * (1 - Math.exp(-set.recordMemorySeconds / sc.isolateLifetimeSeconds));

  let memoryHits = 0;
  let kvReads = 0;
  let kvHits = 0;
  let d1Fills = 0;
  let residentPerIsolate = 0;
  let lastUsedDue = 0; // per isolate and key: uses due to be written, per second, summed over isolates
  let lastUsedRows = 0; // rows D1 actually changes (at most one per key per lastUsedSeconds)
  let usageEntries = 0; // (key, outcome) entries per isolate per window
  let doActiveObjects = 0; // limited keys with a call in flight, on average
  let hottestLimitedRate = 0;
  const doWall = costs.doCallWallMs ?? 0;
  const firstLimitedRank = Math.max(1, Math.round(1 / sc.limitedShare));
  for (const g of popularity(sc.keys, sc.zipf)) {
    const perKey = g.share / g.count; // share of all verifications for one key of the group
    const global = sc.verificationsPerSecond * perKey;
    const perIsolate = global / isolates;
    const h = hitRate(perIsolate, memoryWindow);
    memoryHits += g.share * h;
    residentPerIsolate += g.count * h;
    const missRate = global * (1 - h);
    const k = hitRate(missRate, set.kvCopySeconds);
    kvReads += g.count * missRate;
    kvHits += g.count * missRate * k;
    d1Fills += g.count * missRate * (1 - k);
    const due = isolates * hitRate(perIsolate, set.lastUsedSeconds) * (1 / set.lastUsedSeconds);
    lastUsedDue += g.count * due;
    lastUsedRows += g.count * Math.min(due, 1 / set.lastUsedSeconds);
    usageEntries += g.count * (1 - Math.exp(-perIsolate * set.usageWindowSeconds));
    doActiveObjects += g.count * sc.limitedShare * Math.min(1, global * (doWall / 1000));
    if (g.from <= firstLimitedRank && firstLimitedRank <= g.to) hottestLimitedRate = global;
  }
  const V = sc.verificationsPerSecond;
  const memoryHitRate = memoryHits;
  const kvHitRate = kvReads > 0 ? kvHits / kvReads : 1;

  // D1 reads: verification fallbacks, feed polls (every busy isolate, every feedSeconds), isolate starts.
  const feedPolls = isolates / set.feedSeconds;
  const isolateStarts = isolates / sc.isolateLifetimeSeconds;
  const changesPerSecond = sc.createsPerSecond + sc.revocationsPerSecond + sc.changesPerSecond;
  // Management reads: the replicas' share leaves the primary (security reads never do: they are above).
  const replicaReads = sc.managementReadsPerSecond * sc.replicaShare;
  const d1Reads = {
    verifyFallbacks: d1Fills,
    feedPolls,
    isolateStarts,
    management: sc.managementReadsPerSecond - replicaReads,
  };
  const managementReadSeconds =
    sc.replicaShare * sc.replicaRoundTripSeconds + (1 - sc.replicaShare) * sc.d1WriteRoundTripSeconds;
  // D1 writes: last use (gathered per isolate for a window, in batches of touchBatch), usage counts (one batch per
  // isolate per window, usageRowsPerStatement rows per statement), management writes (one query each).
  // Both go by windows (src/util/flush-window.ts): an item that finds no window open opens one, which closes
  // when its wait ends and then writes what gathered during it. At u items a second, a window opens about
  // 1 / u after the last one closed: u / (1 + u × window) writes a second.
  const windows = (u, seconds) => u / (1 + u * seconds);
  const perIsolateDue = lastUsedDue / isolates;
  const perIsolateCounts = sc.verificationsPerSecond / isolates;
  // A window gathers usageEntries; more than a full tally's worth go as full tallies.
  const usageWindows = windows(perIsolateCounts, set.usageWindowSeconds);
  const usageFlushes = Math.max(usageWindows, (usageWindows * usageEntries) / set.usageFlushEntries);
  const usageRowsPerSecond = isolates * usageWindows * usageEntries;
  const d1Writes = {
    // Never fewer than u / touchBatch: a batch that fills is written at once.
    lastUsed: isolates * Math.max(perIsolateDue / set.touchBatch, windows(perIsolateDue, set.lastUseWindowSeconds)),
    usageCounts: Math.max(isolates * usageFlushes, usageRowsPerSecond / set.usageRowsPerStatement),
    management: changesPerSecond,
  };
  const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
  const d1ReadQueries = sum(d1Reads);
  const d1WriteQueries = sum(d1Writes);

  // Rows D1 bills: a verification fallback reads one row (plus the feed position: one more); a poll about
  // one row; a start the newest feedStartRows; a management read a default page, on a replica or not; writes: the rows they change (a management write: the key,
  // its audit event and its change-feed row).
  const d1RowsRead =
    2 * d1Fills +
    feedPolls * 1 +
    isolateStarts * set.feedStartRows +
    sc.managementReadsPerSecond * set.managementReadRows;
  const d1RowsWritten = lastUsedRows + usageRowsPerSecond + 3 * changesPerSecond;
  const kvWrites = d1Fills + changesPerSecond;
  const doCalls = V * sc.limitedShare;
  const storageGb = (sc.keys * costs.bytesPerKey) / 1e9;

  // CPU per second of traffic, in ms.
  const cpuMs =
    (V * costs.warmRequest +
      (kvHits + d1Fills) * costs.kvHitExtra +
      d1Fills * (costs.d1HitExtra - costs.kvHitExtra) +
      feedPolls * costs.feedPoll +
      doCalls * (costs.doCallExtra ?? 0)) /
    1000;

  const perMonth = (perSecond) => perSecond * SECONDS_PER_MONTH;
  const metered = (amount, { included, perMillion }) => (Math.max(0, amount - included) / 1e6) * perMillion;
  const bill = {
    "Workers plan": PRICES.base,
    "Workers requests": metered(perMonth(V), PRICES.workersRequests),
    "Workers CPU": metered(perMonth(cpuMs), PRICES.workersCpuMs),
    "KV reads": metered(perMonth(kvReads), PRICES.kvReads),
    "KV writes": metered(perMonth(kvWrites), PRICES.kvWrites),
    "D1 rows read": metered(perMonth(d1RowsRead), PRICES.d1RowsRead),
    "D1 rows written": metered(perMonth(d1RowsWritten), PRICES.d1RowsWritten),
    "D1 storage": Math.max(0, storageGb - PRICES.d1StorageGb.included) * PRICES.d1StorageGb.perUnit,
    "DO requests": metered(perMonth(doCalls), PRICES.doRequests),
    "DO duration": metered(perMonth(doActiveObjects * 0.128), PRICES.doGbSeconds),
  };

  // How close each platform limit is (1 = reached).
  const utilisation = {
    "D1 queries/s (one database)": (d1ReadQueries + d1WriteQueries) / LIMITS.d1QueriesPerSecond,
    "D1 size (one database)": storageGb / LIMITS.d1Gb,
    // A key's KV copy is refilled at most once per copy lifetime (concurrent misses aside).
    "KV writes/s per key": 1 / set.kvCopySeconds / LIMITS.kvWritesPerKeyPerSecond,
    "DO calls/s (hottest key with limits)": hottestLimitedRate / LIMITS.doCallsPerObjectPerSecond,
  };
  return {
    scenario: sc,
    isolates,
    memoryHitRate,
    kvHitRate,
    residentPerIsolate,
    d1Reads,
    d1Writes,
    d1ReadQueries,
    d1WriteQueries,
    replicaReads,
    managementReadSeconds,
    d1RowsRead,
    d1RowsWritten,
    kvReads,
    kvWrites,
    doCalls,
    hottestLimitedRate,
    storageGb,
    cpuMs,
    revocationBoundSeconds: set.feedSeconds,
    worstRevocationBoundSeconds: set.maxStalenessSeconds,
    bill,
    monthly: sum(bill),
    utilisation,
  };
}

/** The first limit reached by a model result (largest utilisation ≥ 1), or null. */
export function firstLimit(result) {
  const over = Object.entries(result.utilisation).filter(([, u]) => u >= 1);
  return over.length === 0 ? null : over.sort((a, b) => b[1] - a[1])[0][0];
}
