// npm run move-bucket -- --bucket N --to K [--local | --remote] [--env staging|production] [--dry-run]
//                        [--persist-to DIR] [--shards N] [--purge-after-days N|off]
// npm run move-bucket -- --bucket N --abort [...]      gives up a move in progress (docs/scaling.md)
// npm run move-bucket -- --pin-all 0 [...]             writes a shard_map row for every bucket without one
//
// Moves one bucket of sharding by owner (docs/scaling.md) to database K, safely under traffic:
//   1. mark: the bucket's shard_map row gets moving_since (writes to its owners answer 503 Retry-After),
//      refused when another bucket is being moved; then waits out the map's lifetime and D1's timeout.
//   2. copy: every row of the bucket's owners (api_keys, key_events, owner_limits, owner_events, their
//      keys' idempotency_keys and key_warnings (its keys' and owners'), and key_usage of the bucket's key ids) is copied
//      to K, replacing whatever K held of them; K's rows are read back and compared with the source's
//      (count and SHA-256 of each table's rows); the keys whose hash carries another bucket are claimed
//      in key_homes. A mismatch stops here, writes still refused.
//   3. flip: the row's shard becomes K (moving_since restamped: writes stay refused); waits again, so
//      every isolate reads the bucket from K.
//   4. drain: every other database's rows of the bucket are checked against K (rows written there by
//      unguarded paths since the copy are added; last use is merged), then deleted; then moving_since is
//      cleared and writes go to K.
// Resumable: re-run the same command after a crash at any step and it continues from the map's state
// (before the flip it copies again; after it, it drains again). --abort before the flip keeps the
// bucket where it was (drains the partial copy); after the flip it finishes the move.
// The hourly cron runs in every database while a bucket moves (nothing pauses it): the purge deletes keys
// revoked or expired more than PURGE_AFTER_DAYS ago with their usage counts, and Idempotency-Key records
// older than a day; the retention deletes audit events older than AUDIT_RETENTION_DAYS; the warning
// ledger loses rows past their `until`. So one database may lack rows the other still has, and the move
// judges such a row by the Worker's own rule (src/keys/purge-horizon.ts, with the settings of the
// environment's vars in wrangler.toml, or --purge-after-days; scripts/move-bucket-cron.mjs), at the time
// it compares:
//   - the copy's check (and a resumed copy's): rows the source had that the target lost between the
//     write and the read-back are left out of the comparison when the cron may have deleted them: a key
//     dead past the purge's horizon with its usage counts (and its warnings and Idempotency-Key records,
//     which the target's read finds through the key), an expired Idempotency-Key record, an event past
//     retention, a warning past its `until`. Any other difference stops the move, as before.
//   - the drain (a move's, a resumed move's, and --abort's, which drains the other way): a key row one
//     database has and the other lacks is dropped when it is dead past the purge's horizon: deleted where
//     it remains, with its usage counts, never carried over (nor its usage counts, warnings or
//     Idempotency-Key records), and the drop logged with a count. A key the target lacks that is live,
//     or dead more recently, or any key when the purge is off, still stops the move; a live key only the
//     target has stays (a drain cut short leaves the source without rows the target keeps).
//   - a purge during the drain's own reads and writes deletes only rows the drain deletes or drops.
//   - a source read in several calls (remote, large buckets) reads usage counts before keys: a purge
//     between the two may copy a dead key's counts without the key, counts no key reports.
// Judged by this machine's clock: the purge deleted only what was dead past its horizon when it ran,
// earlier, so it is dead past the horizon now too.
// Tests drive `main` in-process (scripts/move-bucket.test.mjs): its second argument can stop a move
// after a step, as a crash would, and replace the databases and the waits; the command never passes it.
// Local (default): the state `npm start` uses (.wrangler/state, or --persist-to), opened in-process with
// Miniflare. Remote: `wrangler d1 execute --remote` on the databases bound as DB, DB_1, ... (of --env).
// Never prints a key or a hash: only counts and whether the tables match.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { readPurgeAfterDays } from "../src/keys/purge-horizon.ts";
import { NO_PURGE, cronMayDelete, cronSettings, deadMissing, horizonsAt, ofDropped } from "./move-bucket-cron.mjs";

