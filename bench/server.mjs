// Starts latchkey for a benchmark as the README does (npm start: migrations, then wrangler dev), in
// fresh local state of its own, and stops it with its whole process group (wrangler and workerd).
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { root } from "../scripts/dev-config.mjs";

/**
 * wrangler dev records a trace of every invocation into a local SQLite store for its local explorer
 * ("local observability", on by default): in the Worker's own workerd process, about a millisecond of
 * CPU per request under wrangler dev, and as much again for a request that calls a Durable Object (the
 * object's invocation is traced too). A deployed Worker pays none of it, so benchmarks run without it
 * (X_LOCAL_OBSERVABILITY=false) unless `localObservability` is set (bench/RESULTS.md, 2026-12-07).
 *
 * @param {{ port: number, state: string, vars?: Record<string, string>, localObservability?: boolean }} options
 * state: a .wrangler/ folder, emptied first; vars: [vars] to override (wrangler dev --var).
 */
export async function startServer({ port, state, vars = {}, localObservability = false }) {
  const base = `http://localhost:${port}`;
  const healthy = async () => {
    try {
      return (await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) })).status === 200;
    } catch {
      return false;
    }
  };
  if (await healthy()) throw new Error(`Something already answers on port ${port}; pass --port`);
  // Other servers (npm start, another benchmark) use other state: two workerd processes writing one
  // SQLite file get "database is locked" (503s that are not latchkey's).
  rmSync(`${root}${state}`, { recursive: true, force: true });
  const overrides = Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]);
  const child = spawn(
    process.execPath,
    ["scripts/start.mjs", "--port", String(port), "--persist-to", state, ...overrides],
    {
      cwd: root,
      detached: true, // its own process group, so stopping it stops wrangler and workerd too
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: "false",
        ...(localObservability ? {} : { X_LOCAL_OBSERVABILITY: "false" }),
      },
    },
  );
  const log = [];
  const keep = (chunk) => {
    log.push(...chunk.toString().split("\n"));
    if (log.length > 500) log.splice(0, log.length - 500);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);

  async function stop() {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    for (const signal of ["SIGTERM", "SIGKILL"]) {
      try {
        process.kill(-child.pid, signal);
      } catch {
        return;
      }
      const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), 10_000));
      if ((await Promise.race([exited, timeout])) !== "timeout") return;
    }
  }
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => void stop().finally(() => process.exit(130)));

  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && child.exitCode === null) {
    if (await healthy()) return { base, pid: child.pid, log, stop };
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  await stop();
  throw new Error(`The server did not come up on port ${port}:\n${log.slice(-30).join("\n")}`);
}
