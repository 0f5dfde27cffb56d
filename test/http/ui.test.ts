/**
 * The keys page under /ui/: its security headers, its built files (fresh, cacheable, versioned), the
 * dev-only token mint (off unless every condition holds), and the status rules the component shows.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import worker from "../../src/index";
import type { Env } from "../../src/env";
import { loadConfig } from "../../src/config";
import { UI_ASSETS } from "../../src/http/ui-assets.generated";
import { keyActions, keyStatus } from "../../ui/status";
import { call, captureLogs, envWith, expectProblem, uniqueSub } from "../helpers";

/** Calls the Worker at `origin` (call() uses a non-loopback host). */
async function at(origin: string, method: string, path: string, testEnv: Env, body?: unknown): Promise<Response> {
  const ctx = createExecutionContext();
  const json =
    body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } };
  const response = await worker.fetch(new Request(origin + path, { method, ...json }), testEnv, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

const LOCAL = "http://localhost:8787";
const devEnv = () => envWith({ DEV_UI_TOKENS: "true" });

function cspOf(response: Response): Map<string, string> {
  const directives = (response.headers.get("content-security-policy") ?? "").split(/;\s*/);
  return new Map(directives.map((d) => [d.split(" ")[0] ?? "", d.split(" ").slice(1).join(" ")]));
}

describe("the page", () => {
  it("is served with a strict Content-Security-Policy and no framing by default", async () => {
    const response = await call("GET", "/ui/");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = cspOf(response);
    expect(csp.get("default-src")).toBe("'none'");
    expect(csp.get("script-src")).toBe("'self'");
    expect(csp.get("style-src")).toBe("'self'");
    expect(csp.get("connect-src")).toBe("'self'");
    expect(csp.get("frame-ancestors")).toBe("'none'");
    expect(csp.get("base-uri")).toBe("'none'");
    expect(csp.get("require-trusted-types-for")).toBe("'script'");
    expect(response.headers.get("content-security-policy")).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(response.headers.get("x-frame-options")).toBe("DENY");
    expect(response.headers.get("referrer-policy")).toBe("no-referrer");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect((await call("GET", "/ui")).status).toBe(200);
  });

  it("has no inline script or style, and loads the versioned files", async () => {
    const html = await (await call("GET", "/ui/")).text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|\sstyle=|\son\w+=/i);
    for (const asset of UI_ASSETS) {
      const dot = asset.name.lastIndexOf(".");
      expect(html).toContain(`/ui/${asset.name.slice(0, dot)}.${asset.hash}${asset.name.slice(dot)}`);
    }
  });

  it("UI_FRAME_ANCESTORS sets frame-ancestors; X-Frame-Options follows where it can say the same", async () => {
    const self = await call("GET", "/ui/", { env: envWith({ UI_FRAME_ANCESTORS: "'self'" }) });
    expect(cspOf(self).get("frame-ancestors")).toBe("'self'");
    expect(self.headers.get("x-frame-options")).toBe("SAMEORIGIN");
    const listed = await call("GET", "/ui/", {
      env: envWith({ UI_FRAME_ANCESTORS: "'self'  https://dash.example.com https://*.example.org" }),
    });
    expect(cspOf(listed).get("frame-ancestors")).toBe("'self' https://dash.example.com https://*.example.org");
    expect(listed.headers.get("x-frame-options")).toBeNull();
    for (const bad of ["*", "https://a.example.com; script-src *", "'unsafe-inline'", "http://dash.example.com"]) {
      const testEnv = envWith({ UI_FRAME_ANCESTORS: bad });
      const logs = captureLogs();
      const response = await call("GET", "/ui/", { env: testEnv });
      logs.restore();
      expect(cspOf(response).get("frame-ancestors"), bad).toBe("'none'");
      expect(response.headers.get("x-frame-options"), bad).toBe("DENY");
      expect(loadConfig(testEnv).errors.some((e) => e.startsWith("UI_FRAME_ANCESTORS"))).toBe(true);
      expect(
        logs.events("configuration_invalid").map((line) => line.problem),
        bad,
      ).toEqual([expect.stringMatching(/^UI_FRAME_ANCESTORS must be/)]);
    }
  });

  it("UI_FRAME_ANCESTORS refuses a wildcard directly under a public or shared-hosting suffix; one under your domain stays", async () => {
    const refused = [
      "https://*.com",
      "https://*.dev",
      "https://*.co.uk",
      "https://*.com.au",
      "https://*.workers.dev",
      "https://*.pages.dev",
      "https://*.github.io",
      "https://*.vercel.app",
      "https://*.netlify.app",
      "https://*.herokuapp.com",
      "https://*.com.",
      "https://*.workers.dev:443",
      "'self' https://dash.example.com https://*.workers.dev",
    ];
    for (const bad of refused) {
      const testEnv = envWith({ UI_FRAME_ANCESTORS: bad });
      const logs = captureLogs();
      const response = await call("GET", "/ui/", { env: testEnv });
      logs.restore();
      expect(cspOf(response).get("frame-ancestors"), bad).toBe("'none'");
      expect(response.headers.get("x-frame-options"), bad).toBe("DENY");
      const named = bad.split(" ").at(-1)!;
      expect(
        logs.events("configuration_invalid").map((line) => line.problem),
        bad,
      ).toEqual([
        expect.stringMatching(
          /^UI_FRAME_ANCESTORS must not put a wildcard directly under a public or shared-hosting suffix/,
        ),
      ]);
      expect(loadConfig(testEnv).errors.join("\n"), bad).toContain(named);
    }
    for (const good of [
      "https://*.example.com",
      "https://*.example.co.uk",
      "https://*.my-app.pages.dev",
      "https://*.example.com:8443",
      "'self' https://app.workers.dev",
    ]) {
      const testEnv = envWith({ UI_FRAME_ANCESTORS: good });
      expect(loadConfig(testEnv).errors, good).toEqual([]);
      expect(cspOf(await call("GET", "/ui/", { env: testEnv })).get("frame-ancestors"), good).toBe(good);
    }
  });

  it("offers the dev sign-in only when dev tokens are on, else asks for a token", async () => {
    const normal = await (await call("GET", "/ui/")).text();
    expect(normal).toContain('data-mode="token"');
    expect(normal).not.toContain("dev-token");
    const dev = await (await at(LOCAL, "GET", "/ui/", devEnv())).text();
    expect(dev).toContain('data-mode="dev"');
  });
});