const BUCKETS = 256;
/** The map's lifetime in an isolate (src/store/shards.ts MAP_TTL_MS) + D1's timeout + a second. */
export const WAIT_MS = 5000 + 5000 + 1000;
const MAX_STATEMENT = 80_000;

const root = new URL("..", import.meta.url).pathname;

export function parseArgs(argv) {
  const opts = { mode: "local", env: null, dryRun: false, persistTo: null, shards: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    const int = (name) => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 0 || n >= BUCKETS)
        throw new Error(`${name} must be a whole number from 0 to 255`);
      return n;
    };
    if (arg === "--bucket") opts.bucket = int("--bucket");
    else if (arg === "--to") opts.to = int("--to");
    else if (arg === "--pin-all") opts.pinAll = int("--pin-all");
    else if (arg === "--shards") opts.shards = int("--shards") || 1;
    else if (arg === "--abort") opts.abort = true;
    else if (arg === "--local") opts.mode = "local";
    else if (arg === "--remote") opts.mode = "remote";
    else if (arg === "--env") opts.env = value();
    else if (arg === "--persist-to") opts.persistTo = value();
    else if (arg === "--dry-run") opts.dryRun = true;
    else if (arg === "--purge-after-days") {
      const v = value();
      const read = readPurgeAfterDays(v);
      if (v !== "off" && read.days === null)
        throw new Error("--purge-after-days must be a whole number of days from 1 to 3650, or off");
      opts.purgeAfterDays = read.days;
    } else throw new Error(`unknown option ${arg}`);
  }
  if (opts.pinAll === undefined && opts.bucket === undefined)
    throw new Error("--bucket N (or --pin-all K) is required");
  if (opts.pinAll === undefined && !opts.abort && opts.to === undefined)
    throw new Error("--to K (or --abort) is required");
  return opts;
}

/** The D1 bindings DB, DB_1, ... of wrangler.toml's top level or of `[env.NAME]`, with their ids. */
export function databasesOf(toml, env) {
  let section;
  if (env) {
    const start = toml.indexOf(`[env.${env}]`);
    if (start === -1) throw new Error(`wrangler.toml has no [env.${env}]`);
    const next = toml.indexOf("\n[env.", start + 1);
    section = toml.slice(start, next === -1 ? undefined : next);
  } else {
    const first = toml.indexOf("\n[env.");
    section = first === -1 ? toml : toml.slice(0, first);
  }
  const found = new Map();
  const pattern = /binding\s*=\s*"(DB(?:_(\d+))?)"[^\n]*?\n?[^[]*?database_id\s*=\s*"([^"]+)"/g;
  for (const match of section.matchAll(pattern)) found.set(Number(match[2] ?? 0), { binding: match[1], id: match[3] });
  const list = [];
  for (let i = 0; found.has(i); i++) list.push(found.get(i));
  if (list.length === 0) throw new Error("wrangler.toml binds no D1 database DB");
  return list;
}

const deadSince = (horizons) =>
  `revoked or expired before ${new Date(horizons.keys).toISOString()} (PURGE_AFTER_DAYS ${horizons.days})`;

/** `DELETE FROM table WHERE column IN (...)` for `ids`, a few hundred at a time. */
function deleteIds(table, column, ids) {
  const out = [];
  for (let i = 0; i < ids.length; i += 500)
    out.push(
      `DELETE FROM ${table} WHERE ${column} IN (${ids
        .slice(i, i + 500)
        .map(literal)
        .join(", ")})`,
    );
  return out;
}

/** SQL literal of a stored value (text, integer, real or NULL). */
export function literal(value) {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error("a stored number is not finite");
    return String(value);
  }
  if (typeof value === "string") return `'${value.replaceAll("'", "''")}'`;
  throw new Error(`a stored value of type ${typeof value} cannot be copied`);
}

