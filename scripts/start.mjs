// npm start [-- wrangler dev options]: applies the local D1 migrations, creates the local dev
// secret if absent, and serves latchkey on http://localhost:8787 (or --port N) with wrangler dev.
import { spawn, spawnSync } from "node:child_process";
import { ensureDevVars, root } from "./dev-config.mjs";

const wrangler = `${root}node_modules/wrangler/bin/wrangler.js`;

if (ensureDevVars()) console.log("Created .dev.vars with a random local JWT_SECRET (npm run token uses it).");

// The keys page's files (ui/ -> src/http/ui-assets.generated.ts), so edits to ui/ show on restart.
const ui = spawnSync(process.execPath, [`${root}scripts/build-ui.mjs`], { cwd: root, stdio: "inherit" });
if (ui.status !== 0) process.exit(ui.status ?? 1);

const args = process.argv.slice(2);
// Migrate the same local state wrangler dev will use.
const persistAt = args.findIndex((arg) => arg === "--persist-to" || arg.startsWith("--persist-to="));
const persist =
  persistAt === -1 ? [] : args[persistAt].includes("=") ? [args[persistAt]] : args.slice(persistAt, persistAt + 2);

const migrate = spawnSync(process.execPath, [wrangler, "d1", "migrations", "apply", "DB", "--local", ...persist], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, CI: "true" },
});
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

const hasPort = args.some((arg) => arg === "--port" || arg.startsWith("--port="));
const dev = spawn(process.execPath, [wrangler, "dev", ...(hasPort ? [] : ["--port", "8787"]), ...args], {
  cwd: root,
  stdio: "inherit",
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => dev.kill(signal));
dev.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
