// npm run test:scripts: a bucket move under traffic loses nothing (scripts/move-bucket.mjs,
// docs/scaling.md). `npm start -- --var D1_SHARDS:2` on its own state; keys for several owners; while the
// script moves one owner's bucket from database 0 to 1, a loop keeps verifying that owner's keys (every
// verification of a live key must pass) and creating and revoking its keys (a 503 while writes are
// refused is retried). Afterwards every key is in database 1 and verifies, revoked keys stay revoked, the
// audit log has every event, and database 0 holds nothing of the bucket.
// Then, on the same server, moves stopped part-way (the script's `main` driven in-process, its `after`
// hook throwing once a step is done, as a crash would) and finished by a re-run or by --abort: before
// the flip and after it, the bucket ends in the right database with every row it had, its keys verify,
// revoked ones stay revoked, the audit log is whole, no copy is left behind and writes are accepted
// again. --pin-all runs last (it pins the buckets the server still places by default). Without a server
// (node:sqlite databases): the copy's check stops a move whose copy lost a row, and with three databases
// a re-run naming another target or an abort removes the copy a stopped run left in the third.
// MOVE_BUCKET_PORT sets the port (8700).
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { root } from "./dev-config.mjs";
import { startDevServer } from "./dev-server.mjs";
import { copy, databasesOf, localDriver, main, ownerBucket } from "./move-bucket.mjs";

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
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
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

/** Buckets a test of this file moves: each test moves its own. */
const usedBuckets = new Set();

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
    usedBuckets.add(bucket);
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

// ---- Moves stopped part-way, on the same server ----

/** What a test's `after` hook throws to stop a move once `step` is done (a crash there). */
class Stopped extends Error {
  constructor(step) {
    super(`stopped after ${step}`);
    this.step = step;
  }
}

/** The `after` hook that stops a move once `step` is done. */
const stopAt = (step) => (done) => {
  if (done === step) throw new Stopped(step);
};
const isStopped = (step) => (error) => error instanceof Stopped && error.step === step;

/**
 * Runs `task` (the script's `main`, or one of its steps, in-process) with what it prints kept from the
 * test's output; returns that (never a hash nor a key). A failure (but a stop) shows it.
 */
async function printed(task) {
  const lines = [];
  const print = console.log;
  console.log = (...parts) => lines.push(parts.join(" "));
  try {
    await task();
  } catch (error) {
    if (!(error instanceof Stopped)) error.message += `\n${lines.join("\n")}`;
    throw error;
  } finally {
    console.log = print;
  }
  const output = lines.join("\n");
  assert.doesNotMatch(output, /[0-9a-f]{64}/i, "the script never prints a hash");
  assert.doesNotMatch(output, /lk_/, "nor a key");
  return output;
}

/** The script on the server's state. */
const run = (args, hooks = {}) => printed(() => main([...args, "--persist-to", dir, "--shards", "2"], hooks));

/** The script on the server's state, stopped once `step` is done. */
const runUntil = (step, args) => assert.rejects(run(args, { after: stopAt(step) }), isStopped(step));

/** The server's state opened in-process (beside the server, as the script opens it). */
async function withDatabases(use) {
  const driver = await localDriver(databasesOf(readFileSync(`${root}wrangler.toml`, "utf8"), null), dir);
  try {
    return await use(driver);
  } finally {
    await driver.close();
  }
}

const quoted = (text) => `'${text.replaceAll("'", "''")}'`;

/**
 * An owner's rows in database `index`, each as sorted JSON: its keys (without last_used_at, which
 * verifications move on) and audit events, and the warnings and usage counts of its key ids.
 */
async function ownerRows(driver, index, sub) {
  const ids = `SELECT id FROM api_keys WHERE owner_type = 'user' AND owner_id = ${quoted(sub)}`;
  const [keys, events, usage, warnings] = await driver.run(index, [
    `SELECT * FROM api_keys WHERE owner_type = 'user' AND owner_id = ${quoted(sub)}`,
    `SELECT * FROM key_events WHERE owner_type = 'user' AND owner_id = ${quoted(sub)}`,
    `SELECT * FROM key_usage WHERE key_id IN (${ids})`,
    `SELECT * FROM key_warnings WHERE key_id IN (${ids})`,
  ]);
  const texts = (rows) => rows.map((row) => JSON.stringify(Object.entries(row).sort())).sort();
  return {
    api_keys: texts(keys.map(({ last_used_at, ...row }) => row)),
    key_events: texts(events),
    key_usage: texts(usage),
    key_warnings: texts(warnings),
  };
}

