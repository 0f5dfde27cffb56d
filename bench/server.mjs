// Starts latchkey for a benchmark as the README does (npm start: migrations, then wrangler dev), in
// fresh local state of its own, and stops it with its whole process group (wrangler and workerd).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants, rmSync, rmdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { root } from "../scripts/dev-config.mjs";

/** The RAM-backed folder (tmpfs) that holds benchmarks' local state where the machine has one. */
const RAM = "/dev/shm";

/** Whether a folder of `stateFolder` is in RAM. */
export const inRam = (folder) => folder.startsWith(`${RAM}/`);

/**
 * Where a benchmark's local state lives. wrangler dev persists D1, KV and Durable Object storage in SQLite
 * files, and local workerd commits each write with an fsync in the Worker's own thread: a request that
 * writes (a Durable Object's counters on every limited verification) waits for this machine's disk,
 * which a deployed Worker never does (its storage is Cloudflare's, replicated, not a local file). So a
 * benchmark keeps its state in RAM (tmpfs, one folder per checkout) unless `onDisk` is set or the machine
 * has no tmpfs; then in the checkout's `state` folder, as `npm start` does (bench/RESULTS.md, 2026-12-07).
 */
export function stateFolder(state, onDisk = false) {
  if (!onDisk) {
    try {
      accessSync(RAM, constants.W_OK);
      const checkout = createHash("sha256").update(root).digest("hex").slice(0, 12);
      return join(RAM, `latchkey-${checkout}`, state);
    } catch {
      // no tmpfs: on disk
    }
  }
  return join(root, state);
}

/**
 * wrangler dev records a trace of every invocation into a local SQLite store for its local explorer
 * ("local observability", on by default): in the Worker's own workerd process, about a millisecond of
 * CPU per request under wrangler dev, and as much again for a request that calls a Durable Object (the
 * object's invocation is traced too). A deployed Worker pays none of it, so benchmarks run without it
 * (X_LOCAL_OBSERVABILITY=false) unless `localObservability` is set (bench/RESULTS.md, 2026-12-07).
 *
 * @param {{ port: number, state: string, vars?: Record<string, string>, localObservability?: boolean, onDisk?: boolean }} options
 * state: a .wrangler/ folder name, placed by `stateFolder(state, onDisk)`, emptied first (and removed at stop
 * when in RAM); vars: [vars] to override (wrangler dev --var).
 */
export async function startServer({ port, state, vars = {}, localObservability = false, onDisk = false }) {
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
  const folder = stateFolder(state, onDisk);
  rmSync(folder, { recursive: true, force: true });
  const overrides = Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]);
  const child = spawn(
    process.execPath,
    ["scripts/start.mjs", "--port", String(port), "--persist-to", folder, ...overrides],
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
    await halt();
    if (!inRam(folder)) return;
    rmSync(folder, { recursive: true, force: true });
    // Its parents too, once no other benchmark's state is in them.
    for (let parent = dirname(folder); inRam(parent); parent = dirname(parent)) {
      try {
        rmdirSync(parent);
      } catch {
        break;
      }
    }
  }
  async function halt() {
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
