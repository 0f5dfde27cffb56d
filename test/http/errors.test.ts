/**
 * Machine-readable errors: every refusal carries the stable `code` (and `type` URI) of its kind, so a
 * client can tell "key expired" from "key revoked" without parsing English; validation messages are
 * plain words, never a library's internals; docs/api.md documents every code.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import apiPage from "../../docs/api.md?raw";
import { authenticatePerson } from "../../src/auth/credentials";
import { AuthenticationError } from "../../src/auth/errors";
import { loadConfig } from "../../src/config";
import { errorToProblem } from "../../src/http/problem";
import { generateKey } from "../../src/keys/format";
import { PROBLEMS, PROBLEM_CODES } from "../../src/problems";
import { call, createKey, expectProblem, token, uniqueSub } from "../helpers";

describe("authentication failures name their cause", () => {
  it("token_required: a route for people refuses an API key before looking it up", async () => {
    // Only dialect routes use the `person` mode, and they render their pages' shapes: the code is the
    // error's, which errorToProblem turns into the problem those shapes are made from.
    const refused = authenticatePerson(`Bearer ${generateKey("lk")}`, loadConfig(env));
    await expect(refused).rejects.toBeInstanceOf(AuthenticationError);
    await expect(refused).rejects.toMatchObject({ code: "token_required" });
    await expectProblem(errorToProblem(await refused.catch((error: unknown) => error)), 401, "token_required");
  });

  it("authentication_required, key_malformed, key_not_found, key_revoked, key_expired, token_expired, token_invalid", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    const revoked = await createKey(jwt);
    await call("DELETE", `/v1/keys/${revoked.id}`, { auth: jwt });
    const expiring = await createKey(jwt, { expires_at: new Date(Date.now() + 60_000).toISOString() });

    const cases: [string | undefined, string][] = [
      [undefined, "authentication_required"],
      ["Basic dXNlcjpwYXNz", "authentication_required"],
      ["Bearer lk_tooshort", "key_malformed"],
      [`Bearer ${generateKey("lk")}`, "key_not_found"],
      [`Api-Key ${revoked.key}`, "key_revoked"],
      [`Bearer ${await token(sub, { ttl: -3600 })}`, "token_expired"],
      [`Bearer ${await token(sub, { secret: "another-secret-that-is-long-enough-0123" })}`, "token_invalid"],
      ["Bearer not-a-jwt", "token_invalid"],
    ];
    for (const [authorization, code] of cases) {
      const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
      await expectProblem(await call("GET", "/v1/whoami", { headers }), 401, code as never);
    }
    vi.useFakeTimers({ now: Date.now() + 120_000, toFake: ["Date"] });
    try {
      await expectProblem(await call("GET", "/v1/whoami", { auth: expiring.key }), 401, "key_expired");
    } finally {
      vi.useRealTimers();
    }
  });

  it("insufficient_scope for a key lacking the operation's scope; forbidden for asking beyond its powers", async () => {
    const jwt = await token(uniqueSub());
    const reader = await createKey(jwt, { scopes: ["keys:read"] });
    const lacking = await expectProblem(
      await call("POST", "/v1/keys", { auth: reader.key, body: { name: "x" } }),
      403,
      "insufficient_scope",
    );
    expect(lacking.exceeded).toBe("scopes");
    const writer = await createKey(jwt, { scopes: ["keys:write"] });
    const beyond = await expectProblem(
      await call("POST", "/v1/keys", { auth: writer.key, body: { name: "x", scopes: ["*"] } }),
      403,
      "forbidden",
    );
    expect(beyond.exceeded).toBe("scopes");
  });

  it("the router's and the body reader's refusals have codes too", async () => {
    const jwt = await token(uniqueSub());
    await expectProblem(await call("GET", "/nowhere"), 404, "not_found");
    await expectProblem(await call("PUT", "/v1/keys", { auth: jwt }), 405, "method_not_allowed");
    await expectProblem(await call("GET", "/v1/keys?limit=x", { auth: jwt }), 400, "invalid_query");
    const raw = { raw: "{", headers: { "content-type": "application/json" } };
    await expectProblem(await call("POST", "/v1/keys", { auth: jwt, ...raw }), 400, "malformed_body");
    await expectProblem(
      await call("POST", "/v1/keys", { auth: jwt, raw: "{}", headers: { "content-type": "text/plain" } }),
      415,
      "unsupported_media_type",
    );
    await expectProblem(await call("POST", "/v1/keys", { auth: jwt, body: {} }), 422, "validation_failed");
    const big = { name: "x", metadata: { pad: "x".repeat(17_000) } };
    await expectProblem(await call("POST", "/v1/keys", { auth: jwt, body: big }), 413, "body_too_large");
  });
});

/** Words that only a validation library would say. */
const INTERNALS = /expected|received|NaN|invalid_type|invalid input|Invalid option|zod|undefined|\bnull\b.*\bto\b/i;

