/**
 * Property-based fuzzing of every route with fast-check. Whatever arrives (random JSON, random bytes,
 * wrong content types, huge or deeply nested bodies, unicode and control characters, SQL
 * metacharacters, random or oversized Authorization headers, unknown methods and paths), the answer
 * is never a 5xx: either a correct success (a create adds exactly the one row it returns) or a 4xx
 * problem after which the table is byte-for-byte what it was.
 *
 * Requests authenticate with a JWT: a key's successful authentication legitimately records its last
 * use, which would blur "a rejected request writes nothing".
 */
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { routes } from "../../src/http/routes";
import { generateKey } from "../../src/keys/format";
import { sha256Hex } from "../../src/keys/hash";
import {
  type CallOptions,
  type CreatedKey,
  call,
  createKey,
  expectProblem,
  streamOf,
  tableSnapshot,
  token,
  uniqueSub,
} from "../helpers";

const RUNS = 100;
const JSON_HEADERS = { "content-type": "application/json" };
/** A fresh client address per request, so the failed-authentication limiter never answers instead. */
const freshIp = () => `198.51.${Math.floor(Math.random() * 256)}.${Math.floor(Math.random() * 256)}`;

const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
/** Invisible format and bidi control characters (U+200B, U+202E, U+FEFF...): refused in names. */
const FORMAT_CHARS = /\p{Cf}/u;
const PROTOTYPE_NAMES = ["__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty"];
const CREATE_FIELDS = ["name", "expires_at", "metadata", "scopes", "resources", "owner"];
const SQL = [
  "'",
  '"',
  ";",
  "--",
  "/*",
  "*/",
  "%",
  "_",
  "\\",
  "`",
  "?",
  "?1",
  ":id",
  "$1",
  "NULL",
  "' OR '1'='1",
  "'; DROP TABLE api_keys; --",
  '" OR 1=1 --',
  "1; DELETE FROM api_keys",
  "' UNION SELECT hash, id FROM api_keys --",
  "'); UPDATE api_keys SET revoked_at = NULL; --",
];

const sqlText = fc
  .array(fc.oneof(fc.constantFrom(...SQL), fc.string({ maxLength: 6 })), { minLength: 1, maxLength: 6 })
  .map((parts) => parts.join(""))
  .filter((text) => text.length > 0);
const fieldName = fc.oneof(fc.constantFrom(...CREATE_FIELDS, ...PROTOTYPE_NAMES, "key", "scope"), fc.string());
const anyJson = fc.oneof(
  fc.jsonValue(),
  fc.dictionary(fieldName, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }),
  sqlText,
);
/** Bodies shaped like a create request, each field a random JSON value (or a plausible one). */
const createLike = fc.dictionary(
  fieldName,
  fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.string({ unit: "binary", maxLength: 120 }),
    sqlText,
    fc.constantFrom("*", "keys:read", "user", "workspace", "2999-01-01T00:00:00Z", null),
  ),
  { maxKeys: 7 },
);

type BodyRoute = { method: string; path: string };

let jwt: string;
let owned: CreatedKey;
let bodyRoutes: BodyRoute[];
let authRoutes: BodyRoute[];

