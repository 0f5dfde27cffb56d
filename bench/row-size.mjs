// node bench/row-size.mjs [rows] [--smoke]  (Node 22: node_modules/.bin/node)
// Measures what one key costs in D1: applies migrations/ to an in-memory SQLite database (D1 is
// SQLite, 4 KB pages), inserts typical rows and reads the bytes of the table and of each index from
// SQLite's dbstat table. The result is quoted in docs/scaling.md.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { root } from "../scripts/dev-config.mjs";
import { writeCosts } from "./results.mjs";

/** --smoke: 1,000 rows, nothing written (CI: the script still runs). */
const smoke = process.argv.includes("--smoke");
const rowsArg = process.argv.slice(2).find((a) => /^\d+$/.test(a));
const rows = smoke ? 1000 : Number(rowsArg ?? 100_000);
const MIGRATIONS = `${root}migrations/`;

function measure(metadata) {
  const db = new DatabaseSync(":memory:");
  db.exec("PRAGMA page_size = 4096");
  for (const file of readdirSync(MIGRATIONS)
    .filter((f) => f.endsWith(".sql"))
    .sort()) {
    db.exec(readFileSync(MIGRATIONS + file, "utf8"));
  }
  const insert = db.prepare(
    `INSERT INTO api_keys (id, hash, start, name, owner_type, owner_id, scopes, resources, created_by, created_at,
       expires_at, revoked_at, last_used_at, metadata) VALUES (?, ?, ?, ?, 'user', ?, ?, NULL, ?, ?, NULL, ?, ?, ?)`,
  );
  const start = Date.now();
  db.exec("BEGIN");
  for (let i = 0; i < rows; i++) {
    const owner = randomUUID(); // IdP subjects are often this long or longer
    const at = start + i;
    insert.run(
      randomUUID(),
      createHash("sha256").update(randomBytes(32)).digest("hex"),
      `lk_${randomBytes(6).toString("base64url").slice(0, 6)}`,
      "production ingest key",
      owner,
      '["models:invoke","keys:read"]',
      `user:${owner}`,
      at,
      i % 100 === 0 ? at + 1 : null, // 1% revoked, so the partial index holds something
      at + 60_000,
      metadata,
    );
  }
  db.exec("COMMIT");
  const sizes = () =>
    db.prepare("SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC").all();
  const grown = sizes(); // as inserts leave it: random hashes and owners split index pages
  db.exec("VACUUM");
  const packed = sizes();
  db.close();
  const total = (parts) => parts.reduce((sum, p) => sum + p.bytes, 0);
  return { parts: grown, total: total(grown), packed: total(packed) };
}

const perKeyBytes = {};
for (const [label, metadata] of [
  ["no metadata", null],
  ["200 bytes of metadata", JSON.stringify({ team: "ingest", note: "x".repeat(170) })],
]) {
  const { parts, total, packed } = measure(metadata);
  const perKey = total / rows;
  perKeyBytes[label] = Math.round(perKey);
  console.log(
    `\n${rows.toLocaleString("en")} keys, ${label}: ${perKey.toFixed(0)} bytes per key in all (${(packed / rows).toFixed(0)} after VACUUM)`,
  );
  for (const p of parts) console.log(`  ${p.name.padEnd(32)} ${(p.bytes / rows).toFixed(0).padStart(5)} bytes per key`);
  console.log(
    `  => ${(2 ** 30 / perKey / 1e6).toFixed(2)} million keys per GB; ${((10 * 2 ** 30) / perKey / 1e6).toFixed(1)} million in a 10 GB database`,
  );
}
if (!smoke && rows >= 100_000) {
  writeCosts(
    "rowSize",
    {
      source: "bench/row-size.mjs: bytes per key in D1 (SQLite dbstat, table and indexes, as inserted)",
      bytesPerKey: perKeyBytes["no metadata"],
      bytesPerKeyWithMetadata: perKeyBytes["200 bytes of metadata"],
    },
    `node bench/row-size.mjs ${rows}`,
  );
}
