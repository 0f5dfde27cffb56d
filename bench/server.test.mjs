// node --test bench/server.test.mjs (also run by npm run bench:smoke): where a benchmark's server keeps its
// local state (bench/server.mjs), and that a stopped server leaves none of it in RAM.
import assert from "node:assert/strict";
import { accessSync, constants, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { root } from "../scripts/dev-config.mjs";
import { startServer, stateFolder } from "./server.mjs";

/** Whether this machine has a writable tmpfs, checked apart from stateFolder so a stateFolder that never uses it fails. */
const ramWritable = (() => {
  try {
    accessSync("/dev/shm", constants.W_OK);
    return true;
  } catch {
    return false;
  }
})();

test("on disk when asked: in the checkout, where npm start keeps its own", () => {
  assert.equal(stateFolder(".wrangler/bench", true), join(root, ".wrangler/bench"));
});

test("in RAM otherwise, in a folder of this checkout's own", { skip: !ramWritable && "no tmpfs here" }, () => {
  const folder = stateFolder(".wrangler/bench");
  assert.match(folder, /^\/dev\/shm\/latchkey-[0-9a-f]{12}\/\.wrangler\/bench$/);
  assert.equal(stateFolder(".wrangler/bench"), folder, "the same folder each time");
  assert.notEqual(stateFolder(".wrangler/soak"), folder, "each benchmark its own");
});

test(
  "a server's state is in RAM while it runs and gone once it stops",
  { skip: !ramWritable && "no tmpfs here" },
  async () => {
    const state = ".wrangler/bench-server-test";
    const folder = stateFolder(state);
    const server = await startServer({ port: 8689, state });
    try {
      assert.ok(readdirSync(folder).length > 0, "wrangler wrote its files there");
      assert.equal((await fetch(`${server.base}/healthz`)).status, 200);
    } finally {
      await server.stop();
    }
    assert.equal(existsSync(folder), false, "removed at stop");
    assert.equal(existsSync(join(folder, "..", "..")), false, "its checkout's folder too, left empty");
  },
);
