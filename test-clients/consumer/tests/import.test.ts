/**
 * `latchkey import` against a stand-in for POST /v1/keys/import that implements the import contract
 * (COMMON.md: 1..100 items, 422 naming keys.<i>.<field> and importing nothing, 200 with imported /
 * conflicts / results in input order), so batching and failures can be scripted; and end to end
 * against latchkey itself (started with LEGACY_KEY_FORMATS=sanctum,opaque:sk_live_), where an
 * imported key then verifies.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import type { ImportItem, ImportResult } from "@latchkey/client";
import { BASE, cli, token, uniqueSub } from "./helpers.js";

const stored = new Set<string>();
const batches: ImportItem[][] = [];
let base = "";
let server: ReturnType<typeof createServer>;

const HASH = /^(?:[0-9a-f]{64}|\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53})$/;
/** Batches the stand-in answers 503 from this one on (1-based; 0: never). */
let failFrom = 0;
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
  "lookup_id",
  "last_used_at",
  "owner_id",
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
      if (failFrom > 0 && batches.length + 1 >= failFrom)
        return send(503, { type: "about:blank", title: "Unavailable", status: 503 }, "application/problem+json");
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
  failFrom = 0;
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

describe("latchkey import: any size, mapped columns, owners, resuming", () => {
  it("streams a CSV of any size in batches of 100, maps columns, sends owner and owner_id per row, keeps bcrypt hashes as they are", async () => {
    const bcryptHash = "$2b$10$" + "A".repeat(53);
    const lines = ["token_hash,label,owner,format,lookup_id,last_used_at"];
    for (let i = 0; i < 1050; i++) lines.push(`${sha(`big-${i}`).toUpperCase()},key ${i},user:cust_${i % 3},hex64,,`);
    lines.push(`${bcryptHash},bcrypt key,workspace:acme,bcrypt,k42,2026-01-02T03:04:05Z`);
    const csv = await file("big.csv", lines.join("\r\n") + "\r\n");
    const run = await cli(["import", csv, "--column", "hash=token_hash", "--column", "name=label"], { env: env() });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "Imported 1051, conflicts 0.\n");
    assert.deepEqual(
      batches.map((batch) => batch.length),
      [...Array(10).fill(100), 51],
    );
    assert.deepEqual(batches[0]?.[1], {
      hash: sha("big-1"),
      name: "key 1",
      owner: "user",
      owner_id: "cust_1",
      format: "hex64",
    });
    assert.deepEqual(batches[10]?.[50], {
      hash: bcryptHash,
      name: "bcrypt key",
      owner: "workspace",
      owner_id: "acme",
      format: "bcrypt",
      lookup_id: "k42",
      last_used_at: "2026-01-02T03:04:05Z",
    });
    assert.match(run.stderr, /1000\/1051 rows: imported 1000, conflicts 0/);
    const summary = JSON.parse(await readFile(`${csv}.summary.json`, "utf8")) as Record<string, unknown>;
    assert.deepEqual(
      (({ rows, done, imported, conflicts, last_row, complete }) => ({
        rows,
        done,
        imported,
        conflicts,
        last_row,
        complete,
      }))(summary),
      { rows: 1051, done: 1051, imported: 1051, conflicts: 0, last_row: 1052, complete: true },
    );
  });

  it("an unknown column is refused unless mapped; an owner cell must name a type", async () => {
    const extra = await file("extra.csv", `hash,name,user_id\n${sha("e")},e,42\n`);
    const refused = await cli(["import", extra], { env: env() });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /unknown column "user_id" \(map it with --column\)/);
    const bare = await file("bare.csv", `hash,name,owner\n${sha("o")},o,42\n`);
    const noType = await cli(["import", bare], { env: env() });
    assert.equal(noType.code, 2);
    assert.match(noType.stderr, /row 2: owner: Must be user, workspace or <user\|workspace>:<id>/);
    const typed = await cli(["import", bare, "--owner-type", "user"], { env: env() });
    assert.equal(typed.code, 0, typed.stderr);
    assert.deepEqual(batches[0]?.[0], { hash: sha("o"), name: "o", owner: "user", owner_id: "42" });
  });

  it("a stopped run's summary lets --resume send only the rest; a plain re-run sends all, conflicts counting as done", async () => {
    const lines = ["hash,name"];
    for (let i = 0; i < 450; i++) lines.push(`${sha(`r-${i}`)},r${i}`);
    const csv = await file("resume.csv", lines.join("\n") + "\n");
    failFrom = 3;
    const stopped = await cli(["import", csv], { env: env() });
    assert.equal(stopped.code, 5, stopped.stderr);
    const partial = JSON.parse(await readFile(`${csv}.summary.json`, "utf8")) as Record<string, unknown>;
    assert.deepEqual([partial.done, partial.last_row, partial.complete], [200, 201, false]);

    failFrom = 0;
    batches.length = 0;
    const resumed = await cli(["import", csv, "--resume"], { env: env() });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /Resuming after row 201/);
    assert.deepEqual(
      batches.map((batch) => batch.length),
      [100, 100, 50],
    );
    assert.equal(batches[0]?.[0]?.name, "r200");
    const done = JSON.parse(await readFile(`${csv}.summary.json`, "utf8")) as Record<string, unknown>;
    assert.deepEqual([done.done, done.imported, done.complete], [450, 450, true]);

    batches.length = 0;
    const again = await cli(["import", csv], { env: env() });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^Imported 0, conflicts 450\./);
    const all = JSON.parse(await readFile(`${csv}.summary.json`, "utf8")) as Record<string, unknown>;
    assert.deepEqual([all.done, all.conflicts, all.complete], [450, 450, true]);
  });
});

