// npm run test:clients: builds @latchkey/client (unless the build is newer than its sources), installs it by path into test-clients/consumer (a
// project of its own, as a user's would be), type-checks that project, starts latchkey with
// `npm start -- --port <port>` (LATCHKEY_CLIENTS_PORT, default 8805; LEGACY_KEY_FORMATS set), runs the project's node:test
// files against it and always stops the server. Ends with "N passed, N failed"; exits 1 on failures.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { run } from "node:test";
import { spec } from "node:test/reporters";
import { root } from "./dev-config.mjs";
import { startDevServer } from "./dev-server.mjs";

const port = Number(process.env.LATCHKEY_CLIENTS_PORT ?? 8805);
const url = `http://127.0.0.1:${port}`;
const consumer = `${root}test-clients/consumer`;

function step(command, args, cwd = root) {
  const result = spawnSync(command, args, { cwd, stdio: "inherit" });
  if (result.status !== 0) {
    console.error(`test:clients: \`${command} ${args.join(" ")}\` failed`);
    process.exit(1);
  }
}

/** Whether packages/client/dist is older than a source file (`npm install` builds it: its `prepare`). */
function clientBuildStale() {
  const built = `${root}packages/client/dist/index.js`;
  if (!existsSync(built)) return true;
  const at = statSync(built).mtimeMs;
  const sources = readdirSync(`${root}packages/client/src`, { recursive: true });
  return sources.some((file) => statSync(`${root}packages/client/src/${file}`).mtimeMs > at);
}

const npm = process.platform === "win32" ? "npm.cmd" : "npm";
if (clientBuildStale()) step(npm, ["run", "build", "-w", "@latchkey/client"]);
else console.log("test:clients: @latchkey/client is built and up to date (npm install built it)");
step(npm, ["ci", "--no-audit", "--no-fund", "--loglevel=error"], consumer);
step(process.execPath, [`${root}node_modules/typescript/bin/tsc`, "-p", "tsconfig.json"], consumer);

// Legacy formats on (and personal import allowed), so `latchkey import` is tested end to end: an
// imported sk_live_ key must then verify.
const legacy = ["--var", "LEGACY_KEY_FORMATS:sanctum,opaque:sk_live_", "--var", "IMPORT_ALLOWED:personal"];
const server = startDevServer(url, ["--port", String(port), "--ip", "127.0.0.1", ...legacy]);

let passed = 0;
let failed = 0;
try {
  await server.ready();
  process.env.LATCHKEY_URL = url;
  const files = readdirSync(`${consumer}/build`)
    .filter((file) => file.endsWith(".test.js"))
    .map((file) => `${consumer}/build/${file}`);
  const stream = run({ files, concurrency: 1 });
  stream.on("test:pass", (event) => {
    if (event.details.type !== "suite") passed++;
  });
  stream.on("test:fail", (event) => {
    if (event.details.type !== "suite") failed++;
  });
  await new Promise((resolve, reject) => {
    const out = stream.compose(spec);
    out.pipe(process.stdout);
    out.on("end", resolve);
    out.on("error", reject);
  });
} catch (error) {
  console.error(`test:clients: ${error.message}`);
  failed++;
} finally {
  server.stop();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