/** Hex strings of 64 digits (hashes) are never shown, even inside an error of D1 or wrangler. */
export const redact = (text) => String(text).replace(/[0-9a-f]{64}/gi, "<hash>");

// ---- D1 access: in-process Miniflare on the local state, or wrangler d1 execute --remote ----

export async function localDriver(databases, persistTo) {
  const { Miniflare, convertV4MiniflareOptions } = await import("miniflare");
  const persist = resolve(persistTo ?? join(root, ".wrangler", "state"));
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      script: "export default {}",
      resourcePersistencePath: join(persist, "v3"),
      d1Databases: Object.fromEntries(databases.map((d) => [d.binding, d.id])),
    }),
  );
  const dbs = [];
  for (const d of databases) dbs.push(await mf.getD1Database(d.binding));
  return {
    /** Runs `statements` in database `index` as one batch (one transaction); their result rows. */
    async run(index, statements) {
      if (statements.length === 0) return [];
      const db = dbs[index];
      const results = await db.batch(statements.map((sql) => db.prepare(sql)));
      return results.map((r) => r.results ?? []);
    },
    close: () => mf.dispose(),
  };
}

function remoteDriver(databases, env) {
  const wrangler = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
  return {
    async run(index, statements) {
      if (statements.length === 0) return [];
      const args = [wrangler, "d1", "execute", databases[index].binding, "--remote", "--json"];
      if (env) args.push("--env", env);
      const run = spawnSync(process.execPath, [...args, "--command", statements.join(";\n")], {
        cwd: root,
        encoding: "utf8",
        maxBuffer: 1 << 30,
        env: { ...process.env, CI: "true" },
      });
      if (run.status !== 0) throw new Error(`wrangler d1 execute failed: ${redact(run.stderr || run.stdout)}`);
      return JSON.parse(run.stdout).map((r) => r.results ?? []);
    },
    close: async () => {},
  };
}

/** Runs statements in as many calls as their size needs (remote commands stay under ~100 KB). */
async function runAll(driver, index, statements) {
  const out = [];
  let batch = [];
  let size = 0;
  for (const sql of statements) {
    if (batch.length > 0 && size + sql.length > MAX_STATEMENT) {
      out.push(...(await driver.run(index, batch)));
      batch = [];
      size = 0;
    }
    batch.push(sql);
    size += sql.length;
  }
  out.push(...(await driver.run(index, batch)));
  return out;
}

// ---- What a bucket holds in one database ----

const sha256 = (text) => createHash("sha256").update(text).digest("hex");
export const ownerBucket = (type, id) => parseInt(sha256(`${type}:${id}`).slice(0, 2), 16);

/** Owners chunked so each statement stays small; each chunk a WHERE on (owner_type, owner_id). */
function ownerChunks(owners) {
  const chunks = [];
  for (let i = 0; i < owners.length; i += 300) {
    const chunk = owners.slice(i, i + 300);
    const byType = new Map();
    for (const o of chunk) byType.set(o.type, [...(byType.get(o.type) ?? []), o.id]);
    chunks.push(
      [...byType]
        .map(([type, ids]) => `(owner_type = ${literal(type)} AND owner_id IN (${ids.map(literal).join(", ")}))`)
        .join(" OR "),
    );
  }
  return chunks;
}

/**
 * The tables of a bucket: for each, how its rows are picked (`where` of one owner chunk, or the whole
 * bucket), its identity columns, and how a later row is merged. Order matters for deletes: the rows
 * found through api_keys go before api_keys.
 */