beforeAll(async () => {
  const sub = uniqueSub("fuzz");
  jwt = await token(sub, { org: uniqueSub("org") });
  owned = await createKey(jwt);
  // The owner routes name the person's own user owner, whose limits a person may not set (403): any
  // body reaches validation, and nothing is ever stored.
  const owner = `/v1/owners/user/${sub}`;
  const concrete = (path: string) => path.replace(":id", owned.id).replace("/v1/owners/:owner_type/:owner_id", owner);
  // Every route that reads a body, plus DELETE (which may be sent one and must ignore it).
  bodyRoutes = routes
    .filter((r) => r.body !== undefined || r.method === "delete")
    .map((r) => ({
      method: r.method.toUpperCase(),
      path: r.path.replace(":id", crypto.randomUUID()).replace("/v1/owners/:owner_type/:owner_id", owner),
    }));
  authRoutes = routes
    .filter((r) => r.auth === "required")
    .map((r) => ({ method: r.method.toUpperCase(), path: concrete(r.path) }));
  const generic = (path: string) =>
    path.replace(/[0-9a-f-]{36}/, ":id").replace(owner, "/v1/owners/:owner_type/:owner_id");
  expect(bodyRoutes.map((r) => `${r.method} ${generic(r.path)}`).sort()).toEqual(
    [
      "DELETE /v1/keys/:id",
      "PATCH /v1/keys/:id",
      "POST /v1/keys",
      "POST /v1/keys/:id/credits",
      "POST /v1/keys/:id/rotate",
      "POST /v1/keys/import",
      "POST /v1/leaks",
      "POST /v1/leaks/github",
      "POST /v1/owners/:owner_type/:owner_id/credits",
      "POST /v1/verify",
      "PUT /v1/owners/:owner_type/:owner_id/limits",
      "DELETE /v1/root-keys/:id",
      "DELETE /v1/webhooks/:id",
      "PATCH /v1/webhooks/:id",
      "POST /v1/webhooks",
      "POST /v1/webhooks/:id/rotate-secret",
      "POST /v1/root-keys",
      "POST /v1/root-keys/:id/rotate",
    ].sort(),
  );
  expect(authRoutes).toHaveLength(26);
});

/**
 * Calls the Worker and checks the one rule for any input: no 5xx and nosniff always; a 4xx is a
 * problem and nothing stored changed; a 201 (only POST /v1/keys) stored exactly the key it returned;
 * any other success stored nothing. Returns the status and the parsed body.
 */
async function expectSafe(
  method: string,
  path: string,
  options: CallOptions,
): Promise<{ status: number; body: Record<string, unknown> | null; headers: Headers }> {
  const before = await tableSnapshot();
  const response = await call(method, path, {
    ...options,
    headers: { "cf-connecting-ip": freshIp(), ...options.headers },
  });
  expect(response.status, `${method} ${path}`).toBeLessThan(500);
  expect(response.headers.get("x-content-type-options")).toBe("nosniff");
  if (response.status >= 400) {
    const body = await expectProblem(response);
    expect(await tableSnapshot()).toEqual(before);
    return { status: response.status, body, headers: response.headers };
  }
  const body = response.status === 204 ? null : ((await response.json()) as Record<string, unknown>);
  if (response.status === 201) {
    expect(`${method} ${path}`).toBe("POST /v1/keys");
    const created = body as unknown as CreatedKey;
    expect(await tableSnapshot([created.id])).toEqual(before);
    expect((await tableSnapshot()).rows).toBe(before.rows + 1);
    const row = await env.DB.prepare("SELECT hash, name FROM api_keys WHERE id = ?").bind(created.id).first();
    expect(row).toEqual({ hash: await sha256Hex(created.key), name: created.name });
    expect(response.headers.get("cache-control")).toBe("no-store");
  } else {
    expect(await tableSnapshot()).toEqual(before);
  }
  return { status: response.status, body, headers: response.headers };
}

const jsonBody = (value: unknown): CallOptions => ({ auth: jwt, raw: JSON.stringify(value), headers: JSON_HEADERS });

