/**
 * The document is the contract: the checker every `call` runs (contract.ts) catches each kind of
 * mismatch, and the document says what a client needs: package version and license, servers, the
 * problem codes, the security schemes, every header.
 */
import { describe, expect, it } from "vitest";
import lintIgnore from "../../.redocly.lint-ignore.yaml?raw";
import { license, version } from "../../package.json";
import { DIALECT_NAMES } from "../../src/config";
import { dialectRoutes } from "../../src/http/dialects";
import { routes } from "../../src/http/routes";
import { PROBLEMS, PROBLEM_CODES, problemType } from "../../src/problems";
import { checkContract } from "../contract";
import { BASE, call } from "../helpers";

const request = (method: string, path: string) => new Request(BASE + path, { method });

/** A response shaped like latchkey's, with the standard headers. */
function response(status: number, body: unknown, headers: Record<string, string> = {}, type = "application/json") {
  return new Response(body === null ? null : JSON.stringify(body), {
    status,
    headers: {
      "Content-Type": type,
      "X-Request-Id": "r1",
      "Cache-Control": "no-store",
      "X-Content-Type-Options": "nosniff",
      ...headers,
    },
  });
}

const notFound = {
  type: problemType("not_found"),
  title: "Not found",
  status: 404,
  detail: "No route",
  code: "not_found",
};

describe("the contract checker", () => {
  it("passes a response the document describes", async () => {
    await checkContract(request("GET", "/healthz"), response(200, { status: "ok" }));
    await checkContract(request("GET", "/nowhere"), response(404, notFound, {}, "application/problem+json"));
  });

  it("fails a body that breaks its schema: an undeclared member, a wrong type, a missing member", async () => {
    const problem = (body: unknown) => response(404, body, {}, "application/problem+json");
    const get = request("GET", "/v1/keys/x");
    await expect(checkContract(get, problem({ ...notFound, surprise: 1 }))).rejects.toThrow(/body/);
    await expect(checkContract(get, problem({ ...notFound, status: "404" }))).rejects.toThrow(/body/);
    const { detail: _, ...noDetail } = notFound;
    await expect(checkContract(get, problem(noDetail))).rejects.toThrow(/body/);
    await expect(checkContract(get, problem({ ...notFound, code: "teapot" }))).rejects.toThrow(/body/);
    await expect(checkContract(get, problem({ ...notFound, type: "about:blank" }))).rejects.toThrow(/type/);
    await expect(checkContract(request("GET", "/healthz"), response(200, { status: "fine" }))).rejects.toThrow(/body/);
  });

  it("fails an undeclared status, content type or header, and a missing required header", async () => {
    const health = request("GET", "/healthz");
    await expect(checkContract(health, response(418, { status: "ok" }))).rejects.toThrow(/status 418 is not declared/);
    await expect(checkContract(health, response(200, { status: "ok" }, {}, "text/plain"))).rejects.toThrow(
      /content type/,
    );
    await expect(checkContract(health, response(200, { status: "ok" }, { "X-Debug": "1" }))).rejects.toThrow(
      /header x-debug is not declared/,
    );
    const bare = new Response(JSON.stringify({ status: "ok" }), { headers: { "Content-Type": "application/json" } });
    await expect(checkContract(health, bare)).rejects.toThrow(/required header X-Request-Id/);
    // A shared problem response (a reference to components.responses) and its referenced headers.
    const unauthorized = { ...notFound, type: problemType("authentication_required"), status: 401 };
    const problem401 = (headers: Record<string, string>) =>
      response(401, { ...unauthorized, code: "authentication_required" }, headers, "application/problem+json");
    await checkContract(request("GET", "/v1/keys"), problem401({ "WWW-Authenticate": "Bearer" }));
    await expect(checkContract(request("GET", "/v1/keys"), problem401({}))).rejects.toThrow(
      /required header WWW-Authenticate/,
    );
    await expect(checkContract(request("GET", "/nowhere"), response(200, { status: "ok" }))).rejects.toThrow(
      /no such operation/,
    );
  });

  it("fails a HEAD response with a body", async () => {
    await expect(checkContract(request("HEAD", "/healthz"), response(200, { status: "ok" }))).rejects.toThrow(
      /a body where none is declared/,
    );
    await checkContract(request("HEAD", "/healthz"), response(200, null));
  });
});