export function bucketTables(bucket) {
  const hex = bucket.toString(16).padStart(2, "0");
  const keysOf = (w) => `SELECT id FROM api_keys WHERE ${w}`;
  return [
    { name: "idempotency_keys", pk: ["caller", "key_hash"], where: (w) => `key_id IN (${keysOf(w)})` },
    {
      name: "key_warnings",
      pk: ["key_id", "warning", "mark"],
      // Its keys' warnings (a chain's credit warnings by its first key's id) and its owners' credit warnings.
      where: (w) =>
        `(key_id IN (${keysOf(w)}) OR key_id IN (SELECT 'owner:' || owner_type || ':' || owner_id FROM owner_limits WHERE ${w}))`,
    },
    { name: "key_usage", pk: ["key_id", "hour", "outcome"], bucketWide: `substr(key_id, 1, 2) = '${hex}'` },
    { name: "key_events", pk: ["id"], where: (w) => w },
    { name: "owner_events", pk: ["id"], where: (w) => w },
    { name: "owner_limits", pk: ["owner_type", "owner_id"], where: (w) => w },
    { name: "api_keys", pk: ["id"], where: (w) => w, merge: ["last_used_at"] },
  ];
}

function selects(tables, chunks) {
  const list = [];
  for (const t of tables) {
    if (t.bucketWide) list.push({ table: t, sql: `SELECT * FROM ${t.name} WHERE ${t.bucketWide}` });
    else for (const w of chunks) list.push({ table: t, sql: `SELECT * FROM ${t.name} WHERE ${t.where(w)}` });
  }
  return list;
}

function deletes(tables, chunks) {
  const list = [];
  for (const t of tables) {
    if (t.bucketWide) list.push(`DELETE FROM ${t.name} WHERE ${t.bucketWide}`);
    else for (const w of chunks) list.push(`DELETE FROM ${t.name} WHERE ${t.where(w)}`);
  }
  return list;
}

/** The bucket's owners in database `index` (any table that names an owner). */
async function ownersIn(driver, index, bucket) {
  const [rows] = await driver.run(index, [
    "SELECT owner_type AS type, owner_id AS id FROM api_keys UNION SELECT owner_type, owner_id FROM key_events " +
      "UNION SELECT owner_type, owner_id FROM owner_limits UNION SELECT owner_type, owner_id FROM owner_events",
  ]);
  return rows.filter((o) => ownerBucket(o.type, o.id) === bucket);
}

/** Every row of the bucket's `owners` in database `index`, by table. */
async function readBucket(driver, index, bucket, owners) {
  const tables = bucketTables(bucket);
  const list = selects(tables, ownerChunks(owners));
  const results = await runAll(
    driver,
    index,
    list.map((s) => s.sql),
  );
  const rows = new Map(tables.map((t) => [t.name, []]));
  list.forEach((s, i) => rows.get(s.table.name).push(...results[i]));
  return rows;
}

const rowKey = (table, row) => JSON.stringify(table.pk.map((c) => row[c]));
const rowText = (row, skip = []) =>
  JSON.stringify(
    Object.keys(row)
      .filter((c) => !skip.includes(c))
      .sort()
      .map((c) => [c, row[c]]),
  );

/** The rows of `rows` that `others` does not hold (same columns, same values). */
function unmatched(rows, others) {
  const held = new Set(others.map((row) => rowText(row)));
  return rows.filter((row) => !held.has(rowText(row)));
}

/** Count and SHA-256 of a table's rows (order-free): what the copy is checked by. */
export function digest(rows) {
  const texts = rows.map((row) => rowText(row)).sort();
  return { count: rows.length, sha: sha256(texts.join("\n")) };
}

function inserts(name, rows, verb = "INSERT") {
  const out = [];
  let values = [];
  let size = 0;
  const flush = () => {
    if (values.length === 0) return;
    const columns = Object.keys(rows[0]);
    out.push(`${verb} INTO ${name} (${columns.join(", ")}) VALUES ${values.join(", ")}`);
    values = [];
    size = 0;
  };
  for (const row of rows) {
    const tuple = `(${Object.values(row).map(literal).join(", ")})`;
    if (size + tuple.length > MAX_STATEMENT) flush();
    values.push(tuple);
    size += tuple.length;
  }
  flush();
  return out;
}

// ---- The steps ----