describe("random bodies", () => {
  it("any JSON value on any body route: a correct success or a 4xx problem that stored nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), anyJson, async (pick, value) => {
        const route = bodyRoutes[pick % bodyRoutes.length]!;
        const { status, body } = await expectSafe(route.method, route.path, jsonBody(value));
        if (route.path === "/v1/verify" && status === 200) expect(body).toMatchObject({ valid: false });
        // An unknown key is 404; root keys are an operator's to manage, and this caller is none: 403.
        if (route.method === "DELETE") expect(status).toBe(route.path.startsWith("/v1/root-keys/") ? 403 : 404);
      }),
      { numRuns: 150 },
    );
  });

  it("create-shaped bodies with random field values (including __proto__ and constructor)", async () => {
    await fc.assert(
      fc.asyncProperty(createLike, async (value) => {
        const { status, body } = await expectSafe("POST", "/v1/keys", jsonBody(value));
        if (status === 201) expect(body?.name).toBe(String((value as { name: unknown }).name).trim());
        if (status === 422) expect(Object.keys((body?.errors as object) ?? {}).length).toBeGreaterThan(0);
      }),
      { numRuns: 150 },
    );
  });

  it("fields named like Object.prototype members are unknown fields (422), not a crash", async () => {
    for (const field of PROTOTYPE_NAMES) {
      for (const path of ["/v1/keys", "/v1/verify"]) {
        const raw = `{"name":"x","key":"lk_x",${JSON.stringify(field)}:{"a":1}}`;
        const { status, body } = await expectSafe("POST", path, { auth: jwt, raw, headers: JSON_HEADERS });
        expect(status).toBe(422);
        expect(Object.keys(body?.errors as object)).toContain(field);
      }
    }
  });

  it("raw bytes as a JSON body: never a 5xx, nothing stored unless a key was created", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.uint8Array({ maxLength: 2048 }), async (pick, bytes) => {
        const route = bodyRoutes[pick % bodyRoutes.length]!;
        const { status } = await expectSafe(route.method, route.path, { auth: jwt, raw: bytes, headers: JSON_HEADERS });
        expect(status).not.toBe(201); // random bytes are never a valid create request
      }),
      { numRuns: RUNS },
    );
  });

  it("a body that is not valid UTF-8 is a 400", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), async (a, b) => {
        const raw = new Uint8Array([...a, 0xff, ...b]); // 0xff never occurs in UTF-8
        const { status } = await expectSafe("POST", "/v1/keys", { auth: jwt, raw, headers: JSON_HEADERS });
        expect(status).toBe(400);
      }),
      { numRuns: 50 },
    );
  });
});

describe("content types", () => {
  const NOT_JSON = [
    "text/plain",
    "text/html",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "text/json",
    "application/jsonx",
    "application/json5",
    "application/x-json",
    "application/json, text/plain",
    "json",
    "*/*",
    "application/*",
    "",
  ];
  const contentType = fc.oneof(
    fc.constantFrom(...NOT_JSON),
    fc.stringMatching(/^[a-z]{1,12}\/[a-z0-9.+-]{1,20}$/).filter((t) => !t.includes("json")),
  );

  it("a valid body with a wrong content type is 415 and stores nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), contentType, async (pick, type) => {
        const route = bodyRoutes.filter((r) => r.method === "POST")[pick % 2]!;
        const raw = JSON.stringify(validBody(route));
        const { status } = await expectSafe(route.method, route.path, {
          auth: jwt,
          raw,
          headers: { "content-type": type },
        });
        expect(status).toBe(415);
      }),
      { numRuns: RUNS },
    );
  });

  it("a body with no content type at all is 415", async () => {
    for (const route of bodyRoutes.filter((r) => r.method === "POST")) {
      const raw = new TextEncoder().encode(JSON.stringify(validBody(route))); // bytes: no implied type
      const { status } = await expectSafe(route.method, route.path, { auth: jwt, raw });
      expect(status).toBe(415);
    }
  });
});

function validBody(route: BodyRoute): Record<string, unknown> {
  return route.path === "/v1/verify" ? { key: generateKey("lk") } : { name: "valid" };
}

