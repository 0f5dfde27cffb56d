/**
 * The HTTP API as a client sees it: every route's success path, and every way a request can be
 * refused. A refusal must be an RFC 9457 problem naming what was wrong, and must leave the api_keys
 * table exactly as it was (checked by row count and a checksum of every row).
 */
import committedDocument from "../../docs/openapi.json";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { DIALECT_NAMES } from "../../src/config";
import { dialectRoutes } from "../../src/http/dialects";
import { buildOpenApiDocument } from "../../src/http/openapi-build";
import { routes } from "../../src/http/routes";
import { generateKey, isWellFormedKey } from "../../src/keys/format";
import { sha256Hex } from "../../src/keys/hash";
import { problemType } from "../../src/problems";
import { type CreatedKey, call, createKey, expectProblem, streamOf, tableSnapshot, token, uniqueSub } from "../helpers";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const KEY_FIELDS = [
  "allowed_ips",
  "created_at",
  "created_by",
  "credits",
  "enabled",
  "expires_at",
  "id",
  "last_used_at",
  "metadata",
  "name",
  "owner_id",
  "owner_type",
  "parent_id",
  "ratelimits",
  "resources",
  "revoked_at",
  "rotated_from",
  "scopes",
  "start",
  "updated_at",
];

interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: Record<string, string[]>;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A client address of its own, so these deliberate failures never reach the shared auth-failure limit. */
const client = (): Record<string, string> => ({ "cf-connecting-ip": uniqueSub("client") });

/** Sends a request that must be refused with `status`, and checks that it changed no stored key. */
async function refused(
  status: number,
  send: () => Promise<Response>,
): Promise<{ problem: ProblemBody; headers: Headers }> {
  const before = await tableSnapshot();
  expect(before.rows).toBeGreaterThan(0);
  const response = await send();
  const problem = (await expectProblem(response, status)) as unknown as ProblemBody;
  expect(response.headers.get("x-content-type-options")).toBe("nosniff");
  expect(await tableSnapshot()).toEqual(before);
  return { problem, headers: response.headers };
}

function jsonRequest(raw: BodyInit, headers: Record<string, string> = {}) {
  return { raw, headers: { "content-type": "application/json", ...headers } };
}

/** A JSON create body of exactly `size` bytes (whitespace padding is valid JSON). */
function createBodyOfSize(size: number): string {
  const body = JSON.stringify({ name: "sized" });
  return body.slice(0, -1) + " ".repeat(size - body.length) + "}";
}