const log = (message) => console.log(`move-bucket: ${message}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitSince(since, pause = sleep) {
  const left = since + WAIT_MS - Date.now();
  if (left > 0) {
    log(`waiting ${Math.ceil(left / 1000)} s for every isolate's map (5 s) and D1 calls in flight (5 s)`);
    await pause(left);
  }
}

async function readMap(driver) {
  const [rows] = await driver.run(0, ["SELECT bucket, shard, moving_since FROM shard_map ORDER BY bucket"]);
  return rows;
}

function placeOf(map, bucket, shards) {
  const row = map.find((r) => r.bucket === bucket);
  return row ?? { bucket, shard: bucket % shards, moving_since: null, implicit: true };
}

/**
 * Step 2: replaces the target's rows of the bucket by the source's, then checks every table: the
 * target must hold every row read from the source, but those the cron may have deleted from it since.
 */
export async function copy(driver, bucket, source, target, settings = NO_PURGE) {
  const owners = await ownersIn(driver, source, bucket);
  const tables = bucketTables(bucket);
  const rows = await readBucket(driver, source, bucket, owners);
  const chunks = ownerChunks(owners);
  const statements = [...deletes(tables, chunks)];
  for (const t of [...tables].reverse()) statements.push(...inserts(t.name, rows.get(t.name)));
  if (owners.length > 0) {
    // Old events copied are not announced to webhooks again (every database has an outbox: webhook_relay).
    for (const w of chunks) {
      statements.push(
        `DELETE FROM webhook_outbox WHERE source = 'key' AND event_id IN (SELECT id FROM key_events WHERE ${w})`,
        `DELETE FROM webhook_outbox WHERE source = 'owner' AND event_id IN (SELECT id FROM owner_events WHERE ${w})`,
      );
    }
  }
  await runAll(driver, target, statements);
  const copied = await readBucket(driver, target, bucket, owners);
  // After the read-back: a purge that ran before it ran earlier, with an older horizon.
  const horizons = horizonsAt(settings, Date.now());
  const gone = new Set(deadMissing(rows.get("api_keys"), copied.get("api_keys"), horizons));
  for (const t of tables) {
    const a = digest(rows.get(t.name));
    const b = digest(copied.get(t.name));
    if (a.count === b.count && a.sha === b.sha) {
      log(`copied ${t.name}: ${a.count} rows, contents match`);
      continue;
    }
    const missing = unmatched(rows.get(t.name), copied.get(t.name));
    const purged = missing.filter((row) => cronMayDelete(t.name, row, horizons, gone));
    if (purged.length < missing.length || unmatched(copied.get(t.name), rows.get(t.name)).length > 0) {
      throw new Error(
        `bucket ${bucket}: ${t.name} differs after the copy (${a.count} rows in ${source}, ${b.count} in ${target}); writes stay refused, re-run to copy again`,
      );
    }
    log(
      `copied ${t.name}: ${a.count} rows, contents match but for ${purged.length} row(s) the Worker's cron deleted from database ${target} since (past its horizon)`,
    );
  }
  return { owners, rows };
}

/** Keys whose hash carries another bucket are found through key_homes once the bucket leaves its database. */
async function claimHomes(driver, bucket, keys) {
  const hashes = keys.map((k) => k.hash).filter((h) => parseInt(h.slice(0, 2), 16) !== bucket);
  if (hashes.length === 0) return;
  const statements = [];
  for (let i = 0; i < hashes.length; i += 500) {
    const chunk = hashes.slice(i, i + 500);
    statements.push(
      `INSERT INTO key_homes (hash, bucket) VALUES ${chunk.map((h) => `(${literal(h)}, ${bucket})`).join(", ")} ON CONFLICT (hash) DO NOTHING`,
    );
    statements.push(
      `SELECT COUNT(*) AS n FROM key_homes WHERE bucket != ${bucket} AND hash IN (${chunk.map(literal).join(", ")})`,
    );
  }
  const results = await runAll(driver, 0, statements);
  const conflicts = results.filter((_, i) => i % 2 === 1).reduce((sum, r) => sum + (r[0]?.n ?? 0), 0);
  if (conflicts > 0)
    throw new Error(
      `bucket ${bucket}: ${conflicts} key hash(es) are claimed by another bucket in key_homes; writes stay refused`,
    );
  log(`key_homes: ${hashes.length} key(s) whose hash carries another bucket are claimed for bucket ${bucket}`);
}

