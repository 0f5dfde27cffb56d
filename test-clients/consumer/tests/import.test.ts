/**
 * `latchkey import` against a stand-in for POST /v1/keys/import that implements the import contract
 * (COMMON.md: 1..100 items, 422 naming keys.<i>.<field> and importing nothing, 200 with imported /
 * conflicts / results in input order). latchkey serves the route once the dialects branch lands; the
 * end-to-end run against latchkey itself is then one more test here.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import type { ImportItem, ImportResult } from "@latchkey/client";
import { cli } from "./helpers.js";

const stored = new Set<string>();
const batches: ImportItem[][] = [];
let base = "";
let server: ReturnType<typeof createServer>;

const HASH = /^[0-9a-f]{64}$/;
const FIELDS = new Set([
  "hash",
  "name",
  "start",
  "owner",
  "scopes",
  "resources",
  "expires_at",
  "created_at",
  "metadata",
  "format",
]);

/** The contract's validation, enough of it to refuse what the CLI must not send unchecked. */
function invalid(items: ImportItem[]): Record<string, string[]> | null {
  const errors: Record<string, string[]> = {};
  if (items.length < 1 || items.length > 100) errors.keys = ["Must hold 1 to 100 items"];
  items.forEach((item, i) => {
    if (!HASH.test(item.hash)) errors[`keys.${i}.hash`] = ["Must be 64 lowercase hex digits"];
    if (typeof item.name !== "string" || item.name.trim() === "") errors[`keys.${i}.name`] = ["Required"];
    (item.scopes ?? []).forEach((scope, j) => {
      if (!/^[a-z*][a-z0-9:*_-]*$/.test(scope)) errors[`keys.${i}.scopes.${j}`] = ["Must be lowercase resource:action"];
    });
    for (const field of Object.keys(item)) if (!FIELDS.has(field)) errors[`keys.${i}.${field}`] = ["Unknown field"];
  });
  return Object.keys(errors).length ? errors : null;
}

before(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      const send = (status: number, value: unknown, type = "application/json") => {
        res.writeHead(status, { "Content-Type": type });
        res.end(JSON.stringify(value));
      };
      if (req.method !== "POST" || req.url !== "/v1/keys/import") return send(404, { status: 404, title: "Not Found" });
      if (req.headers.authorization !== "Bearer header.payload.signature")
        return send(401, { type: "about:blank", title: "Unauthorized", status: 401 }, "application/problem+json");
      const items = (JSON.parse(body) as { keys: ImportItem[] }).keys;
      const errors = invalid(items);
      if (errors) {
        const problem = { type: "about:blank", title: "Unprocessable Content", status: 422, errors };
        return send(422, problem, "application/problem+json");
      }
      batches.push(items);
      const results: ImportResult["results"] = items.map((item) => {
        const conflict = stored.has(item.hash);
        stored.add(item.hash);
        return {
          hash: item.hash.slice(0, 12),
          status: conflict ? "conflict" : "imported",
          id: conflict ? null : crypto.randomUUID(),
        };
      });
      const imported = results.filter((r) => r.status === "imported").length;
      send(200, { imported, conflicts: results.length - imported, results });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  stored.clear();
  batches.length = 0;
});

const sha = (credential: string) => createHash("sha256").update(credential).digest("hex");
const env = () => ({ LATCHKEY_URL: base, LATCHKEY_TOKEN: "header.payload.signature" });

async function file(name: string, text: string): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), "latchkey-import-")), name);
  await writeFile(path, text);
  return path;
}