describe("POST /v1/keys", () => {
  it("creates a key, shows it once and stores only its hash", async () => {
    const sub = uniqueSub();
    const before = Date.now();
    const response = await call("POST", "/v1/keys", { auth: await token(sub), body: { name: "ci deploy" } });
    const after = Date.now();

    expect(response.status).toBe(201);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    const created = (await response.json()) as CreatedKey & Record<string, unknown>;
    expect(response.headers.get("location")).toBe(`/v1/keys/${created.id}`);

    expect(Object.keys(created).sort()).toEqual([...KEY_FIELDS, "key"].sort());
    expect(created.id).toMatch(UUID_V4);
    expect(isWellFormedKey(created.key, "lk")).toBe(true);
    expect(created).toMatchObject({
      name: "ci deploy",
      start: created.key.slice(0, 9),
      owner_type: "user",
      owner_id: sub,
      scopes: ["*"],
      resources: null,
      created_by: `user:${sub}`,
      expires_at: null,
      revoked_at: null,
      last_used_at: null,
      metadata: null,
    });
    const createdAt = Date.parse(created.created_at as string);
    expect(createdAt).toBeGreaterThanOrEqual(before);
    expect(createdAt).toBeLessThanOrEqual(after);

    const row = await env.DB.prepare("SELECT hash, start FROM api_keys WHERE id = ?").bind(created.id).first();
    expect(row).toEqual({ hash: await sha256Hex(created.key), start: created.start });
  });

  it("gives every key a new id and a new key", async () => {
    const jwt = await token(uniqueSub());
    const [a, b] = [await createKey(jwt), await createKey(jwt)];
    expect(a.id).not.toBe(b.id);
    expect(a.key).not.toBe(b.key);
  });

  it("trims the name and accepts 1 to 100 characters after trimming", async () => {
    const jwt = await token(uniqueSub());
    expect((await createKey(jwt, { name: "  \t staging  \n" })).name).toBe("staging");
    expect((await createKey(jwt, { name: "x" })).name).toBe("x");
    const long = "n".repeat(100);
    const created = await createKey(jwt, { name: `   ${long}   ` });
    expect(created.name).toBe(long);
    const fetched = await call("GET", `/v1/keys/${created.id}`, { auth: jwt });
    expect(((await fetched.json()) as { name: string }).name).toBe(long);
  });

  it("round-trips expires_at (normalised to UTC) and metadata", async () => {
    const jwt = await token(uniqueSub());
    const metadata = { team: "ml", tags: ["a", "b"], count: 3, nested: { ok: true, none: null }, emoji: "🔑" };
    const created = await createKey(jwt, { expires_at: "2031-05-06T07:08:09+02:00", metadata });
    expect(created.expires_at).toBe("2031-05-06T05:08:09.000Z");
    expect(created.metadata).toEqual(metadata);

    const fetched = (await (await call("GET", `/v1/keys/${created.id}`, { auth: jwt })).json()) as CreatedKey;
    expect(fetched.expires_at).toBe("2031-05-06T05:08:09.000Z");
    expect(fetched.metadata).toEqual(metadata);
    const listed = (await (await call("GET", "/v1/keys", { auth: jwt })).json()) as { data: CreatedKey[] };
    expect(listed.data.find((k) => k.id === created.id)?.metadata).toEqual(metadata);

    const explicitNulls = await createKey(jwt, { expires_at: null, metadata: null });
    expect(explicitNulls).toMatchObject({ expires_at: null, metadata: null });
  });

  it("accepts metadata of exactly 2048 bytes and a body of exactly 16 KB", async () => {
    const jwt = await token(uniqueSub());
    const padding = "é".repeat((2048 - JSON.stringify({ p: "" }).length) / 2);
    const metadata = { p: padding };
    expect(new TextEncoder().encode(JSON.stringify(metadata)).byteLength).toBe(2048);
    expect((await createKey(jwt, { metadata })).metadata).toEqual(metadata);

    const body = createBodyOfSize(16 * 1024);
    const response = await call("POST", "/v1/keys", { auth: jwt, ...jsonRequest(body) });
    expect(response.status).toBe(201);
    const streamed = await call("POST", "/v1/keys", { auth: jwt, ...jsonRequest(streamOf(body, 1000)) });
    expect(streamed.status).toBe(201);
  });
});

