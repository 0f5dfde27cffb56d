// Starts latchkey as a user would (`npm start -- ...args`) for a script's tests: in its own process
// group, so the server and its wrangler and workerd children stop together; stopped when the script
// exits (or is interrupted). Used by test:clients and test:guards.
import { spawn } from "node:child_process";
import { root } from "./dev-config.mjs";

/** Spawns `npm start -- ...args`; returns `ready()` (waits for /healthz on `url`) and `stop()`. */
export function startDevServer(url, args) {
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const server = spawn(npm, ["start", "--", ...args], {
    cwd: root,
    detached: true,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const stop = () => {
    try {
      process.kill(-server.pid, "SIGTERM");
    } catch {
      // Already gone.
    }
  };
  process.on("exit", stop);
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

  async function ready() {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      if (server.exitCode !== null) throw new Error(`npm start exited with ${server.exitCode}`);
      try {
        if ((await fetch(`${url}/healthz`)).ok) return;
      } catch {
        // Not up yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    throw new Error(`latchkey did not answer on ${url} within 120 s`);
  }
  return { ready, stop };
}
