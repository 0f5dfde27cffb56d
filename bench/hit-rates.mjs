// npm run bench:hit-rates [-- --port 8793 --keys 2000 --duration 600 --connections 8 --zipf 1 --no-write --smoke]
//
// The capacity model (bench/capacity.mjs) checked against a real run: starts latchkey as the README does
// (npm start, local D1 and KV, one isolate) with SERVER_TIMING on, creates --keys keys, then verifies
// them for --duration seconds with a known popularity (Zipf, exponent --zipf: the key of rank r is asked
// in proportion to 1/r^zipf), and counts from each response's Server-Timing header where the verdict
// was answered: the isolate's memory, Workers KV or D1. Set against the counts:
// - a replay: the same requests, at the same moments, through the layers' rules as the model states them
//   (a record lives in memory 80-100 % of KV_TTL_SECONDS after the read that filled it, a KV copy
//   KV_TTL_SECONDS after its put, creation fills KV, the first feed sync empties memory) — checks the rules;
// - the model itself (one location, one isolate that never dies, the measured rate), for the requests
//   after the first KV_TTL_SECONDS, when the copies made at creation are gone — checks its
//   steady-state formulas.
// Writes its section of bench/RESULTS.md. --smoke: 100 keys for 20 s, nothing written (CI).
import { parseArgs } from "node:util";
import { signDevToken } from "../scripts/dev-config.mjs";
import { LATCHKEY, generator, model, popularity } from "./capacity.mjs";
import { runInfo, table, writeSection } from "./results.mjs";
import { startServer, stateFolder } from "./server.mjs";

const { values: opts } = parseArgs({
  options: {
    port: { type: "string", default: "8793" },
    keys: { type: "string", default: "2000" },
    duration: { type: "string", default: "600" },
    connections: { type: "string", default: "8" },
    zipf: { type: "string", default: "1" },
    seed: { type: "string", default: "1" },
    "no-write": { type: "boolean" },
    smoke: { type: "boolean" },
  },
});
if (opts.smoke) Object.assign(opts, { keys: "100", duration: "20", "no-write": true });
const num = (name, min) => {
  const value = Number(opts[name]);
  if (!Number.isFinite(value) || value < min) throw new Error(`--${name} must be a number >= ${min}`);
  return value;
};
const port = num("port", 1);
const keyCount = Math.round(num("keys", 1));
const durationSeconds = num("duration", 1);
const connections = Math.round(num("connections", 1));
const zipf = num("zipf", 0);
const base = `http://localhost:${port}`;
const argv = process.argv.slice(2).join(" ");

/** src/store/cache.ts KV_TTL_SECONDS, and src/service/memory-record.ts: a record keeps 80-100 % of it. */
const KV_TTL_SECONDS = LATCHKEY.kvCopySeconds;
const MEMORY_SHARE = [0.8, 1];
const KEYS_PER_OWNER = 100;

/** Creates `count` keys (100 per owner: creation is rate-limited per owner); each with when it was made. */
async function createKeys(count) {
  const run = Date.now();
  const owners = await Promise.all(
    Array.from({ length: Math.ceil(count / KEYS_PER_OWNER) }, (_, i) => signDevToken(`hit-rates-${run}-${i}`)),
  );
  const keys = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const response = await fetch(`${base}/v1/keys`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${owners[Math.floor(i / KEYS_PER_OWNER)]}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ name: `hit-rates ${i}` }),
      });
      if (response.status !== 201) throw new Error(`POST /v1/keys gave ${response.status}: ${await response.text()}`);
      keys[i] = { key: (await response.json()).key, createdAt: Date.now() };
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return keys;
}

/** Rank sampler: index i (rank i + 1) with probability proportional to 1/(i + 1)^s. */
function zipfSampler(n, s, random) {
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) cumulative[i] = total += 1 / (i + 1) ** s;
  return () => {
    const x = random() * total;
    let [lo, hi] = [0, n - 1];
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** Verifies keys drawn from the popularity until the deadline; each request's key, moment and layer. */
async function drive(keys, seconds, random) {
  const pick = zipfSampler(keys.length, zipf, random);
  const requests = [];
  const deadline = Date.now() + seconds * 1000;
  const worker = async () => {
    while (Date.now() < deadline) {
      const index = pick();
      const response = await fetch(`${base}/v1/verify`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ key: keys[index].key }),
      });
      const { code } = await response.json();
      if (response.status !== 200 || code !== "VALID") throw new Error(`verify gave ${response.status} ${code}`);
      const layer = /desc="(memory|kv|d1)"/.exec(response.headers.get("server-timing") ?? "")?.[1];
      if (!layer) throw new Error("no Server-Timing on the answer: is SERVER_TIMING on?");
      requests.push({ index, at: Date.now(), layer });
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  return requests.sort((a, b) => a.at - b.at);
}

/** The same requests through the layers' rules: where each would be answered. */
function replay(keys, requests, random) {
  // Creation fills this isolate's memory too, but its first feed sync (at the first verification: the
  // creates, authenticated by JWT, verify no key) starts it afresh, so memory starts empty.
  const memoryUntil = keys.map(() => 0);
  const kvUntil = keys.map((k) => k.createdAt + KV_TTL_SECONDS * 1000);
  return requests.map(({ index, at }) => {
    if (at < memoryUntil[index]) return "memory";
    memoryUntil[index] = at + memoryLifetime(random);
    if (at < kvUntil[index]) return "kv";
    kvUntil[index] = at + KV_TTL_SECONDS * 1000;
    return "d1";
  });
}

