// npm run bench [-- --port 8790 --keys 1000 --warmup 5 --case-warmup 12 --duration 8 --rounds 4 --connections 10
//                  --cases 1,2,3,4,5,6,7,8,9,10,11 --no-write --no-results --smoke --local-observability
//                  --state-on-disk]
// --no-results: bench/costs.json only (bench/RESULTS.md untouched); --no-write: neither.
// --smoke: 100 keys, one round of 1 s per case, nothing written (CI: the script still runs, every case answers).
// --local-observability: keep wrangler dev's local trace store on (its default; off here: bench/server.mjs).
// --state-on-disk: wrangler's local state in the checkout, as `npm start` keeps it (here in RAM where the machine
// has a tmpfs, so that no case waits for this machine's disk: bench/server.mjs).
//
// Starts latchkey as the README does (`npm start -- --port <port>`: local D1 and KV, wrangler dev),
// seeds keys through the API, and measures eleven cases with autocannon, alternating them round by
// round (ABBA order) so that drift hits all alike. Prints requests/s, p50 and p99 per case and the
// ratios the targets are stated in, and writes its section of bench/RESULTS.md.
import autocannon from "autocannon";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { signDevToken } from "../scripts/dev-config.mjs";
import { generateKey } from "../src/keys/format.ts";
import { sampleRoles, serverRoles } from "./processes.mjs";
import { runInfo, table, writeCosts, writeSection } from "./results.mjs";
import { inRam, startServer, stateFolder } from "./server.mjs";

const { values: opts } = parseArgs({
  options: {
    port: { type: "string", default: "8790" },
    keys: { type: "string", default: "1000" },
    warmup: { type: "string", default: "5" },
    // Before each measured run. After a switch from a case that verifies no key, the Worker takes about
    // 10 s to settle back to its warm cost per request (bench/RESULTS.md, notes), so less than that
    // measures the switch, not the warm path.
    "case-warmup": { type: "string", default: "12" },
    duration: { type: "string", default: "8" },
    rounds: { type: "string", default: "4" },
    connections: { type: "string", default: "10" },
    cases: { type: "string", default: "1,2,3,4,5,6,7,8,9,10,11" },
    "no-write": { type: "boolean" },
    "no-results": { type: "boolean" },
    smoke: { type: "boolean" },
    "local-observability": { type: "boolean" },
    "state-on-disk": { type: "boolean" },
  },
});
const localObservability = opts["local-observability"] === true;
const onDisk = opts["state-on-disk"] === true;
const STATE = ".wrangler/bench";
const persistTo = stateFolder(STATE, onDisk);
if (opts.smoke) {
  Object.assign(opts, { keys: "100", warmup: "1", "case-warmup": "1", duration: "1", rounds: "1", "no-write": true });
}
const num = (name, min) => {
  const value = Number(opts[name]);
  if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be a whole number >= ${min}`);
  return value;
};
const port = num("port", 1);
const keyCount = num("keys", opts.smoke ? 100 : 1000);
const warmupSeconds = num("warmup", 1);
const caseWarmupSeconds = num("case-warmup", 1);
const durationSeconds = num("duration", 1);
const rounds = num("rounds", 1);
const connections = num("connections", 1);
const selected = new Set(opts.cases.split(",").map(Number));
if (![1, 2, 3, 4].every((id) => selected.has(id)) && !opts["no-write"] && !opts["no-results"]) {
  throw new Error(
    "Cases 1-4 are needed for the ratios written to bench/RESULTS.md; pass --no-results or --no-write to run fewer",
  );
}
const base = `http://localhost:${port}`;
const argv = process.argv.slice(2).join(" ");
const command = `npm run bench${argv ? ` -- ${argv}` : ""}`;

// ---- the server -------------------------------------------------------------------------------

/** The running server (bench/server.mjs). */
let server = null;

// ---- seeding ----------------------------------------------------------------------------------

/**
 * Case 9's allow-list: a few ranges, the client's among them (the header the cases send, or the
 * loopback address, should wrangler dev set CF-Connecting-IP itself).
 */
const ALLOWED_IPS = ["198.51.100.0/24", "2001:db8::/32", "127.0.0.0/8", "::1/128", "203.0.113.0/24"];
/**
 * Each case is its own client (CF-Connecting-IP, which load shedding and the failed-authentication
 * limiter key on: src/http/limits.ts), so a failure case's 429s never throttle another case. All lie in
 * 203.0.113.0/24, which case 9's allow-list holds.
 */
const clientIp = (caseId) => `203.0.113.${100 + caseId}`;

async function createKey(jwt, name, extra = {}) {
  const response = await fetch(`${base}/v1/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}`, "content-type": "application/json" },
    body: JSON.stringify({ name, scopes: ["models:invoke", "keys:read"], ...extra }),
  });
  if (response.status !== 201)
    throw new Error(`seeding: POST /v1/keys gave ${response.status}: ${await response.text()}`);
  return (await response.json()).key;
}

