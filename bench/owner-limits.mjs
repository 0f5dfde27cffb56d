// npm run bench:owner-limits [-- --port 8850 --duration 8 --rounds 2 --connections 10 --no-write --smoke]
//
// Per-customer limits: what a verification of a key under its owner's limits costs, next to a key with
// only its own limits. Starts latchkey as the README does (npm start, local D1/KV/Durable Objects), makes
// one workspace with limits far above what a run can spend (so every answer is a VALID that pays its
// Durable Object calls) and measures POST /v1/verify with autocannon, case by case in ABBA order:
//   1. a key with its own credits (one Durable Object call: the key chain's counter);
//   2. a key without limits of its own whose owner has credits (one call: the owner's counter);
//   3. a key with its own credits whose owner has credits (one call to the key's counter, which makes
//      the second hop to the owner's);
//   4. a key without any limits (no counter call), for scale.
// Writes its section of bench/RESULTS.md. Locally every Durable Object runs in the same workerd
// process, so a hop costs a local call, not a network round trip: see the notes in RESULTS.md.
import autocannon from "autocannon";
import { parseArgs } from "node:util";
import { signDevToken } from "../scripts/dev-config.mjs";
import { runInfo, table, writeSection } from "./results.mjs";
import { startServer } from "./server.mjs";

const { values: opts } = parseArgs({
  options: {
    port: { type: "string", default: "8850" },
    duration: { type: "string", default: "8" },
    rounds: { type: "string", default: "2" },
    connections: { type: "string", default: "10" },
    "no-write": { type: "boolean" },
    smoke: { type: "boolean" },
  },
});
if (opts.smoke) Object.assign(opts, { duration: "1", rounds: "1", "no-write": true });
const port = Number(opts.port);
const base = `http://localhost:${port}`;
const BIG = { remaining: 1_000_000_000_000, refill: null };

async function api(method, path, jwt, body) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${jwt}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

function measure(key) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${base}/v1/verify`,
        method: "POST",
        connections: Number(opts.connections),
        duration: Number(opts.duration),
        headers: { "content-type": "application/json", "cf-connecting-ip": "203.0.113.9" },
        body: JSON.stringify({ key }),
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
  });
}

const server = await startServer({ port, state: ".wrangler/bench-owner-limits" });
try {
  const run = Date.now();
  const org = `bench-org-${run}`;
  const admin = await signDevToken(`bench-admin-${run}`, { org });
  const free = await signDevToken(`bench-free-${run}`);
  const freeOrg = `bench-free-org-${run}`;
  const freeAdmin = await signDevToken(`bench-free-admin-${run}`, { org: freeOrg });
  await api("PUT", `/v1/owners/workspace/${org}/limits`, admin, { credits: BIG });
  const cases = [
    ["own credits only", await api("POST", "/v1/keys", freeAdmin, { name: "own", owner: "workspace", credits: BIG })],
    ["owner credits only", await api("POST", "/v1/keys", admin, { name: "owner", owner: "workspace" })],
    [
      "own + owner credits (second hop)",
      await api("POST", "/v1/keys", admin, { name: "both", owner: "workspace", credits: BIG }),
    ],
    ["no limits", await api("POST", "/v1/keys", free, { name: "plain" })],
  ];
  const results = new Map(cases.map(([name]) => [name, []]));
  for (let round = 0; round < Number(opts.rounds); round++) {
    const order = round % 2 === 0 ? cases : [...cases].reverse();
    for (const [name, created] of order) {
      await measure(created.key); // warm-up of the same length
      const result = await measure(created.key);
      if (result.non2xx > 0) throw new Error(`${name}: ${result.non2xx} answers were not 2xx`);
      results.get(name).push(result);
      console.log(
        `${name}: ${result.requests.average} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms`,
      );
    }
  }
  // Each case keeps its best round (the least disturbed by the other load on the machine).
  const best = [...results].map(([name, rounds]) => [
    name,
    rounds.reduce((a, b) => (b.requests.average > a.requests.average ? b : a)),
  ]);
  const rows = best.map(([name, r]) => [
    name,
    String(Math.round(r.requests.average)),
    String(r.latency.p50),
    String(r.latency.p99),
  ]);
  console.log(table(["case", "req/s", "p50 ms", "p99 ms"], rows));
  if (!opts["no-write"]) {
    await writeSection(
      "owner-limits",
      [
        "## Per-customer limits: a key under its owner's limits (`npm run bench:owner-limits`)",
        "",
        runInfo("npm run bench:owner-limits"),
        "",
        table(["case (POST /v1/verify, VALID)", "req/s", "p50 ms", "p99 ms"], rows),
        "",
        "Caveat: measured on a 2-core machine shared with other builds and test runs at the same time, so the",
        "absolute numbers are noisy and low; compare the rows with each other. Locally all Durable Objects run",
        "in one workerd process: the second hop (key counter → owner counter) is a local call here, while in",
        "production it is a round trip between two Durable Objects, which may sit in different locations.",
      ].join("\n"),
    );
  }
} finally {
  await server.stop();
}
