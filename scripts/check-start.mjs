// npm run test:start [-- --port N]: process hygiene of `npm start`. Starts it on a port (8806 by
// default), waits until /healthz answers, sends SIGTERM (then, in a second run, SIGINT) to the npm
// process, and checks that it exits promptly and that nothing (no orphaned wrangler or workerd) still
// holds the port. Exits non-zero, saying why, otherwise. Used by .ci/run.
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

async function check(signal) {
  if (!(await portFree())) throw new Error(`port ${port} is already in use`);
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const child = spawn(npm, ["start", "--", "--port", String(port), "--persist-to", ".wrangler/check-start"], {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
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
    child.kill(signal);
    const outcome = await Promise.race([exited, sleep(30_000).then(() => null)]);
    if (outcome === null) throw new Error(`npm start did not exit within 30 s of ${signal}`);
    for (let i = 0; i < 20 && !(await portFree()); i++) await sleep(250);
    if (!(await portFree())) throw new Error(`after ${signal}, something still holds port ${port} (orphaned workerd?)`);
    console.log(`npm start: ${signal} -> exited (${outcome.code ?? outcome.sig}), port ${port} free`);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
}

try {
  await check("SIGTERM");
  await check("SIGINT");
} catch (error) {
  console.error(`check-start: ${error.message}`);
  process.exit(1);
}