/**
 * Tokens of `count` owners: KEY_CREATION_LIMITER allows each owner 300 creates a minute, so seeding
 * and the create case spread their creates over many owners, as real traffic does.
 */
async function ownerTokens(count) {
  const run = Date.now();
  return Promise.all(Array.from({ length: count }, (_, i) => signDevToken(`bench-${run}-${i}`)));
}

/** 100 keys per owner. */
const KEYS_PER_OWNER = 100;

async function seed(jwts, count = keyCount, extra = {}) {
  const keys = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      keys[i] = await createKey(jwts[Math.floor(i / KEYS_PER_OWNER)], `bench ${i}`, extra);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return keys;
}

// ---- measuring --------------------------------------------------------------------------------

/**
 * Keys with usage limits for cases 10-11: limits far above what a run can spend, so every request is a
 * VALID verification that pays its Durable Object round trip (never a cheap 429).
 */
const LIMITED_KEYS = 100;
const RATE_LIMITED = { ratelimits: [{ name: "bench", limit: 1_000_000_000, duration_ms: 1000 }] };
const WITH_CREDITS = { credits: { remaining: 1_000_000_000_000, refill: null } };

/**
 * The eleven cases as autocannon request lists. Lists of static requests are built into buffers once,
 * so the load generator's own cost is the same for every case; each connection cycles through them.
 */
/** Distinct strings in the shape of bare Laravel Sanctum secrets (40 letters and digits), none imported. */
function sanctumShaped(count) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return Array.from({ length: count }, () =>
    Array.from(crypto.getRandomValues(new Uint8Array(40)), (b) => alphabet[b % alphabet.length]).join(""),
  );
}

function defineCases(keys, creators, allowListed, rateLimited, withCredits) {
  const unknownKey = generateKey("lk");
  const guesses = sanctumShaped(keys.length);
  const good = keys[0];
  const malformedKey = good.slice(0, -1) + (good.endsWith("A") ? "B" : "A");
  const json = { "content-type": "application/json" };
  const whoami = (key) => ({ method: "GET", path: "/v1/whoami", headers: { authorization: `Bearer ${key}` } });
  const cases = [
    {
      // The same request shapes as case 2 (1,000 rotating Authorization headers, which /healthz ignores),
      // so the load generator, which shares the machine's cores, does the same work in both cases.
      id: 1,
      name: "GET /healthz (no auth: the ceiling)",
      requests: keys.map((key) => ({ ...whoami(key), path: "/healthz" })),
    },
    {
      id: 2,
      name: `GET /v1/whoami, warm valid keys (${keys.length.toLocaleString("en")})`,
      requests: keys.map(whoami),
    },
    { id: 3, name: "GET /v1/whoami, well-formed unknown key", requests: [whoami(unknownKey)] },
    { id: 4, name: "GET /v1/whoami, malformed key (checksum)", requests: [whoami(malformedKey)] },
    {
      id: 5,
      name: "POST /v1/verify, valid key with scope",
      requests: keys.map((key) => ({
        method: "POST",
        path: "/v1/verify",
        headers: json,
        body: JSON.stringify({ key, scope: "models:invoke" }),
      })),
    },
    {
      id: 6,
      name: "POST /v1/keys (create)",
      requests: creators.map((creator) => ({
        method: "POST",
        path: "/v1/keys",
        headers: { ...json, authorization: `Bearer ${creator}` },
        body: JSON.stringify({ name: "bench create", scopes: ["models:invoke"] }),
      })),
    },
    // A flood of distinct legacy-looking strings (the server accepts imported Sanctum keys): each costs
    // one lookup, then the negative cache answers it for 10 s; HTTP auth failures also meet the
    // failed-authentication limiter (429 past 100 a minute per client).
    { id: 7, name: "GET /v1/whoami, random Sanctum-shaped strings", requests: guesses.map(whoami) },
    {
      id: 8,
      name: "POST /v1/verify, random Sanctum-shaped strings",
      requests: guesses.map((key) => ({
        method: "POST",
        path: "/v1/verify",
        headers: json,
        body: JSON.stringify({ key }),
      })),
    },
    {
      // Against case 2: what an allow-list check costs a warm key (keys without one pay nothing).
      id: 9,
      name: `GET /v1/whoami, warm keys with an IP allow-list (${allowListed.length.toLocaleString("en")})`,
      requests: allowListed.map(whoami),
    },
    {
      // Against case 1 (and 2): a rate limit's Durable Object round trip; the limit never trips.
      id: 10,
      name: `GET /v1/whoami, warm keys with a rate limit (${rateLimited.length})`,
      requests: rateLimited.map(whoami),
    },
    {
      // Against case 1 (and 2): a credit balance's Durable Object round trip; never runs out.
      id: 11,
      name: `GET /v1/whoami, warm keys with credits (${withCredits.length})`,
      requests: withCredits.map(whoami),
    },
  ];
  return cases.map((c) => ({
    ...c,
    requests: c.requests.map((r) => ({ ...r, headers: { ...r.headers, "cf-connecting-ip": clientIp(c.id) } })),
  }));
}