describe("the served document", () => {
  it("carries the package's version and license, and servers", async () => {
    const doc = (await (await call("GET", "/openapi.json")).json()) as {
      info: { version: string; license: { name: string } };
      servers: { url: string }[];
    };
    expect(doc.info.version).toBe(version);
    expect(doc.info.license.name).toBe(license);
    expect(doc.servers.length).toBeGreaterThan(0);
  });

  it("declares every problem code, and the members problems carry", async () => {
    const doc = (await (await call("GET", "/openapi.json")).json()) as {
      components: { schemas: { Problem: { required: string[]; properties: Record<string, { enum?: string[] }> } } };
    };
    const problem = doc.components.schemas.Problem;
    expect(problem.properties.code?.enum).toEqual(PROBLEM_CODES);
    expect(problem.required).toEqual(expect.arrayContaining(["type", "title", "status", "detail", "code"]));
    for (const member of ["errors", "exceeded", "key_id", "checks"]) expect(problem.properties).toHaveProperty(member);
  });

  it("documents include_revoked as a boolean and Idempotency-Key as a header of createKey", async () => {
    const doc = (await (await call("GET", "/openapi.json")).json()) as {
      paths: Record<string, Record<string, { parameters?: { name: string; in: string; schema: { type: string } }[] }>>;
    };
    const list = doc.paths["/v1/keys"]!.get!.parameters!;
    expect(list.find((p) => p.name === "include_revoked")).toMatchObject({ in: "query", schema: { type: "boolean" } });
    const create = doc.paths["/v1/keys"]!.post!.parameters!;
    expect(create.find((p) => p.name === "Idempotency-Key")).toMatchObject({ in: "header" });
  });

  it("marks a request body optional exactly where a route takes none (rotateKey, rotateRootKey, rotateWebhookSecret)", async () => {
    const doc = (await (await call("GET", "/openapi.json")).json()) as {
      paths: Record<string, Record<string, { operationId: string; requestBody?: { required: boolean } }>>;
    };
    const bodies = Object.values(doc.paths)
      .flatMap((operations) => Object.values(operations))
      .filter((operation) => operation.requestBody !== undefined);
    const optional = bodies.filter((operation) => !operation.requestBody!.required).map((o) => o.operationId);
    expect(optional).toEqual(["rotateKey", "rotateRootKey", "rotateWebhookSecret"]);
    expect(bodies.length).toBeGreaterThan(5);
  });

  it("has security schemes generated clients use correctly: http bearer, and an Api-Key header value", async () => {
    const doc = (await (await call("GET", "/openapi.json")).json()) as {
      components: { securitySchemes: Record<string, Record<string, string>> };
    };
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.components.securitySchemes.apiKey).toMatchObject({
      type: "apiKey",
      in: "header",
      name: "Authorization",
      "x-value-prefix": "Api-Key ",
    });
  });
});

describe("problem codes", () => {
  it("each has its own type URI, a 4xx or 5xx status and a description", () => {
    const types = PROBLEM_CODES.map(problemType);
    expect(new Set(types).size).toBe(PROBLEM_CODES.length);
    for (const code of PROBLEM_CODES) {
      expect(problemType(code)).toBe(`https://latchkey.dev/problems/${code.replaceAll("_", "-")}`);
      expect(PROBLEMS[code].status).toBeGreaterThanOrEqual(400);
      expect(PROBLEMS[code].description.length).toBeGreaterThan(10);
    }
  });
});

describe("the OpenAPI lint exceptions (.redocly.lint-ignore.yaml)", () => {
  it("each names a path latchkey serves, and the file's comment explains it", () => {
    const comment = lintIgnore
      .split("\n")
      .filter((line) => line.startsWith("#"))
      .join("\n");
    const served = new Set([...routes, ...dialectRoutes(DIALECT_NAMES)].map((route) => route.path));
    const ignored = [...lintIgnore.matchAll(/'#\/paths\/([^']+)'/g)].map((m) =>
      m[1]!.replaceAll("~1", "/").replaceAll("~0", "~"),
    );
    expect(ignored.length).toBeGreaterThan(0);
    for (const path of ignored) {
      expect(served.has(path), path).toBe(true);
      // Explained where it is configured: the comment names the path, and the rule it is excepted from.
      expect(comment, path).toContain(` ${path} `);
      const rule = new RegExp(
        `^  ([a-z-]+):\\n(?:    - .*\\n)*?    - '#\\/paths\\/${path.replaceAll("/", "~1")}'`,
        "m",
      );
      expect(comment, path).toContain(`(${rule.exec(lintIgnore)?.[1] ?? "?"})`);
    }
  });
});