describe("reading and revoking keys", () => {
  let jwt: string;
  let sub: string;
  let keys: CreatedKey[];

  beforeAll(async () => {
    sub = uniqueSub();
    jwt = await token(sub);
    keys = [];
    for (const name of ["first", "second", "third"]) {
      keys.push(await createKey(jwt, { name }));
      await pause(2); // distinct created_at, so "newest first" has one right answer
    }
  });

  it("GET /v1/keys/{id} returns the key without the key itself or its hash", async () => {
    const { key, ...view } = keys[0]!;
    const response = await call("GET", `/v1/keys/${view.id}`, { auth: jwt });
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const text = await response.text();
    expect(text).not.toContain(key);
    expect(JSON.parse(text)).toEqual(view);
  });

  it("GET /v1/keys lists the caller's keys newest first, never with key or hash", async () => {
    const response = await call("GET", "/v1/keys", { auth: jwt });
    expect(response.status).toBe(200);
    const text = await response.text();
    const page = JSON.parse(text) as { data: Record<string, unknown>[]; next_cursor: string | null };
    expect(Object.keys(page).sort()).toEqual(["data", "next_cursor"]);
    expect(page.next_cursor).toBeNull();
    expect(page.data.map((k) => k.name)).toEqual(["third", "second", "first"]);
    for (const item of page.data) expect(Object.keys(item).sort()).toEqual(KEY_FIELDS);
    for (const { key } of keys) expect(text).not.toContain(key);
    for (const { key } of keys) expect(text).not.toContain(await sha256Hex(key));

    const stranger = await call("GET", "/v1/keys", { auth: await token(uniqueSub()) });
    expect(await stranger.json()).toEqual({ data: [], next_cursor: null });
  });

  it("an API key of the owner sees the same keys", async () => {
    const response = await call("GET", "/v1/keys", { auth: keys[1]!.key });
    expect(response.status).toBe(200);
    const page = (await response.json()) as { data: { id: string }[] };
    expect(page.data.map((k) => k.id)).toEqual([keys[2]!.id, keys[1]!.id, keys[0]!.id]);
  });

  it("DELETE /v1/keys/{id} revokes with 204, and again with 204", async () => {
    const victim = await createKey(jwt, { name: "victim" });
    const first = await call("DELETE", `/v1/keys/${victim.id}`, { auth: jwt });
    expect(first.status).toBe(204);
    expect(await first.text()).toBe("");
    const row = await env.DB.prepare("SELECT revoked_at FROM api_keys WHERE id = ?").bind(victim.id).first<{
      revoked_at: number;
    }>();
    expect(row?.revoked_at).toEqual(expect.any(Number));

    const again = await call("DELETE", `/v1/keys/${victim.id}`, { auth: jwt });
    expect(again.status).toBe(204);
    const rowAgain = await env.DB.prepare("SELECT revoked_at FROM api_keys WHERE id = ?").bind(victim.id).first();
    expect(rowAgain).toEqual(row);

    const fetched = (await (await call("GET", `/v1/keys/${victim.id}`, { auth: jwt })).json()) as CreatedKey;
    expect(fetched.revoked_at).toBe(new Date(row!.revoked_at).toISOString());
    const listed = (await (await call("GET", "/v1/keys", { auth: jwt })).json()) as { data: { id: string }[] };
    expect(listed.data.map((k) => k.id)).not.toContain(victim.id);
  });

  it("answers an unknown, malformed or foreign id with one identical 404", async () => {
    const foreign = await createKey(await token(uniqueSub()));
    const ids = [
      crypto.randomUUID(),
      "not-a-uuid",
      "00000000-0000-1000-8000-000000000000",
      keys[0]!.id.toUpperCase(),
      foreign.id,
    ];
    const bodies = new Set<string>();
    for (const id of ids) {
      for (const method of ["GET", "DELETE"]) {
        const { problem } = await refused(404, () => call(method, `/v1/keys/${id}`, { auth: jwt }));
        bodies.add(JSON.stringify(problem));
      }
    }
    expect(bodies.size).toBe(1);
    const { problem: route } = await refused(404, () => call("GET", "/v1/nothing-here", { auth: jwt }));
    expect({ ...route, detail: undefined }).toEqual({ ...JSON.parse([...bodies][0]!), detail: undefined });

    const row = await env.DB.prepare("SELECT revoked_at FROM api_keys WHERE id = ?").bind(foreign.id).first();
    expect(row).toEqual({ revoked_at: null });
  });
});

