// npm run start:consumer [-- wrangler dev options]: serves the example consumer (examples/consumer) on
// http://localhost:8788 (or --port N) with wrangler dev, in this checkout's own dev registry (devEnv,
// as `npm start` uses), so its KEYS binding reaches this checkout's `npm start` and no other clone's.
// Signals are forwarded to wrangler; the script exits with wrangler's status.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { devEnv, root } from "./dev-config.mjs";

const args = process.argv.slice(2);
const hasPort = args.some((arg) => arg === "--port" || arg.startsWith("--port="));
const wrangler = `${root}node_modules/wrangler/bin/wrangler.js`;
const dev = spawn(
  process.execPath,
  [wrangler, "dev", "-c", "examples/consumer/wrangler.toml", ...(hasPort ? [] : ["--port", "8788"]), ...args],
  { cwd: root, stdio: "inherit", env: devEnv() },
);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => dev.kill(signal));
dev.on("exit", (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
