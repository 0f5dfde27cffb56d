/**
 * The four vendor dialects (src/http/dialects), each against its page (../shared/reference): the
 * page's example requests replayed header for header and byte for byte (with real credentials), every
 * documented field, status and error shape, and the responses of Replicas and Baseten validated
 * against the vendors' own OpenAPI fragments (compiled by test/setup/vendor-schemas.mjs). DIALECTS
 * decides what is mounted and documented.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DIALECT_NAMES } from "../../src/config";
import { autocallsRoutes } from "../../src/http/dialects/autocalls";
import { basetenRoutes } from "../../src/http/dialects/baseten";
import { fastapiRoutes } from "../../src/http/dialects/fastapi";
import { replicasRoutes } from "../../src/http/dialects/replicas";
import { renderFailure } from "../../src/http/failure";
import { buildOpenApiDocument } from "../../src/http/openapi-build";
import { routes as latchkeyRoutes } from "../../src/http/routes";
import type { Route } from "../../src/http/route";
import * as vendor from "../../.wrangler/test/vendor-schemas.mjs";
import { call, captureLogs, createKey, envWith, faultyDb, token, uniqueSub } from "../helpers";

const CLIENT = () => ({ "cf-connecting-ip": uniqueSub("client") });

/** Sends exactly these headers and body bytes (plus the client address the edge adds). */
function send(method: string, path: string, headers: Record<string, string>, body?: string, testEnv?: Env) {
  return call(method, path, {
    headers: { ...headers, ...CLIENT() },
    ...(body === undefined ? {} : { raw: body }),
    ...(testEnv ? { env: testEnv } : {}),
  });
}

type Env = ReturnType<typeof envWith>;
type Validator = ((data: unknown) => boolean) & { errors?: unknown };

/** Asserts `data` matches the vendor's schema for "<vendor> <METHOD> <path> <status|request>". */
function expectVendorSchema(what: string, data: unknown): void {
  const name = (vendor.VENDOR_SCHEMAS_INDEX as Record<string, string>)[what];
  expect(name, `no vendor schema for ${what}`).toBeDefined();
  const validate = (vendor as unknown as Record<string, Validator>)[name!]!;
  expect(validate(data), `${what}: ${JSON.stringify(validate.errors)}`).toBe(true);
}

async function jsonOf(response: Response, status: number, type = "application/json") {
  expect(response.status, await response.clone().text()).toBe(status);
  expect(response.headers.get("content-type")).toBe(type);
  return response.json<Record<string, unknown>>();
}

