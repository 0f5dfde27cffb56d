// npm run test:start [-- --port N]: process hygiene of `npm start`. Starts it on a port (8806 by
// default), waits until /healthz answers, then stops it as its users do: SIGTERM to the npm process
// alone (docker stop, systemd, a supervisor), and in a second run SIGINT to its process group (Ctrl-C
// in a terminal). Checks that it exits promptly and that nothing (no orphaned wrangler or workerd)
// still holds the port. Exits non-zero, saying why, otherwise. Used by .ci/run.
//
// (SIGINT sent to npm's pid alone is not covered: npm passes it to its `sh -c`, which ignores SIGINT
// while it waits, so neither exits; that is npm's behaviour, and a terminal signals the whole group.)
import { spawn } from "node:child_process";
import net from "node:net";
import { root } from "./dev-config.mjs";

const at = process.argv.indexOf("--port");
const port = Number(at === -1 ? 8806 : process.argv[at + 1]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function healthy() {
  try {
    return (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200;
  } catch {
    return false;
  }
}

/** True when nothing accepts connections on the port. */
function portFree() {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

async function check(signal, toGroup) {
  if (!(await portFree())) throw new Error(`port ${port} is already in use`);
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const child = spawn(npm, ["start", "--", "--port", String(port), "--persist-to", ".wrangler/check-start"], {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
    detached: true, // its own process group, as a terminal's foreground job
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
  });
  const exited = new Promise((resolve) => child.once("exit", (code, sig) => resolve({ code, sig })));
  try {
    const deadline = Date.now() + 180_000;
    while (!(await healthy())) {
      if (Date.now() > deadline) throw new Error("npm start did not answer /healthz within 180 s");
      if (child.exitCode !== null) throw new Error(`npm start exited early (${child.exitCode})`);
      await sleep(500);
    }
    if (toGroup) process.kill(-child.pid, signal);
    else child.kill(signal);
    const outcome = await Promise.race([exited, sleep(30_000).then(() => null)]);
    if (outcome === null) throw new Error(`npm start did not exit within 30 s of ${signal}`);
    for (let i = 0; i < 20 && !(await portFree()); i++) await sleep(250);
    if (!(await portFree())) throw new Error(`after ${signal}, something still holds port ${port} (orphaned workerd?)`);
    console.log(`npm start: ${signal} -> exited (${outcome.code ?? outcome.sig}), port ${port} free`);
  } finally {
    try {
      process.kill(-child.pid, "SIGKILL"); // whatever is left of the group, on failure
    } catch {
      // none left
    }
  }
}

try {
  await check("SIGTERM", false);
  await check("SIGINT", true);
} catch (error) {
  console.error(`check-start: ${error.message}`);
  process.exit(1);
}