describe("size and depth", () => {
  it("a body over 16 KB is 413 and stores nothing, whether its length is declared or streamed", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 16 * 1024 + 1, max: 1024 * 1024 }), fc.boolean(), async (size, stream) => {
        const head = '{"name":"huge","metadata":{"pad":"';
        const text = head + "a".repeat(size - head.length - 3) + '"}}';
        const bytes = new TextEncoder().encode(text);
        const raw = stream ? streamOf(bytes, 4096) : bytes;
        const { status } = await expectSafe("POST", "/v1/keys", { auth: jwt, raw, headers: JSON_HEADERS });
        expect(status).toBe(413);
      }),
      { numRuns: 30 },
    );
  });

  it("deeply nested values anywhere in a body: never a 5xx", async () => {
    const nested = fc
      .tuple(fc.integer({ min: 1, max: 8000 }), fc.boolean())
      .map(([depth, arrays]) =>
        arrays ? "[".repeat(depth) + "]".repeat(depth) : '{"a":'.repeat(depth) + "1" + "}".repeat(depth),
      );
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.constantFrom("root", ...CREATE_FIELDS, "key", "scope"),
        nested,
        async (pick, field, value) => {
          const route = bodyRoutes[pick % bodyRoutes.length]!;
          const raw = field === "root" ? value : `{${JSON.stringify(field)}:${value}}`;
          const { status } = await expectSafe(route.method, route.path, { auth: jwt, raw, headers: JSON_HEADERS });
          expect(status).not.toBe(201); // no name: never a valid create
        },
      ),
      { numRuns: 60 },
    );
  });

  it("deeply nested metadata on an otherwise valid create: 201 only when it fits in 2 KB", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5000 }), async (depth) => {
        const metadata = `{"a":${"[".repeat(depth)}${"]".repeat(depth)}}`;
        const raw = `{"name":"nested","metadata":${metadata}}`;
        const { status } = await expectSafe("POST", "/v1/keys", { auth: jwt, raw, headers: JSON_HEADERS });
        expect(status).toBe(metadata.length <= 2048 ? 201 : 422);
      }),
      { numRuns: 40 },
    );
  });
});

describe("names: unicode, control characters, SQL", () => {
  const SPACE = fc.constantFrom("", " ", "\t", "\n", "\u00a0", "\u3000", "\ufeff", "\u2028");

  it("any printable unicode name is stored exactly as sent, trimmed (or 422 when over 100 characters)", async () => {
    const name = fc
      .tuple(SPACE, fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }), SPACE)
      .filter(([, core]) => core.trim().length > 0 && !CONTROL_CHARS.test(core) && !FORMAT_CHARS.test(core))
      .map((parts) => parts.join(""));
    await fc.assert(
      fc.asyncProperty(name, async (sent) => {
        const expected = sent.trim();
        const { status, body } = await expectSafe("POST", "/v1/keys", jsonBody({ name: sent }));
        expect(status).toBe(expected.length <= 100 ? 201 : 422);
        if (status === 201) expect(body?.name).toBe(expected);
        else expect(body?.errors).toHaveProperty("name");
      }),
      { numRuns: RUNS },
    );
  });

  it("a name with a control, format or bidi character or a lone surrogate inside is 422 naming the field", async () => {
    const bad = fc.oneof(
      fc.constantFrom("\u00ad", "\u061c", "\u200b", "\u200d", "\u202e", "\u2066", "\u2069", "\ufeff", "\u{e0001}"),
      fc
        .oneof(fc.integer({ min: 0, max: 0x1f }), fc.integer({ min: 0x7f, max: 0x9f }))
        .map((c) => String.fromCharCode(c)),
      fc.integer({ min: 0xd800, max: 0xdbff }).map((c) => `${String.fromCharCode(c)}x`), // high surrogate, no low
      fc.integer({ min: 0xdc00, max: 0xdfff }).map((c) => `x${String.fromCharCode(c)}`), // low surrogate, no high
    );
    const text = fc.string({ unit: "grapheme", maxLength: 20 });
    await fc.assert(
      fc.asyncProperty(text, bad, text, async (left, middle, right) => {
        const { status, body } = await expectSafe("POST", "/v1/keys", jsonBody({ name: `a${left}${middle}${right}z` }));
        expect(status).toBe(422);
        expect(body?.errors).toHaveProperty("name");
      }),
      { numRuns: RUNS },
    );
  });

  it("SQL metacharacters in a name are stored verbatim and the table survives", async () => {
    const name = sqlText.filter((s) => s.trim().length > 0 && s.trim().length <= 100);
    await fc.assert(
      fc.asyncProperty(name, async (sent) => {
        const { status, body } = await expectSafe("POST", "/v1/keys", jsonBody({ name: sent }));
        expect(status).toBe(201);
        const row = await env.DB.prepare("SELECT name FROM api_keys WHERE id = ?").bind(body?.id).first();
        expect(row).toEqual({ name: sent.trim() });
      }),
      { numRuns: 50 },
    );
  });
});

