// npm run bench:bundle [-- --label before|after] [--runs N] [--smoke]: what every cold start pays. Bundles the
// Worker as `wrangler deploy --dry-run` does (with esbuild's metafile), reports its size (raw and gzip)
// and each package's share, then profiles start-up N times with `wrangler check startup` (workerd
// evaluating the bundle, as at a cold start) and reports the CPU the profile shows (every sample but
// idle). Writes the section `bundle:<label>` of bench/RESULTS.md, so "before" and "after" a change sit
// side by side. Safe on a busy machine for the size; the CPU figure wants a quiet one.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { root } from "../scripts/dev-config.mjs";
import { runInfo, table, writeSection } from "./results.mjs";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : args[at + 1];
};
const label = option("label", "before");
/** --smoke: one start-up, nothing written (CI: the script still runs). */
const smoke = args.includes("--smoke");
const runs = smoke ? 1 : Number(option("runs", "7"));
const out = `${root}.wrangler/bench-bundle`;
const wrangler = `${root}node_modules/wrangler/bin/wrangler.js`;

function run(...wranglerArgs) {
  execFileSync(process.execPath, [wrangler, ...wranglerArgs], {
    cwd: root,
    stdio: "pipe",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
  });
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
run("deploy", "--dry-run", "--outdir", `${out}/dist`, "--metafile", `${out}/meta.json`);
run("deploy", "--dry-run", "--outfile", `${out}/worker.bundle`);

const script = `${out}/dist/index.js`;
const bytes = statSync(script).size;
const gzip = gzipSync(readFileSync(script)).byteLength;
const meta = JSON.parse(readFileSync(`${out}/meta.json`, "utf8"));
const output = Object.values(meta.outputs).find((o) => o.entryPoint);
const byPackage = new Map();
for (const [file, input] of Object.entries(output.inputs)) {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file)?.[1] ?? "latchkey (src)";
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + input.bytesInOutput);
}
const kib = (n) => (n / 1024).toFixed(1);

/** CPU ms of one start-up profile: every sample except idle time. */
function startupCpuMs(file) {
  const profile = JSON.parse(readFileSync(file, "utf8"));
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id));
  let us = 0;
  profile.samples.forEach((node, i) => {
    if (!idle.has(node)) us += profile.timeDeltas[i];
  });
  return us / 1000;
}

const cpu = [];
for (let i = 0; i < runs; i++) {
  const file = `${out}/startup-${i}.cpuprofile`;
  // wrangler gives the profile 10 s; a busy machine can miss that: try again (three times in all).
  for (let attempt = 1; ; attempt++) {
    try {
      run("check", "startup", "--worker", `${out}/worker.bundle`, "--outfile", file);
      break;
    } catch (error) {
      if (attempt === 3 || !/timed out/.test(String(error.stderr ?? error.message))) throw error;
      console.warn(`wrangler check startup timed out (attempt ${attempt} of 3); trying again`);
    }
  }
  cpu.push(startupCpuMs(file));
}
cpu.sort((a, b) => a - b);
const median = cpu[Math.floor(cpu.length / 2)];

const rows = [...byPackage]
  .sort((a, b) => b[1] - a[1])
  .filter(([, size]) => size >= 1024)
  .map(([pkg, size]) => [pkg, kib(size), `${((100 * size) / output.bytes).toFixed(0)}%`]);

if (!smoke)
  await writeSection(
    `bundle:${label}`,
    `## Bundle and start-up: ${label} (\`npm run bench:bundle -- --label ${label}\`)

${runInfo(`npm run bench:bundle -- --label ${label}`)}

- Bundle (\`wrangler deploy --dry-run\`, minify off as deployed): **${kib(bytes)} KiB** (${kib(gzip)} KiB gzip)
- Start-up CPU (\`wrangler check startup\`, workerd, ${runs} cold starts): median **${median.toFixed(1)} ms** (min ${cpu[0].toFixed(1)}, max ${cpu[cpu.length - 1].toFixed(1)})

${table(["package", "KiB in bundle", "share"], rows)}`,
  );
console.log(`bundle ${kib(bytes)} KiB (${kib(gzip)} KiB gzip); start-up CPU median ${median.toFixed(1)} ms`);