/** One autocannon run; latencies recorded exactly (autocannon's own histogram is whole milliseconds). */
function load(requests, seconds, sink) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const instance = autocannon(
      { url: base, connections, duration: seconds, requests, timeout: 10 },
      (error, result) => {
        if (error) reject(error);
        else resolve({ result, seconds: (performance.now() - started) / 1000 });
      },
    );
    if (sink) {
      instance.on("response", (_client, status, _bytes, ms) => {
        sink.latencies.push(ms);
        sink.statuses[status] = (sink.statuses[status] ?? 0) + 1;
      });
    }
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function measure(cases, roles) {
  const totals = new Map(
    cases.map((c) => [c.id, { latencies: [], statuses: {}, seconds: 0, errors: 0, perRound: [], cpu: new Map() }]),
  );
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? cases : [...cases].reverse();
    for (const c of order) {
      process.stdout.write(`round ${round + 1}/${rounds}: case ${c.id} ${c.name} ... `);
      await load(c.requests, caseWarmupSeconds, null);
      const sink = { latencies: [], statuses: {} };
      const cpuBefore = sampleRoles(roles);
      const { result, seconds } = await load(c.requests, durationSeconds, sink);
      const cpuAfter = sampleRoles(roles);
      const total = totals.get(c.id);
      for (const [role, nanos] of cpuAfter)
        total.cpu.set(role, (total.cpu.get(role) ?? 0) + nanos - cpuBefore.get(role));
      for (const ms of sink.latencies) total.latencies.push(ms);
      for (const [status, n] of Object.entries(sink.statuses))
        total.statuses[status] = (total.statuses[status] ?? 0) + n;
      total.seconds += seconds;
      total.errors += result.errors + result.timeouts;
      const rps = sink.latencies.length / seconds;
      total.perRound.push(rps);
      const worker = "workerd: latchkey's Worker"; // absent where there is no /proc
      const workerMicros = (cpuAfter.get(worker) - cpuBefore.get(worker)) / 1000 / sink.latencies.length;
      console.log(
        `${Math.round(rps)} req/s${roles.has(worker) ? `, ${Math.round(workerMicros)} µs of Worker CPU per request` : ""}`,
      );
    }
  }
  return cases.map((c) => {
    const t = totals.get(c.id);
    const sorted = Float64Array.from(t.latencies).sort();
    return {
      ...c,
      rps: t.latencies.length / t.seconds,
      perRound: t.perRound,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      statuses: t.statuses,
      errors: t.errors,
      /** CPU µs per request in each role's processes. */
      cpu: new Map([...t.cpu].map(([role, nanos]) => [role, nanos / 1000 / t.latencies.length])),
    };
  });
}

// ---- main -------------------------------------------------------------------------------------