describe("ids and query strings", () => {
  it("SQL metacharacters and junk as a key id: 404 for GET and DELETE, nothing changed", async () => {
    const id = fc
      .oneof(
        sqlText,
        sqlText.map((s) => `${owned.id}${s}`),
        sqlText.map((s) => `${s}${owned.id}`),
        fc.string({ unit: "binary", minLength: 1, maxLength: 60 }),
      )
      // "/v1/keys/" would be the list, and so would "/v1/keys/." and "/v1/keys/.." (URL dot segments).
      .filter((s) => s.length > 0 && s !== "." && s !== "..");
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("GET", "DELETE"), id, async (method, raw) => {
        const { status } = await expectSafe(method, `/v1/keys/${encodeURIComponent(raw)}`, { auth: jwt });
        expect(status).toBe(404);
      }),
      { numRuns: RUNS },
    );
    // The key that the injections tried to reach is untouched.
    const check = await call("GET", `/v1/keys/${owned.id}`, { auth: jwt });
    expect(await check.json()).toMatchObject({ id: owned.id, revoked_at: null });
  });

  it("random query strings on the list: a page or a 400 problem, nothing changed", async () => {
    const pair = fc.tuple(
      fc.oneof(fc.constantFrom("limit", "cursor", "include_revoked", ...PROTOTYPE_NAMES), fc.string({ maxLength: 8 })),
      fc.oneof(
        sqlText,
        fc.string({ unit: "binary", maxLength: 30 }),
        fc.integer().map(String),
        fc.constantFrom("true", "0"),
      ),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(pair, { maxLength: 4 }), async (pairs) => {
        const query = new URLSearchParams(pairs).toString();
        const { status, body } = await expectSafe("GET", `/v1/keys?${query}`, { auth: jwt });
        if (status === 200) expect(Array.isArray(body?.data)).toBe(true);
        else expect(status).toBe(400);
      }),
      { numRuns: RUNS },
    );
  });

  it("an SQL-laden cursor is a 400 naming the cursor", async () => {
    await fc.assert(
      fc.asyncProperty(sqlText, async (cursor) => {
        const { status, body } = await expectSafe("GET", `/v1/keys?cursor=${encodeURIComponent(cursor)}`, {
          auth: jwt,
        });
        expect(status).toBe(400);
        expect(body?.errors).toHaveProperty("cursor");
      }),
      { numRuns: 50 },
    );
  });

  /** Resource ids the schema accepts, rich in the characters SQL and LIKE treat specially (_ - : / . @). */
  const metaResource = fc
    .tuple(
      fc.constantFrom("m", "M", "m1", "1", "x"),
      fc.array(fc.constantFrom("_", "-", "--", ":", ":id", "/", ".", "@", "1", "m"), {
        maxLength: 6,
      }),
    )
    .map(([head, rest]) => head + rest.join(""));
  /** Scopes the schema accepts, with the same characters where a scope allows them. */
  const metaScope = fc
    .tuple(
      fc.constantFrom("models", "models_", "models-", "m"),
      fc.constantFrom("invoke", "i_", "i--", "*", "invoke:x"),
    )
    .map(([resource, action]) => `${resource}:${action}`);
  const isScope = (s: string) => /^(?:\*|[a-z][a-z0-9_-]*(?::[a-z][a-z0-9_-]*)*:(?:\*|[a-z][a-z0-9_-]*))$/.test(s);
  const isResource = (s: string) => s.length <= 128 && /^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/.test(s);

  it("SQL metacharacters in verify's key, scope and resource reach storage and the comparisons: never a match", async () => {
    // A real key limited to one scope and one resource: a lookup finds it, so scope and resource are compared.
    const limited = await createKey(jwt, { scopes: ["models:invoke"], resources: ["m1"] });
    const keyKind = fc.constantFrom("real", "unknown", "malformed");
    await fc.assert(
      fc.asyncProperty(
        keyKind,
        fc.option(fc.oneof(sqlText, metaScope), { nil: undefined }),
        fc.oneof(sqlText, metaResource).filter((r) => r !== "m1"),
        async (kind, scope, resource) => {
          const key =
            kind === "real"
              ? limited.key
              : kind === "unknown"
                ? generateKey("lk") // well-formed: its hash goes to KV and D1
                : limited.key.slice(0, 20) + resource;
          const request = { key, resource, ...(scope === undefined ? {} : { scope }) };
          const { status, body } = await expectSafe("POST", "/v1/verify", jsonBody(request));
          if (scope !== undefined && !isScope(scope)) {
            expect(status).toBe(422);
            expect(body?.errors).toHaveProperty("scope");
            return;
          }
          if (!isResource(resource)) {
            expect(status).toBe(422);
            expect(body?.errors).toHaveProperty("resource");
            return;
          }
          expect(status).toBe(200);
          const expected =
            kind === "malformed"
              ? { code: "MALFORMED", key_id: null }
              : kind === "unknown"
                ? { code: "NOT_FOUND", key_id: null }
                : scope !== undefined && scope !== "models:invoke"
                  ? { code: "INSUFFICIENT_SCOPE", key_id: limited.id }
                  : { code: "RESOURCE_NOT_ALLOWED", key_id: limited.id };
          expect(body).toMatchObject({ valid: false, ...expected });
        },
      ),
      { numRuns: 100 },
    );
  });

  it("resource ids with SQL and LIKE metacharacters are stored verbatim and match only themselves", async () => {
    await fc.assert(
      fc.asyncProperty(metaResource, metaResource, async (stored, asked) => {
        const created = await createKey(jwt, { resources: [stored] });
        const row = await env.DB.prepare("SELECT resources FROM api_keys WHERE id = ?").bind(created.id).first();
        expect(row).toEqual({ resources: JSON.stringify([stored]) });
        const before = await tableSnapshot([created.id]); // a valid use may record the key's last use
        for (const [resource, code] of [
          [stored, "VALID"],
          [asked, asked === stored ? "VALID" : "RESOURCE_NOT_ALLOWED"],
          [`${stored}_`, "RESOURCE_NOT_ALLOWED"],
        ] as const) {
          const response = await call("POST", "/v1/verify", { body: { key: created.key, resource } });
          expect(response.status).toBe(200);
          expect(await response.json()).toMatchObject({ code, key_id: created.id });
        }
        expect(await tableSnapshot([created.id])).toEqual(before);
      }),
      { numRuns: 30 },
    );
  });
});