describe("the built files", () => {
  it("are what ui/ builds to (run npm run build:ui if this fails)", () => {
    expect(UI_ASSETS).toEqual(inject("uiAssets"));
  });

  it("versioned names are immutable; stable names revalidate with an ETag; any origin may load them", async () => {
    for (const asset of UI_ASSETS) {
      const dot = asset.name.lastIndexOf(".");
      const versioned = await call("GET", `/ui/${asset.name.slice(0, dot)}.${asset.hash}${asset.name.slice(dot)}`);
      expect(versioned.status).toBe(200);
      expect(await versioned.text()).toBe(asset.body);
      expect(versioned.headers.get("content-type")).toBe(asset.type);
      expect(versioned.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(versioned.headers.get("access-control-allow-origin")).toBe("*");

      const stable = await call("GET", `/ui/${asset.name}`);
      expect(await stable.text()).toBe(asset.body);
      expect(stable.headers.get("cache-control")).toBe("public, max-age=300");
      const etag = stable.headers.get("etag");
      expect(etag).toBe(`"${asset.hash}"`);
      const revalidated = await call("GET", `/ui/${asset.name}`, { headers: { "If-None-Match": etag ?? "" } });
      expect(revalidated.status).toBe(304);
      expect(await revalidated.text()).toBe("");
      const changed = await call("GET", `/ui/${asset.name}`, { headers: { "If-None-Match": '"other"' } });
      expect(changed.status).toBe(200);
    }
    await expectProblem(await call("GET", "/ui/latchkey-keys.000000000000.js"), 404);
    await expectProblem(await call("GET", "/ui/nothing.js"), 404);
  });

  it("the component uses no eval, no HTML strings and no storage", () => {
    const component = UI_ASSETS.find((a) => a.name === "latchkey-keys.js")?.body ?? "";
    expect(component.length).toBeGreaterThan(1000);
    expect(component.length).toBeLessThan(48_000);
    expect(component).not.toMatch(
      /\beval\(|new Function|innerHTML|outerHTML|insertAdjacentHTML|localStorage|sessionStorage|document\.cookie/,
    );
  });
});

describe("POST /ui/dev-token", () => {
  it("is off by default: wrangler.toml does not set DEV_UI_TOKENS, and without it there is no mint", async () => {
    const deployed = inject("wranglerVars");
    expect(deployed.JWT_ISSUER).toBe("latchkey-dev"); // the [vars] were read
    expect(deployed).not.toHaveProperty("DEV_UI_TOKENS");
    const unset = envWith({ DEV_UI_TOKENS: undefined });
    expect(loadConfig(unset).ui.devTokens).toBe(false);
    await expectProblem(await at(LOCAL, "POST", "/ui/dev-token", unset, { sub: "alice" }), 404);
    expect(await (await at(LOCAL, "GET", "/ui/", unset)).text()).toContain('data-mode="token"');
  });

  it("mints a token the API accepts when DEV_UI_TOKENS=true, in HS256 mode, on a loopback host", async () => {
    const sub = uniqueSub();
    for (const origin of [LOCAL, "http://127.0.0.1:8804", "http://[::1]:8787"]) {
      const response = await at(origin, "POST", "/ui/dev-token", devEnv(), { sub, org: "acme" });
      expect(response.status, origin).toBe(200);
      expect(response.headers.get("cache-control")).toBe("no-store");
      const { token } = (await response.json()) as { token: string };
      const whoami = await call("GET", "/v1/whoami", { auth: token });
      expect(await whoami.json()).toMatchObject({ principal: "user", owner_id: sub, org_id: "acme" });
      // As npm run token does: an admin of the workspace it names, so the page can make workspace keys.
      const workspaceKey = await call("POST", "/v1/keys", { auth: token, body: { name: "ws", owner: "workspace" } });
      expect(workspaceKey.status, origin).toBe(201);
    }
  });

  it("stays 404 with an identity provider, on a public host, or with DEV_UI_TOKENS anything but true", async () => {
    const jwks = envWith({ DEV_UI_TOKENS: "true", JWT_JWKS_URL: "https://idp.example.com/.well-known/jwks.json" });
    const logs = captureLogs();
    await expectProblem(await at(LOCAL, "POST", "/ui/dev-token", jwks, { sub: "alice" }), 404);
    logs.restore();
    expect(logs.events("configuration_invalid").map((line) => line.problem)).toEqual([
      expect.stringMatching(/^DEV_UI_TOKENS works only with JWT_SECRET/),
    ]);
    expect(loadConfig(jwks).errors.some((e) => e.startsWith("DEV_UI_TOKENS"))).toBe(true);
    await expectProblem(await at("https://keys.example.com", "POST", "/ui/dev-token", devEnv(), { sub: "a" }), 404);
    for (const value of ["1", "TRUE", "yes", ""]) {
      await expectProblem(
        await at(LOCAL, "POST", "/ui/dev-token", envWith({ DEV_UI_TOKENS: value }), { sub: "a" }),
        404,
      );
    }
  });

  it("refuses a bad subject with a 422 naming the field", async () => {
    for (const [body, field] of [
      [{}, "sub"],
      [{ sub: "" }, "sub"],
      [{ sub: "a\u0000b" }, "sub"],
      [{ sub: "a", org: 5 }, "org"],
      [{ sub: "a", admin: true }, "admin"],
    ] as const) {
      const problem = await expectProblem(await at(LOCAL, "POST", "/ui/dev-token", devEnv(), body), 422);
      expect(Object.keys(problem.errors as object), JSON.stringify(body)).toContain(field);
    }
  });
});

describe("key status (ui/status.ts)", () => {
  const now = Date.parse("2030-01-10T00:00:00Z");
  const key = (fields: { revoked_at?: string; expires_at?: string; enabled?: boolean }) => ({
    revoked_at: null,
    expires_at: null,
    ...fields,
  });
  it("revoked, disabled, expired, expiring within N days, active", () => {
    expect(keyStatus(key({}), now, 7)).toBe("active");
    expect(keyStatus(key({ revoked_at: "2030-01-01T00:00:00Z", expires_at: "2029-01-01T00:00:00Z" }), now, 7)).toBe(
      "revoked",
    );
    expect(keyStatus(key({ enabled: false }), now, 7)).toBe("disabled");
    expect(keyStatus(key({ enabled: true }), now, 7)).toBe("active");
    expect(keyStatus(key({ enabled: false, expires_at: "2030-01-10T00:00:00Z" }), now, 7)).toBe("disabled");
    expect(keyStatus(key({ expires_at: "2030-01-10T00:00:00Z" }), now, 7)).toBe("expired");
    expect(keyStatus(key({ expires_at: "2030-01-17T00:00:00Z" }), now, 7)).toBe("expiring");
    expect(keyStatus(key({ expires_at: "2030-01-17T00:00:01Z" }), now, 7)).toBe("active");
    expect(keyStatus(key({ expires_at: "2030-01-12T00:00:00Z" }), now, 1)).toBe("active");
    expect(keyStatus(key({ expires_at: "2030-01-10T00:00:01Z" }), now, 0)).toBe("active");
  });

  it("row actions: only what the API accepts in the key's state", () => {
    const past = "2030-01-09T00:00:00Z";
    const future = "2030-01-11T00:00:00Z";
    expect(keyActions(key({}), now)).toEqual(["rotate", "disable", "revoke"]);
    expect(keyActions(key({ expires_at: future }), now)).toEqual(["rotate", "disable", "revoke"]);
    expect(keyActions(key({ enabled: false }), now)).toEqual(["rotate", "enable", "revoke"]);
    // Expired: the API refuses to rotate it (409), and disabling it would change nothing.
    expect(keyActions(key({ expires_at: past }), now)).toEqual(["revoke"]);
    expect(keyActions(key({ expires_at: "2030-01-10T00:00:00Z" }), now)).toEqual(["revoke"]);
    expect(keyActions(key({ enabled: false, expires_at: past }), now)).toEqual(["enable", "revoke"]);
    expect(keyActions(key({ revoked_at: past }), now)).toEqual([]);
    expect(keyActions(key({ revoked_at: past, enabled: false, expires_at: future }), now)).toEqual([]);
  });
});