const nothing = { api_keys: [], key_events: [], key_usage: [], key_warnings: [] };
/** Without the usage counts: the verifications of a test add some when the server writes its tally. */
const kept = ({ key_usage, ...rows }) => rows;

async function placeOf(driver, bucket) {
  const [rows] = await driver.run(0, [`SELECT shard, moving_since FROM shard_map WHERE bucket = ${bucket}`]);
  return rows[0] ? { shard: rows[0].shard, moving: rows[0].moving_since !== null } : null;
}

/**
 * A new owner in a bucket of database 0 that no other test moves, with three keys made and one of them
 * revoked; its rows in database 0 as they are before the move.
 */
async function ownerToMove(prefix) {
  let sub;
  for (let i = 0; !sub; i++) {
    const bucket = ownerBucket("user", `${prefix}-${i}`);
    if (bucket % 2 === 0 && !usedBuckets.has(bucket)) sub = `${prefix}-${i}`;
  }
  const bucket = ownerBucket("user", sub);
  usedBuckets.add(bucket);
  const auth = tokenFor(sub);
  const live = new Map();
  for (let i = 0; i < 3; i++) {
    const created = await write("POST", "/v1/keys", { auth, body: { name: `key ${i}` } }, 201);
    live.set(created.id, created.key);
  }
  const [id, key] = live.entries().next().value;
  await write("DELETE", `/v1/keys/${id}`, { auth }, 204);
  live.delete(id);
  const revoked = new Map([[id, key]]);
  const rows = await withDatabases((driver) => ownerRows(driver, 0, sub));
  assert.equal(rows.api_keys.length, 3);
  return { sub, bucket, auth, live, revoked, rows };
}

/** While a move is stopped: its owner's writes are refused, its keys verify as before. */
async function whileStopped(owner) {
  const refused = await api("POST", "/v1/keys", { auth: owner.auth, body: { name: "refused" } });
  assert.equal(refused.status, 503, JSON.stringify(refused.body));
  assert.equal(refused.headers.get("retry-after"), "5");
  for (const key of owner.live.values()) assert.equal((await verify(key)).valid, true);
  for (const key of owner.revoked.values()) assert.equal((await verify(key)).valid, false);
}

/**
 * After the move ended: the map places the bucket in `shard` and writes are accepted; that database
 * holds every row the owner had and the other none; every key verifies, revoked ones stay revoked; the
 * audit log has every event; a new key is made there.
 */
async function settledIn(owner, shard) {
  await withDatabases(async (driver) => {
    assert.deepEqual(await placeOf(driver, owner.bucket), { shard, moving: false });
    assert.deepEqual(kept(await ownerRows(driver, shard, owner.sub)), kept(owner.rows), "every row is there");
    assert.deepEqual(await ownerRows(driver, 1 - shard, owner.sub), nothing, "no copy is left elsewhere");
  });
  for (const key of owner.live.values()) assert.equal((await verify(key)).valid, true);
  for (const key of owner.revoked.values()) assert.equal((await verify(key)).valid, false);
  const events = (await api("GET", "/v1/events?limit=100", { auth: owner.auth })).body.data;
  const count = (action) => events.filter((e) => e.action === action).length;
  assert.equal(count("created"), 3);
  assert.equal(count("revoked"), 1);
  // Writes are accepted again (a 503 while the server's map is older than the move's end is retried).
  const made = await write("POST", "/v1/keys", { auth: owner.auth, body: { name: "after" } }, 201);
  assert.equal((await verify(made.key)).valid, true);
  await withDatabases(async (driver) => {
    assert.equal((await ownerRows(driver, shard, owner.sub)).api_keys.length, 4, "the new key is made there");
    assert.deepEqual(await ownerRows(driver, 1 - shard, owner.sub), nothing);
  });
}