describe("Authorization headers", () => {
  const printable = fc.string({
    unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
    maxLength: 200,
  });
  const base62 = fc.string({
    unit: fc.constantFrom(..."0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
    minLength: 49,
    maxLength: 49,
  });
  const base64url = fc.base64String({ minLength: 4, maxLength: 200 }).map((s) => s.replace(/[=+/]/g, "_"));

  function authorization(realKey: string): fc.Arbitrary<string> {
    return fc.oneof(
      printable,
      printable.map((s) => `Bearer ${s}`),
      printable.map((s) => `Api-Key ${s}`),
      fc.constantFrom("Bearer", "Bearer ", "Api-Key", "Basic dXNlcjpwYXNz", "Digest x", "Bearer null", "Bearer lk_"),
      fc.tuple(fc.constantFrom("Bearer", "Api-Key", "bearer", "API-KEY"), base62).map(([s, b]) => `${s} lk_${b}`),
      fc.constantFrom("Bearer", "Api-Key").map((s) => `${s} ${generateKey("lk")}`), // well-formed, unknown
      fc
        .tuple(fc.nat(), fc.constantFrom(..."0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
        .map(([at, c]) => {
          const i = 3 + (at % (realKey.length - 3)); // change one character of the real key's body
          const changed = realKey.slice(0, i) + (realKey[i] === c ? (c === "a" ? "b" : "a") : c) + realKey.slice(i + 1);
          return `Bearer ${changed}`;
        }),
      fc.constantFrom(`Bearer ${realKey}x`, `Bearer ${realKey.slice(0, -1)}`, `Bearer x${realKey}`, `Basic ${realKey}`),
      fc.tuple(base64url, base64url, base64url).map((parts) => `Bearer ${parts.join(".")}`), // JWT-shaped
      fc.integer({ min: 8_000, max: 70_000 }).map((n) => `Bearer ${"A".repeat(n)}`), // oversized
      fc.integer({ min: 8_000, max: 70_000 }).map((n) => `Api-Key lk_${"a".repeat(n)}`),
    );
  }

  it("random and oversized credentials on every authenticated route: 401 with WWW-Authenticate, nothing changed", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), authorization(owned.key), async (pick, value) => {
        const route = authRoutes[pick % authRoutes.length]!;
        const before = await tableSnapshot();
        const response = await call(route.method, route.path, {
          headers: { authorization: value, "cf-connecting-ip": freshIp(), ...JSON_HEADERS },
          ...(route.method === "POST" ? { raw: JSON.stringify({ name: "should not exist" }) } : {}),
        });
        await expectProblem(response, 401);
        expect(response.headers.get("www-authenticate")).toMatch(/^Bearer /);
        expect(await tableSnapshot()).toEqual(before);
      }),
      { numRuns: 150 },
    );
  });
});

