// npm run bench:smoke [-- --port 8790]
// Every benchmark script once in its --smoke mode (tiny counts, nothing written to bench/RESULTS.md,
// bench/SOAK.md or bench/costs.json), so that none breaks unseen: bench:verify, bench (HTTP, on --port),
// soak (on --port + 1), bench:owner-limits (on --port + 2), bench:hit-rates (on --port + 3), bench:bcrypt, bench:bundle, row-size, and
// the capacity model (simulate), with the tests of the capacity model and of bench/server.mjs (port 8689). Prints one line per
// script; a failing script's output is printed in full and the run exits 1. About 2 minutes on a quiet machine.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { root } from "../scripts/dev-config.mjs";

const { values } = parseArgs({ options: { port: { type: "string", default: "8790" } } });
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65534) throw new Error("--port must be a port number");

// Node 22 (node:sqlite for row-size, type stripping for bench/http.mjs): the project's own Node when this one is older.
const local = `${root}node_modules/.bin/node`;
const node22 = Number(process.versions.node.split(".")[0]) >= 22 || !existsSync(local) ? process.execPath : local;

const scripts = [
  ["bench:verify", node22, ["bench/verify.mjs", "--smoke"]],
  ["bench", node22, ["bench/http.mjs", "--smoke", "--port", String(port)]],
  ["soak", node22, ["bench/soak.mjs", "--smoke", "--port", String(port + 1)]],
  ["bench:owner-limits", node22, ["bench/owner-limits.mjs", "--smoke", "--port", String(port + 2)]],
  ["bench:hit-rates", node22, ["bench/hit-rates.mjs", "--smoke", "--port", String(port + 3)]],
  ["bench:bcrypt", node22, ["bench/legacy-upgrade.mjs", "--smoke"]],
  ["bench:bundle", node22, ["bench/bundle.mjs", "--smoke"]],
  ["row-size", node22, ["bench/row-size.mjs", "--smoke"]],
  ["simulate", node22, ["bench/simulate.mjs", "--smoke"]],
  ["capacity model tests", node22, ["--test", "bench/capacity.test.mjs"]],
  ["benchmark server tests", node22, ["--test", "bench/server.test.mjs"]],
];

function run(file, args) {
  return new Promise((resolve) => {
    const child = spawn(file, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.on("close", (code, signal) => resolve({ code: code ?? signal, output }));
  });
}

let failed = 0;
const began = performance.now();
for (const [name, file, args] of scripts) {
  const start = performance.now();
  const { code, output } = await run(file, args);
  const seconds = ((performance.now() - start) / 1000).toFixed(0);
  console.log(`${code === 0 ? "ok  " : "FAIL"} ${name}: ${args.join(" ")} (${seconds} s)`);
  if (code !== 0) {
    failed++;
    console.log(output.trimEnd().split("\n").slice(-60).join("\n"));
  }
}
console.log(
  `${failed === 0 ? "every benchmark script runs" : `${failed} failed`} (${((performance.now() - began) / 1000).toFixed(0)} s)`,
);
process.exit(failed === 0 ? 0 : 1);
