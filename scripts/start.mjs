// npm start [-- wrangler dev options]: applies the local D1 migrations, creates the local dev
// secret if absent, and serves latchkey on http://localhost:8787 (or --port N) with wrangler dev.
// Refuses a non-loopback `--ip` while DEV_UI_TOKENS is on (start-guard.mjs).
//
// Process hygiene: SIGINT/SIGTERM are forwarded to wrangler, and this script exits with wrangler's
// status. Neither npm nor its shell reliably passes a signal on (npm can exit and leave this script
// orphaned), so the script also stops when its parent goes away; and since wrangler can leave workerd
// behind, every process under wrangler (found before signalling it) is killed once wrangler exits, or
// after a grace period. scripts/check-start.mjs (npm run test:start, in CI) checks the port is freed.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { constants } from "node:os";
import { devEnv, devVars, ensureDevVars, root, wranglerDevIp, wranglerVars } from "./dev-config.mjs";
import { devTokensExposure } from "./start-guard.mjs";

const wrangler = `${root}node_modules/wrangler/bin/wrangler.js`;

if (ensureDevVars()) console.log("Created .dev.vars with a random local JWT_SECRET (npm run token uses it).");

// The dev token mint (DEV_UI_TOKENS) is served on a loopback address only (start-guard.mjs).
const refusal = devTokensExposure({
  args: process.argv.slice(2),
  devVars: devVars(),
  tomlVars: wranglerVars(),
  tomlDevIp: wranglerDevIp(),
});
if (refusal) {
  console.error(refusal);
  process.exit(2);
}

// The keys page's files (ui/ -> src/http/ui-assets.generated.ts), so edits to ui/ show on restart.
const ui = spawnSync(process.execPath, [`${root}scripts/build-ui.mjs`], { cwd: root, stdio: "inherit" });
if (ui.status !== 0) process.exit(ui.status ?? 1);

const args = process.argv.slice(2);
// Migrate the same local state wrangler dev will use.
const persistAt = args.findIndex((arg) => arg === "--persist-to" || arg.startsWith("--persist-to="));
const persist =
  persistAt === -1 ? [] : args[persistAt].includes("=") ? [args[persistAt]] : args.slice(persistAt, persistAt + 2);

// Every database wrangler.toml declares: DB, and DB_1 for sharding by owner (used with --var D1_SHARDS:2).
for (const binding of ["DB", "DB_1"]) {
  const migrate = spawnSync(process.execPath, [wrangler, "d1", "migrations", "apply", binding, "--local", ...persist], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, CI: "true" },
  });
  if (migrate.status !== 0) process.exit(migrate.status ?? 1);
}

const hasPort = args.some((arg) => arg === "--port" || arg.startsWith("--port="));
// This checkout's own dev registry (devEnv), so another clone's consumer never binds to this server.
const dev = spawn(process.execPath, [wrangler, "dev", ...(hasPort ? [] : ["--port", "8787"]), ...args], {
  cwd: root,
  stdio: "inherit",
  env: devEnv(),
});
const GRACE_MS = 5000;

/** Every process under `pid` (Linux /proc; elsewhere none, and wrangler's own cleanup is relied on). */
function descendants(pid) {
  let children = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
  return children.flatMap((child) => [child, ...descendants(child)]);
}

function killAll(pids, signal) {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

let tree = [];
function stop(signal) {
  if (tree.length === 0) tree = descendants(dev.pid);
  dev.kill(signal);
  setTimeout(() => killAll([dev.pid, ...tree], "SIGKILL"), GRACE_MS).unref();
}

for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => stop(signal));
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop("SIGTERM"); // npm (or the shell) exited without telling us
}, 500).unref();
dev.on("exit", (code, signal) => {
  killAll(tree.length ? tree : descendants(dev.pid), "SIGKILL");
  process.exit(code ?? 128 + (constants.signals[signal] ?? 0));
});
