/**
 * CORS: which browser origins may call which paths, on preflights and actual requests, successes and
 * errors alike, and how ALLOWED_ORIGINS / VERIFY_ALLOWED_ORIGINS are read.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { ALLOWED_HEADERS, EXPOSED_HEADERS, PREFLIGHT_MAX_AGE_SECONDS } from "../../src/http/cors";
import { call, captureLogs, createKey, envWith, expectProblem, token, uniqueSub } from "../helpers";

const DASHBOARD = "https://dash.example.com";
const EVIL = "https://evil.example.com";
const corsEnv = envWith({ ALLOWED_ORIGINS: `${DASHBOARD}, http://127.0.0.1:9004` });

const preflightHeaders = (origin: string, method = "POST") => ({
  Origin: origin,
  "Access-Control-Request-Method": method,
  "Access-Control-Request-Headers": "authorization, content-type",
});

const varyOf = (response: Response) => (response.headers.get("vary") ?? "").split(/,\s*/);

describe("preflight", () => {
  it("an allowed origin gets 204 with the path's methods, the allowed headers and a max-age", async () => {
    const response = await call("OPTIONS", "/v1/keys", { env: corsEnv, headers: preflightHeaders(DASHBOARD) });
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe(DASHBOARD);
    expect(response.headers.get("access-control-allow-methods")?.split(", ").sort()).toEqual(["GET", "HEAD", "POST"]);
    expect(response.headers.get("access-control-allow-headers")).toBe(ALLOWED_HEADERS);
    expect(ALLOWED_HEADERS.split(", ")).toEqual([
      "Authorization",
      "Content-Type",
      "Idempotency-Key",
      "X-Request-Id",
      "Latchkey-Bookmark",
    ]);
    expect(response.headers.get("access-control-max-age")).toBe(String(PREFLIGHT_MAX_AGE_SECONDS));
    expect(response.headers.get("access-control-allow-credentials")).toBeNull();
    expect(varyOf(response)).toEqual(
      expect.arrayContaining(["Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"]),
    );

    const item = await call("OPTIONS", `/v1/keys/${crypto.randomUUID()}`, {
      env: corsEnv,
      headers: preflightHeaders("http://127.0.0.1:9004", "DELETE"),
    });
    expect(item.status).toBe(204);
    expect(item.headers.get("access-control-allow-origin")).toBe("http://127.0.0.1:9004");
    expect(item.headers.get("access-control-allow-methods")?.split(", ").sort()).toEqual([
      "DELETE",
      "GET",
      "HEAD",
      "PATCH",
    ]);

    // The keys page's rotate action, from the browser.
    const rotate = await call("OPTIONS", `/v1/keys/${crypto.randomUUID()}/rotate`, {
      env: corsEnv,
      headers: preflightHeaders(DASHBOARD, "POST"),
    });
    expect(rotate.status).toBe(204);
    expect(rotate.headers.get("access-control-allow-origin")).toBe(DASHBOARD);
    expect(rotate.headers.get("access-control-allow-methods")).toBe("POST");
  });

  it("an unknown origin gets a 403 problem and no allow headers", async () => {
    for (const origin of [EVIL, "null", `${DASHBOARD}.evil.com`, "https://DASH.example.com", `${DASHBOARD}/`]) {
      const response = await call("OPTIONS", "/v1/keys", { env: corsEnv, headers: preflightHeaders(origin) });
      const body = await expectProblem(response, 403, "origin_not_allowed");
      expect(body.detail).toMatch(/ALLOWED_ORIGINS/);
      expect(response.headers.get("access-control-allow-origin"), origin).toBeNull();
      expect(response.headers.get("access-control-allow-methods"), origin).toBeNull();
      expect(varyOf(response)).toContain("Origin");
    }
  });

  it("with ALLOWED_ORIGINS empty (the default) no origin is allowed", async () => {
    expect(loadConfig(env).cors.origins.size).toBe(0);
    const response = await call("OPTIONS", "/v1/keys", { headers: preflightHeaders(DASHBOARD) });
    await expectProblem(response, 403, "origin_not_allowed");
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("an OPTIONS that is not a preflight, or for a path with no route, is routed as before", async () => {
    const plain = await call("OPTIONS", "/v1/keys", { env: corsEnv });
    await expectProblem(plain, 405);
    expect(plain.headers.get("allow")?.split(", ").sort()).toEqual(["GET", "HEAD", "POST"]);
    const noMethod = await call("OPTIONS", "/v1/keys", { env: corsEnv, headers: { Origin: DASHBOARD } });
    expect(noMethod.status).toBe(405);
    const unknown = await call("OPTIONS", "/v1/nothing", { env: corsEnv, headers: preflightHeaders(DASHBOARD) });
    await expectProblem(unknown, 404);
    const notApi = await call("OPTIONS", "/healthz", { env: corsEnv, headers: preflightHeaders(DASHBOARD) });
    expect(notApi.status).toBe(405);
    expect(notApi.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("actual requests", () => {
  it("an allowed origin's responses carry its origin (never *) and the exposed headers", async () => {
    const jwt = await token(uniqueSub());
    const created = await call("POST", "/v1/keys", {
      env: corsEnv,
      auth: jwt,
      body: { name: "from the dashboard" },
      headers: { Origin: DASHBOARD },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get("access-control-allow-origin")).toBe(DASHBOARD);
    expect(created.headers.get("access-control-expose-headers")).toBe(EXPOSED_HEADERS);
    for (const header of ["Location", "Retry-After", "X-Request-Id", "RateLimit-Remaining"]) {
      expect(EXPOSED_HEADERS.split(", ")).toContain(header);
    }
    expect(varyOf(created)).toContain("Origin");
    const list = await call("GET", "/v1/keys", { env: corsEnv, auth: jwt, headers: { Origin: DASHBOARD } });
    expect(list.headers.get("access-control-allow-origin")).toBe(DASHBOARD);
  });

  it("error responses to an allowed origin carry CORS headers too, so the page can read the problem", async () => {
    const unauthenticated = await call("GET", "/v1/keys", {
      env: corsEnv,
      headers: { Origin: DASHBOARD, Authorization: "Bearer not-a-token", "cf-connecting-ip": uniqueSub("ip") },
    });
    await expectProblem(unauthenticated, 401);
    expect(unauthenticated.headers.get("access-control-allow-origin")).toBe(DASHBOARD);
    expect(unauthenticated.headers.get("access-control-expose-headers")).toContain("WWW-Authenticate");

    const invalid = await call("POST", "/v1/keys", {
      env: corsEnv,
      auth: await token(uniqueSub()),
      body: { name: "" },
      headers: { Origin: DASHBOARD },
    });
    await expectProblem(invalid, 422);
    expect(invalid.headers.get("access-control-allow-origin")).toBe(DASHBOARD);

    const missing = await call("GET", "/v1/nothing", { env: corsEnv, headers: { Origin: DASHBOARD } });
    await expectProblem(missing, 404);
    expect(missing.headers.get("access-control-allow-origin")).toBe(DASHBOARD);
  });

  it("unknown and missing origins get no CORS headers, but Vary: Origin all the same", async () => {
    const jwt = await token(uniqueSub());
    for (const headers of [{ Origin: EVIL }, {}] as Record<string, string>[]) {
      const response = await call("GET", "/v1/keys", { env: corsEnv, auth: jwt, headers });
      expect(response.status).toBe(200);
      expect(response.headers.get("access-control-allow-origin")).toBeNull();
      expect(response.headers.get("access-control-expose-headers")).toBeNull();
      expect(varyOf(response)).toContain("Origin");
    }
    const health = await call("GET", "/healthz", { env: corsEnv, headers: { Origin: DASHBOARD } });
    expect(health.headers.get("access-control-allow-origin")).toBeNull();
    expect(health.headers.get("vary")).toBeNull();
  });
});

describe("/v1/verify", () => {
  it("is closed to browsers unless VERIFY_ALLOWED_ORIGINS lists the origin, even one ALLOWED_ORIGINS lists", async () => {
    const { key } = await createKey(await token(uniqueSub()));
    const preflight = await call("OPTIONS", "/v1/verify", { env: corsEnv, headers: preflightHeaders(DASHBOARD) });
    expect((await expectProblem(preflight, 403, "origin_not_allowed")).detail).toMatch(/VERIFY_ALLOWED_ORIGINS/);
    const closed = await call("POST", "/v1/verify", { env: corsEnv, body: { key }, headers: { Origin: DASHBOARD } });
    expect(closed.status).toBe(200);
    expect(closed.headers.get("access-control-allow-origin")).toBeNull();
    expect(varyOf(closed)).toContain("Origin");

    const verifyEnv = envWith({ ALLOWED_ORIGINS: DASHBOARD, VERIFY_ALLOWED_ORIGINS: "https://verifier.example.com" });
    const open = await call("POST", "/v1/verify", {
      env: verifyEnv,
      body: { key },
      headers: { Origin: "https://verifier.example.com" },
    });
    expect(open.headers.get("access-control-allow-origin")).toBe("https://verifier.example.com");
    const allowedPreflight = await call("OPTIONS", "/v1/verify", {
      env: verifyEnv,
      headers: preflightHeaders("https://verifier.example.com"),
    });
    expect(allowedPreflight.status).toBe(204);
    // The verify list opens only verify.
    const keys = await call("OPTIONS", "/v1/keys", {
      env: verifyEnv,
      headers: preflightHeaders("https://verifier.example.com"),
    });
    expect(keys.status).toBe(403);
  });
});

describe("the list is the matched route's", () => {
  it("`/v1/verify/` (the verify route, with a trailing slash) is judged by VERIFY_ALLOWED_ORIGINS, preflight and response alike", async () => {
    const { key } = await createKey(await token(uniqueSub()));
    const VERIFIER = "https://verifier.example.com";
    const verifyEnv = envWith({ ALLOWED_ORIGINS: DASHBOARD, VERIFY_ALLOWED_ORIGINS: VERIFIER });
    for (const path of ["/v1/verify/", "/v1/verify//"]) {
      // The router serves this path as the verify route.
      const served = await call("POST", path, { env: verifyEnv, body: { key }, headers: { Origin: VERIFIER } });
      expect(served.status, path).toBe(200);
      expect((await served.json<{ valid: boolean }>()).valid, path).toBe(true);
      expect(served.headers.get("access-control-allow-origin"), path).toBe(VERIFIER);
      const fromDashboard = await call("POST", path, { env: verifyEnv, body: { key }, headers: { Origin: DASHBOARD } });
      expect(fromDashboard.headers.get("access-control-allow-origin"), path).toBeNull();

      const refused = await call("OPTIONS", path, { env: verifyEnv, headers: preflightHeaders(DASHBOARD) });
      expect((await expectProblem(refused, 403, "origin_not_allowed")).detail, path).toMatch(/VERIFY_ALLOWED_ORIGINS/);
      expect(refused.headers.get("access-control-allow-origin"), path).toBeNull();
      const allowed = await call("OPTIONS", path, { env: verifyEnv, headers: preflightHeaders(VERIFIER) });
      expect(allowed.status, path).toBe(204);
      expect(allowed.headers.get("access-control-allow-origin"), path).toBe(VERIFIER);
    }
    // A 405 on the verify route's path is judged by the same list.
    const wrongMethod = await call("GET", "/v1/verify/", { env: verifyEnv, headers: { Origin: DASHBOARD } });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("other API paths, with or without a trailing slash, are judged by ALLOWED_ORIGINS", async () => {
    const verifyEnv = envWith({ ALLOWED_ORIGINS: DASHBOARD, VERIFY_ALLOWED_ORIGINS: "https://verifier.example.com" });
    const cases = [
      ["/v1/keys/", 204],
      ["/v1/events/", 204],
      ["/v1/verifyx", 404], // no route: not a preflight, routed to the 404 (with CORS headers, by ALLOWED_ORIGINS)
      ["/v1/verify/x", 404],
    ] as const;
    for (const [path, status] of cases) {
      const preflight = await call("OPTIONS", path, { env: verifyEnv, headers: preflightHeaders(DASHBOARD, "GET") });
      expect(preflight.status, path).toBe(status);
      expect(preflight.headers.get("access-control-allow-origin"), path).toBe(DASHBOARD);
      const response = await call("GET", path, { env: verifyEnv, headers: { Origin: DASHBOARD } });
      expect(response.headers.get("access-control-allow-origin"), path).toBe(DASHBOARD);
    }
  });
});

describe("configuration", () => {
  it("keeps exact origins and reports every entry that is not one", () => {
    const logs = captureLogs();
    const config = loadConfig(
      envWith({
        ALLOWED_ORIGINS:
          "https://a.example.com, *, https://b.example.com/, https://B.example.com, http://plain.example.com, null, https://c.example.com:8443, https://d.example.com:443, http://localhost:3000",
        VERIFY_ALLOWED_ORIGINS: "https://*.example.com",
      }),
    );
    logs.restore();
    // Each problem is logged once, as it is reported.
    expect(logs.events("configuration_invalid").map((line) => line.problem)).toEqual(config.errors);
    expect([...config.cors.origins]).toEqual([
      "https://a.example.com",
      "https://c.example.com:8443",
      "http://localhost:3000",
    ]);
    expect(config.cors.verifyOrigins.size).toBe(0);
    const reported = config.errors.filter((e) => /ALLOWED_ORIGINS/.test(e));
    for (const bad of [
      '"*"',
      '"https://b.example.com/"',
      '"https://B.example.com"',
      '"http://plain.example.com"',
      '"null"',
      '"https://d.example.com:443"',
      '"https://*.example.com"',
    ]) {
      expect(
        reported.some((e) => e.includes(bad)),
        bad,
      ).toBe(true);
    }
    expect(reported).toHaveLength(7);
    expect(config.errors).toHaveLength(7);
  });
});