/**
 * Step 4 for one other database: its rows of the bucket are compared with the target's; rows the target
 * lacks are added (append-only tables), last use merged; a key one side lacks that the purge deletes is
 * dropped from both (with its usage counts); any other difference stops the move. Then they are deleted.
 */
export async function drain(driver, bucket, from, target, settings = NO_PURGE) {
  const owners = await ownersIn(driver, from, bucket);
  const tables = bucketTables(bucket);
  const hex = bucket.toString(16).padStart(2, "0");
  const [usageLeft] = await driver.run(from, [
    `SELECT COUNT(*) AS n FROM key_usage WHERE substr(key_id, 1, 2) = '${hex}'`,
  ]);
  if (owners.length === 0 && usageLeft[0].n === 0) return;
  const theirs = await readBucket(driver, from, bucket, owners);
  const ours = await readBucket(driver, target, bucket, owners);
  // Keys one side lacks, dead past the purge's horizon: the purge deleted them there and deletes them here.
  const horizons = horizonsAt(settings, Date.now());
  const onlyTheirs = deadMissing(theirs.get("api_keys"), ours.get("api_keys"), horizons);
  const onlyOurs = deadMissing(ours.get("api_keys"), theirs.get("api_keys"), horizons);
  const dropped = new Set([...onlyTheirs, ...onlyOurs]);
  const statements = [];
  for (const t of tables) {
    const have = new Map(ours.get(t.name).map((row) => [rowKey(t, row), row]));
    const missing = [];
    for (const row of theirs.get(t.name)) {
      if (ofDropped(t.name, row, dropped)) continue;
      const mine = have.get(rowKey(t, row));
      if (!mine) {
        if (t.name === "api_keys" || t.name === "owner_limits") {
          const unknown =
            t.name === "api_keys" && settings.purgeAfterDays === null
              ? " (the purge is off: set PURGE_AFTER_DAYS in wrangler.toml or pass --purge-after-days N if the Worker purges)"
              : "";
          throw new Error(
            `bucket ${bucket}: database ${from} has ${t.name} rows database ${target} lacks; writes stay refused (copy again: --abort before the flip)${unknown}`,
          );
        }
        missing.push(row);
      } else if (rowText(mine, t.merge) !== rowText(row, t.merge)) {
        throw new Error(
          `bucket ${bucket}: ${t.name} rows differ between databases ${from} and ${target}; writes stay refused`,
        );
      } else if (t.merge && (row.last_used_at ?? 0) > (mine.last_used_at ?? 0)) {
        statements.push(
          `UPDATE api_keys SET last_used_at = ${literal(row.last_used_at)} WHERE id = ${literal(row.id)}`,
        );
      }
    }
    statements.push(...inserts(t.name, missing, "INSERT OR IGNORE"));
    if (missing.length > 0) log(`added ${missing.length} ${t.name} row(s) written to database ${from} after the copy`);
  }
  // Dropped keys go from the target with their usage counts (the source's rows go below with the rest).
  statements.push(...deleteIds("key_usage", "key_id", [...dropped]), ...deleteIds("api_keys", "id", onlyOurs));
  if (onlyTheirs.length > 0)
    log(
      `dropped ${onlyTheirs.length} key(s) database ${from} holds and database ${target} lacks: ${deadSince(horizons)}`,
    );
  if (onlyOurs.length > 0)
    log(
      `dropped ${onlyOurs.length} key(s) database ${target} holds and database ${from} lacks: ${deadSince(horizons)}`,
    );
  await runAll(driver, target, statements);
  const chunks = ownerChunks(owners);
  await runAll(driver, from, deletes(tables, chunks));
  const left = await readBucket(driver, from, bucket, owners);
  const remaining = [...left.values()].reduce((sum, rows) => sum + rows.length, 0);
  if (remaining > 0)
    throw new Error(`bucket ${bucket}: ${remaining} rows remain in database ${from}; writes stay refused, re-run`);
  log(`deleted the bucket's rows from database ${from} (${owners.length} owner(s))`);
}