describe("GET /v1/whoami", () => {
  it("names the person behind a JWT", async () => {
    const sub = uniqueSub();
    const response = await call("GET", "/v1/whoami", { auth: await token(sub) });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ principal: "user", owner_type: "user", owner_id: sub, org_id: null });
    const withOrg = await call("GET", "/v1/whoami", { auth: await token(sub, { org: "org-7" }) });
    expect(((await withOrg.json()) as { org_id: string }).org_id).toBe("org-7");
  });

  it("names the key behind an API key, with the Bearer and the Api-Key scheme", async () => {
    const sub = uniqueSub();
    const created = await createKey(await token(sub));
    const expected = {
      principal: "api_key",
      owner_type: "user",
      owner_id: sub,
      key_id: created.id,
      scopes: ["*"],
      enabled: true,
    };
    for (const authorization of [`Bearer ${created.key}`, `Api-Key ${created.key}`, `api-key ${created.key}`]) {
      const response = await call("GET", "/v1/whoami", { headers: { authorization } });
      expect(response.status, authorization.split(" ")[0]).toBe(200);
      expect(await response.json()).toEqual(expected);
    }
  });
});

describe("meta routes", () => {
  it("GET /healthz answers without credentials", async () => {
    const response = await call("GET", "/healthz");
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await response.json()).toEqual({ status: "ok" });
  });

  it("GET /openapi.json documents every route, its schemas and its problems", async () => {
    const response = await call("GET", "/openapi.json");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(response.headers.get("cache-control")).toBe("public, max-age=300");
    type Response = { $ref?: string; content?: Record<string, unknown> };
    type Operation = { security: unknown[]; responses: Record<string, Response> };
    const doc = (await response.json()) as {
      openapi: string;
      paths: Record<string, Record<string, Operation>>;
      components: {
        schemas: Record<string, unknown>;
        responses: Record<string, Response>;
        securitySchemes: Record<string, { type: string }>;
      };
    };
    expect(doc.openapi).toBe("3.1.0");
    // latchkey's own routes and, by default, every dialect's (test/clients/dialects.test.ts checks those).
    const all = [...routes, ...dialectRoutes(DIALECT_NAMES)];
    // The served document is the committed build (src/http/openapi.generated.ts): stale, it fails here.
    expect(doc, "src/http/openapi.generated.ts is stale: run npm run openapi -- --generate").toEqual(
      JSON.parse(JSON.stringify(buildOpenApiDocument(all))),
    );
    // And its pretty-printed copy for people and diffs (scripts/openapi.mjs --check compares the bytes).
    expect(committedDocument, "docs/openapi.json is stale: run npm run openapi -- --generate").toEqual(doc);

    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    const served = all.map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
    expect(documented.sort()).toEqual(served.sort());
    for (const expected of ["post /v1/keys", "get /v1/keys", "get /v1/keys/{id}", "delete /v1/keys/{id}"]) {
      expect(documented).toContain(expected);
    }
    for (const id of ["ApiKey", "CreatedApiKey", "CreateKeyRequest", "KeyList", "Problem", "WhoAmI"]) {
      expect(doc.components.schemas).toHaveProperty(id);
    }
    expect(doc.components.securitySchemes.bearer?.type).toBe("http");
    expect(doc.components.securitySchemes.apiKey?.type).toBe("apiKey");

    for (const route of routes) {
      const op = doc.paths[route.path.replace(/:(\w+)/g, "{$1}")]![route.method]!;
      expect(op.security.length > 0, `${route.method} ${route.path} security`).toBe(route.auth !== "none");
      expect(Object.keys(op.responses)).toContain(String(route.success.status));
      for (const [status, declared] of Object.entries(op.responses)) {
        if (Number(status) < 400) continue;
        // A problem response common to many routes is declared once, under components.responses.
        const res = declared.$ref ? doc.components.responses[declared.$ref.split("/").pop()!]! : declared;
        expect(Object.keys(res.content ?? {}), `${route.method} ${route.path} ${status}`).toEqual([
          "application/problem+json",
        ]);
      }
    }
    // POST /v1/verify: the service credential, or nothing (open unless VERIFY_TOKEN is set).
    expect(doc.paths["/v1/verify"]!.post!.security).toEqual([{ verifyToken: [] }, {}]);
    expect(doc.components.securitySchemes.verifyToken?.type).toBe("http");
    const create = doc.paths["/v1/keys"]!.post!;
    expect(Object.keys(create.responses)).toEqual(expect.arrayContaining(["201", "401", "413", "415", "422"]));

    // The lifecycle routes and codes.
    const lifecycle: [string, string, string[]][] = [
      ["/v1/keys/{id}", "patch", ["200", "403", "404", "409", "422"]],
      ["/v1/keys/{id}/rotate", "post", ["201", "403", "404", "409", "422"]],
      ["/v1/keys/{id}/events", "get", ["200", "400", "403", "404"]],
      ["/v1/events", "get", ["200", "400", "403"]],
    ];
    for (const [path, method, statuses] of lifecycle) {
      expect(Object.keys(doc.paths[path]?.[method]?.responses ?? {}), `${method} ${path}`).toEqual(
        expect.arrayContaining(statuses),
      );
    }
    for (const id of ["UpdateKeyRequest", "RotateKeyRequest", "AuditEvent", "EventList", "IpRange"]) {
      expect(doc.components.schemas).toHaveProperty(id);
    }
    // DISABLED and IP_NOT_ALLOWED say as little as a dead key's refusal.
    const codes = (doc.components.schemas.VerifyRefusal as { properties: { code: { enum: string[] } } }).properties.code
      .enum;
    expect(codes).toEqual(expect.arrayContaining(["DISABLED", "IP_NOT_ALLOWED"]));
    const apiKey = doc.components.schemas.ApiKey as { required: string[] };
    expect(apiKey.required).toEqual(expect.arrayContaining(["enabled", "updated_at", "allowed_ips", "rotated_from"]));
  });
});

