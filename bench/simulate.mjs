// npm run simulate [-- --seed N --check --markdown FILE --smoke --costs FILE --kv-copy-seconds S --feed-seconds S
//                     --memory-seconds S --last-used-seconds S --replica-share X --management-reads N]
//                     (settings other than latchkey's defaults: what-ifs; --replica-share 0: D1 read
//                     replication off; --management-reads: list/get/events/usage reads a second per million keys)
// The capacity model (bench/capacity.mjs) over deployments from 1 M keys / 1,000 verifications/s to
// 100 M keys / 1 M verifications/s, fed with the per-operation costs the bench scripts measured
// (bench/costs.json: bench:verify for the CPU of a warm, a KV-hit and a D1-hit verification and of a
// feed poll; bench for a Durable Object call; row-size for the bytes of a key). Prints per scenario the
// isolate and KV hit rates, D1 queries/s (reads and writes apart), KV reads and writes/s, DO calls/s,
// the revocation bound and the monthly bill by line item, then the first platform limit reached and at
// what size.
// --check: a seeded event simulation of a small deployment (isolates with lifetimes, record memory, KV
// copies) set against the model's hit rates: the approximations, checked. --smoke: one scenario and the
// check on a tiny deployment, nothing written (CI).
import { readFileSync, existsSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { root } from "../scripts/dev-config.mjs";
import { LATCHKEY, LIMITS, PRICES, firstLimit, generator, model, popularity } from "./capacity.mjs";

const { values } = parseArgs({
  options: {
    seed: { type: "string", default: "1" },
    check: { type: "boolean" },
    smoke: { type: "boolean" },
    markdown: { type: "string" },
    costs: { type: "string" },
    "kv-copy-seconds": { type: "string" },
    "feed-seconds": { type: "string" },
    "memory-seconds": { type: "string" },
    "last-used-seconds": { type: "string" },
    "replica-share": { type: "string" },
    "management-reads": { type: "string" },
  },
});
/** The share of management reads D1 read replicas serve (1: replication on, every such read; 0: off). */
const replicaShare = Number(values["replica-share"] ?? 1);
/** Management reads (list, get, the audit log, usage) a second per million keys. */
const managementReadsPerMillion = Number(values["management-reads"] ?? 10);
const settings = {
  ...LATCHKEY,
  ...(values["kv-copy-seconds"] ? { kvCopySeconds: Number(values["kv-copy-seconds"]) } : {}),
  ...(values["feed-seconds"] ? { feedSeconds: Number(values["feed-seconds"]) } : {}),
  ...(values["memory-seconds"] ? { recordMemorySeconds: Number(values["memory-seconds"]) } : {}),
  ...(values["last-used-seconds"] ? { lastUsedSeconds: Number(values["last-used-seconds"]) } : {}),
};

// ---- measured inputs -------------------------------------------------------------------------------

const costsFile = values.costs ?? `${root}bench/costs.json`;
if (!existsSync(costsFile)) {
  console.error(
    "bench/costs.json is missing: run npm run bench:verify, npm run bench and node bench/row-size.mjs first",
  );
  process.exit(2);
}
const measured = JSON.parse(readFileSync(costsFile, "utf8"));
const need = (section, field) => {
  const value = measured[section]?.[field];
  if (typeof value !== "number") throw new Error(`bench/costs.json has no ${section}.${field}: run its bench script`);
  return value;
};
const costs = {
  warmRequest: need("verify", "routerWarmRequestMicros"),
  kvHitExtra: Math.max(0, need("verify", "kvHitVerifyMicros") - need("verify", "warmVerifyMicros")),
  d1HitExtra: Math.max(0, need("verify", "d1HitVerifyMicros") - need("verify", "warmVerifyMicros")),
  feedPoll: need("verify", "feedPollMicros"),
  doCallExtra: measured.http?.doCallMicros ?? null,
  doCallWallMs: measured.http?.doCallWallMs ?? null,
  bytesPerKey: need("rowSize", "bytesPerKey"),
};
const sources = [
  `CPU per warm request through the router: ${costs.warmRequest} µs (bench/costs.json verify.routerWarmRequestMicros, ${measured.verify.measuredAt}, load average ${measured.verify.loadAverage?.join(" ")} on ${measured.verify.cores} cores)`,
  `extra CPU of a KV-hit verification: ${costs.kvHitExtra.toFixed(1)} µs, of a D1-hit one: ${costs.d1HitExtra.toFixed(1)} µs, of a feed poll: ${costs.feedPoll} µs (same run: verify.kvHitVerifyMicros, d1HitVerifyMicros less warmVerifyMicros; feedPollMicros)`,
  costs.doCallExtra === null
    ? "Durable Object call: not measured (run npm run bench with cases 2 and 10): its CPU and duration are left out of the bill"
    : `extra Worker CPU of a Durable Object call: ${costs.doCallExtra} µs, its wall time ${costs.doCallWallMs ?? "?"} ms (bench/costs.json http, ${measured.http.measuredAt})`,
  `bytes per key in D1: ${costs.bytesPerKey} (bench/costs.json rowSize, ${measured.rowSize.measuredAt})`,
];

// ---- scenarios -------------------------------------------------------------------------------------

/**
 * Assumptions (not measured here, stated): traffic spread evenly over the active locations; a location
 * runs one isolate per `requestsPerIsolate` verifications/s (at least one); isolates live 10 minutes on
 * average; popularity Zipf with exponent 1; 5 % of keys carry limits; management writes grow with keys.
 */
const base = { zipf: 1, requestsPerIsolate: 100, isolateLifetimeSeconds: 600, limitedShare: 0.05, replicaShare };
const scenario = (keys, verificationsPerSecond, locations) => ({
  ...base,
  name: `${fmt(keys)} keys, ${fmt(verificationsPerSecond)}/s`,
  keys,
  owners: keys / 100,
  verificationsPerSecond,
  locations,
  createsPerSecond: keys / 1e6, // a million keys: one create a second, and as many revocations and changes
  revocationsPerSecond: keys / 1e6 / 2,
  changesPerSecond: keys / 1e6 / 2,
  managementReadsPerSecond: (keys / 1e6) * managementReadsPerMillion,
});
function fmt(n) {
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)} k`;
  return `${+n.toFixed(1)}`;
}
const scenarios = values.smoke
  ? [scenario(1e6, 1e3, 50)]
  : [
      scenario(1e6, 1e3, 50),
      scenario(10e6, 10e3, 150),
      scenario(10e6, 100e3, 300),
      scenario(100e6, 100e3, 300),
      scenario(100e6, 1e6, 300),
    ];

// ---- the table ----------------------------------------------------------------------------------

const pct = (x) => `${(100 * x).toFixed(1)} %`;
const rate = (x) => (x >= 100 ? Math.round(x).toLocaleString("en") : x.toFixed(1));
const usd = (x) => `$${x >= 100 ? Math.round(x).toLocaleString("en") : x.toFixed(2)}`;
const results = scenarios.map((s) => model(s, costs, settings));
const rows = [
  [
    "isolates (locations × per location)",
    (r) => `${r.isolates.toLocaleString("en")} (${r.scenario.locations} × ${r.isolates / r.scenario.locations})`,
  ],
  ["isolate memory hit rate", (r) => pct(r.memoryHitRate)],
  ["KV hit rate (of memory misses; upper bound)", (r) => pct(r.kvHitRate)],
  ["KV reads/s", (r) => rate(r.kvReads)],
  ["KV writes/s", (r) => rate(r.kvWrites)],
  ["D1 read queries/s", (r) => rate(r.d1ReadQueries)],
  ["  of which verify fallbacks", (r) => rate(r.d1Reads.verifyFallbacks)],
  ["  of which feed polls", (r) => rate(r.d1Reads.feedPolls)],
  ["  of which isolate starts", (r) => rate(r.d1Reads.isolateStarts)],
  ["  of which management reads", (r) => rate(r.d1Reads.management)],
  ["management reads/s served by replicas", (r) => rate(r.replicaReads)],
  ["mean D1 round trip of a management read", (r) => `${Math.round(r.managementReadSeconds * 1000)} ms`],
  ["D1 write queries/s", (r) => rate(r.d1WriteQueries)],
  ["  of which last use", (r) => rate(r.d1Writes.lastUsed)],
  ["  of which usage counts", (r) => rate(r.d1Writes.usageCounts)],
  ["  of which management", (r) => rate(r.d1Writes.management)],
  ["D1 size (GB)", (r) => r.storageGb.toFixed(1)],
  ["DO calls/s (hottest key with limits)", (r) => `${rate(r.doCalls)} (${rate(r.hottestLimitedRate)})`],
  [
    "revocation bound (worst case, D1 down)",
    (r) => `${r.revocationBoundSeconds} s (${r.worstRevocationBoundSeconds} s)`,
  ],
  ...Object.keys(results[0].bill).map((item) => [`$/month: ${item}`, (r) => usd(r.bill[item])]),
  ["$/month in all", (r) => `**${usd(r.monthly)}**`],
  ["first limit reached", (r) => firstLimit(r) ?? "none"],
];
const header = ["", ...results.map((r) => r.scenario.name)];
const markdown = [
  `| ${header.join(" | ")} |`,
  `| ${header.map(() => "---").join(" | ")} |`,
  ...rows.map(
    ([label, cell]) =>
      `| ${label.startsWith("  ") ? `&nbsp;&nbsp;${label.trim()}` : label} | ${results.map(cell).join(" | ")} |`,
  ),
].join("\n");

/**
 * The size at which each limit is first reached along the scenarios' path (keys, verifications/s and
 * locations interpolated geometrically between neighbouring scenarios), by bisection.
 */
function whereReached(limit) {
  const at = (a, b, t) => {
    const geo = (x, y) => x * (y / x) ** t;
    return {
      ...a,
      keys: Math.round(geo(a.keys, b.keys)),
      verificationsPerSecond: geo(a.verificationsPerSecond, b.verificationsPerSecond),
      locations: Math.round(geo(a.locations, b.locations)),
      createsPerSecond: geo(a.createsPerSecond, b.createsPerSecond),
      revocationsPerSecond: geo(a.revocationsPerSecond, b.revocationsPerSecond),
      changesPerSecond: geo(a.changesPerSecond, b.changesPerSecond),
      managementReadsPerSecond: geo(a.managementReadsPerSecond, b.managementReadsPerSecond),
    };
  };
  const u = (s) => model(s, costs, settings).utilisation[limit];
  if (u(scenarios[0]) >= 1) return { ...scenarios[0], before: true };
  for (let i = 1; i < scenarios.length; i++) {
    if (u(scenarios[i]) < 1) continue;
    let [lo, hi] = [0, 1];
    for (let step = 0; step < 30; step++) {
      const mid = (lo + hi) / 2;
      if (u(at(scenarios[i - 1], scenarios[i], mid)) >= 1) hi = mid;
      else lo = mid;
    }
    return at(scenarios[i - 1], scenarios[i], hi);
  }
  return null;
}
const reached = Object.keys(results[0].utilisation)
  .map((limit) => ({ limit, at: whereReached(limit) }))
  .filter((x) => x.at)
  .sort((a, b) => a.at.verificationsPerSecond - b.at.verificationsPerSecond || a.at.keys - b.at.keys);
const limitLines = reached.map(
  ({ limit, at }) =>
    `${limit}: reached ${at.before ? "already in the first scenario" : "at"} ${fmt(at.keys)} keys, ${fmt(at.verificationsPerSecond)} verifications/s`,
);
const unreached = Object.keys(results[0].utilisation).filter((l) => !reached.some((x) => x.limit === l));

// ---- the check: a seeded event simulation ----------------------------------------------------------

/**
 * Requests drawn from the Zipf popularity, each to a random isolate; isolates die (exponential
 * lifetimes) and are replaced empty; a record stays in an isolate's memory recordMemorySeconds after its
 * miss, a KV copy kvCopySeconds after its fill. Counts memory hits, KV hits and D1 reads.
 */
export function eventSimulation(
  { keys, verificationsPerSecond, isolates, isolateLifetimeSeconds, seconds, seed },
  set,
) {
  const random = generator(seed);
  const groups = popularity(keys, 1, 1.0001); // one rank per group: exact shares
  const cumulative = [];
  let acc = 0;
  for (const g of groups) cumulative.push((acc += g.share));
  const pick = () => {
    const x = random() * acc;
    let [lo, hi] = [0, cumulative.length - 1];
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const memory = Array.from({ length: isolates }, () => new Map());
  const deathAt = Array.from({ length: isolates }, () => -Math.log(1 - random()) * isolateLifetimeSeconds);
  const kv = new Map();
  const count = { requests: 0, memory: 0, kv: 0, d1: 0 };
  const total = Math.round(verificationsPerSecond * seconds);
  const warmup = Math.round(total / 4);
  for (let n = 0; n < total; n++) {
    const t = n / verificationsPerSecond;
    const i = Math.floor(random() * isolates);
    if (t >= deathAt[i]) {
      memory[i] = new Map();
      deathAt[i] = t - Math.log(1 - random()) * isolateLifetimeSeconds;
    }
    const key = pick();
    const counted = n >= warmup;
    if (counted) count.requests++;
    const until = memory[i].get(key);
    if (until !== undefined && t < until) {
      if (counted) count.memory++;
      continue;
    }
    memory[i].set(key, t + set.recordMemorySeconds);
    const copy = kv.get(key);
    if (copy !== undefined && t < copy) {
      if (counted) count.kv++;
      continue;
    }
    kv.set(key, t + set.kvCopySeconds);
    if (counted) count.d1++;
  }
  return {
    memoryHitRate: count.memory / count.requests,
    kvHitRate: count.kv / (count.kv + count.d1),
    d1ReadsPerSecond: count.d1 / (seconds * 0.75),
  };
}

function check(seed) {
  const small = values.smoke
    ? { keys: 2000, verificationsPerSecond: 100, isolates: 4, isolateLifetimeSeconds: 300, seconds: 600 }
    : { keys: 20_000, verificationsPerSecond: 500, isolates: 10, isolateLifetimeSeconds: 600, seconds: 3600 };
  const simulated = eventSimulation({ ...small, seed }, settings);
  const predicted = model(
    {
      ...base,
      keys: small.keys,
      verificationsPerSecond: small.verificationsPerSecond,
      locations: small.isolates,
      requestsPerIsolate: small.verificationsPerSecond,
      isolateLifetimeSeconds: small.isolateLifetimeSeconds,
      createsPerSecond: 0,
      revocationsPerSecond: 0,
      changesPerSecond: 0,
    },
    costs,
    settings,
  );
  return [
    `Check (seed ${seed}): ${small.keys.toLocaleString("en")} keys, ${small.verificationsPerSecond}/s over ${small.isolates} isolates living ${small.isolateLifetimeSeconds} s, ${small.seconds} s simulated (first quarter discarded):`,
    `memory hit rate ${pct(simulated.memoryHitRate)} simulated, ${pct(predicted.memoryHitRate)} modelled;`,
    `KV hit rate ${pct(simulated.kvHitRate)} simulated, ${pct(predicted.kvHitRate)} modelled;`,
    `D1 verify reads ${simulated.d1ReadsPerSecond.toFixed(2)}/s simulated, ${predicted.d1Reads.verifyFallbacks.toFixed(2)}/s modelled.`,
  ].join(" ");
}

// ---- output -------------------------------------------------------------------------------------

const settingsLine = `Settings: record memory ${settings.recordMemorySeconds} s, KV copy ${settings.kvCopySeconds} s, feed every ${settings.feedSeconds} s, last use every ${settings.lastUsedSeconds} s (gathered ${settings.lastUseWindowSeconds} s per isolate), usage counts gathered ${settings.usageWindowSeconds} s per isolate.`;
const assumptions = `Assumptions: Zipf popularity (exponent ${base.zipf}) the same everywhere; traffic spread evenly over locations; one isolate per ${base.requestsPerIsolate} verifications/s in a location (at least one), living ${base.isolateLifetimeSeconds / 60} min on average; ${pct(base.limitedShare)} of keys with limits; per million keys 1 create, 0.5 revocations and 0.5 changes a second, and ${managementReadsPerMillion} management reads (list, get, events, usage), ${pct(replicaShare)} of them served by D1 read replicas; a D1 round trip of 30 ms to the primary and 5 ms to a replica; limits: D1 ${LIMITS.d1QueriesPerSecond} queries/s and ${LIMITS.d1Gb} GB per database, KV ${LIMITS.kvWritesPerKeyPerSecond} write/s per key, a Durable Object ${LIMITS.doCallsPerObjectPerSecond} calls/s.`;
const out = [
  `Measured inputs:\n${sources.map((s) => `- ${s}`).join("\n")}`,
  settingsLine,
  assumptions,
  `Prices: ${PRICES.source}.`,
  "",
  markdown,
  "",
  ...(limitLines.length ? limitLines.map((l) => `- ${l}`) : ["- no limit reached up to the last scenario"]),
  ...(unreached.length ? [`- not reached up to the last scenario: ${unreached.join(", ")}`] : []),
];
if (values.check || values.smoke) out.push("", check(Number(values.seed)));
console.log(out.join("\n"));
if (values.markdown && !values.smoke) {
  writeFileSync(values.markdown, `${out.join("\n")}\n`);
  console.log(`\nWrote ${values.markdown}`);
}