describe("latchkey import against latchkey", () => {
  it("imports legacy keys that then verify, with their scopes and resources; a re-run is all conflicts", async () => {
    const sub = uniqueSub("import");
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(sub) };
    const secret = (label: string) => `sk_live_${label}${crypto.randomUUID().replaceAll("-", "")}`;
    const scoped = secret("a");
    const plain = secret("b");
    const csv = await file(
      "legacy.csv",
      [
        "hash,name,start,scopes,resources,format",
        `${sha(scoped)},scoped,sk_live_a,models:invoke,m1,opaque`,
        `${sha(plain)},plain,sk_live_b,,,opaque`,
      ].join("\n") + "\n",
    );

    const run = await cli(["import", csv, "--json"], { env });
    assert.equal(run.code, 0, run.stderr);
    const outcome = JSON.parse(run.stdout) as ImportResult & { results: { row: number; id: string }[] };
    assert.equal(outcome.imported, 2);
    assert.equal(outcome.conflicts, 0);
    const [first, second] = outcome.results;
    assert.deepEqual([first?.row, first?.hash], [2, sha(scoped).slice(0, 12)]);
    assert.equal(run.stdout.includes(scoped) || run.stderr.includes(scoped), false, "the credential is never shown");

    const valid = await cli(["verify", "--scope", "models:invoke", "--resource", "m1"], { env, stdin: scoped });
    assert.equal(valid.code, 0, valid.stderr);
    assert.equal(valid.stdout, `VALID key ${first?.id} of user:${sub}\n`);
    const elsewhere = await cli(["verify", "--resource", "m2"], { env, stdin: scoped });
    assert.equal(elsewhere.code, 6);
    assert.equal(elsewhere.stdout, "RESOURCE_NOT_ALLOWED\n");
    const other = await cli(["verify", "--json"], { env, stdin: plain });
    assert.equal(other.code, 0, other.stderr);
    assert.equal((JSON.parse(other.stdout) as { key_id: string }).key_id, second?.id);
    const unknown = await cli(["verify"], { env, stdin: secret("c") });
    assert.equal(unknown.code, 6);
    assert.equal(unknown.stdout, "NOT_FOUND\n");

    const listed = await cli(["keys", "get", first?.id ?? "", "--json"], { env });
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(
      (({ name, start, scopes, resources }) => ({ name, start, scopes, resources }))(JSON.parse(listed.stdout)),
      { name: "scoped", start: "sk_live_a", scopes: ["models:invoke"], resources: ["m1"] },
    );

    const again = await cli(["import", csv], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^Imported 0, conflicts 2\.\n/);

    const revoked = await cli(["keys", "revoke", first?.id ?? ""], { env });
    assert.equal(revoked.code, 0, revoked.stderr);
    const after = await cli(["verify"], { env, stdin: scoped });
    assert.equal(after.stdout, "REVOKED\n");
  });

  it("names the row latchkey refuses: a start outside the accepted prefixes", async () => {
    const env = { LATCHKEY_URL: BASE, LATCHKEY_TOKEN: token(uniqueSub("import")) };
    const csv = await file("prefix.csv", `hash,name,start,format\n${sha("x")},x,pk_test_x,opaque\n`);
    const run = await cli(["import", csv], { env });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /row 2: start: Must begin with an accepted prefix \(sk_live_\)/);
  });
});