describe("a move stopped part-way", () => {
  it("stopped before the flip, is resumed by the same command: it copies again, flips and drains", async () => {
    const owner = await ownerToMove("resume-copied");
    const command = ["--bucket", String(owner.bucket), "--to", "1"];
    await runUntil("copy", command);
    await withDatabases(async (driver) => {
      assert.deepEqual(await placeOf(driver, owner.bucket), { shard: 0, moving: true });
      assert.deepEqual(kept(await ownerRows(driver, 1, owner.sub)), kept(owner.rows), "the stopped run copied");
      // A copy cut short (a remote copy runs in several calls): the target lacks the audit events.
      await driver.run(1, [`DELETE FROM key_events WHERE owner_id = ${quoted(owner.sub)}`]);
    });
    await whileStopped(owner);
    const output = await run(command);
    assert.match(output, /being moved .*: resuming/);
    assert.match(output, /copied key_events: \d+ rows, contents match/);
    assert.match(output, new RegExp(`bucket ${owner.bucket}: moved to database 1`));
    await settledIn(owner, 1);
  });

  it("stopped after the flip, is resumed by the same command: it drains and reopens writes", async () => {
    const owner = await ownerToMove("resume-flipped");
    const command = ["--bucket", String(owner.bucket), "--to", "1"];
    await runUntil("flip", command);
    await withDatabases(async (driver) => {
      assert.deepEqual(await placeOf(driver, owner.bucket), { shard: 1, moving: true });
      assert.deepEqual(kept(await ownerRows(driver, 1, owner.sub)), kept(owner.rows));
      assert.deepEqual(kept(await ownerRows(driver, 0, owner.sub)), kept(owner.rows), "the source is not drained yet");
    });
    await whileStopped(owner);
    const output = await run(command);
    assert.match(output, /resuming/);
    assert.doesNotMatch(output, /copied/, "after the flip nothing is copied again");
    assert.match(output, /deleted the bucket's rows from database 0/);
    await settledIn(owner, 1);
    // Done: the same command again changes nothing.
    assert.match(await run(command), /is already in database 1/);
  });

  it("--abort before the flip keeps the bucket where it was and removes the partial copy", async () => {
    const owner = await ownerToMove("abort-copied");
    await runUntil("copy", ["--bucket", String(owner.bucket), "--to", "1"]);
    await withDatabases(async (driver) => {
      assert.deepEqual(await placeOf(driver, owner.bucket), { shard: 0, moving: true });
      assert.equal((await ownerRows(driver, 1, owner.sub)).api_keys.length, 3, "a copy is in database 1");
      await driver.run(1, [`DELETE FROM key_events WHERE owner_id = ${quoted(owner.sub)}`]); // cut short
    });
    await whileStopped(owner);
    const output = await run(["--bucket", String(owner.bucket), "--abort"]);
    assert.match(output, new RegExp(`bucket ${owner.bucket}: move ended by --abort, it stays in database 0`));
    assert.doesNotMatch(output, /copied/);
    await settledIn(owner, 0);
    // Nothing is being moved any more: a second abort says so.
    assert.match(await run(["--bucket", String(owner.bucket), "--abort"]), /is not being moved; nothing to abort/);
  });

  it("--abort after the flip finishes the move", async () => {
    const owner = await ownerToMove("abort-flipped");
    await runUntil("flip", ["--bucket", String(owner.bucket), "--to", "1"]);
    await whileStopped(owner);
    const output = await run(["--bucket", String(owner.bucket), "--abort"]);
    assert.match(output, new RegExp(`bucket ${owner.bucket}: move ended by --abort, it stays in database 1`));
    await settledIn(owner, 1);
  });
});

// Last on the server: pinning places every bucket the server still places by default in database 0.
describe("npm run move-bucket -- --pin-all", () => {
  const readMap = (driver) =>
    driver.run(0, ["SELECT bucket, shard, moving_since FROM shard_map ORDER BY bucket"]).then(([rows]) => rows);

  it("writes a row for every bucket without one, leaves the others as they are, and a re-run changes nothing", async () => {
    const before = await withDatabases(readMap);
    // The moves above left rows: buckets moved to database 1, one kept in 0 by --abort.
    assert.ok(before.length > 0 && before.length < 256, JSON.stringify(before));
    assert.ok(before.every((r) => r.moving_since === null));

    assert.match(
      await run(["--pin-all", "0", "--dry-run"]),
      new RegExp(`${256 - before.length} bucket\\(s\\) .* would place`),
    );
    assert.deepEqual(await withDatabases(readMap), before, "a dry run writes nothing");

    assert.match(
      await run(["--pin-all", "0"]),
      new RegExp(`${256 - before.length} bucket\\(s\\) have no shard_map row; placing`),
    );
    const pinned = await withDatabases(readMap);
    assert.deepEqual(
      pinned.map((r) => r.bucket),
      Array.from({ length: 256 }, (_, b) => b),
      "every bucket has a row",
    );
    for (const row of pinned) {
      const old = before.find((r) => r.bucket === row.bucket);
      assert.deepEqual(row, old ?? { bucket: row.bucket, shard: 0, moving_since: null });
    }

    // Run twice (even naming another database): every bucket has a row, so nothing changes.
    assert.match(await run(["--pin-all", "1"]), /^move-bucket: 0 bucket\(s\) have no shard_map row/);
    assert.deepEqual(await withDatabases(readMap), pinned);
  });
});

/** A driver over `count` in-memory SQLite databases with the migrations; `drop` filters statements. */
async function sqliteDriver(drop = () => false, count = 2) {
  const { DatabaseSync } = await import("node:sqlite");
  const migrations = readdirSync(`${root}migrations`)
    .filter((f) => f.endsWith(".sql"))
    .sort();
  const dbs = Array.from({ length: count }, () => {
    const db = new DatabaseSync(":memory:");
    for (const file of migrations) db.exec(readFileSync(`${root}migrations/${file}`, "utf8"));
    return db;
  });
  return {
    dbs,
    count,
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

/** One owner's key, two events and a usage count in database 0 of `count` SQLite databases. */
async function seeded(drop, count = 2) {
  const driver = await sqliteDriver(drop, count);
  const owner = "checked";
  const bucket = ownerBucket("user", owner);
  const hex = bucket.toString(16).padStart(2, "0");
  const hash = createHash("sha256").update("not a real key").digest("hex");
  driver.dbs[0].exec(
    `INSERT INTO api_keys (id, hash, start, name, owner_type, owner_id, scopes, created_by, created_at) VALUES ('${hex}k1', '${hash}', 'lk_x', 'n', 'user', '${owner}', '[]', 'service', 1)`,
  );
  driver.dbs[0].exec(
    `INSERT INTO key_events (id, key_id, owner_type, owner_id, action, actor, at, changes) VALUES ('e1', '${hex}k1', 'user', '${owner}', 'created', 'service', 1, '{}'), ('e2', '${hex}k1', 'user', '${owner}', 'updated', 'service', 2, '{}')`,
  );
  driver.dbs[0].exec(`INSERT INTO key_usage (key_id, hour, outcome, count) VALUES ('${hex}k1', 1, 'valid', 3)`);
  return { driver, bucket };
}

describe("the copy's check", () => {
  it("passes when every row arrived", async () => {
    const { driver, bucket } = await seeded();
    let copied;
    await printed(async () => (copied = await copy(driver, bucket, 0, 1)));
    assert.equal(copied.rows.get("key_events").length, 2);
  });

  it("stops the move when a table's rows did not all arrive", async () => {
    const { driver, bucket } = await seeded((index, sql) => index === 1 && /^INSERT INTO key_events/.test(sql));
    await assert.rejects(
      printed(() => copy(driver, bucket, 0, 1)),
      /key_events differs after the copy/,
    );
  });
});

describe("a stopped move, with three databases (in-process, no waits)", () => {
  const run3 = (driver, args, after) =>
    printed(() => main([...args, "--shards", "3"], { driver, after, sleep: async () => {} }));
  const contents = async (driver, index) => {
    const [api_keys, key_events, key_usage] = await driver.run(index, [
      "SELECT * FROM api_keys WHERE owner_id = 'checked'",
      "SELECT * FROM key_events WHERE owner_id = 'checked' ORDER BY id",
      "SELECT * FROM key_usage",
    ]);
    return { api_keys, key_events, key_usage };
  };
  const empty = { api_keys: [], key_events: [], key_usage: [] };
  /** The seeded owner's bucket, placed in database 0 by the map (its default there is bucket % 3). */
  const inDatabase0 = async () => {
    const seed = await seeded(undefined, 3);
    await seed.driver.run(0, [`INSERT INTO shard_map (bucket, shard, moving_since) VALUES (${seed.bucket}, 0, NULL)`]);
    return seed;
  };
  const placeIn = async (driver, bucket) =>
    (
      await driver.run(0, [`SELECT shard, moving_since IS NOT NULL AS moving FROM shard_map WHERE bucket = ${bucket}`])
    )[0];

  it("stopped after the mark, a re-run copies, flips and drains", async () => {
    const { driver, bucket } = await inDatabase0();
    const original = await contents(driver, 0);
    const command = ["--bucket", String(bucket), "--to", "2"];
    await assert.rejects(run3(driver, command, stopAt("mark")), isStopped("mark"));
    assert.deepEqual(await placeIn(driver, bucket), [{ shard: 0, moving: 1 }]);
    assert.deepEqual(await contents(driver, 2), empty);
    assert.match(await run3(driver, command), /resuming[^]*moved to database 2/);
    assert.deepEqual(await placeIn(driver, bucket), [{ shard: 2, moving: 0 }]);
    assert.deepEqual(await contents(driver, 2), original);
    for (const i of [0, 1]) assert.deepEqual(await contents(driver, i), empty);
  });

  it("stopped before the flip, a re-run naming another database first removes the copy left in the first", async () => {
    const { driver, bucket } = await inDatabase0();
    const original = await contents(driver, 0);
    await assert.rejects(run3(driver, ["--bucket", String(bucket), "--to", "2"], stopAt("copy")), isStopped("copy"));
    assert.deepEqual(await contents(driver, 2), original, "the stopped run copied to database 2");
    const output = await run3(driver, ["--bucket", String(bucket), "--to", "1"]);
    assert.match(output, /removed an earlier partial copy from database 2/);
    assert.deepEqual(await placeIn(driver, bucket), [{ shard: 1, moving: 0 }]);
    assert.deepEqual(await contents(driver, 1), original);
    for (const i of [0, 2]) assert.deepEqual(await contents(driver, i), empty);
  });

  it("--abort before the flip removes the copy from every database but the source", async () => {
    const { driver, bucket } = await inDatabase0();
    const original = await contents(driver, 0);
    await assert.rejects(run3(driver, ["--bucket", String(bucket), "--to", "2"], stopAt("copy")), isStopped("copy"));
    assert.match(await run3(driver, ["--bucket", String(bucket), "--abort"]), /it stays in database 0/);
    assert.deepEqual(await placeIn(driver, bucket), [{ shard: 0, moving: 0 }]);
    assert.deepEqual(await contents(driver, 0), original);
    for (const i of [1, 2]) assert.deepEqual(await contents(driver, i), empty);
  });

  it("stopped after the drain, a re-run reopens writes", async () => {
    const { driver, bucket } = await inDatabase0();
    const original = await contents(driver, 0);
    const command = ["--bucket", String(bucket), "--to", "2"];
    await assert.rejects(run3(driver, command, stopAt("drain")), isStopped("drain"));
    assert.deepEqual(await placeIn(driver, bucket), [{ shard: 2, moving: 1 }], "writes still refused");
    assert.deepEqual(await contents(driver, 0), empty, "the source is drained");
    assert.match(await run3(driver, command), /resuming[^]*moved to database 2/);
    assert.deepEqual(await placeIn(driver, bucket), [{ shard: 2, moving: 0 }]);
    assert.deepEqual(await contents(driver, 2), original);
  });
});