const info = runInfo(command);
let exitCode = 0;
try {
  const began = performance.now();
  console.log(
    `Starting latchkey: ${localObservability ? "" : "X_LOCAL_OBSERVABILITY=false "}npm start -- --port ${port} --persist-to ${persistTo} --var LEGACY_KEY_FORMATS:sanctum`,
  );
  // Imported Sanctum keys accepted, so cases 7-8 reach storage; latchkey's own keys (cases 2-5) pay nothing for it.
  server = await startServer({
    port,
    state: STATE,
    vars: { LEGACY_KEY_FORMATS: "sanctum" },
    localObservability,
    onDisk,
  });
  const jwts = await ownerTokens(Math.ceil(keyCount / KEYS_PER_OWNER));
  console.log(`Seeding ${keyCount} keys through POST /v1/keys for ${jwts.length} owners ...`);
  const keys = await seed(jwts);
  const allowListed = selected.has(9)
    ? await seed(await ownerTokens(jwts.length), keyCount, { allowed_ips: ALLOWED_IPS })
    : [];
  const limited = async (id, limits) =>
    selected.has(id) ? seed(await ownerTokens(Math.ceil(LIMITED_KEYS / KEYS_PER_OWNER)), LIMITED_KEYS, limits) : [];
  const rateLimited = await limited(10, RATE_LIMITED);
  const withCredits = await limited(11, WITH_CREDITS);
  const cases = defineCases(keys, await ownerTokens(500), allowListed, rateLimited, withCredits).filter((c) =>
    selected.has(c.id),
  );

  console.log(`Warm-up: ${warmupSeconds} s over every case`);
  for (const c of cases) await load(c.requests, Math.max(1, Math.round(warmupSeconds / cases.length)), null);
  const roles = serverRoles(server.pid, port);
  const results = await measure(cases, roles);
  const elapsed = (performance.now() - began) / 1000;

  const byId = new Map(results.map((r) => [r.id, r]));
  const ceiling = byId.get(1);
  const check = (ok) => (ok ? "met" : "NOT met");
  /** "case <id> <what> / case 1 <what>: ratio (target ...)", when both cases ran. */
  const target = (id, what, value, limit, atLeast) => {
    const c = byId.get(id);
    if (!c || !ceiling) return [];
    const r = value(c) / value(ceiling);
    return [
      `case ${id} / case 1 ${what}: ${r.toFixed(2)} (target ${atLeast ? "≥" : "≤"} ${limit.toFixed(2)}: ${check(atLeast ? r >= limit : r <= limit)})`,
    ];
  };
  /** "case <id> <what> / case 1 <what>: ratio", recorded without a target. */
  const ratio = (id, what, value) => {
    const c = byId.get(id);
    return c && ceiling ? [`case ${id} / case 1 ${what}: ${(value(c) / value(ceiling)).toFixed(2)}`] : [];
  };
  const verdicts = [
    ...target(2, "throughput", (c) => c.rps, 0.9, true),
    ...target(2, "p99", (c) => c.p99, 1.2, false),
    ...target(3, "throughput", (c) => c.rps, 0.85, true),
    ...target(4, "throughput", (c) => c.rps, 0.85, true),
    ...target(7, "throughput", (c) => c.rps, 0.85, true),
    ...ratio(9, "throughput", (c) => c.rps),
    ...ratio(10, "throughput", (c) => c.rps),
    ...ratio(11, "throughput", (c) => c.rps),
  ];
  const allowList = byId.get(9);
  const case2Result = byId.get(2);
  if (allowList && case2Result) {
    verdicts.push(
      `case 9 / case 2 throughput: ${(allowList.rps / case2Result.rps).toFixed(2)} (an allow-list's cost; no target)`,
    );
  }
  // A key with limits against the same route without (its one Durable Object call): target 0.80.
  for (const id of [10, 11]) {
    const limited = byId.get(id);
    if (!limited || !case2Result) continue;
    const r = limited.rps / case2Result.rps;
    verdicts.push(`case ${id} / case 2 throughput: ${r.toFixed(2)} (target ≥ 0.80: ${check(r >= 0.8)})`);
  }
  const statusText = (s) =>
    Object.entries(s)
      .map(([code, n]) => `${code}: ${n}`)
      .join(", ");
  const rows = results.map((r) => [
    r.id,
    r.name,
    Math.round(r.rps),
    r.perRound.map((x) => Math.round(x)).join(" / "),
    r.p50.toFixed(2),
    r.p99.toFixed(2),
    statusText(r.statuses) + (r.errors ? `, errors: ${r.errors}` : ""),
  ]);
  const header = ["#", "case", "req/s", "req/s per round", "p50 ms", "p99 ms", "statuses"];

  // Where each request's CPU went, by process (bench/processes.mjs), and what case 2 adds to case 1.
  const roleNames = [...roles.keys()];
  const cpuTotal = (r) => [...r.cpu.values()].reduce((a, b) => a + b, 0);
  const cpuHeader = ["#", ...roleNames, "all"];
  const cpuRows = results.map((r) => [
    r.id,
    ...roleNames.map((role) => r.cpu.get(role).toFixed(0)),
    cpuTotal(r).toFixed(0),
  ]);
  /** "CPU per request, case <a> minus case <b>: ..." by process, when both ran and CPU was read. */
  const gap = (a, b) => {
    const [x, y] = [byId.get(a), byId.get(b)];
    if (!x || !y || cpuTotal(y) <= 0) return [];
    return [
      `CPU per request, case ${a} minus case ${b}: ${[
        ...roleNames.map((role) => [role, x.cpu.get(role) - y.cpu.get(role)]),
        ["all", cpuTotal(x) - cpuTotal(y)],
      ]
        .map(([role, d]) => `${role} ${d >= 0 ? "+" : ""}${d.toFixed(0)} µs`)
        .join(", ")}.`,
    ];
  };
  // What a warm key, a shed flood of legacy-shaped guesses and a key with limits add.
  const cpuGap = [...gap(2, 1), ...gap(7, 1), ...gap(10, 2), ...gap(11, 2)].join("\n\n");

  console.log("");
  console.table(
    Object.fromEntries(
      results.map((r) => [
        `${r.id}. ${r.name}`,
        {
          "req/s": Math.round(r.rps),
          "p50 ms": +r.p50.toFixed(2),
          "p99 ms": +r.p99.toFixed(2),
          statuses: statusText(r.statuses),
        },
      ]),
    ),
  );
  console.log("CPU µs per request, by process:");
  console.table(
    Object.fromEntries(
      cpuRows.map(([id, ...cells]) => [id, Object.fromEntries(cpuHeader.slice(1).map((h, i) => [h, cells[i]]))]),
    ),
  );
  if (cpuGap) console.log(cpuGap);
  for (const v of verdicts) console.log(v);
  console.log(`(${elapsed.toFixed(0)} s in all)`);

  if (!opts["no-write"]) {
    const worker = "workerd: latchkey's Worker";
    const workerCpu = (id) => byId.get(id)?.cpu.get(worker);
    const perCase = Object.fromEntries(
      results.map((r) => [r.id, { name: r.name, rps: Math.round(r.rps), workerCpuMicros: workerCpu(r.id) ?? null }]),
    );
    const doCall = [10, 11].map((id) => workerCpu(id)).filter((v) => v !== undefined);
    writeCosts(
      "http",
      {
        source:
          "bench/http.mjs: wrangler dev (local D1, KV, Durable Objects), autocannon; CPU of the workerd processes",
        cases: perCase,
        // What a key with limits pays over one without: its Durable Object call, in the Worker's and the
        // object's CPU (wrangler dev runs both in the same workerd process).
        doCallMicros:
          doCall.length > 0 && workerCpu(2) !== undefined
            ? +Math.max(0, doCall.reduce((a, b) => a + b, 0) / doCall.length - workerCpu(2)).toFixed(1)
            : null,
        // Its wall time: the median latency over a key without limits (case 2).
        doCallWallMs:
          byId.has(2) && [10, 11].some((id) => byId.has(id))
            ? +Math.max(
                0,
                [10, 11].filter((id) => byId.has(id)).reduce((a, id) => a + byId.get(id).p50, 0) /
                  [10, 11].filter((id) => byId.has(id)).length -
                  byId.get(2).p50,
              ).toFixed(2)
            : null,
      },
      command,
    );
  }
  if (!opts["no-write"] && !opts["no-results"]) {
    await writeSection(
      "http",
      `## HTTP (\`npm run bench\`)

${info}
- Setup: \`${localObservability ? "" : "X_LOCAL_OBSERVABILITY=false "}npm start -- --port ${port} --persist-to ${persistTo}\` (fresh local D1, KV and Durable Objects under wrangler dev, ${inRam(persistTo) ? "their files in RAM (tmpfs)" : "their files on disk"}, ${localObservability ? "with its local trace store" : "without its local trace store"}: bench/server.mjs), ${keyCount.toLocaleString("en")} keys seeded through POST /v1/keys, autocannon with ${connections} connections; ${warmupSeconds} s warm-up, then per case ${caseWarmupSeconds} s warm-up and ${durationSeconds} s measured, ${rounds} rounds in alternating order (ABBA). Latencies are exact (recorded per response, all statuses); p50/p99 and req/s pool the rounds. ${elapsed.toFixed(0)} s in all.

${table(header, rows)}

${verdicts.map((v) => `- ${v}`).join("\n")}

CPU µs per request, by process (Linux /proc schedstat, every thread; measured runs only):

${table(cpuHeader, cpuRows)}

${cpuGap}

Cases 3 and 4 are failed authentications: AUTH_FAILURE_LIMITER (100 per 60 s per client, wrangler.toml) answers 429 once a
client is over it, as it would for a real brute-force attempt; the status mix shows how many requests reached each answer.`,
    );
    console.log("Wrote bench/RESULTS.md");
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  exitCode = 1;
} finally {
  await server?.stop();
}
process.exit(exitCode);
