// npm run bench:verify [-- --calls N] [--no-write]
// Bundles bench/verify.ts (which imports src/service/verify.ts) with esbuild, runs it in this Node
// process with a warm cache and in-memory stores, and prints the CPU microseconds per verification
// (process.cpuUsage: user + system, all threads). Writes its section of bench/RESULTS.md.
import { build } from "esbuild";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { root } from "../scripts/dev-config.mjs";
import { runInfo, table, writeSection } from "./results.mjs";

const TARGET_MICROS = 20;
const BETTER_AUTH_MICROS = 560;

const { values } = parseArgs({
  options: { calls: { type: "string", default: "200000" }, "no-write": { type: "boolean" } },
});
const calls = Number(values.calls);
if (!Number.isInteger(calls) || calls < 100_000) {
  console.error("--calls must be a whole number of at least 100000");
  process.exit(2);
}

const info = runInfo(`npm run bench:verify${calls === 200000 ? "" : ` -- --calls ${calls}`}`);
const dir = mkdtempSync(join(os.tmpdir(), "latchkey-bench-"));
const outfile = join(dir, "verify.mjs");
const routerCalls = Math.max(20_000, Math.round(calls / 4));
let results;
let routerResults;
let rounds;
let inFlight;
try {
  await build({
    entryPoints: [`${root}bench/verify.ts`],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    outfile,
    logLevel: "warning",
  });
  const { runVerifyBench, runRouterBench, ROUNDS, IN_FLIGHT } = await import(pathToFileURL(outfile).href);
  rounds = ROUNDS;
  inFlight = IN_FLIGHT;
  const clocks = { cpu: () => process.cpuUsage(), wallMillis: () => performance.now() };
  results = await runVerifyBench(clocks, calls);
  routerResults = await runRouterBench(clocks, routerCalls);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const sub = (r) => r.name.trim().startsWith("of which");
const µs = (n) => n.toFixed(2);
const rowsOf = (list) =>
  list.map((r) => [
    sub(r) ? `&nbsp;&nbsp;${r.name.trim()}` : r.name,
    µs(r.cpuMicrosPerCall),
    `${µs(r.userMicrosPerCall)} / ${µs(r.systemMicrosPerCall)}`,
    µs(r.wallMicrosPerCall),
    sub(r) ? "-" : `${r.storageReads} / ${r.storageWrites} / ${r.syncs}`,
  ]);
const header = [
  "case",
  "CPU µs per call",
  "user / system",
  "wall µs per call",
  "storage reads / writes / syncs in loop",
];
const named = (list, name) => list.find((r) => r.name === name);
const warm = named(results, "warm verify (1,000 keys)").cpuMicrosPerCall;
const warmInFlight = named(results, `warm verify, ${inFlight} in flight`).cpuMicrosPerCall;
const sha = named(results, "  of which: SHA-256 (WebCrypto)").cpuMicrosPerCall;
const shaInFlight = named(results, `  of which: SHA-256, ${inFlight} in flight`).cpuMicrosPerCall;
const met = (value) => (value <= TARGET_MICROS ? "met" : "NOT met");
const verdict = [
  `Warm verify: ${µs(warmInFlight)} µs CPU with ${inFlight} in flight (target ≤ ${TARGET_MICROS} µs: ${met(warmInFlight)}),`,
  `${µs(warm)} µs one call at a time (${met(warm)}); SHA-256 alone costs ${µs(shaInFlight)} and ${µs(sha)} µs,`,
  `so most of the difference is Node's thread-pool hand-off. better-auth's api-key plugin: ~${BETTER_AUTH_MICROS} µs.`,
].join(" ");
const extra = (a, b) => µs(named(routerResults, a).cpuMicrosPerCall - named(routerResults, b).cpuMicrosPerCall);
const routerNote = `A warm key through the router costs ${extra("GET /v1/whoami, warm key", "GET /healthz")} µs CPU more than GET /healthz one at a time, ${extra(`GET /v1/whoami, warm key, ${inFlight} in flight`, `GET /healthz, ${inFlight} in flight`)} µs with ${inFlight} in flight.`;

const print = (title, list) => {
  console.log(`\n${title}`);
  console.table(
    Object.fromEntries(
      list.map((r) => [
        r.name,
        {
          "CPU µs": Number(µs(r.cpuMicrosPerCall)),
          user: Number(µs(r.userMicrosPerCall)),
          system: Number(µs(r.systemMicrosPerCall)),
          "wall µs": Number(µs(r.wallMicrosPerCall)),
          reads: r.storageReads,
          writes: r.storageWrites,
          syncs: r.syncs,
        },
      ]),
    ),
  );
};
print(`Verifier.verify: ${calls.toLocaleString("en")} calls per case, best of ${rounds} alternating rounds`, results);
print(
  `Through the router (app.fetch): ${routerCalls.toLocaleString("en")} requests per case, best of ${rounds} rounds`,
  routerResults,
);
console.log(verdict);
console.log(routerNote);

if (!values["no-write"]) {
  await writeSection(
    "verify",
    `## In-process verification (\`npm run bench:verify\`)

${info}

${calls.toLocaleString("en")} calls per case over 1,000 keys, warm isolate cache, in-memory KeyStore and RecordCache
(bench/verify.ts), best of ${rounds} alternating rounds. CPU is \`process.cpuUsage()\` (user + system, every thread of the
process, so WebCrypto's worker threads count). Node runs \`crypto.subtle.digest\` on its thread pool: one call at a time,
each verification pays two thread hand-offs, mostly system CPU and very sensitive to the state of the machine; workerd hashes
synchronously. The "${inFlight} in flight" rows keep ${inFlight} calls going at once, as an isolate serving concurrent
requests does, which amortises most of the hand-off.

${table(header, rowsOf(results))}

${verdict}

Through the Worker's router (\`app.fetch\` with stand-in D1 and KV, Node's Request and Response standing in for
workerd's; ${routerCalls.toLocaleString("en")} requests per case, best of ${rounds} rounds in alternating order). Before each case the
isolate cache is cleared and every key used once, so the loop runs warm; reads and writes are KV and D1 calls in the loop.

${table(header, rowsOf(routerResults))}

${routerNote}`,
  );
  console.log("Wrote bench/RESULTS.md");
}