describe("latchkey import", () => {
  it("imports a CSV in batches of at most 100, in order, with every column parsed", async () => {
    const rows = Array.from({ length: 250 }, (_, i) => `${sha(`legacy-${i}`)},key ${i},models:invoke metrics:read,,`);
    rows[0] = `${sha("legacy-0")},"first, ""quoted""",models:invoke,m1 m2,"{""plan"":""pro"",""seats"":3}"`;
    const csv = await file("keys.csv", ["hash,name,scopes,resources,metadata", ...rows].join("\r\n") + "\r\n");

    const run = await cli(["import", csv], { env: env() });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "Imported 250, conflicts 0.\n");
    assert.deepEqual(
      batches.map((batch) => batch.length),
      [100, 100, 50],
    );
    assert.deepEqual(batches[0]?.[0], {
      hash: sha("legacy-0"),
      name: 'first, "quoted"',
      scopes: ["models:invoke"],
      resources: ["m1", "m2"],
      metadata: { plan: "pro", seats: 3 },
    });
    assert.deepEqual(batches[2]?.[49], {
      hash: sha("legacy-249"),
      name: "key 249",
      scopes: ["models:invoke", "metrics:read"],
    });
    assert.equal(run.stderr.includes("["), false, "no progress bar when stderr is not a terminal");
  });

  it("summarises conflicts with their rows: hashes already stored, or repeated in the file", async () => {
    const items = [
      { hash: sha("a"), name: "a" },
      { hash: sha("b"), name: "b", expires_at: "2030-01-01T00:00:00Z" },
      { hash: sha("a").toUpperCase(), name: "a again" },
    ];
    const json = await file("keys.json", JSON.stringify({ keys: items }));
    const first = await cli(["import", json, "--json"], { env: env() });
    assert.equal(first.code, 0, first.stderr);
    const outcome = JSON.parse(first.stdout) as {
      imported: number;
      conflicts: number;
      results: { row: number; status: string }[];
    };
    assert.equal(outcome.imported, 2);
    assert.equal(outcome.conflicts, 1);
    assert.deepEqual(
      outcome.results.map((r) => [r.row, r.status]),
      [
        [1, "imported"],
        [2, "imported"],
        [3, "conflict"],
      ],
    );
    assert.equal(batches[0]?.[2]?.hash, sha("a"), "hex is sent lowercase");

    const again = await cli(["import", json, "--batch-size", "2"], { env: env() });
    assert.equal(again.code, 0, again.stderr);
    const [summary, header, ...conflicts] = again.stdout.trimEnd().split("\n");
    assert.equal(summary, "Imported 0, conflicts 3.");
    assert.match(header ?? "", /^ROW +HASH +STATUS$/);
    assert.deepEqual(
      conflicts.map((line) => line.split(/ +/).slice(0, 2)),
      [
        ["1", sha("a").slice(0, 12)],
        ["2", sha("b").slice(0, 12)],
        ["3", sha("a").slice(0, 12)],
      ],
    );
  });

  it("checks every row before sending anything, naming the row", async () => {
    const rows = [`${sha("ok")},fine`, `not-a-hash,broken`];
    const csv = await file("bad.csv", ["hash,name", ...rows].join("\n"));
    const run = await cli(["import", csv], { env: env() });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /row 3: hash: Must be 64 hex digits/);
    assert.equal(batches.length, 0);

    for (const [name, text, message] of [
      ["cols.csv", "hash,name,color\n", /unknown column "color"/],
      ["noname.csv", `hash\n${sha("x")}\n`, /"name" is required/],
      ["cells.csv", `hash,name\n${sha("x")},a,b\n`, /row 2: 3 cells/],
      ["meta.csv", `hash,name,metadata\n${sha("x")},a,[1]\n`, /row 2: metadata: Must be a JSON object/],
      ["quote.csv", `hash,name\n${sha("x")},"open\n`, /unterminated/],
      ["empty.json", "[]", /holds no keys/],
      ["shape.json", '{"items":[]}', /Expected an array/],
    ] as const) {
      const bad = await cli(["import", await file(name, text)], { env: env() });
      assert.equal(bad.code, 2, `${name}: ${bad.stderr}`);
      assert.match(bad.stderr, message);
    }
    assert.equal((await cli(["import", "/nonexistent.csv"], { env: env() })).code, 2);
    assert.equal(batches.length, 0);
  });

  it("stops at a batch the server refuses, naming the file's row, and says what was imported before it", async () => {
    const items = Array.from({ length: 5 }, (_, i) => ({ hash: sha(`k${i}`), name: `k${i}`, scopes: ["keys:read"] }));
    items[3] = { ...items[3]!, scopes: ["Keys:Read"] };
    const json = await file("refused.json", JSON.stringify(items));
    const run = await cli(["import", json, "--batch-size", "2"], { env: env() });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /row 4: scopes\.0: Must be lowercase/);
    assert.match(run.stderr, /rows 3-4\) was not imported; 2 keys before it were/);
    assert.equal(batches.length, 1);
  });

  it("exits 3 when the token is refused, and 2 for a batch size beyond the API's limit", async () => {
    const json = await file("one.json", JSON.stringify([{ hash: sha("z"), name: "z" }]));
    const refused = await cli(["import", json], { env: { LATCHKEY_URL: base, LATCHKEY_TOKEN: "wrong.token.here" } });
    assert.equal(refused.code, 3);
    assert.equal((await cli(["import", json, "--batch-size", "101"], { env: env() })).code, 2);
    assert.equal(batches.length, 0);
  });
});
