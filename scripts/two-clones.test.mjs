// npm run test:scripts: two clones' consumers each reach their own server. Two copies of this
// checkout (its sources and scripts; node_modules linked, not installed again) each run `npm start`
// (scripts/start.mjs) and `npm run start:consumer` (scripts/start-consumer.mjs) with no
// WRANGLER_REGISTRY_PATH set, as a user of two clones would. Each clone's consumer must verify its own
// server's key VALID and the other clone's key NOT_FOUND: if both clones shared one dev registry, one
// consumer would bind to the other clone's server. Every process runs in its own process group and is
// killed at the end, failure or not. TWO_CLONES_PORT moves the four ports (default 8920-8923);
// TWO_CLONES_KEEP=1 keeps the copies and their logs (in the temporary directory) for a look.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { root } from "./dev-config.mjs";

/** Ports: TWO_CLONES_PORT and the three after it (two latchkeys, two consumers). */
const BASE_PORT = Number(process.env.TWO_CLONES_PORT ?? 8920);
const START_TIMEOUT_MS = 150_000;
const COPIED = [
  "scripts",
  "src",
  "ui",
  "migrations",
  "examples",
  "wrangler.toml",
  "package.json",
  "tsconfig.json",
  ".dev.vars.example",
];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A copy of this checkout as a second clone would have it (generated files and local state left out). */
function makeClone(parent, name) {
  const dir = join(parent, name);
  mkdirSync(dir);
  for (const path of COPIED) {
    cpSync(join(root, path), join(dir, path), {
      recursive: true,
      filter: (source) => !/[/\\](\.wrangler|node_modules|\.dev\.vars)$/.test(source),
    });
  }
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
  return dir;
}

const processes = [];

/** Runs `node <script> ...args` in `cwd`, in its own process group, with no registry set by us. */
function run(cwd, script, args, logName) {
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false" };
  delete env.WRANGLER_REGISTRY_PATH;
  const log = join(cwd, logName);
  const out = openSync(log, "w");
  const child = spawn(process.execPath, [script, ...args], { cwd, detached: true, stdio: ["ignore", out, out], env });
  const exit = new Promise((resolve) => child.once("exit", resolve));
  const proc = { child, exit, log, exited: false };
  exit.then(() => (proc.exited = true));
  processes.push(proc);
  return proc;
}

function killGroup(proc, signal) {
  try {
    process.kill(-proc.child.pid, signal);
  } catch {
    // already gone
  }
}

async function stopAll() {
  for (const proc of processes) killGroup(proc, "SIGTERM");
  await Promise.race([Promise.all(processes.map((p) => p.exit)), sleep(5000)]);
  for (const proc of processes) killGroup(proc, "SIGKILL"); // workerd may outlive wrangler
}
process.once("exit", () => processes.forEach((proc) => killGroup(proc, "SIGKILL")));

async function waitUp(url, proc) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.body?.cancel();
      return;
    } catch {
      // not yet
    }
    if (proc.exited || Date.now() > deadline) {
      const log = readFileSync(proc.log, "utf8");
      const cause = /^.*(?:✘|panic|fatal error).*$/im.exec(log)?.[0] ?? log.slice(-1500);
      assert.fail(`${url} did not come up: ${cause}`);
    }
    await sleep(500);
  }
}

/** A key with metrics:read (what the consumer's GET /metrics asks for), created through the dev token mint. */
async function createKey(api, sub) {
  const minted = await fetch(`${api}/ui/dev-token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sub }),
  });
  assert.equal(minted.status, 200, "dev-token");
  const { token } = await minted.json();
  const created = await fetch(`${api}/v1/keys`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: `${sub}'s key`, scopes: ["metrics:read"] }),
  });
  assert.equal(created.status, 201, await created.clone().text());
  return created.json();
}

/** What the consumer answers for `key`: its status, and the verdict's key id or the problem's code. */
async function consumerSays(consumer, key) {
  const response = await fetch(`${consumer}/metrics`, { headers: { Authorization: `Bearer ${key}` } });
  const body = await response.json();
  return { status: response.status, key_id: body.key_id, code: body.code };
}

describe("two clones", { timeout: 4 * START_TIMEOUT_MS }, () => {
  let parent;
  const clones = [];

  before(async () => {
    parent = mkdtempSync(join(tmpdir(), "latchkey-clones-"));
    // One process after another: two wrangler dev processes starting at once can race for one free port.
    for (const [i, name] of ["a", "b"].entries()) {
      const dir = makeClone(parent, name);
      const port = BASE_PORT + i;
      const clone = { dir, api: `http://127.0.0.1:${port}`, consumer: `http://127.0.0.1:${port + 2}` };
      clones.push(clone);
      clone.server = run(
        dir,
        "scripts/start.mjs",
        [
          ...["--port", String(port), "--ip", "127.0.0.1"],
          ...["--persist-to", join(parent, `state-${name}`), "--var", "DEV_UI_TOKENS:true"],
        ],
        "latchkey.log",
      );
      await waitUp(`${clone.api}/healthz`, clone.server);
    }
    // Both servers are registered before either consumer starts: a shared registry would hold one of them.
    for (const [i, clone] of clones.entries()) {
      clone.consumerProcess = run(
        clone.dir,
        "scripts/start-consumer.mjs",
        ["--port", String(BASE_PORT + 2 + i), "--ip", "127.0.0.1"],
        "consumer.log",
      );
      await waitUp(`${clone.consumer}/`, clone.consumerProcess);
    }
  });

  after(async () => {
    await stopAll();
    if (parent && !process.env.TWO_CLONES_KEEP) rmSync(parent, { recursive: true, force: true });
  });

  it("each clone's consumer verifies its own server's keys and not the other clone's", async () => {
    const [a, b] = clones;
    const keyA = await createKey(a.api, "alice");
    const keyB = await createKey(b.api, "bob");
    assert.deepEqual(await consumerSays(a.consumer, keyA.key), { status: 200, key_id: keyA.id, code: undefined });
    assert.deepEqual(await consumerSays(b.consumer, keyB.key), { status: 200, key_id: keyB.id, code: undefined });
    // The other clone's server never saw these keys.
    const unknown = { status: 401, key_id: undefined, code: "key_not_found" };
    assert.deepEqual(await consumerSays(b.consumer, keyA.key), unknown, "clone b's consumer knows clone a's key");
    assert.deepEqual(await consumerSays(a.consumer, keyB.key), unknown, "clone a's consumer knows clone b's key");
  });
});
