// npm run test:scripts: what a fresh clone meets in its first hour, checked with node:test (no server).
// - After `npm install` (or `npm ci`) at the root, the `latchkey` CLI runs: the workspace package
//   builds itself (its `prepare`), so `npx latchkey --help` answers at once.
// - `npm start` and `npm run start:consumer` run wrangler dev in this checkout's own dev registry
//   (devEnv), unless the user set WRANGLER_REGISTRY_PATH, so two clones never bind to each other
//   (scripts/two-clones.test.mjs runs two clones' servers and consumers to check it end to end).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { devEnv, root } from "./dev-config.mjs";

describe("the CLI after install", () => {
  for (const [name, bin] of [
    ["the package's bin", `${root}packages/client/bin/latchkey.js`],
    ["the root's node_modules/.bin (what npx runs)", `${root}node_modules/.bin/latchkey`],
  ]) {
    it(`${name} answers --help`, () => {
      const run = spawnSync(process.execPath, [bin, "--help"], { cwd: root, encoding: "utf8" });
      assert.equal(run.stderr, "", "it printed an error (is the package built? its `prepare` builds it)");
      assert.equal(run.status, 0);
      assert.match(run.stdout, /latchkey login --url/);
    });
  }
});

describe("the dev registry", () => {
  it("is this checkout's .wrangler/registry unless the user set one", () => {
    assert.equal(devEnv({}).WRANGLER_REGISTRY_PATH, `${root}.wrangler/registry`);
    assert.equal(devEnv({ WRANGLER_REGISTRY_PATH: "" }).WRANGLER_REGISTRY_PATH, `${root}.wrangler/registry`);
    assert.equal(devEnv({ WRANGLER_REGISTRY_PATH: "/tmp/mine" }).WRANGLER_REGISTRY_PATH, "/tmp/mine");
    assert.equal(devEnv({ PATH: "/bin" }).PATH, "/bin");
  });

  for (const script of ["start.mjs", "start-consumer.mjs"]) {
    it(`${script} runs wrangler dev with it`, () => {
      const source = readFileSync(`${root}scripts/${script}`, "utf8");
      const spawnDev = /spawn\(\s*process\.execPath,\s*\[wrangler, "dev",[\s\S]*?\)\;/.exec(source)?.[0] ?? "";
      assert.notEqual(spawnDev, "", "no spawn of wrangler dev found");
      assert.match(spawnDev, /env: devEnv\(\)/);
    });
  }
});
