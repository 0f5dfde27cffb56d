// npm run test:scripts: the migration recipe of docs/migrating.md, followed as written. A SQLite table
// api_keys(id, user_id, token_hash, name, created_at, last_used_at, expires_at) holds bcrypt-hashed
// tokens (`<id>.<secret>`) and HMAC-peppered hex tokens; the recipe's SQLite export query (read from the
// doc itself, run with node:sqlite) writes the CSV; `npm start -- --var …` as step 1 shows; each
// customer's file is imported by the `latchkey` CLI with that customer's token (step 3); every old
// token then verifies (step 4), each bcrypt key upgraded after its first use (one `upgraded` event);
// a rotation gives a latchkey key (step 5). MIGRATION_RECIPE_PORT sets the port (default 8930).
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { root } from "./dev-config.mjs";
import { startDevServer } from "./dev-server.mjs";

const port = Number(process.env.MIGRATION_RECIPE_PORT ?? 8930);
const url = `http://127.0.0.1:${port}`;
const PEPPER = randomBytes(16).toString("hex");
const dir = mkdtempSync(join(tmpdir(), "latchkey-recipe-"));

/** The recipe's SQLite export query, as docs/migrating.md prints it (the shell's `\$` unescaped). */
function recipeQuery() {
  const doc = readFileSync(`${root}docs/migrating.md`, "utf8");
  const match = /sqlite3 -header -csv app\.db "([\s\S]*?)" > keys\.csv/.exec(doc);
  assert.ok(match, "docs/migrating.md has the SQLite export");
  return match[1].replaceAll("\\$", "$");
}

