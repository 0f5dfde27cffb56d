// npm run test:start [-- --port N]: process hygiene of `npm start`. Starts it on a port (8806 by
// default), waits until /healthz answers, then stops it as its users do: SIGTERM to the npm process
// alone (docker stop, systemd, a supervisor), and in a second run SIGINT to its process group (Ctrl-C
// in a terminal). Checks that it exits promptly and that nothing (no orphaned wrangler or workerd)
// still holds the port. Exits non-zero, saying why, otherwise. Used by .ci/run.
//
// First, the refusal: with DEV_UI_TOKENS on, `npm start -- --ip 0.0.0.0` exits non-zero at once,
// saying why, and listens on nothing; start-guard.mjs's rules are checked directly (.dev.vars,
// wrangler.toml, `--var` precedence, loopback forms). `-- --refusal-only` runs just that part.
//
// (SIGINT sent to npm's pid alone is not covered: npm passes it to its `sh -c`, which ignores SIGINT
// while it waits, so neither exits; that is npm's behaviour, and a terminal signals the whole group.)
import { spawn } from "node:child_process";
import assert from "node:assert/strict";
import net from "node:net";
import { root } from "./dev-config.mjs";
import { devTokensExposure, isLoopback } from "./start-guard.mjs";

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

/** start-guard.mjs's rules, without starting anything. */
function checkGuardRules() {
  for (const host of ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "LOCALHOST"]) {
    assert.equal(isLoopback(host), true, host);
  }
  for (const host of ["0.0.0.0", "*", "::", "[::]", "192.168.1.10", "10.0.0.1", "127.0.0.256", "localhost.evil", ""]) {
    assert.equal(isLoopback(host), false, host);
  }
  const refuses = (input) =>
    assert.match(devTokensExposure(input) ?? "", /refusing to listen on .*DEV_UI_TOKENS/, JSON.stringify(input));
  const allows = (input) => assert.equal(devTokensExposure(input), null, JSON.stringify(input));
  const on = { DEV_UI_TOKENS: "true" };
  refuses({ args: ["--ip", "0.0.0.0"], devVars: on });
  refuses({ args: ["--ip=192.168.1.10"], devVars: on });
  refuses({ args: ["--port", "8787", "--ip", "::"], devVars: { DEV_UI_TOKENS: " true " } });
  refuses({ args: [], devVars: on, tomlDevIp: "0.0.0.0" });
  refuses({ args: ["--ip", "0.0.0.0"], tomlVars: on });
  refuses({ args: ["--ip", "0.0.0.0", "--var", "ALLOWED_ORIGINS:http://x:1", "DEV_UI_TOKENS:true"] });
  refuses({ args: ["--var=DEV_UI_TOKENS:true", "--ip", "0.0.0.0"], devVars: { DEV_UI_TOKENS: "false" } });
  allows({ args: [], devVars: on }); // wrangler's default: localhost
  allows({ args: ["--ip", "127.0.0.1"], devVars: on });
  allows({ args: ["--ip", "[::1]"], devVars: on, tomlDevIp: "0.0.0.0" }); // --ip wins over [dev] ip
  allows({ args: ["--ip", "0.0.0.0"], devVars: {} });
  allows({ args: ["--ip", "0.0.0.0"], devVars: { DEV_UI_TOKENS: "false" } });
  allows({ args: ["--ip", "0.0.0.0", "--var", "DEV_UI_TOKENS:false"], devVars: on }); // --var wins
  console.log("npm start: guard rules hold");
}

/** `npm start -- --ip 0.0.0.0 --var DEV_UI_TOKENS:true` exits non-zero at once, saying why, listening on nothing. */
async function checkRefusal() {
  if (!(await portFree())) throw new Error(`port ${port} is already in use`);
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const args = ["start", "--", "--port", String(port), "--ip", "0.0.0.0", "--var", "DEV_UI_TOKENS:true"];
  const child = spawn(npm, args, {
    cwd: root,
    stdio: ["ignore", "ignore", "pipe"],
    detached: true,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    let timer;
    const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve("timeout"), 60_000)));
    const code = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    if (code === "timeout") throw new Error("npm start --ip 0.0.0.0 with DEV_UI_TOKENS on did not exit within 60 s");
    if (code === 0) throw new Error("npm start --ip 0.0.0.0 with DEV_UI_TOKENS on exited 0");
    if (!/refusing to listen on 0\.0\.0\.0 with DEV_UI_TOKENS on/.test(stderr)) {
      throw new Error(`npm start --ip 0.0.0.0 with DEV_UI_TOKENS on did not say why:\n${stderr}`);
    }
    if (!(await portFree())) throw new Error(`npm start --ip 0.0.0.0 with DEV_UI_TOKENS on listens on port ${port}`);
    console.log(`npm start: --ip 0.0.0.0 with DEV_UI_TOKENS on -> refused (exit ${code})`);
  } finally {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // none left
    }
  }
}

try {
  checkGuardRules();
  await checkRefusal();
  if (!process.argv.includes("--refusal-only")) {
    await check("SIGTERM", false);
    await check("SIGINT", true);
  }
} catch (error) {
  console.error(`check-start: ${error.message}`);
  process.exit(1);
}
