// npm run test:scripts: the migration recipe of docs/migrating.md, followed as written, command by command.
// A SQLite table api_keys(id, user_id, token_hash, name, created_at, last_used_at, expires_at) holds the
// tokens of two customers, bcrypt-hashed (`<id>.<secret>`) and HMAC-peppered (hex64). Then, as the
// recipe says: `npm start -- --var …` (step 1); an operator's token and a root key (step 2); the export
// to one CSV whose `owner` column maps user_id to an owner per row (step 3); `latchkey import` with the
// root key, twice (step 4: nothing duplicated); every old token verifies, each with one `upgraded`
// event after its first use and verifying again (step 5); a rotation onto latchkey's keys (step 6).
// The shell snippets are taken from the doc and run with bash (with `localhost:8787` pointed at this
// test's server, and `npx latchkey` run as what npx runs, node_modules/.bin/latchkey); where a tool
// they use is missing (sqlite3, curl, jq), the step is done the same way in Node and a note says so.
// The server's state lives in a temporary directory (--persist-to), so every run starts empty.
// MIGRATION_RECIPE_PORT sets the port (default 8930; the inspector takes the next one).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { root } from "./dev-config.mjs";
import { startDevServer } from "./dev-server.mjs";

const port = Number(process.env.MIGRATION_RECIPE_PORT ?? 8930);
const host = `127.0.0.1:${port}`;
const url = `http://${host}`;
const PEPPER = randomBytes(16).toString("hex");
const dir = mkdtempSync(join(tmpdir(), "latchkey-recipe-"));
const cliBin = `${root}node_modules/.bin/latchkey`;

const doc = readFileSync(`${root}docs/migrating.md`, "utf8");
const recipe = doc.slice(doc.indexOf("## The recipe"), doc.indexOf("## The import API"));

/** The fenced shell blocks of step `n` of the recipe, in order. */
function stepBlocks(n) {
  const start = recipe.indexOf(`**${n}. `);
  const end = recipe.indexOf(`**${n + 1}. `);
  assert.ok(start !== -1, `docs/migrating.md's recipe has a step ${n}`);
  const text = recipe.slice(start, end === -1 ? undefined : end);
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
}

/** The line of a step's blocks that `pattern` matches, with the backslash-continued lines after it. */
function command(n, pattern, what) {
  for (const block of stepBlocks(n)) {
    const lines = block.split("\n");
    const at = lines.findIndex((line) => pattern.test(line));
    if (at === -1) continue;
    // Up to the line that ends it: not continued with `\`, no double quote left open.
    let end = at;
    const open = () =>
      lines
        .slice(at, end + 1)
        .join("\n")
        .split('"').length %
        2 ===
      0;
    while (end < lines.length - 1 && (lines[end].trimEnd().endsWith("\\") || open())) end++;
    return lines.slice(at, end + 1).join("\n");
  }
  assert.fail(`step ${n} of docs/migrating.md's recipe has ${what}`);
}

const have = (tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;

/** Runs a snippet of the doc with bash, as a reader would paste it (pointed at this test's server). */
function sh(snippet, { cwd = dir, env = {} } = {}) {
  const script = snippet
    .replaceAll("localhost:8787", host)
    .replaceAll("npx latchkey", `"${process.execPath}" "${cliBin}"`);
  const run = spawnSync("bash", ["-euo", "pipefail", "-c", script], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, XDG_CONFIG_HOME: dir, ...env },
  });
  assert.equal(run.status, 0, `${snippet}\n${run.stderr}`);
  return run.stdout;
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
    const hash = bcrypt.hashSync(secret, 10);
    insert.run(id, userId, hash, `bcrypt ${id}`, "2025-01-01T00:00:00Z", "2026-11-30T12:00:00Z", null);
    tokens.push({ token: `${id}.${secret}`, userId, kind: "bcrypt", name: `bcrypt ${id}` });
  }
  for (const [id, userId] of [
    [4, 42],
    [5, 7],
  ]) {
    const token = randomBytes(32).toString("hex");
    const hash = createHmac("sha256", PEPPER).update(token).digest("hex");
    insert.run(id, userId, hash, `hmac ${id}`, "2024-06-01T00:00:00Z", null, "2030-01-01T00:00:00Z");
    tokens.push({ token, userId, kind: "hmac", name: `hmac ${id}` });
  }
  db.close();
  return tokens;
}

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
  // Step 1, as the recipe shows it for one run (the pepper is this run's own).
  const start = command(1, /^npm start -- /, "the npm start command");
  const vars = [...start.matchAll(/--var (\S+)/g)].map((m) => m[1].replace(/:your-pepper$/, `:${PEPPER}`));
  assert.deepEqual(
    vars.map((v) => v.split(":")[0]),
    ["LEGACY_KEY_FORMATS", "LEGACY_HMAC_PEPPER"],
  );
  server = startDevServer(url, [
    ...vars.flatMap((v) => ["--var", v]),
    ...["--port", String(port), "--ip", "127.0.0.1", "--inspector-port", String(port + 1)],
    ...["--persist-to", join(dir, "state")],
  ]);
  await server.ready();
});
after(() => server?.stop());