describe("refusals", () => {
  let sub: string;
  let jwt: string;
  let mine: CreatedKey;

  beforeAll(async () => {
    sub = uniqueSub();
    jwt = await token(sub);
    mine = await createKey(jwt, { name: "existing" });
  });

  it("400 for a body that is not JSON or not UTF-8", async () => {
    const bodies: BodyInit[] = ['{"name":', "{name: 'x'}", "", "nul", new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d])];
    for (const raw of bodies) {
      const { problem } = await refused(400, () => call("POST", "/v1/keys", { auth: jwt, ...jsonRequest(raw) }));
      expect(problem.detail).toMatch(/JSON|UTF-8/);
    }
  });

  it("400 for a malformed query, naming the parameter", async () => {
    const cases: [string, string][] = [
      ["limit=0", "limit"],
      ["limit=101", "limit"],
      ["limit=abc", "limit"],
      ["limit=2.5", "limit"],
      ["limit=", "limit"],
      ["cursor=!!!", "cursor"],
      [`cursor=${btoa('[1,"x"]')}`, "cursor"],
      [`cursor=${"A".repeat(201)}`, "cursor"],
      ["include_revoked=yes", "include_revoked"],
      ["owner=someone-else", "owner"],
    ];
    for (const [query, field] of cases) {
      const { problem } = await refused(400, () => call("GET", `/v1/keys?${query}`, { auth: jwt }));
      expect(Object.keys(problem.errors ?? {}), query).toEqual([field]);
      expect(problem.errors![field]!.length).toBeGreaterThan(0);
    }
  });

  it("401 with WWW-Authenticate for missing or bad credentials, on every authenticated route", async () => {
    const unknownKey = generateKey("lk");
    const authorizations: (string | undefined)[] = [
      undefined,
      "",
      "Bearer",
      "Bearer ",
      "Basic dXNlcjpwYXNz",
      "Bearer not-a-jwt",
      `Bearer ${await token(sub, { secret: "another-secret-that-is-long-enough-0123" })}`,
      `Bearer ${await token(sub, { ttl: -3600 })}`,
      "Bearer lk_tooshort",
      `Bearer ${unknownKey}`,
      `Api-Key ${unknownKey}`,
      `Api-Key ${jwt}`,
      `Bearer ${mine.key.slice(0, -1)}${mine.key.endsWith("x") ? "y" : "x"}`, // one in 62 keys ends with x
    ];
    const requests: [string, string, unknown?][] = [
      ["GET", "/v1/whoami"],
      ["GET", "/v1/keys"],
      ["POST", "/v1/keys", { name: "nope" }],
      ["GET", `/v1/keys/${mine.id}`],
      ["DELETE", `/v1/keys/${mine.id}`],
    ];
    for (const authorization of authorizations) {
      for (const [method, path, body] of requests) {
        const headers = { ...client(), ...(authorization === undefined ? {} : { authorization }) };
        const refusal = await refused(401, () => call(method, path, { headers, body }));
        expect(refusal.headers.get("www-authenticate"), `${authorization} ${method} ${path}`).toBe(
          'Bearer realm="latchkey", Api-Key realm="latchkey"',
        );
      }
    }
    expect((await call("GET", `/v1/keys/${mine.id}`, { auth: mine.key })).status).toBe(200);
  });

  it("404 for an unknown route", async () => {
    for (const path of ["/", "/v1", "/v2/keys", "/v1/keys/a/b", "/v1/whoami/x"]) {
      const { problem } = await refused(404, () => call("GET", path, { auth: jwt }));
      expect(problem).toMatchObject({ code: "not_found", type: problemType("not_found") });
    }
  });

  it("405 with Allow for a known path and another method", async () => {
    const cases: [string, string, string[]][] = [
      ["PUT", "/v1/keys", ["GET", "HEAD", "POST"]],
      ["PUT", `/v1/keys/${mine.id}`, ["DELETE", "GET", "HEAD", "PATCH"]],
      ["POST", `/v1/keys/${mine.id}`, ["DELETE", "GET", "HEAD", "PATCH"]],
      ["GET", `/v1/keys/${mine.id}/rotate`, ["POST"]],
      ["DELETE", "/v1/events", ["GET", "HEAD"]],
      ["POST", "/healthz", ["GET", "HEAD"]],
      ["DELETE", "/v1/whoami", ["GET", "HEAD"]],
      ["GET", "/v1/verify", ["POST"]],
    ];
    for (const [method, path, allowed] of cases) {
      const body = method === "GET" ? undefined : { name: "x", revoked_at: 1 };
      const { headers } = await refused(405, () => call(method, path, { auth: jwt, body }));
      expect(headers.get("allow")?.split(", ").sort(), `${method} ${path}`).toEqual(allowed);
    }
  });

  it("413 for a body over 16 KB, whatever Content-Length says", async () => {
    const big = createBodyOfSize(16 * 1024 + 1);
    const size = String(new TextEncoder().encode(big).byteLength);
    const never = new ReadableStream({ pull: () => new Promise<void>(() => undefined) });
    const sends: [string, () => Promise<Response>][] = [
      ["honest length", () => call("POST", "/v1/keys", { auth: jwt, ...jsonRequest(big, { "content-length": size }) })],
      ["stream without length", () => call("POST", "/v1/keys", { auth: jwt, ...jsonRequest(streamOf(big)) })],
      [
        "stream with a lying length",
        () => call("POST", "/v1/keys", { auth: jwt, ...jsonRequest(streamOf(big, 4096), { "content-length": "12" }) }),
      ],
      [
        "declared too large, never sent",
        () => call("POST", "/v1/keys", { auth: jwt, ...jsonRequest(never, { "content-length": "1000000" }) }),
      ],
      ["on verify too", () => call("POST", "/v1/verify", jsonRequest(streamOf(big)))],
    ];
    for (const [label, send] of sends) {
      const { problem } = await refused(413, send);
      expect(problem.detail, label).toContain("16384");
    }
  });

  it("415 for a missing or non-JSON content type", async () => {
    const body = JSON.stringify({ name: "typed" });
    const types = ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", "text/json", "json"];
    for (const type of types) {
      await refused(415, () => call("POST", "/v1/keys", { auth: jwt, raw: body, headers: { "content-type": type } }));
    }
    const bytes = new TextEncoder().encode(body);
    await refused(415, () => call("POST", "/v1/keys", { auth: jwt, raw: bytes }));
    const accepted = await call("POST", "/v1/keys", {
      auth: jwt,
      raw: body,
      headers: { "content-type": "Application/JSON; charset=utf-8" },
    });
    expect(accepted.status).toBe(201);
  });

  it('422 with {"errors":{"name":["Required"]}} for a missing name', async () => {
    const { problem } = await refused(422, () => call("POST", "/v1/keys", { auth: jwt, body: {} }));
    expect(problem.errors).toEqual({ name: ["Required"] });
  });

  it("422 naming the field for every invalid create body", async () => {
    const past = new Date(Date.now() - 1000).toISOString();
    const cases: [unknown, string][] = [
      [{ name: "" }, "name"],
      [{ name: "   \t " }, "name"],
      [{ name: "n".repeat(101) }, "name"],
      [{ name: ` ${"n".repeat(101)} ` }, "name"],
      [{ name: 42 }, "name"],
      [{ name: null }, "name"],
      [{ name: "bad\u0000name" }, "name"],
      [{ name: "k", expires_at: past }, "expires_at"],
      [{ name: "k", expires_at: "2099-01-01" }, "expires_at"],
      [{ name: "k", expires_at: "2099-01-01T00:00:00" }, "expires_at"],
      [{ name: "k", expires_at: "2099-02-30T00:00:00Z" }, "expires_at"],
      [{ name: "k", expires_at: "tomorrow" }, "expires_at"],
      [{ name: "k", expires_at: 4102444800000 }, "expires_at"],
      [{ name: "k", metadata: { p: "a".repeat(2048 - 7) } }, "metadata"],
      [{ name: "k", metadata: [1, 2] }, "metadata"],
      [{ name: "k", metadata: "note" }, "metadata"],
      [{ name: "k", metadata: 7 }, "metadata"],
      [{ name: "k", id: crypto.randomUUID() }, "id"],
      [{ name: "k", key: generateKey("lk") }, "key"],
      [{ name: "k", owners: ["user:*"] }, "owners"],
      [[{ name: "k" }], "body"],
      [null, "body"],
      ["k", "body"],
    ];
    for (const [body, field] of cases) {
      const { problem } = await refused(422, () =>
        call("POST", "/v1/keys", { auth: jwt, ...jsonRequest(JSON.stringify(body)) }),
      );
      expect(Object.keys(problem.errors ?? {}), JSON.stringify(body).slice(0, 80)).toEqual([field]);
      for (const message of problem.errors![field]!) expect(message).toMatch(/\w/);
    }
    const { problem: unknown } = await refused(422, () =>
      call("POST", "/v1/keys", { auth: jwt, body: { name: "k", colour: 1 } }),
    );
    expect(unknown.errors).toEqual({ colour: ["Unknown field"] });
  });
});

describe("reserved keys", () => {
  it('refuses "__proto__" anywhere in a body instead of silently dropping it', async () => {
    const jwt = await token(uniqueSub());
    const before = await tableSnapshot();
    for (const raw of ['{"name":"x","metadata":{"__proto__":{"admin":true}}}', '{"__proto__":{},"name":"x"}']) {
      const response = await call("POST", "/v1/keys", {
        auth: jwt,
        raw,
        headers: { "content-type": "application/json" },
      });
      const { errors } = await expectProblem(response, 422);
      expect(errors).toEqual({
        [raw.includes('"metadata"') ? "metadata.__proto__" : "__proto__"]: ['The key "__proto__" is reserved'],
      });
    }
    expect(await tableSnapshot()).toEqual(before);
  });
});
