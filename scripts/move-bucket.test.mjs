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
// a re-run naming another target or an abort removes the copy a stopped run left in the third; the
// Worker's cron deleting rows in one database while a move is under way (after the copy, in the target
// or in the source, between the copy and its check, during an --abort) never stops the move, never loses
// a live row, and leaves the dead key in no database; a live key the target lacks still stops it.
// MOVE_BUCKET_PORT sets the port (8700).
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { root, tomlVars } from "./dev-config.mjs";
import { startDevServer } from "./dev-server.mjs";
import { cronSettings } from "./move-bucket-cron.mjs";
import { copy, databasesOf, localDriver, main, ownerBucket, parseArgs } from "./move-bucket.mjs";

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

/** One owner's key, two recent events and a usage count in database 0 of `count` SQLite databases. */
async function seeded(drop, count = 2) {
  const driver = await sqliteDriver(drop, count);
  const owner = "checked";
  const bucket = ownerBucket("user", owner);
  const hex = bucket.toString(16).padStart(2, "0");
  const hash = createHash("sha256").update("not a real key").digest("hex");
  const now = Date.now();
  driver.dbs[0].exec(
    `INSERT INTO api_keys (id, hash, start, name, owner_type, owner_id, scopes, created_by, created_at) VALUES ('${hex}k1', '${hash}', 'lk_x', 'n', 'user', '${owner}', '[]', 'service', 1)`,
  );
  driver.dbs[0].exec(
    `INSERT INTO key_events (id, key_id, owner_type, owner_id, action, actor, at, changes) VALUES ('e1', '${hex}k1', 'user', '${owner}', 'created', 'service', ${now}, '{}'), ('e2', '${hex}k1', 'user', '${owner}', 'updated', 'service', ${now + 1}, '{}')`,
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

  it("stops the move when the target holds a row the source lacks (a stale copy left in place)", async () => {
    const { driver, bucket } = await seeded((index, sql) => index === 1 && /^DELETE FROM key_events/.test(sql));
    const hex = bucket.toString(16).padStart(2, "0");
    driver.dbs[1].exec(
      `INSERT INTO key_events (id, key_id, owner_type, owner_id, action, actor, at, changes) VALUES ('stale', '${hex}k1', 'user', 'checked', 'updated', 'service', 1, '{}')`,
    );
    await assert.rejects(
      printed(() => copy(driver, bucket, 0, 1, { purgeAfterDays: 30, auditRetentionDays: 90 })),
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

describe("the Worker's cron during a move (three databases, in-process, no waits)", () => {
  const DAY = 86_400_000;
  const purging = ["--purge-after-days", "30"];
  const run3 = (driver, args, after) =>
    printed(() => main([...args, "--shards", "3"], { driver, after, sleep: async () => {} }));
  const sha = (text) => createHash("sha256").update(text).digest("hex");

  /**
   * The seeded owner in database 0 (placed there by the map) with two more keys: one revoked long ago
   * (dead past the purge's horizon) with a usage count, a warning, an Idempotency-Key record and an
   * audit event, and one revoked a day ago (dead, but within 30 days: the purge keeps it) with a usage
   * count; and rows the cron also deletes: an event past retention, an expired Idempotency-Key record,
   * a warning past its `until`.
   */
  async function withDeadKey() {
    const { driver, bucket } = await seeded(undefined, 3);
    const hex = bucket.toString(16).padStart(2, "0");
    const ids = { live: `${hex}k1`, dead: `${hex}dead`, recent: `${hex}recent` };
    const now = Date.now();
    const key = (id, revokedAt) =>
      `INSERT INTO api_keys (id, hash, start, name, owner_type, owner_id, scopes, created_by, created_at, revoked_at) VALUES ('${id}', '${sha(id)}', 'lk_x', 'n', 'user', 'checked', '[]', 'service', 1, ${revokedAt})`;
    for (const sql of [
      `INSERT INTO shard_map (bucket, shard, moving_since) VALUES (${bucket}, 0, NULL)`,
      key(ids.dead, 1000),
      key(ids.recent, now - DAY),
      `INSERT INTO key_usage (key_id, hour, outcome, count) VALUES ('${ids.dead}', 1, 'valid', 2), ('${ids.recent}', 1, 'valid', 4)`,
      `INSERT INTO key_events (id, key_id, owner_type, owner_id, action, actor, at, changes) VALUES ('e0', '${ids.live}', 'user', 'checked', 'updated', 'service', 1000, '{}'), ('e3', '${ids.dead}', 'user', 'checked', 'revoked', 'service', ${now + 2}, '{}')`,
      `INSERT INTO key_warnings (key_id, warning, mark, at, until, batch) VALUES ('${ids.dead}', 'expired', 1, 1, ${now + 10 * DAY}, 'b1'), ('${ids.live}', 'expired', 2, 1, 5, 'b2')`,
      `INSERT INTO idempotency_keys (caller, key_hash, request_hash, key_id, created_at) VALUES ('user:checked', '${sha("a")}', '${sha("r")}', '${ids.dead}', ${now}), ('user:checked', '${sha("b")}', '${sha("r")}', '${ids.live}', ${now - 2 * DAY})`,
    ])
      driver.dbs[0].exec(sql);
    return { driver, bucket, ids };
  }

  /** What the hourly cron deletes in database `index` now (PURGE_AFTER_DAYS 30, AUDIT_RETENTION_DAYS 90). */
  function cron(driver, index) {
    const now = Date.now();
    const dead = `SELECT id FROM api_keys WHERE revoked_at < ${now - 30 * DAY} OR expires_at < ${now - 30 * DAY}`;
    for (const sql of [
      // src/store/d1-maintenance.ts purge, d1-events.ts purgeEvents, warnings.ts pruneWarnings.
      `DELETE FROM key_usage WHERE key_id IN (${dead})`,
      `DELETE FROM api_keys WHERE id IN (${dead})`,
      `DELETE FROM idempotency_keys WHERE created_at < ${now - DAY}`,
      `DELETE FROM key_events WHERE at < ${now - 90 * DAY}`,
      `DELETE FROM key_warnings WHERE until < ${now}`,
    ])
      driver.dbs[index].exec(sql);
  }

  /** `driver`, with the cron run in database `index` before its first call (for a whole run: during it). */
  const cronFirst = (driver, index) => {
    let ran = false;
    return {
      ...driver,
      async run(i, statements) {
        if (!ran) cron(driver, index);
        ran = true;
        return driver.run(i, statements);
      },
    };
  };

  const contents = async (driver, index) => {
    const [api_keys, key_events, key_usage] = await driver.run(index, [
      "SELECT * FROM api_keys WHERE owner_id = 'checked' ORDER BY id",
      "SELECT * FROM key_events WHERE owner_id = 'checked' ORDER BY id",
      "SELECT * FROM key_usage ORDER BY key_id",
    ]);
    return { api_keys, key_events, key_usage };
  };
  const empty = { api_keys: [], key_events: [], key_usage: [] };
  /** The rows without the dead key and its usage count: the purge's due. */
  const withoutDead = (rows, dead) => ({
    api_keys: rows.api_keys.filter((row) => row.id !== dead),
    key_events: rows.key_events,
    key_usage: rows.key_usage.filter((row) => row.key_id !== dead),
  });
  const placeIn = async (driver, bucket) =>
    (
      await driver.run(0, [`SELECT shard, moving_since IS NOT NULL AS moving FROM shard_map WHERE bucket = ${bucket}`])
    )[0];
  /** The move ended in database `shard`, holding every row but the dead key's; no other database holds any. */
  async function endedIn(driver, bucket, shard, original, dead) {
    assert.deepEqual(await placeIn(driver, bucket), [{ shard, moving: 0 }], "writes are accepted again");
    const rows = await contents(driver, shard);
    assert.deepEqual(rows, withoutDead(original, dead), "nothing live is lost, the dead key is gone");
    assert.equal(rows.api_keys.length, 2, "the live key and the one revoked a day ago stay");
    for (const i of [0, 1, 2].filter((i) => i !== shard)) assert.deepEqual(await contents(driver, i), empty);
  }

  it("a purge in the target after the copy: the drain drops the dead key the target lacks, and the move completes", async () => {
    const { driver, bucket, ids } = await withDeadKey();
    const original = await contents(driver, 0);
    const after = (step) => step === "copy" && cron(driver, 2);
    const output = await run3(driver, ["--bucket", String(bucket), "--to", "2", ...purging], after);
    assert.match(output, /dropped 1 key\(s\) database 0 holds and database 2 lacks: revoked or expired before /);
    assert.match(output, /moved to database 2/);
    await endedIn(driver, bucket, 2, original, ids.dead);
  });

  it("a purge in the source after the copy: the drain deletes the dead key from the target too", async () => {
    const { driver, bucket, ids } = await withDeadKey();
    const original = await contents(driver, 0);
    const after = (step) => step === "copy" && cron(driver, 0);
    const output = await run3(driver, ["--bucket", String(bucket), "--to", "2", ...purging], after);
    assert.match(output, /dropped 1 key\(s\) database 2 holds and database 0 lacks/);
    await endedIn(driver, bucket, 2, original, ids.dead);
  });

  it("a purge in the target between the copy and its check: the check leaves out what the cron deleted", async () => {
    const { driver, bucket, ids } = await withDeadKey();
    const original = await contents(driver, 0);
    // The cron runs in the target once the copy is written, before it is read back.
    let written = false;
    const racing = {
      ...driver,
      async run(index, statements) {
        if (index === 2 && written) {
          cron(driver, 2);
          written = false;
        }
        if (index === 2 && statements.some((sql) => sql.startsWith("INSERT INTO api_keys"))) written = true;
        return driver.run(index, statements);
      },
    };
    const output = await run3(racing, ["--bucket", String(bucket), "--to", "2", ...purging]);
    for (const table of ["api_keys", "key_usage", "key_events", "key_warnings", "idempotency_keys"])
      assert.match(
        output,
        new RegExp(`copied ${table}: \\d+ rows, contents match but for \\d+ row\\(s\\) the Worker's cron`),
      );
    assert.match(output, /copied api_keys: 3 rows, contents match but for 1 row/);
    assert.match(output, /dropped 1 key\(s\) database 0 holds and database 2 lacks/);
    await endedIn(driver, bucket, 2, original, ids.dead);
  });

  it("a purge while a move stopped after the flip: the re-run drains, drops the dead key and completes", async () => {
    const { driver, bucket, ids } = await withDeadKey();
    const original = await contents(driver, 0);
    const command = ["--bucket", String(bucket), "--to", "2", ...purging];
    await assert.rejects(run3(driver, command, stopAt("flip")), isStopped("flip"));
    cron(driver, 2);
    assert.match(await run3(driver, command), /resuming[^]*dropped 1 key\(s\) database 0 holds and database 2 lacks/);
    await endedIn(driver, bucket, 2, original, ids.dead);
  });

  for (const [where, dropped] of [
    [0, /dropped 1 key\(s\) database 2 holds and database 0 lacks/],
    [2, /dropped 1 key\(s\) database 0 holds and database 2 lacks/],
  ]) {
    it(`a purge in database ${where} during an --abort before the flip: the bucket stays in database 0 without the dead key`, async () => {
      const { driver, bucket, ids } = await withDeadKey();
      const original = await contents(driver, 0);
      await assert.rejects(
        run3(driver, ["--bucket", String(bucket), "--to", "2", ...purging], stopAt("copy")),
        isStopped("copy"),
      );
      const output = await run3(cronFirst(driver, where), ["--bucket", String(bucket), "--abort", ...purging]);
      assert.match(output, dropped);
      assert.match(output, /move ended by --abort, it stays in database 0/);
      await endedIn(driver, bucket, 0, original, ids.dead);
    });
  }

  for (const [missing, options, why] of [
    ["live", purging, "a live key"],
    ["recent", purging, "a key revoked a day ago (inside PURGE_AFTER_DAYS 30)"],
    ["dead", [], "a long-dead key while the purge is off (wrangler.toml's PURGE_AFTER_DAYS is empty)"],
  ]) {
    it(`${why} the target lacks still stops the move, writes refused, nothing deleted`, async () => {
      const { driver, bucket, ids } = await withDeadKey();
      const original = await contents(driver, 0);
      const command = ["--bucket", String(bucket), "--to", "2", ...options];
      await assert.rejects(run3(driver, command, stopAt("flip")), isStopped("flip"));
      driver.dbs[2].exec(`DELETE FROM api_keys WHERE id = '${ids[missing]}'`);
      await assert.rejects(run3(driver, command), /database 0 has api_keys rows database 2 lacks; writes stay refused/);
      assert.deepEqual(await placeIn(driver, bucket), [{ shard: 2, moving: 1 }], "writes stay refused");
      assert.deepEqual(await contents(driver, 0), original, "the source keeps every row");
      assert.equal((await contents(driver, 2)).api_keys.length, 2, "nothing is dropped from the target");
    });
  }
});

describe("the purge's settings (wrangler.toml's vars, --purge-after-days)", () => {
  const settingsOf = (toml, args) => cronSettings(toml, parseArgs(["--bucket", "1", "--to", "1", ...args]));

  it("reads PURGE_AFTER_DAYS of the environment as the Worker does; the option overrides it", () => {
    const toml = readFileSync(`${root}wrangler.toml`, "utf8");
    assert.deepEqual(settingsOf(toml, []), { purgeAfterDays: null, auditRetentionDays: 90, errors: [] }, "empty: off");
    assert.equal(settingsOf(toml, ["--env", "staging"]).purgeAfterDays, 30);
    assert.equal(settingsOf(toml, ["--env", "production"]).purgeAfterDays, 90);
    assert.equal(settingsOf(toml, ["--env", "production", "--purge-after-days", "7"]).purgeAfterDays, 7);
    assert.equal(settingsOf(toml, ["--env", "production", "--purge-after-days", "off"]).purgeAfterDays, null);
    for (const bad of ["0", "3651", "1.5", "soon", ""])
      assert.throws(() => parseArgs(["--bucket", "1", "--to", "1", "--purge-after-days", bad]), /whole number/);

    const sample = [
      "[vars]",
      '# PURGE_AFTER_DAYS = "5"',
      'PURGE_AFTER_DAYS = " 12 "',
      'AUDIT_RETENTION_DAYS = "30"',
      "[env.a]",
      'name = "a"',
      "[env.a.vars]",
      'PURGE_AFTER_DAYS = "3"',
      "[env.b]",
      'vars = { KEY_PREFIX = "b", PURGE_AFTER_DAYS = "0" }',
      "[env.c]",
      'vars = { KEY_PREFIX = "c" }',
    ].join("\n");
    assert.equal(tomlVars(sample).PURGE_AFTER_DAYS, " 12 ", "a comment is no setting");
    assert.deepEqual(tomlVars(sample, "b"), { KEY_PREFIX: "b", PURGE_AFTER_DAYS: "0" });
    assert.deepEqual(settingsOf(sample, []), { purgeAfterDays: 12, auditRetentionDays: 30, errors: [] });
    assert.equal(settingsOf(sample, ["--env", "a"]).purgeAfterDays, 3);
    assert.deepEqual(settingsOf(sample, ["--env", "b"]), {
      purgeAfterDays: null,
      auditRetentionDays: 90,
      errors: ["PURGE_AFTER_DAYS must be a whole number of days from 1 to 3650; keys are not purged"],
    });
    assert.equal(settingsOf(sample, ["--env", "c"]).purgeAfterDays, null, "an environment inherits no vars");
  });
});
