/**
 * Readiness and HEAD: /readyz checks D1 (reachable, schema at this build's newest migration) and KV,
 * and names what is wrong; a missing table is a configuration error (500, logged), not a 503 to
 * retry; HEAD is answered wherever GET is, without a body.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { LATEST_MIGRATION } from "../../src/store/schema";
import { call, captureLogs, d1Proxy, envWith, expectProblem, faultyDb, faultyKv, token, uniqueSub } from "../helpers";

/** D1 that answers every statement with SQLite's "no such table" (migrations never applied). */
function unmigratedDb(): D1Database {
  const fail = () => Promise.reject(new Error("D1_ERROR: no such table: api_keys: SQLITE_ERROR"));
  const statement: D1PreparedStatement = new Proxy({} as D1PreparedStatement, {
    get: (_, prop) => (prop === "bind" ? () => statement : fail),
  });
  return d1Proxy(env.DB, {
    get: (target, prop) => (prop === "prepare" ? () => statement : prop === "batch" ? fail : Reflect.get(target, prop)),
  });
}

/** D1 whose d1_migrations says the newest applied migration is `name`; everything else is real. */
function dbAtMigration(name: string): D1Database {
  return new Proxy(env.DB, {
    get(target, prop) {
      if (prop !== "prepare") return Reflect.get(target, prop);
      return (sql: string) =>
        sql.includes("d1_migrations")
          ? ({ first: async () => ({ name }) } as unknown as D1PreparedStatement)
          : target.prepare(sql);
    },
  });
}

describe("GET /readyz", () => {
  it("is ready when D1 answers at the newest migration and KV answers", async () => {
    const response = await call("GET", "/readyz");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ready", checks: { d1: "ok", kv: "ok" } });
  });

  it("knows the newest migration: LATEST_MIGRATION is the last file in migrations/", () => {
    const names = env.TEST_MIGRATIONS.map((migration) => migration.name).sort();
    expect(LATEST_MIGRATION).toBe(names[names.length - 1]);
  });

  it("503 `behind` when D1's schema is behind this build: the migrations are named in the log, never to the caller", async () => {
    const logs = captureLogs();
    const response = await call("GET", "/readyz", { env: envWith({ DB: dbAtMigration("0001_api_keys.sql") }) });
    logs.restore();
    const text = await response.clone().text();
    const problem = await expectProblem(response, 503, "not_ready");
    expect(problem.checks).toEqual({ d1: "behind", kv: "ok" });
    expect(problem.detail).toBe("Not ready: d1: behind");
    for (const name of [LATEST_MIGRATION, "0001_api_keys.sql", "migration", ".sql"]) expect(text).not.toContain(name);
    const [line, ...more] = logs.events("not_ready");
    expect(more).toEqual([]);
    expect(line).toMatchObject({ level: "error", dependency: "d1" });
    expect(line!.error).toBe(`migration ${LATEST_MIGRATION} is not applied (latest applied: 0001_api_keys.sql)`);
  });

  it("503 `behind` when no migration was ever applied", async () => {
    const logs = captureLogs();
    const response = await call("GET", "/readyz", { env: envWith({ DB: unmigratedDb() }) });
    logs.restore();
    const text = await response.clone().text();
    const problem = await expectProblem(response, 503);
    expect(problem.checks).toEqual({ d1: "behind", kv: "ok" });
    expect(text).not.toContain(LATEST_MIGRATION);
    expect(logs.events("not_ready").map((line) => line.error)).toEqual([
      `migration ${LATEST_MIGRATION} is not applied (latest applied: none)`,
    ]);
  });

  it("503 naming D1 or KV when one is unreachable", async () => {
    const logs = captureLogs();
    const d1Down = await expectProblem(await call("GET", "/readyz", { env: envWith({ DB: faultyDb("reject") }) }), 503);
    const kvDown = await expectProblem(
      await call("GET", "/readyz", { env: envWith({ KEY_CACHE: faultyKv("throw") }) }),
      503,
    );
    logs.restore();
    expect(d1Down.checks).toEqual({ d1: "unreachable", kv: "ok" });
    expect(kvDown.checks).toEqual({ d1: "ok", kv: "unreachable" });
    expect(logs.events("not_ready").map((line) => line.dependency)).toEqual(["d1", "kv"]);
  });
});

describe("a missing table", () => {
  it("is a configuration error: 500 configuration_error with a log line saying what to do, not a 503", async () => {
    const jwt = await token(uniqueSub());
    const broken = envWith({ DB: unmigratedDb() });
    const logs = captureLogs();
    const list = await call("GET", "/v1/keys", { auth: jwt, env: broken });
    const create = await call("POST", "/v1/keys", { auth: jwt, body: { name: "x" }, env: broken });
    logs.restore();
    for (const response of [list, create]) {
      const problem = await expectProblem(response, 500, "configuration_error");
      expect(response.headers.get("retry-after")).toBeNull();
      expect(problem.detail).not.toContain("api_keys");
    }
    const lines = logs.events("configuration_error");
    expect(lines).toHaveLength(2);
    expect(lines[0]!.error).toMatch(/schema is behind this build \(apply the migrations/);
    expect(lines[0]!.cause).toContain("no such table: api_keys");
  });
});

describe("HEAD", () => {
  it("is answered wherever GET is, with GET's status and headers and no body", async () => {
    const jwt = await token(uniqueSub());
    for (const path of ["/healthz", "/readyz", "/openapi.json", "/v1/whoami", "/v1/keys"]) {
      const get = await call("GET", path, { auth: jwt });
      const head = await call("HEAD", path, { auth: jwt });
      expect(head.status, path).toBe(get.status);
      expect(head.status, path).toBe(200);
      expect(head.headers.get("content-type"), path).toBe(get.headers.get("content-type"));
      expect(head.headers.get("cache-control"), path).toBe(get.headers.get("cache-control"));
      expect(await head.text(), path).toBe("");
    }
  });

  it("refuses without credentials as GET does, and is not allowed where GET is not", async () => {
    const head = await call("HEAD", "/v1/keys");
    expect(head.status).toBe(401);
    expect(head.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(await head.text()).toBe("");
    const verify = await call("HEAD", "/v1/verify");
    expect(verify.status).toBe(405);
    expect(verify.headers.get("allow")).toBe("POST");
  });
});