async function pinAll(driver, shard, dryRun) {
  const map = await readMap(driver);
  const free = Array.from({ length: BUCKETS }, (_, b) => b).filter((b) => !map.some((r) => r.bucket === b));
  log(
    `${free.length} bucket(s) have no shard_map row; ${dryRun ? "would place" : "placing"} them in database ${shard}`,
  );
  if (dryRun || free.length === 0) return;
  await driver.run(0, [
    `INSERT INTO shard_map (bucket, shard, moving_since) VALUES ${free.map((b) => `(${b}, ${shard}, NULL)`).join(", ")} ON CONFLICT (bucket) DO NOTHING`,
  ]);
  log("done: set D1_SHARDS now; every existing owner stays in database " + shard);
}

/**
 * Runs the command `argv`. `hooks` are for tests only (the command passes none): `after(step)` is
 * awaited once each step is done ("mark", "copy" (with its key_homes claims), "flip", "drain" (before
 * writes reopen)), so one that throws stops the move there as a crash would; `driver` ({ count, run,
 * close }) replaces the databases of wrangler.toml; `sleep(ms)` replaces the waits.
 */
export async function main(argv, hooks = {}) {
  const { after = () => {}, sleep: pause = sleep } = hooks;
  const opts = parseArgs(argv);
  const toml = readFileSync(join(root, "wrangler.toml"), "utf8");
  const databases = hooks.driver ? null : databasesOf(toml, opts.env);
  const bound = hooks.driver ? hooks.driver.count : databases.length;
  const shards = opts.shards ?? bound;
  if (shards > bound) throw new Error(`--shards ${shards}, but wrangler.toml binds ${bound} database(s)`);
  for (const [name, v] of [
    ["--to", opts.to],
    ["--pin-all", opts.pinAll],
  ]) {
    if (v !== undefined && v >= shards)
      throw new Error(`${name} ${v}: there are ${shards} databases (0 to ${shards - 1})`);
  }
  const driver =
    hooks.driver ??
    (opts.mode === "remote" ? remoteDriver(databases, opts.env) : await localDriver(databases, opts.persistTo));
  try {
    if (opts.pinAll !== undefined) return await pinAll(driver, opts.pinAll, opts.dryRun);
    const { bucket } = opts;
    const settings = cronSettings(toml, opts);
    for (const error of settings.errors) log(`wrangler.toml: ${error} (as the Worker reads it)`);
    let map = await readMap(driver);
    const other = map.find((r) => r.moving_since !== null && r.bucket !== bucket);
    if (other)
      throw new Error(`bucket ${other.bucket} is being moved: finish it (re-run its move) or --abort it first`);
    let place = placeOf(map, bucket, shards);
    const target = opts.abort ? place.shard : opts.to;
    if (opts.abort && place.moving_since === null) return log(`bucket ${bucket} is not being moved; nothing to abort`);
    if (place.moving_since === null && place.shard === target)
      return log(`bucket ${bucket} is already in database ${target}`);
    if (opts.dryRun) {
      const owners = await ownersIn(driver, place.shard, bucket);
      const rows = await readBucket(driver, place.shard, bucket, owners);
      log(
        `bucket ${bucket}: in database ${place.shard}${place.moving_since ? " (being moved)" : ""}, ${owners.length} owner(s)`,
      );
      for (const [name, list] of rows) log(`  ${name}: ${list.length} rows`);
      log(
        `would move it to database ${target}: writes to its owners refused for about ${Math.round((2 * WAIT_MS) / 1000)} s plus the copy`,
      );
      log(
        settings.purgeAfterDays === null
          ? "the purge is off (no PURGE_AFTER_DAYS): a key one database lacks stops the move"
          : `a key one database lacks is dropped if revoked or expired more than ${settings.purgeAfterDays} days ago (PURGE_AFTER_DAYS)`,
      );
      return;
    }
    const resumed = place.moving_since !== null;
    const source = place.shard;
    if (!resumed) {
      // Step 1: mark (only while no other bucket is being moved).
      const now = Date.now();
      await driver.run(0, [
        `INSERT INTO shard_map (bucket, shard, moving_since) SELECT ${bucket}, ${place.shard}, ${now} ` +
          `WHERE NOT EXISTS (SELECT 1 FROM shard_map WHERE moving_since IS NOT NULL) ` +
          `ON CONFLICT (bucket) DO UPDATE SET moving_since = excluded.moving_since WHERE shard_map.moving_since IS NULL`,
      ]);
      map = await readMap(driver);
      place = placeOf(map, bucket, shards);
      if (place.moving_since !== now) throw new Error("another move started at the same time; nothing done");
      log(`bucket ${bucket}: writes to its owners are refused from now until the move ends`);
      await after("mark");
    } else {
      log(`bucket ${bucket} is being moved (since ${new Date(place.moving_since).toISOString()}): resuming`);
    }
    if (place.shard !== target) {
      await waitSince(place.moving_since, pause);
      // A copy left by an earlier attempt elsewhere is removed first (never served: not flipped).
      if (resumed)
        for (let i = 0; i < shards; i++) if (i !== source && i !== target) await drainAway(driver, bucket, i);
      const { rows } = await copy(driver, bucket, source, target, settings);
      await claimHomes(driver, bucket, rows.get("api_keys"));
      await after("copy");
      // Step 3: flip; writes stay refused until every isolate reads the bucket from the target.
      const flippedAt = Date.now();
      await driver.run(0, [
        `UPDATE shard_map SET shard = ${target}, moving_since = ${flippedAt} WHERE bucket = ${bucket} AND shard = ${source} AND moving_since IS NOT NULL`,
      ]);
      place = placeOf(await readMap(driver), bucket, shards);
      if (place.shard !== target) throw new Error(`bucket ${bucket}: the map changed under the move; re-run`);
      log(`bucket ${bucket}: the map now places it in database ${target}; writes still refused`);
      await after("flip");
    }
    // Step 4: drain every other database into the target, then reopen writes.
    await waitSince(place.moving_since, pause);
    // A resumed move drains every database; a fresh one knows its source.
    const others = resumed ? Array.from({ length: shards }, (_, i) => i) : [source];
    for (const i of others) if (i !== target) await drain(driver, bucket, i, target, settings);
    await after("drain");
    await driver.run(0, [`UPDATE shard_map SET moving_since = NULL WHERE bucket = ${bucket} AND shard = ${target}`]);
    // An abort cannot tell from the map whether the flip happened: it keeps the map's place either way.
    const where = opts.abort ? "move ended by --abort, it stays in" : "moved to";
    log(`bucket ${bucket}: ${where} database ${target} (where the map places it); writes accepted again`);
  } finally {
    await driver.close();
  }
}

/** Deletes a partial copy of the bucket from a database that never served it. */
async function drainAway(driver, bucket, index) {
  const owners = await ownersIn(driver, index, bucket);
  const hex = bucket.toString(16).padStart(2, "0");
  const [usage] = await driver.run(index, [
    `SELECT COUNT(*) AS n FROM key_usage WHERE substr(key_id, 1, 2) = '${hex}'`,
  ]);
  if (owners.length === 0 && usage[0].n === 0) return;
  await runAll(driver, index, deletes(bucketTables(bucket), ownerChunks(owners)));
  log(`removed an earlier partial copy from database ${index}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main(process.argv.slice(2)).catch((error) => {
    console.error(`move-bucket: ${redact(error?.message ?? error)}`);
    process.exit(1);
  });
}