describe("the migration recipe (docs/migrating.md)", () => {
  it("ends with every old token verifying, each upgraded after its first use, one import re-run safely, and a rotation onto latchkey's keys", async (t) => {
    const tokens = await legacyTable(join(dir, "app.db"));
    const customers = [42, 7];
    const of = (userId) => tokens.filter((x) => x.userId === userId);

    // Step 2: an operator's token, and a root key for every person.
    const makeRoot = command(2, /^OP=\$\(npm run -s token -- \S+ --operator\)$/, "the operator's token");
    const rootKeyCommand = command(2, /^ROOT_KEY=\$\(curl /, "the root key's creation");
    let rootKey;
    if (have("curl") && have("jq")) {
      rootKey = sh(`${makeRoot}\n${rootKeyCommand}\nprintf '%s' "$ROOT_KEY"`, { cwd: root });
    } else {
      t.diagnostic("curl or jq missing: the root key is made with fetch, from the same request");
      const sub = /token -- (\S+) --operator/.exec(makeRoot)[1];
      const op = spawnSync("npm", ["run", "-s", "token", "--", sub, "--operator"], { cwd: root, encoding: "utf8" });
      const body = JSON.parse(/-d '([^']*)'/.exec(rootKeyCommand)[1]);
      const created = await api("POST", "/v1/root-keys", { auth: op.stdout.trim(), body });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      rootKey = created.body.key;
    }
    assert.match(rootKey, /^lk_root_/);
    const asRoot = { LATCHKEY_URL: url, LATCHKEY_TOKEN: rootKey, ROOT_KEY: rootKey };

    // Step 3: one CSV for every customer, each row's owner from user_id.
    const exported = command(3, /^sqlite3 -header -csv app\.db /, "the SQLite export");
    if (have("sqlite3")) sh(exported);
    else {
      t.diagnostic("sqlite3 missing: its query runs with node:sqlite and the rows are written as it prints them");
      const query = /"([\s\S]*)"/.exec(exported)[1].replaceAll("\\$", "$");
      const { DatabaseSync } = await import("node:sqlite");
      const db = new DatabaseSync(join(dir, "app.db"));
      writeFileSync(join(dir, "keys.csv"), toCsv(db.prepare(query).all()));
      db.close();
    }
    const csv = readFileSync(join(dir, "keys.csv"), "utf8");
    assert.equal(csv.trim().split("\n").length, 1 + tokens.length, "one file, one row per key");
    for (const userId of customers) assert.ok(csv.includes(`,user:${userId},`), `rows of user:${userId}`);

    // Step 4: the import with the root key: each row for its own owner.
    const importing = stepBlocks(4)[0];
    assert.match(importing, /^export LATCHKEY_URL=http:\/\/localhost:8787 LATCHKEY_TOKEN="\$ROOT_KEY"$/m);
    assert.match(importing, /^npx latchkey import keys\.csv /m);
    assert.match(sh(importing, { env: asRoot }), new RegExp(`^Imported ${tokens.length}, conflicts 0\\.`));
    const listed = async () => {
      const ids = new Map();
      for (const userId of customers) {
        const { status, body } = await api("GET", `/v1/keys?owner_type=user&owner_id=${userId}`, { auth: rootKey });
        assert.equal(status, 200);
        assert.deepEqual(
          body.data.map((k) => k.name).sort(),
          of(userId)
            .map((x) => x.name)
            .sort(),
          `user:${userId}'s keys`,
        );
        for (const key of body.data) ids.set(key.name, key.id);
      }
      return ids;
    };
    const ids = await listed();
    assert.equal(ids.size, tokens.length);
    // Re-running it is safe: every row a conflict, as the recipe prints it, and nothing new.
    const rerun = command(4, /^npx latchkey import keys\.csv +# Imported 0, conflicts 5\./, "the re-run");
    const said = /# (Imported 0, conflicts 5\.)/.exec(rerun)[1];
    assert.ok(sh(rerun, { env: asRoot }).startsWith(said));
    await listed();

    // Step 5: every old token verifies as its customer's key; its first use upgrades it (one event);
    // the second verification works; a wrong token is not found.
    const upgradedEvents = async (id) => {
      const { status, body } = await api("GET", `/v1/keys/${id}/events`, { auth: rootKey });
      assert.equal(status, 200);
      return body.data.filter((e) => e.action === "upgraded");
    };
    for (const { token, userId, kind, name } of tokens) {
      const id = ids.get(name);
      assert.deepEqual(await upgradedEvents(id), [], `${name}: not upgraded before its first use`);
      for (const use of [1, 2]) {
        const { body } = await api("POST", "/v1/verify", { body: { key: token } });
        assert.equal(body.code, "VALID", `${name}, use ${use}`);
        assert.equal(body.key_id, id);
        assert.deepEqual(body.owner, { type: "user", id: String(userId) });
        const events = await upgradedEvents(id);
        assert.equal(events.length, 1, `${name}: one upgraded event after use ${use}`);
        assert.equal(events[0].changes.hash_scheme.new, "sha256");
      }
      const wrong =
        kind === "bcrypt"
          ? `${token.split(".")[0]}.${randomBytes(24).toString("base64url")}`
          : randomBytes(32).toString("hex");
      assert.equal((await api("POST", "/v1/verify", { body: { key: wrong } })).body.code, "NOT_FOUND");
    }
    // The recipe's audit-log command shows one line per key of customer 42 used since the import.
    const watch = command(
      5,
      /^npx latchkey events --owner-type user --owner-id 42 --action upgraded/,
      "the events command",
    );
    const shown = JSON.parse(sh(watch.replace(/ +#.*$/, " --json"), { env: asRoot }));
    assert.deepEqual(
      shown.data.map((e) => e.key_id).sort(),
      of(42)
        .map((x) => ids.get(x.name))
        .sort(),
    );
    // The import re-run after the upgrades: still every row a conflict, never a second key.
    assert.ok(sh(rerun, { env: asRoot }).startsWith(said));
    await listed();

    // Step 6: rotate an imported key onto latchkey's format (its old token keeps its grace).
    const list = command(6, /^npx latchkey keys list --owner-type user --owner-id 42$/, "the keys list");
    const rows = JSON.parse(sh(`${list} --json`, { env: asRoot })).data;
    const hmac = of(42).find((x) => x.kind === "hmac");
    const target = rows.find((k) => k.name === hmac.name);
    assert.ok(target, "the list shows the HMAC key");
    const rotate = command(6, /^npx latchkey keys rotate <id> --grace 86400/, "the rotation");
    const replacement = sh(rotate.replace("<id>", target.id).replace(/ +#.*$/, ""), { env: asRoot }).trim();
    assert.match(replacement, /^lk_/);
    const fresh = await api("POST", "/v1/verify", { body: { key: replacement } });
    assert.deepEqual([fresh.body.code, fresh.body.owner], ["VALID", { type: "user", id: "42" }]);
    assert.equal((await api("POST", "/v1/verify", { body: { key: hmac.token } })).body.code, "VALID");
  });
});