function memoryLifetime(random) {
  const [low, high] = MEMORY_SHARE;
  return KV_TTL_SECONDS * 1000 * (low + (high - low) * random());
}

function rates(layers) {
  const count = { memory: 0, kv: 0, d1: 0 };
  for (const layer of layers) count[layer]++;
  const misses = count.kv + count.d1;
  return {
    ...count,
    total: layers.length,
    memoryHitRate: count.memory / layers.length,
    kvHitRate: misses ? count.kv / misses : 1,
  };
}

const pct = (x) => `${(100 * x).toFixed(1)} %`;

const STATE = ".wrangler/hit-rates";
let server = null;
try {
  console.log(
    `Starting latchkey: npm start -- --port ${port} --persist-to ${stateFolder(STATE)} --var SERVER_TIMING:true`,
  );
  server = await startServer({ port, state: STATE, vars: { SERVER_TIMING: "true" } });
  const info = runInfo(`npm run bench:hit-rates${argv ? ` -- ${argv}` : ""}`);
  console.log(`Creating ${keyCount} keys`);
  const keys = await createKeys(keyCount);
  console.log(`Verifying for ${durationSeconds} s over ${connections} connections (Zipf exponent ${zipf})`);
  const random = generator(Number(opts.seed));
  const started = Date.now();
  const requests = await drive(keys, durationSeconds, random);
  const seconds = (Date.now() - started) / 1000;
  const rate = requests.length / seconds;

  const measured = rates(requests.map((r) => r.layer));
  const replayed = rates(replay(keys, requests, random));
  // Steady state: after every creation-time copy has expired.
  const settledAt = Math.max(...keys.map((k) => k.createdAt)) + KV_TTL_SECONDS * 1000;
  const late = requests.filter((r) => r.at >= settledAt);
  const lateMeasured = late.length > 0 ? rates(late.map((r) => r.layer)) : null;
  const modelled = model(
    {
      keys: keyCount,
      verificationsPerSecond: rate,
      locations: 1,
      requestsPerIsolate: rate * 2, // one isolate
      isolateLifetimeSeconds: 1e12, // that never dies
      zipf,
      limitedShare: 1 / keyCount,
      createsPerSecond: 0,
      revocationsPerSecond: 0,
      changesPerSecond: 0,
    },
    { warmRequest: 0, kvHitExtra: 0, d1HitExtra: 0, feedPoll: 0, doCallExtra: 0 },
    { ...LATCHKEY, recordMemorySeconds: (KV_TTL_SECONDS * (MEMORY_SHARE[0] + MEMORY_SHARE[1])) / 2 },
  );
  const lateSeconds = late.length > 0 ? (late.at(-1).at - late[0].at) / 1000 || 1 : 0;
  const rows = [
    ["requests", measured.total, replayed.total, lateMeasured?.total ?? "–", "–"],
    [
      "memory hit rate",
      pct(measured.memoryHitRate),
      pct(replayed.memoryHitRate),
      lateMeasured ? pct(lateMeasured.memoryHitRate) : "–",
      pct(modelled.memoryHitRate),
    ],
    [
      "KV hit rate (of memory misses)",
      pct(measured.kvHitRate),
      pct(replayed.kvHitRate),
      lateMeasured ? pct(lateMeasured.kvHitRate) : "–",
      pct(modelled.kvHitRate),
    ],
    ["D1 reads", measured.d1, replayed.d1, lateMeasured?.d1 ?? "–", "–"],
    [
      "D1 reads/s",
      (measured.d1 / seconds).toFixed(2),
      (replayed.d1 / seconds).toFixed(2),
      lateMeasured ? (lateMeasured.d1 / lateSeconds).toFixed(2) : "–",
      modelled.d1Reads.verifyFallbacks.toFixed(2),
    ],
  ];
  const popularityNote = `${keyCount.toLocaleString("en")} keys, Zipf exponent ${zipf} (${pct(popularity(keyCount, zipf)[0].share)} of requests to the most popular key)`;
  const report = `${info}
- Run: ${popularityNote}; ${requests.length.toLocaleString("en")} verifications in ${seconds.toFixed(0)} s (${rate.toFixed(1)}/s) over ${connections} connections, one isolate (wrangler dev).

${table(["", "measured (Server-Timing)", "replay of the same requests", `measured after ${KV_TTL_SECONDS} s`, "model (steady state)"], rows)}

The replay runs the same requests through the layers' rules (a record lives in memory 80-100 % of ${KV_TTL_SECONDS} s after the read that filled it, a KV copy ${KV_TTL_SECONDS} s after its put; creation fills KV, and the isolate's first feed sync empties its memory). The model column is bench/capacity.mjs for one isolate that never dies at the measured rate, in steady state: compare it with the requests after the creation-time copies expired.`;
  console.log(`\n${report}\n`);
  if (!opts["no-write"]) {
    await writeSection(
      "hit-rates",
      `## Hit rates: the capacity model against a run (\`npm run bench:hit-rates\`)\n\n${report}`,
    );
    console.log("Wrote its section of bench/RESULTS.md");
  }
} finally {
  await server?.stop();
}
