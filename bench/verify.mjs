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
  const { runVerifyBench, runRouterBench } = await import(pathToFileURL(outfile).href);
  const clocks = {
    cpuMicros: () => {
      const { user, system } = process.cpuUsage();
      return user + system;
    },
    wallMillis: () => performance.now(),
  };
  results = await runVerifyBench(clocks, calls);
  routerResults = await runRouterBench(clocks, routerCalls);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const sub = (r) => r.name.trim().startsWith("of which");
const rowsOf = (list) =>
  list.map((r) => [
    sub(r) ? `&nbsp;&nbsp;${r.name.trim()}` : r.name,
    r.cpuMicrosPerCall.toFixed(2),
    r.wallMicrosPerCall.toFixed(2),
    sub(r) ? "-" : `${r.storageReads} / ${r.storageWrites} / ${r.syncs}`,
  ]);
const header = ["case", "CPU µs per call", "wall µs per call", "storage reads / writes / syncs in loop"];
const warm = results[0].cpuMicrosPerCall;
const verdict = `Warm verify: ${warm.toFixed(2)} µs CPU (target ≤ ${TARGET_MICROS} µs: ${warm <= TARGET_MICROS ? "met" : "NOT met"}; better-auth's api-key plugin: ~${BETTER_AUTH_MICROS} µs, ${Math.round(BETTER_AUTH_MICROS / warm)}x more).`;
const [health, whoami] = routerResults;
const routerNote = `Warm key through the router: ${(whoami.cpuMicrosPerCall - health.cpuMicrosPerCall).toFixed(2)} µs CPU more than GET /healthz.`;

const print = (title, list) => {
  console.log(`\n${title}`);
  console.table(
    Object.fromEntries(
      list.map((r) => [
        r.name,
        {
          "CPU µs": Number(r.cpuMicrosPerCall.toFixed(2)),
          "wall µs": Number(r.wallMicrosPerCall.toFixed(2)),
          reads: r.storageReads,
          writes: r.storageWrites,
          syncs: r.syncs,
        },
      ]),
    ),
  );
};
print(`Verifier.verify: ${calls.toLocaleString("en")} calls per case, best of 2 alternating rounds`, results);
print(
  `Through the router (app.fetch): ${routerCalls.toLocaleString("en")} requests per case, best of 2 rounds`,
  routerResults,
);
console.log(verdict);
console.log(routerNote);

if (!values["no-write"]) {
  writeSection(
    "verify",
    `## In-process verification (\`npm run bench:verify\`)

${info}

${calls.toLocaleString("en")} calls per case over 1,000 keys, warm isolate cache, in-memory KeyStore and RecordCache
(bench/verify.ts), best of 2 alternating rounds. CPU is \`process.cpuUsage()\` (user + system, every thread of the
process, so WebCrypto's worker threads count). Node's \`crypto.subtle.digest\` hops to a thread pool; workerd's does not,
so the SHA-256 share is likely lower in a Worker.

${table(header, rowsOf(results))}

${verdict}

Through the Worker's router (\`app.fetch\` with stand-in D1 and KV, Node's Request and Response standing in for
workerd's; ${routerCalls.toLocaleString("en")} requests per case, best of 2 rounds in ABBA order). Reads and writes are
KV and D1 calls; the last-used write of each key falls once a minute.

${table(header, rowsOf(routerResults))}

${routerNote}`,
  );
  console.log("Wrote bench/RESULTS.md");
}