describe("methods and paths", () => {
  it("a method a path does not serve is 405 with Allow, nothing changed", async () => {
    const paths = [...new Set(routes.map((r) => r.path))];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...paths),
        fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
        async (pattern, method) => {
          const path = pattern.replace(":id", owned.id);
          // Every route whose pattern takes this path (POST /v1/keys/import is also GET /v1/keys/:id's).
          const takes = (r: (typeof routes)[number]) => new RegExp(`^${r.path.replace(/:\w+/g, "[^/]+")}$`).test(path);
          const allowed = [...new Set(routes.filter(takes).map((r) => r.method.toUpperCase()))];
          if (allowed.includes("GET")) allowed.push("HEAD"); // HEAD is served wherever GET is
          fc.pre(!allowed.includes(method));
          const { status, headers } = await expectSafe(method, path, { auth: jwt });
          expect(status).toBe(405);
          expect(headers.get("allow")?.split(", ").sort()).toEqual(allowed.sort());
        },
      ),
      { numRuns: 60 },
    );
  });

  it("paths that name no route are 404 for every method", async () => {
    const segment = fc
      .string({ unit: "binary", minLength: 1, maxLength: 20 })
      .map(encodeURIComponent)
      .filter((s) => s !== "." && s !== ".."); // dot segments would be resolved into another path
    const path = fc.oneof(
      segment.map((s) => `/x${s}`),
      segment.filter((s) => !["keys", "whoami", "verify"].includes(s)).map((s) => `/v1/${s}`),
      fc.tuple(segment, segment).map(([a, b]) => `/v1/keys/${a}/${b}`),
      fc.tuple(sqlText.map(encodeURIComponent), segment).map(([a, b]) => `/v2/${a}/${b}`),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH"), path, async (method, p) => {
        const { status } = await expectSafe(method, p, {
          auth: jwt,
          ...(method === "GET" ? {} : jsonBody({ name: "x" })),
        });
        expect(status).toBe(404);
      }),
      { numRuns: RUNS },
    );
  });
});
