// npm run test:scripts: a bucket move under traffic loses nothing (scripts/move-bucket.mjs,
// docs/scaling.md). `npm start -- --var D1_SHARDS:2` on its own state; keys for several owners; while the
// script moves one owner's bucket from database 0 to 1, a loop keeps verifying that owner's keys (every
// verification of a live key must pass) and creating and revoking its keys (a 503 while writes are
// refused is retried). Afterwards every key is in database 1 and verifies, revoked keys stay revoked, the
// audit log has every event, and database 0 holds nothing of the bucket. Then, without a server, the
// copy's check is shown to stop a move whose copy lost a row. MOVE_BUCKET_PORT sets the port (8700).
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { root } from "./dev-config.mjs";
import { startDevServer } from "./dev-server.mjs";
import { copy, databasesOf, localDriver, ownerBucket } from "./move-bucket.mjs";

const port = Number(process.env.MOVE_BUCKET_PORT ?? 8700);
const url = `http://127.0.0.1:${port}`;
const dir = mkdtempSync(join(tmpdir(), "latchkey-move-"));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const tokenFor = (sub) =>
  execFileSync(process.execPath, [`${root}scripts/token.mjs`, sub], { cwd: root, encoding: "utf8" }).trim();

async function api(method, path, { auth, body } = {}) {
  const response = await fetch(url + path, {
    method,
    headers: { ...(auth ? { authorization: `Bearer ${auth}` } : {}), "content-type": "application/json" },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** A write, retried while the bucket's writes are refused (503 with Retry-After). */
async function write(method, path, options, expected) {
  for (;;) {
    const response = await api(method, path, options);
    if (response.status !== 503) {
      assert.equal(response.status, expected, JSON.stringify(response.body));
      return response.body;
    }
    await sleep(500);
  }
}

const verify = async (key) => (await api("POST", "/v1/verify", { body: { key } })).body;

let server;
before(async () => {
  server = startDevServer(url, [
    "--port",
    String(port),
    "--ip",
    "127.0.0.1",
    "--persist-to",
    dir,
    "--var",
    "D1_SHARDS:2",
  ]);
  await server.ready();
});
after(() => server?.stop());

describe("npm run move-bucket", () => {
  it("moves a bucket from database 0 to 1 under traffic and loses nothing", async () => {
    // Owners of both databases; the moved one is in an even bucket (database 0 by default).
    const subs = [];
    for (let i = 0; subs.length < 4 || !subs.some((s) => ownerBucket("user", s) % 2 === 0); i++)
      subs.push(`mover-${i}`);
    const moved = subs.find((s) => ownerBucket("user", s) % 2 === 0);
    const bucket = ownerBucket("user", moved);
    const auth = tokenFor(moved);
    const others = [];
    for (const sub of subs.filter((s) => s !== moved)) {
      others.push((await write("POST", "/v1/keys", { auth: tokenFor(sub), body: { name: "other" } }, 201)).key);
    }
    const live = new Map();
    for (let i = 0; i < 3; i++) {
      const created = await write("POST", "/v1/keys", { auth, body: { name: `before ${i}` } }, 201);
      live.set(created.id, created.key);
    }
    const revoked = new Map();

    const script = spawn(
      "npm",
      ["run", "-s", "move-bucket", "--", "--bucket", String(bucket), "--to", "1", "--persist-to", dir, "--shards", "2"],
      { cwd: root, stdio: ["ignore", "pipe", "pipe"] },
    );
    process.on("exit", () => script.exitCode === null && script.kill());
    let output = "";
    script.stdout.on("data", (d) => (output += d));
    script.stderr.on("data", (d) => (output += d));
    const exited = new Promise((resolve) => script.on("exit", resolve));
    let done = false;
    exited.then(() => (done = true));

    const failures = [];
    let round = 0;
    let createdDuring = 0;
    while (!done) {
      for (const [id, key] of live) {
        const verdict = await verify(key);
        if (!verdict.valid) failures.push(`${id}: ${verdict.code}`);
      }
      if (round % 3 === 0) {
        const created = await write("POST", "/v1/keys", { auth, body: { name: `during ${round}` } }, 201);
        live.set(created.id, created.key);
        createdDuring++;
      } else if (round % 3 === 1 && live.size > 2) {
        const [id, key] = live.entries().next().value;
        await write("DELETE", `/v1/keys/${id}`, { auth }, 204);
        live.delete(id);
        revoked.set(id, key);
      }
      round++;
      await sleep(200);
    }
    assert.equal(await exited, 0, output);
    assert.doesNotMatch(output, /[0-9a-f]{64}/i, "the script never prints a hash");
    assert.doesNotMatch(output, /lk_/, "nor a key");
    assert.deepEqual(failures, [], "no verification of a live key failed during the move");
    // Creates and revocations alternate, so how many keys are live says nothing: count both.
    assert.ok(revoked.size > 0 && createdDuring > 0, `traffic ran during the move (${round} rounds)`);

    // After: every key verifies or stays revoked; the audit log has every event; other owners untouched.
    for (const key of live.values()) assert.equal((await verify(key)).valid, true);
    for (const key of revoked.values()) assert.equal((await verify(key)).valid, false);
    for (const key of others) assert.equal((await verify(key)).valid, true);
    const events = (await api("GET", "/v1/events?limit=100", { auth })).body.data;
    const count = (action) => events.filter((e) => e.action === action).length;
    assert.equal(count("created"), live.size + revoked.size);
    assert.equal(count("revoked"), revoked.size);
    // Writes are accepted again, in the target.
    const afterMove = await write("POST", "/v1/keys", { auth, body: { name: "after" } }, 201);
    assert.equal((await verify(afterMove.key)).valid, true);

    const databases = databasesOf(readFileSync(`${root}wrangler.toml`, "utf8"), null);
    const driver = await localDriver(databases, dir);
    try {
      const rows = async (index, table) =>
        (await driver.run(index, [`SELECT COUNT(*) AS n FROM ${table} WHERE owner_id = '${moved}'`]))[0][0].n;
      assert.equal(await rows(1, "api_keys"), live.size + revoked.size + 1);
      assert.equal(await rows(0, "api_keys"), 0, "the source no longer holds the bucket");
      assert.equal(await rows(0, "key_events"), 0);
      const [map] = await driver.run(0, [`SELECT shard, moving_since FROM shard_map WHERE bucket = ${bucket}`]);
      assert.deepEqual(map, [{ shard: 1, moving_since: null }]);
    } finally {
      await driver.close();
    }
  });
});

/** A driver over two in-memory SQLite databases with the migrations; `drop` filters statements. */
async function sqliteDriver(drop = () => false) {
  const { DatabaseSync } = await import("node:sqlite");
  const migrations = readdirSync(`${root}migrations`)
    .filter((f) => f.endsWith(".sql"))
    .sort();
  const dbs = [0, 1].map(() => {
    const db = new DatabaseSync(":memory:");
    for (const file of migrations) db.exec(readFileSync(`${root}migrations/${file}`, "utf8"));
    return db;
  });
  return {
    dbs,
    async run(index, statements) {
      return statements
        .filter((sql) => !drop(index, sql))
        .map((sql) =>
          /^\s*SELECT/i.test(sql)
            ? dbs[index]
                .prepare(sql)
                .all()
                .map((r) => ({ ...r }))
            : (dbs[index].exec(sql), []),
        );
    },
    close: async () => {},
  };
}

describe("the copy's check", () => {
  async function seeded(drop) {
    const driver = await sqliteDriver(drop);
    const owner = "checked";
    const bucket = ownerBucket("user", owner);
    const hash = createHash("sha256").update("not a real key").digest("hex");
    driver.dbs[0].exec(
      `INSERT INTO api_keys (id, hash, start, name, owner_type, owner_id, scopes, created_by, created_at) VALUES ('k1', '${hash}', 'lk_x', 'n', 'user', '${owner}', '[]', 'service', 1)`,
    );
    driver.dbs[0].exec(
      `INSERT INTO key_events (id, key_id, owner_type, owner_id, action, actor, at, changes) VALUES ('e1', 'k1', 'user', '${owner}', 'created', 'service', 1, '{}'), ('e2', 'k1', 'user', '${owner}', 'updated', 'service', 2, '{}')`,
    );
    return { driver, bucket };
  }

  it("passes when every row arrived", async () => {
    const { driver, bucket } = await seeded();
    const { rows } = await copy(driver, bucket, 0, 1);
    assert.equal(rows.get("key_events").length, 2);
  });

  it("stops the move when a table's rows did not all arrive", async () => {
    const { driver, bucket } = await seeded((index, sql) => index === 1 && /^INSERT INTO key_events/.test(sql));
    await assert.rejects(copy(driver, bucket, 0, 1), /key_events differs after the copy/);
  });
});