/** Wrong values of every kind, for every field. */
const BAD_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  "",
  " ",
  "x",
  "not a date",
  "2027-13-45T99:00:00",
  "x".repeat(300),
  [],
  [1],
  ["*", "*", 3],
  {},
  { a: 1 },
];

function expectPlain(errors: Record<string, string[]>, label: string): void {
  const messages = Object.values(errors).flat();
  expect(messages.length, label).toBeGreaterThan(0);
  for (const message of messages) {
    expect(message, label).toMatch(/^[A-Z]/);
    expect(message, label).not.toMatch(INTERNALS);
  }
}

describe("validation messages are plain words", () => {
  it("for every bad value of every create field", async () => {
    const jwt = await token(uniqueSub());
    const fields = ["name", "expires_at", "metadata", "scopes", "resources", "owner"];
    for (const field of fields) {
      for (const value of BAD_VALUES) {
        const body = { name: "ok", [field]: value };
        const response = await call("POST", "/v1/keys", { auth: jwt, body });
        if (response.status === 201) continue; // some values are valid for some fields
        const label = `${field}=${JSON.stringify(value)?.slice(0, 40)}`;
        const problem = await expectProblem(response, 422, "validation_failed");
        expect(
          Object.keys(problem.errors as object).some((f) => f.startsWith(field)),
          label,
        ).toBe(true);
        expectPlain(problem.errors as Record<string, string[]>, label);
      }
    }
  });

  it("for every bad value of verify's fields and the list's query", async () => {
    for (const field of ["key", "scope", "resource"]) {
      for (const value of BAD_VALUES) {
        const response = await call("POST", "/v1/verify", { body: { key: "lk_x", [field]: value } });
        if (response.status === 200) continue;
        const problem = await expectProblem(response, 422, "validation_failed");
        expectPlain(problem.errors as Record<string, string[]>, `${field}=${JSON.stringify(value)}`);
      }
    }
    const jwt = await token(uniqueSub());
    for (const query of [
      "limit=abc",
      "limit=",
      "limit=0",
      "limit=101",
      "limit=2.5",
      "limit=1e999",
      "include_revoked=yes",
    ]) {
      const problem = await expectProblem(await call("GET", `/v1/keys?${query}`, { auth: jwt }), 400, "invalid_query");
      expectPlain(problem.errors as Record<string, string[]>, query);
    }
    const limit = await expectProblem(await call("GET", "/v1/keys?limit=abc", { auth: jwt }), 400);
    expect(limit.errors).toEqual({ limit: ["Must be a whole number between 1 and 100"] });
  });

  it("an unknown field and a missing one say so", async () => {
    const jwt = await token(uniqueSub());
    const problem = await expectProblem(await call("POST", "/v1/keys", { auth: jwt, body: { nmae: "x" } }), 422);
    expect(problem.errors).toEqual({ name: ["Required"], nmae: ["Unknown field"] });
  });
});

describe("the API reference (docs/api.md)", () => {
  it("has one table row per problem code, with its status", () => {
    for (const code of PROBLEM_CODES) {
      expect(apiPage, code).toMatch(new RegExp(`^\\| \`${code}\` +\\| ${PROBLEMS[code].status} +\\|`, "m"));
    }
  });
});