async function whoami(credential: string): Promise<Response> {
  return call("GET", "/v1/whoami", { headers: { authorization: `Bearer ${credential}`, ...CLIENT() } });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** A 500 in the route's shape (an unexpected error; nothing of it is disclosed). */
async function unexpected(route: Route): Promise<Response> {
  vi.spyOn(console, "error").mockImplementation(() => {});
  return renderFailure(route.errorFormat!, new Error("secret internals"));
}

afterEach(() => vi.restoreAllMocks());

describe("replicas: POST /v1/user/api-keys", () => {
  const PATH = "/v1/user/api-keys";
  const replicaError = (body: unknown) => expectVendorSchema("replicas POST /v1/user/api-keys 401", body);

  it("replays the page's request (Bearer JWT, JSON {name}): 201 with id, name, key (once) and created_at", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    const body = '{"name":"My laptop"}';
    expectVendorSchema("replicas POST /v1/user/api-keys request", JSON.parse(body));
    const response = await send(
      "POST",
      PATH,
      { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
      body,
    );
    const created = await jsonOf(response, 201);
    expect(Object.keys(created).sort()).toEqual(["created_at", "id", "key", "name"]);
    expect(created).toMatchObject({
      id: expect.stringMatching(UUID),
      name: "My laptop",
      created_at: expect.stringMatching(ISO),
    });
    expect(response.headers.get("cache-control")).toBe("no-store");
    const me = await jsonOf(await whoami(String(created.key)), 200);
    expect(me).toMatchObject({ owner_type: "user", owner_id: sub, key_id: created.id, scopes: ["*"] });
  });

  it("requires a JWT: an API key, or none, gets 401 in the page's Error shape", async () => {
    const { key } = await createKey(await token(uniqueSub()));
    for (const headers of [{ Authorization: `Bearer ${key}` }, { Authorization: `Api-Key ${key}` }, {}] as Record<
      string,
      string
    >[]) {
      const error = await jsonOf(
        await send("POST", PATH, { ...headers, "Content-Type": "application/json" }, '{"name":"x"}'),
        401,
      );
      replicaError(error);
      expect(error).toEqual({ error: "Unauthorized", details: expect.any(String) });
    }
  });

  it("answers invalid input with 400 (never 422): missing or non-string name, unknown field, malformed JSON", async () => {
    const auth = { Authorization: `Bearer ${await token(uniqueSub())}`, "Content-Type": "application/json" };
    for (const [body, detail] of [
      ["{}", /name: Required/],
      ['{"name":42}', /name:/],
      ['{"name":"   "}', /name: Must not be empty/],
      ['{"name":"x","scopes":["*"]}', /scopes: Unknown field/],
      ['{"name":', /not valid JSON/],
      ["[]", /body:/],
    ] as const) {
      const error = await jsonOf(await send("POST", PATH, auth, body), 400);
      replicaError(error);
      expect(error.error).toBe("Invalid request");
      expect(error.details).toMatch(detail);
    }
  });

  it("gives every other failure the same shape: 405, 415, 413, 503, 500", async () => {
    const auth = { Authorization: `Bearer ${await token(uniqueSub())}` };
    const cases: [Promise<Response>, number][] = [
      [send("GET", PATH, auth), 405],
      [send("POST", PATH, { ...auth, "Content-Type": "text/plain" }, '{"name":"x"}'), 415],
      [
        send(
          "POST",
          PATH,
          { ...auth, "Content-Type": "application/json" },
          JSON.stringify({ name: "x".repeat(20_000) }),
        ),
        413,
      ],
      [
        send(
          "POST",
          PATH,
          { ...auth, "Content-Type": "application/json" },
          '{"name":"x"}',
          envWith({ DB: faultyDb("reject") }),
        ),
        503,
      ],
    ];
    vi.spyOn(console, "error").mockImplementation(() => {});
    for (const [pending, status] of cases) replicaError(await jsonOf(await pending, status));
    const failed = await jsonOf(await unexpected(replicasRoutes[0]!), 500);
    replicaError(failed);
    expect(failed).toEqual({ error: "Internal Server Error", details: null });
  });
});

describe("fastapi: POST /api/auth/api-keys/", () => {
  const URL_PATH = "/api/auth/api-keys/";
  const PROBLEM = "application/problem+json";

  async function expectProblemDetail(response: Response, status: number) {
    const problem = await jsonOf(response, status, PROBLEM);
    expect(problem).toMatchObject({
      type: "about:blank",
      title: expect.any(String),
      status,
      detail: expect.any(String),
    });
    expect(String(problem.detail).length).toBeGreaterThan(0);
    return problem;
  }

  function expectCreateResponse(body: Record<string, unknown>, name: string) {
    expect(Object.keys(body).sort()).toEqual(["created_at", "id", "key", "name"]);
    expect(body).toMatchObject({ id: expect.stringMatching(UUID), name, created_at: expect.stringMatching(ISO) });
  }

  it("replays the page's fetch and curl, with a JWT and with a key holding keys:write, with and without the slash", async () => {
    const jwt = await token(uniqueSub());
    const { key: writer } = await createKey(jwt, { scopes: ["keys:write"] });
    for (const credential of [jwt, writer]) {
      for (const path of [URL_PATH, "/api/auth/api-keys"]) {
        // fetch(url, { method: 'POST', headers: {Authorization: 'Bearer <token>', 'Content-Type': 'application/json'}, body: '{"name":"example"}' })
        const viaFetch = await send(
          "POST",
          path,
          { Authorization: `Bearer ${credential}`, "Content-Type": "application/json" },
          '{"name":"example"}',
        );
        expectCreateResponse(await jsonOf(viaFetch, 201), "example");
        // curl --header 'Authorization: Bearer <token>' --header 'Content-Type: application/json' --data '{ "name": "example" }'
        const viaCurl = await send(
          "POST",
          path,
          { Accept: "*/*", Authorization: `Bearer ${credential}`, "Content-Type": "application/json" },
          '{ "name": "example" }',
        );
        const created = await jsonOf(viaCurl, 201);
        expectCreateResponse(created, "example");
        expect((await whoami(String(created.key))).status).toBe(200);
      }
    }
  });

  it("ignores unknown fields, as pydantic does", async () => {
    const jwt = await token(uniqueSub());
    const created = await jsonOf(
      await send(
        "POST",
        URL_PATH,
        { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
        '{"name":"x","scopes":["keys:read"],"extra":1}',
      ),
      201,
    );
    expectCreateResponse(created, "x");
    expect(await jsonOf(await whoami(String(created.key)), 200)).toMatchObject({ scopes: ["*"] });
  });

  it("answers 400, 401, 403, 422 and 500 as ProblemDetail with title, status and detail", async () => {
    const jwt = await token(uniqueSub());
    const { key: reader } = await createKey(jwt, { scopes: ["keys:read"] });
    const json = { "Content-Type": "application/json" };
    await expectProblemDetail(await send("POST", URL_PATH, { Authorization: `Bearer ${jwt}`, ...json }, "{"), 400);
    const unauthorized = await expectProblemDetail(await send("POST", URL_PATH, json, '{"name":"x"}'), 401);
    expect(unauthorized.title).toBe("Unauthorized");
    await expectProblemDetail(
      await send("POST", URL_PATH, { Authorization: "Bearer lk_nope", ...json }, '{"name":"x"}'),
      401,
    );
    const forbidden = await expectProblemDetail(
      await send("POST", URL_PATH, { Authorization: `Bearer ${reader}`, ...json }, '{"name":"x"}'),
      403,
    );
    expect(forbidden.detail).toMatch(/keys:write/);
    const invalid = await expectProblemDetail(
      await send("POST", URL_PATH, { Authorization: `Bearer ${jwt}`, ...json }, "{}"),
      422,
    );
    expect(invalid).toMatchObject({ detail: "name: Required", errors: { name: ["Required"] } });
    await expectProblemDetail(await send("GET", URL_PATH, { Authorization: `Bearer ${jwt}` }), 405);
    // JSON sent as a form is the Baseten dialect's allowance only.
    await expectProblemDetail(
      await send(
        "POST",
        URL_PATH,
        { Authorization: `Bearer ${jwt}`, "Content-Type": "application/x-www-form-urlencoded" },
        '{"name":"x"}',
      ),
      415,
    );
    const failed = await expectProblemDetail(await unexpected(fastapiRoutes[0]!), 500);
    expect(JSON.stringify(failed)).not.toContain("secret internals");
  });
});

describe("autocalls: /api/user/api-keys", () => {
  const PATH = "/api/user/api-keys";

  /** The page's curl: -H "Authorization: Bearer YOUR_EXISTING_API_KEY" -H "Content-Type: application/json" -d '{ "name": ... }'. */
  const pageCurl = (credential: string) =>
    send(
      "POST",
      PATH,
      { Accept: "*/*", Authorization: `Bearer ${credential}`, "Content-Type": "application/json" },
      '{\n    "name": "Production API Key"\n  }',
    );

  it("replays the page's curl with an existing API key: 201 with message and api_key { name, token, created_at }", async () => {
    const jwt = await token(uniqueSub());
    const existing = await createKey(jwt, { scopes: ["keys:write", "keys:read"] });
    const response = await pageCurl(existing.key);
    const body = await jsonOf(response, 201);
    expect(body).toEqual({
      message: "API key created successfully.",
      api_key: {
        name: "Production API Key",
        token: expect.stringMatching(/^[0-9a-f-]{36}\|lk_/),
        created_at: expect.stringMatching(ISO),
      },
    });
    expect(response.headers.get("cache-control")).toBe("no-store");
    // A session (JWT) may create one too.
    expect((await pageCurl(jwt)).status).toBe(201);
  });

  it("the token <id>|<secret> and the bare secret work as Bearer credentials on every route", async () => {
    const jwt = await token(uniqueSub());
    const created = await jsonOf(await pageCurl(jwt), 201);
    const tokenValue = String((created.api_key as { token: string }).token);
    const [id, secret] = tokenValue.split("|") as [string, string];
    for (const credential of [tokenValue, secret]) {
      expect(await jsonOf(await whoami(credential), 200)).toMatchObject({ principal: "api_key", key_id: id });
      expect((await call("GET", `/v1/keys/${id}`, { auth: credential })).status).toBe(200);
      expect((await call("GET", PATH, { auth: credential })).status).toBe(200);
      expect((await call("POST", "/v1/keys", { auth: credential, body: { name: "child" } })).status).toBe(201);
      expect(await (await call("POST", "/v1/verify", { body: { key: credential } })).json()).toMatchObject({
        valid: true,
        key_id: id,
      });
    }
    // The id part must be the key's own.
    const other = await createKey(jwt);
    expect((await whoami(`${other.id}|${secret}`)).status).toBe(401);
  });

  it("lists the caller's keys with their ids (never a secret) and deletes one: it stops working", async () => {
    const jwt = await token(uniqueSub());
    const created = await jsonOf(await pageCurl(jwt), 201);
    const tokenValue = String((created.api_key as { token: string }).token);
    const [id, secret] = tokenValue.split("|") as [string, string];

    const listed = await jsonOf(await send("GET", PATH, { Authorization: `Bearer ${tokenValue}` }), 200);
    expect(listed).toEqual({
      data: [
        {
          id,
          name: "Production API Key",
          start: secret.slice(0, 9),
          created_at: expect.any(String),
          last_used_at: expect.anything(),
          expires_at: null,
        },
      ],
      next_cursor: null,
    });
    expect(JSON.stringify(listed)).not.toContain(secret.slice(9));

    const deleted = await jsonOf(await send("DELETE", `${PATH}/${id}`, { Authorization: `Bearer ${jwt}` }), 200);
    expect(deleted).toEqual({ message: "API key deleted successfully." });
    for (const credential of [tokenValue, secret]) {
      expect(await jsonOf(await send("GET", PATH, { Authorization: `Bearer ${credential}` }), 401)).toEqual({
        message: "Unauthenticated.",
      });
    }
    expect((await jsonOf(await send("GET", PATH, { Authorization: `Bearer ${jwt}` }), 200)).data).toEqual([]);
    const missing = await jsonOf(
      await send("DELETE", `${PATH}/${crypto.randomUUID()}`, { Authorization: `Bearer ${jwt}` }),
      404,
    );
    expect(missing).toEqual({ message: expect.any(String) });
  });

  it("answers in Laravel's shapes: 422 with errors by field, 401 Unauthenticated., 403, 405, 429, 500", async () => {
    const jwt = await token(uniqueSub());
    const json = { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" };
    expect(await jsonOf(await send("POST", PATH, json, "{}"), 422)).toEqual({
      message: "The name field is required.",
      errors: { name: ["The name field is required."] },
    });
    expect(await jsonOf(await send("POST", PATH, json, '{"name":5}'), 422)).toEqual({
      message: "The name field must be a string.",
      errors: { name: ["The name field must be a string."] },
    });
    expect((await jsonOf(await send("POST", PATH, json, '{"name":"x","unknown":true}'), 201)).message).toBe(
      "API key created successfully.",
    );
    for (const auth of [
      {},
      { Authorization: "Bearer lk_nope" },
      { Authorization: `Bearer ${crypto.randomUUID()}|lk_nope` },
    ] as Record<string, string>[]) {
      expect(
        await jsonOf(await send("POST", PATH, { ...auth, "Content-Type": "application/json" }, '{"name":"x"}'), 401),
      ).toEqual({
        message: "Unauthenticated.",
      });
    }
    const { key: reader } = await createKey(jwt, { scopes: ["keys:read"] });
    expect(
      await jsonOf(await send("POST", PATH, { ...json, Authorization: `Bearer ${reader}` }, '{"name":"x"}'), 403),
    ).toEqual({
      message: expect.stringMatching(/keys:write/),
    });
    const notAllowed = await send("PUT", PATH, json, "{}");
    expect(await jsonOf(notAllowed, 405)).toEqual({ message: expect.any(String) });
    expect(notAllowed.headers.get("allow")).toBe("POST, GET, HEAD"); // HEAD wherever GET, as Laravel does
    expect(await jsonOf(await unexpected(autocallsRoutes[0]!), 500)).toEqual({ message: "Server Error" });

    // Failed authentications past the limit get Laravel's throttle answer.
    const client = uniqueSub("client");
    let last: Response | undefined;
    for (let i = 0; i < 102; i++) {
      last = await call("GET", PATH, { headers: { authorization: "Bearer lk_nope", "cf-connecting-ip": client } });
    }
    expect(await jsonOf(last!, 429)).toEqual({ message: "Too Many Attempts." });
    expect(last!.headers.get("retry-after")).toMatch(/^\d+$/);
  });
});

describe("baseten: POST /v1/api_keys", () => {
  const PATH = "/v1/api_keys";
  const PAGE_BODY = '{\n  "name": "my-api-key",\n  "type": "PERSONAL"\n}';

  /** The page's curl: --header "Authorization: Api-Key $BASETEN_API_KEY" --data '{...}' (so curl's form content type). */
  const pageCurl = (key: string, body = PAGE_BODY) =>
    send(
      "POST",
      PATH,
      { Accept: "*/*", Authorization: `Api-Key ${key}`, "Content-Type": "application/x-www-form-urlencoded" },
      body,
    );

  async function created(response: Response): Promise<string> {
    const body = await jsonOf(response, 200);
    expectVendorSchema("baseten POST /v1/api_keys 200", body);
    expect(Object.keys(body)).toEqual(["api_key"]);
    return String(body.api_key);
  }

  async function describeKey(key: string) {
    const me = await jsonOf(await whoami(key), 200);
    const verdict = await (await call("POST", "/v1/verify", { body: { key } })).json<{ resources: string[] | null }>();
    return { owner_type: me.owner_type, owner_id: me.owner_id, scopes: me.scopes, resources: verdict.resources };
  }

  it("replays the page's curl (--data, no Content-Type) and its Python request", async () => {
    expectVendorSchema("baseten POST /v1/api_keys request", JSON.parse(PAGE_BODY));
    const sub = uniqueSub();
    const { key } = await createKey(await token(sub));
    const fromCurl = await created(await pageCurl(key));
    expect(await describeKey(fromCurl)).toEqual({ owner_type: "user", owner_id: sub, scopes: ["*"], resources: null });
    // requests.request("POST", url, headers={"Authorization": f"Api-Key {API_KEY}"}, json={'name': 'my-api-key', 'type': 'PERSONAL'})
    const fromPython = await send(
      "POST",
      PATH,
      {
        "User-Agent": "python-requests/2.32.3",
        Accept: "*/*",
        Authorization: `Api-Key ${key}`,
        "Content-Type": "application/json",
      },
      '{"name": "my-api-key", "type": "PERSONAL"}',
    );
    expect((await describeKey(await created(fromPython))).scopes).toEqual(["*"]);
  });

  it("maps each type onto owner, scopes and resources; model_ids limit the model-scoped types", async () => {
    const org = `org-${uniqueSub()}`;
    const jwt = await token(uniqueSub(), { org });
    const post = (body: unknown) =>
      send("POST", PATH, { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" }, JSON.stringify(body));
    expect(await describeKey(await created(await post({ type: "WORKSPACE_MANAGE_ALL", name: null })))).toEqual({
      owner_type: "workspace",
      owner_id: org,
      scopes: ["*"],
      resources: null,
    });
    expect(await describeKey(await created(await post({ type: "WORKSPACE_EXPORT_METRICS" })))).toEqual({
      owner_type: "workspace",
      owner_id: org,
      scopes: ["metrics:read"],
      resources: null,
    });
    expect(await describeKey(await created(await post({ type: "WORKSPACE_INVOKE", model_ids: ["m1", "m2"] })))).toEqual(
      {
        owner_type: "workspace",
        owner_id: org,
        scopes: ["models:invoke"],
        resources: ["m1", "m2"],
      },
    );
    const listed = await (await call("GET", "/v1/keys", { auth: jwt })).json<{ data: { name: string }[] }>();
    expect(listed.data.map((k) => k.name)).toContain("WORKSPACE_MANAGE_ALL");
  });

  it("lets each caller create only what it may: a key creates keys of its own owner, no stronger than itself", async () => {
    const org = `org-${uniqueSub()}`;
    const jwt = await token(uniqueSub(), { org });
    const { key: personal } = await createKey(jwt);
    const { key: invoker } = await createKey(jwt, { scopes: ["keys:write", "models:invoke"] });
    const workspaceKey = await created(
      await send(
        "POST",
        PATH,
        { Authorization: `Api-Key ${personal}`, "Content-Type": "application/json" },
        '{"type":"PERSONAL"}',
      ),
    );
    expect((await describeKey(workspaceKey)).owner_type).toBe("user");

    const manager = await created(
      await send(
        "POST",
        PATH,
        { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
        '{"type":"WORKSPACE_MANAGE_ALL"}',
      ),
    );
    const invoke = await created(await pageCurl(manager, '{"type":"WORKSPACE_INVOKE","model_ids":["m1"]}'));
    expect(await describeKey(invoke)).toMatchObject({ owner_type: "workspace", owner_id: org, resources: ["m1"] });

    for (const [key, body] of [
      [personal, '{"type":"WORKSPACE_INVOKE"}'], // a personal key acts for its person only
      [manager, '{"type":"PERSONAL"}'], // a workspace key for its workspace only
      [invoker, '{"type":"PERSONAL"}'], // "*" is beyond a key holding models:invoke
    ] as const) {
      const refused = await jsonOf(await pageCurl(key, body), 403);
      expect(refused).toEqual({ detail: expect.any(String) });
    }
    // A person whose token names no workspace cannot make workspace keys.
    const loner = await token(uniqueSub());
    const noWorkspace = await jsonOf(
      await send(
        "POST",
        PATH,
        { Authorization: `Bearer ${loner}`, "Content-Type": "application/json" },
        '{"type":"WORKSPACE_INVOKE"}',
      ),
      422,
    );
    expect(noWorkspace).toEqual({
      detail: [{ type: "value_error", loc: ["body", "type"], msg: expect.stringMatching(/workspace/) }],
    });
  });

  it("answers in FastAPI's shapes: 422 detail list, 401, 400, 405", async () => {
    const { key } = await createKey(await token(uniqueSub()));
    const cases: [string, unknown][] = [
      ['{"name":"x"}', [{ type: "missing", loc: ["body", "type"], msg: "Field required" }]],
      ['{"type":"ADMIN"}', [{ type: "value_error", loc: ["body", "type"], msg: expect.any(String) }]],
      [
        '{"type":"PERSONAL","model_ids":["m1"]}',
        [{ type: "value_error", loc: ["body", "model_ids"], msg: expect.stringMatching(/WORKSPACE_INVOKE/) }],
      ],
      [
        '{"type":"WORKSPACE_INVOKE","model_ids":[7]}',
        [{ type: "value_error", loc: ["body", "model_ids", 0], msg: expect.any(String) }],
      ],
    ];
    for (const [body, detail] of cases) expect(await jsonOf(await pageCurl(key, body), 422)).toEqual({ detail });
    expect(await jsonOf(await pageCurl("lk_nope"), 401)).toEqual({ detail: expect.stringMatching(/malformed/) });
    expect(await jsonOf(await pageCurl(key, "{"), 400)).toEqual({ detail: expect.stringMatching(/JSON/) });
    expect(await jsonOf(await send("GET", PATH, { Authorization: `Api-Key ${key}` }), 405)).toEqual({
      detail: expect.any(String),
    });
    expect(await jsonOf(await unexpected(basetenRoutes[0]!), 500)).toEqual({
      detail: "Something went wrong on our side",
    });
  });

  it("is the only route that reads JSON sent as a form", async () => {
    const jwt = await token(uniqueSub());
    const form = { Authorization: `Bearer ${jwt}`, "Content-Type": "application/x-www-form-urlencoded" };
    expect((await send("POST", "/v1/keys", form, '{"name":"x"}')).status).toBe(415);
    expect((await send("POST", "/api/user/api-keys", form, '{"name":"x"}')).status).toBe(415);
    expect((await send("POST", "/v1/user/api-keys", form, '{"name":"x"}')).status).toBe(415);
    // A real form is not JSON: 400, nothing created.
    expect((await send("POST", PATH, form, "name=x&type=PERSONAL")).status).toBe(400);
  });
});

describe("DIALECTS", () => {
  const paths = (doc: { paths: Record<string, unknown> }) => Object.keys(doc.paths);

  it("mounts and documents only the dialects it names", async () => {
    const jwt = await token(uniqueSub());
    const only = envWith({ DIALECTS: "baseten" });
    expect(
      (
        await send(
          "POST",
          "/v1/api_keys",
          { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
          '{"type":"PERSONAL"}',
          only,
        )
      ).status,
    ).toBe(200);
    const notMounted = await send(
      "POST",
      "/api/user/api-keys",
      { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
      '{"name":"x"}',
      only,
    );
    expect(notMounted.status).toBe(404);
    expect(notMounted.headers.get("content-type")).toBe("application/problem+json");
    const doc = await (
      await call("GET", "/openapi.json", { env: only })
    ).json<{ paths: Record<string, unknown>; tags: { name: string }[] }>();
    expect(paths(doc)).toContain("/v1/api_keys");
    expect(paths(doc)).not.toContain("/api/user/api-keys");
    expect(doc.tags.map((t) => t.name)).not.toContain("replicas");
    // The served part of the prebuilt document is exactly the document built for these routes alone:
    // no other dialect's operations, tags or components.
    const built = (routes: readonly Route[]) => JSON.parse(JSON.stringify(buildOpenApiDocument(routes))) as unknown;
    expect(doc).toEqual(built([...latchkeyRoutes, ...basetenRoutes]));

    const none = envWith({ DIALECTS: "" });
    expect(
      (
        await send(
          "POST",
          "/v1/api_keys",
          { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
          '{"type":"PERSONAL"}',
          none,
        )
      ).status,
    ).toBe(404);
    const bare = await (await call("GET", "/openapi.json", { env: none })).json<{ paths: Record<string, unknown> }>();
    expect(paths(bare)).not.toContain("/v1/api_keys");
    expect(bare).toEqual(built(latchkeyRoutes));
  });

  it("reports an unknown name as a configuration error and mounts the others", async () => {
    const logs = captureLogs();
    const typo = envWith({ DIALECTS: "baseten, stripe" });
    const jwt = await token(uniqueSub());
    expect(
      (
        await send(
          "POST",
          "/v1/api_keys",
          { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
          '{"type":"PERSONAL"}',
          typo,
        )
      ).status,
    ).toBe(200);
    logs.restore();
    expect(logs.events("configuration_invalid").map((line) => line.problem)).toContainEqual(
      expect.stringMatching(/DIALECTS names an unknown dialect "stripe"/),
    );
  });

  it("defaults to all four, each under its own tag with its page's success and error schemas", async () => {
    expect(env.DIALECTS?.split(",")).toEqual([...DIALECT_NAMES]);
    const doc = await (
      await call("GET", "/openapi.json")
    ).json<{
      paths: Record<
        string,
        Record<
          string,
          {
            tags: string[];
            responses: Record<string, { $ref?: string; content?: Record<string, { schema: { $ref?: string } }> }>;
          }
        >
      >;
    }>();
    const op = (path: string, method: string) => doc.paths[path]![method]!;
    const ref = (path: string, method: string, status: string, type: string) =>
      op(path, method).responses[status]?.content?.[type]?.schema.$ref?.split("/").pop();
    expect(op("/v1/user/api-keys", "post").tags).toEqual(["replicas"]);
    expect(ref("/v1/user/api-keys", "post", "400", "application/json")).toBe("ReplicasError");
    expect(op("/v1/user/api-keys", "post").responses["422"]).toBeUndefined();
    expect(ref("/v1/user/api-keys", "post", "201", "application/json")).toBe("ReplicasApiKey");
    expect(ref("/api/auth/api-keys/", "post", "422", "application/problem+json")).toBe("FastApiProblemDetail");
    expect(ref("/api/auth/api-keys/", "post", "201", "application/json")).toBe("FastApiApiKeyCreateResponse");
    expect(ref("/api/user/api-keys", "get", "401", "application/json")).toBe("AutocallsError");
    expect(ref("/api/user/api-keys/{id}", "delete", "200", "application/json")).toBe("AutocallsDeleted");
    expect(ref("/v1/api_keys", "post", "422", "application/json")).toBe("BasetenValidationError");
    expect(ref("/v1/api_keys", "post", "403", "application/json")).toBe("BasetenError");
    expect(ref("/v1/api_keys", "post", "200", "application/json")).toBe("BasetenAPIKeyV1");
    // latchkey's own 401 is its shared problem response.
    expect(op("/v1/keys", "post").responses["401"]).toEqual({ $ref: "#/components/responses/Problem401" });
  });
});