/** The rows as `sqlite3 -header -csv` prints them: RFC 4180, NULL as an empty cell. */
function toCsv(rows) {
  const cell = (v) => {
    const text = v === null || v === undefined ? "" : String(v);
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const columns = Object.keys(rows[0]);
  return [columns.join(","), ...rows.map((row) => columns.map((c) => cell(row[c])).join(","))].join("\n") + "\n";
}

/** The legacy table: two customers, bcrypt and HMAC tokens. Returns the tokens their clients hold. */
async function legacyTable(path) {
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(path);
  db.exec(
    "CREATE TABLE api_keys (id INTEGER PRIMARY KEY, user_id INTEGER, token_hash TEXT, name TEXT, created_at TEXT, last_used_at TEXT, expires_at TEXT)",
  );
  const insert = db.prepare("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?)");
  const tokens = [];
  for (const [id, userId] of [
    [1, 42],
    [2, 42],
    [3, 7],
  ]) {
    const secret = randomBytes(24).toString("base64url");
    insert.run(
      id,
      userId,
      bcrypt.hashSync(secret, 10),
      `bcrypt ${id}`,
      "2025-01-01T00:00:00Z",
      "2026-11-30T12:00:00Z",
      null,
    );
    tokens.push({ token: `${id}.${secret}`, userId, kind: "bcrypt" });
  }
  for (const [id, userId] of [
    [4, 42],
    [5, 7],
  ]) {
    const token = randomBytes(32).toString("hex");
    const hash = createHmac("sha256", PEPPER).update(token).digest("hex");
    insert.run(id, userId, hash, `hmac ${id}`, "2024-06-01T00:00:00Z", null, "2030-01-01T00:00:00Z");
    tokens.push({ token, userId, kind: "hmac" });
  }
  return { db, tokens };
}

const cli = (args, env, input) =>
  spawnSync(process.execPath, [`${root}packages/client/bin/latchkey.js`, ...args], {
    cwd: dir,
    encoding: "utf8",
    input,
    env: { PATH: process.env.PATH ?? "", XDG_CONFIG_HOME: dir, ...env },
  });
const tokenFor = (sub) =>
  execFileSync(process.execPath, [`${root}scripts/token.mjs`, sub], { cwd: root, encoding: "utf8" }).trim();
async function api(method, path, { auth, body } = {}) {
  const response = await fetch(url + path, {
    method,
    headers: { ...(auth ? { authorization: `Bearer ${auth}` } : {}), "content-type": "application/json" },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: response.status, body: await response.json() };
}

let server;
before(async () => {
  // Step 1, as the recipe shows it for one run.
  server = startDevServer(url, [
    "--port",
    String(port),
    "--ip",
    "127.0.0.1",
    "--var",
    "LEGACY_KEY_FORMATS:hmac-sha256:hex64,bcrypt",
    "--var",
    "IMPORT_ALLOWED:personal",
    "--var",
    `LEGACY_HMAC_PEPPER:${PEPPER}`,
  ]);
  await server.ready();
});
after(() => server?.stop());

describe("the migration recipe (docs/migrating.md)", () => {
  it("ends with every old token verifying, each bcrypt key upgraded after its first use, and a rotation onto latchkey's keys", async () => {
    const { db, tokens } = await legacyTable(join(dir, "app.db"));
    const query = recipeQuery();
    const ids = new Map();
    for (const userId of [42, 7]) {
      // Step 2, one file per customer (imported with that customer's token until root keys: step 3).
      const rows = db.prepare(`SELECT * FROM (${query}) WHERE owner = ?`).all(`user:${userId}`);
      const perCustomer = rows.map(({ owner, ...row }) => row);
      const file = join(dir, `cust_${userId}.csv`);
      writeFileSync(file, toCsv(perCustomer));
      const env = { LATCHKEY_URL: url, LATCHKEY_TOKEN: tokenFor(String(userId)) };
      const run = cli(["import", file, "--json"], env);
      assert.equal(run.status, 0, run.stderr);
      const outcome = JSON.parse(run.stdout);
      assert.equal(outcome.imported, perCustomer.length);
      for (const result of outcome.results) ids.set(`${userId}:${result.row}`, result.id);
      // Re-running is safe: all conflicts.
      const again = cli(["import", file], env);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, new RegExp(`^Imported 0, conflicts ${perCustomer.length}\\.`));
      const summary = JSON.parse(readFileSync(`${file}.summary.json`, "utf8"));
      assert.deepEqual([summary.done, summary.complete], [perCustomer.length, true]);
    }

    // Step 4: every old token verifies, as its customer's key; the bcrypt ones twice (upgraded by the first).
    for (const { token, userId, kind } of tokens) {
      for (let use = 0; use < (kind === "bcrypt" ? 2 : 1); use++) {
        const { body } = await api("POST", "/v1/verify", { body: { key: token } });
        assert.equal(body.code, "VALID", `${kind} token of ${userId}, use ${use + 1}`);
        assert.deepEqual(body.owner, { type: "user", id: String(userId) });
      }
      const wrong =
        kind === "bcrypt"
          ? `${token.split(".")[0]}.${randomBytes(24).toString("base64url")}`
          : randomBytes(32).toString("hex");
      assert.equal((await api("POST", "/v1/verify", { body: { key: wrong } })).body.code, "NOT_FOUND");
    }
    for (const userId of [42, 7]) {
      const jwt = tokenFor(String(userId));
      const { body } = await api("GET", "/v1/events?action=upgraded", { auth: jwt });
      const bcryptCount = tokens.filter((t) => t.userId === userId && t.kind === "bcrypt").length;
      assert.equal(body.data.length, bcryptCount, `one upgraded event per bcrypt key of ${userId}`);
    }

    // Step 5: rotate an imported key onto latchkey's format.
    const jwt = tokenFor("42");
    const { body: listed } = await api("GET", "/v1/keys", { auth: jwt });
    const imported = listed.data.find((key) => key.name === "bcrypt 1");
    const rotated = await api("POST", `/v1/keys/${imported.id}/rotate`, { auth: jwt, body: { grace_seconds: 3600 } });
    assert.equal(rotated.status, 201);
    assert.match(rotated.body.key, /^lk_/);
    assert.equal((await api("POST", "/v1/verify", { body: { key: rotated.body.key } })).body.code, "VALID");
    db.close();
  });
});
