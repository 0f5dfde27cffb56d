/**
 * The JWT attack matrix: every forged, stale, misdirected or oversized token is refused with 401 and
 * WWW-Authenticate, and JWKS mode accepts only asymmetric signatures from keys in the set (no `none`,
 * no HS256 key confusion), both with a local key set and through the real remote fetch path.
 */
import { env } from "cloudflare:workers";
import {
  type CryptoKey,
  type JWK,
  SignJWT,
  base64url,
  createLocalJWKSet,
  exportJWK,
  exportSPKI,
  generateKeyPair,
} from "jose";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { AuthenticationError } from "../../src/auth/errors";
import { FAILURE_COOLDOWN_MS, STALE_IF_ERROR_MS } from "../../src/auth/jwks";
import { MAX_TOKEN_LENGTH, verifyUserToken } from "../../src/auth/jwt";
import { type JwtConfig, loadConfig } from "../../src/config";
import type { Env } from "../../src/env";
import { WWW_AUTHENTICATE } from "../../src/http/problem";
import { type CapturedLogs, call, captureLogs, createKey, envWith, expectProblem, token, uniqueSub } from "../helpers";

const now = () => Math.floor(Date.now() / 1000);
const encodeJson = (value: unknown) => base64url.encode(JSON.stringify(value));

/** Claims a valid token carries, for hand-built tokens. */
function claims(sub: string): Record<string, unknown> {
  return { sub, iss: env.JWT_ISSUER, aud: env.JWT_AUDIENCE, iat: now(), exp: now() + 600 };
}

/** A client no other test shares, so failed authentications never reach the rate limit. */
const freshClient = () => ({ "cf-connecting-ip": `2001:db8:${crypto.randomUUID().slice(0, 4)}::1` });

async function whoami(jwt: string, testEnv?: Env): Promise<Response> {
  return call("GET", "/v1/whoami", {
    headers: { authorization: `Bearer ${jwt}`, ...freshClient() },
    ...(testEnv ? { env: testEnv } : {}),
  });
}

/** Asserts the 401 problem with its challenge, and returns its detail. */
async function expectUnauthorized(response: Response): Promise<string> {
  expect(response.headers.get("www-authenticate")).toBe(WWW_AUTHENTICATE);
  return String((await expectProblem(response, 401)).detail);
}

/** Identity-provider outages and bad configurations are logged by design: captured (quiet) and checked. */
let logs: CapturedLogs;
beforeEach(() => {
  logs = captureLogs();
});
afterEach(() => {
  vi.restoreAllMocks(); // the console too
});

describe("HS256 tokens (the test deployment's mode)", () => {
  it("accepts a valid token, and one expired or not yet valid within the 30 s tolerance", async () => {
    const sub = uniqueSub();
    const org = uniqueSub("org");
    for (const jwt of [
      await token(sub, { org }),
      await token(sub, { org, ttl: -10 }),
      await token(sub, { org, claims: { nbf: now() + 10 } }),
    ]) {
      const response = await whoami(jwt);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ principal: "user", owner_id: sub, org_id: org });
    }
  });

  const sub = "attacker-victim";
  const attacks: [string, () => Promise<string>, RegExp][] = [
    [
      "alg none",
      async () => `${encodeJson({ alg: "none", typ: "JWT" })}.${encodeJson(claims(sub))}.`,
      /algorithm is not allowed/,
    ],
    ["HS256 with a wrong secret", () => token(sub, { secret: "another-secret-0123456789abcdef0123456789" }), /invalid/],
    [
      "HS512 with the right secret",
      () =>
        new SignJWT(claims(sub)).setProtectedHeader({ alg: "HS512" }).sign(new TextEncoder().encode(env.JWT_SECRET)),
      /algorithm is not allowed/,
    ],
    ["expired beyond the tolerance", () => token(sub, { ttl: -60 }), /expired/],
    ["not yet valid beyond the tolerance", () => token(sub, { claims: { nbf: now() + 120 } }), /nbf/],
    ["issued by another issuer", () => token(sub, { issuer: "https://evil.example" }), /iss/],
    ["meant for another audience", () => token(sub, { audience: "another-service" }), /aud/],
    ["without exp", () => token(sub, { omitExp: true }), /exp/],
    ["without sub", () => token(undefined), /sub/],
    ["with an empty sub", () => token(""), /sub/],
    [
      "with a payload changed after signing",
      async () => {
        const [header, , signature] = (await token(sub)).split(".");
        return `${header}.${encodeJson(claims("someone-else"))}.${signature}`;
      },
      /invalid/,
    ],
    ["over 8 KB", () => token(sub, { claims: { pad: "x".repeat(9000) } }), /too large/],
    ["garbage", async () => "not-a-jwt", /invalid/],
    ["three garbage segments", async () => "a.b.c", /invalid/],
    ["empty segments", async () => "..", /invalid/],
  ];

  it.each(attacks)("refuses a token %s with 401", async (_what, make, reason) => {
    expect(await expectUnauthorized(await whoami(await make()))).toMatch(reason);
  });

  it("makes an operator only of a token whose roles claim holds one of OPERATOR_ROLES", async () => {
    const operatorOf = async (roles: unknown, vars: Partial<Env> = {}) =>
      (
        (await verifyUserToken(await token(uniqueSub(), { claims: { roles } }), loadConfig(envWith(vars)).jwt)) as {
          operator: boolean;
        }
      ).operator;
    expect(await operatorOf(["operator"])).toBe(true);
    expect(await operatorOf("operator")).toBe(true);
    expect(await operatorOf(["admin", "member"])).toBe(false);
    expect(await operatorOf(["Operator"])).toBe(false);
    expect(await operatorOf(["ops"], { OPERATOR_ROLES: " ops, platform " })).toBe(true);
    expect(await operatorOf(["operator"], { OPERATOR_ROLES: " ops, platform " })).toBe(false);
    // Set empty: nobody is an operator (the role reaches every owner, so it fails closed).
    expect(await operatorOf(["operator"], { OPERATOR_ROLES: "" })).toBe(false);
    expect(await operatorOf([""], { OPERATOR_ROLES: "" })).toBe(false);
  });

  it("refuses a correctly signed token just over the size limit, and accepts one just under", async () => {
    const sub = uniqueSub();
    const base = (await token(sub, { claims: { pad: "" } })).length;
    // Base64url spends 4 characters on every 3 bytes of padding.
    const sized = (length: number) => token(sub, { claims: { pad: "x".repeat(Math.ceil(((length - base) * 3) / 4)) } });
    const config = loadConfig(env).jwt;
    const under = await sized(MAX_TOKEN_LENGTH - 8);
    const over = await sized(MAX_TOKEN_LENGTH + 8);
    expect(under.length).toBeLessThanOrEqual(MAX_TOKEN_LENGTH);
    expect(over.length).toBeGreaterThan(MAX_TOKEN_LENGTH);
    expect((await verifyUserToken(under, config)).kind).toBe("user");
    await expect(verifyUserToken(over, config)).rejects.toThrow(/too large/);
    expect(await expectUnauthorized(await whoami(over))).toMatch(/too large/);
  });

  it("refuses an asymmetric token when only a secret is configured", async () => {
    const { privateKey } = await generateKeyPair("RS256");
    const jwt = await new SignJWT(claims(uniqueSub())).setProtectedHeader({ alg: "RS256" }).sign(privateKey);
    expect(await expectUnauthorized(await whoami(jwt))).toMatch(/algorithm is not allowed/);
  });
});

describe("JWKS mode", () => {
  let rsa: { privateKey: CryptoKey; publicJwk: JWK; pem: string };
  let ec: { privateKey: CryptoKey; publicJwk: JWK };
  let jwksConfig: JwtConfig;
  let keySet: ReturnType<typeof createLocalJWKSet>;

  beforeAll(async () => {
    const rsaPair = await generateKeyPair("RS256");
    const ecPair = await generateKeyPair("ES256");
    rsa = {
      privateKey: rsaPair.privateKey,
      publicJwk: { ...(await exportJWK(rsaPair.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" },
      pem: await exportSPKI(rsaPair.publicKey),
    };
    ec = {
      privateKey: ecPair.privateKey,
      publicJwk: { ...(await exportJWK(ecPair.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" },
    };
    keySet = createLocalJWKSet({ keys: [rsa.publicJwk, ec.publicJwk] });
    jwksConfig = { ...loadConfig(env).jwt, secret: null };
  });

  const sign = (payload: Record<string, unknown>, alg: string, kid: string, key: CryptoKey | Uint8Array) =>
    new SignJWT(payload).setProtectedHeader({ alg, kid, typ: "JWT" }).sign(key);

  it("accepts RS256 and ES256 tokens signed by keys in the set", async () => {
    const sub = uniqueSub();
    const org = uniqueSub("org");
    const payload = { ...claims(sub), org_id: org };
    for (const jwt of [
      await sign(payload, "RS256", "rsa-1", rsa.privateKey),
      await sign(payload, "ES256", "ec-1", ec.privateKey),
    ]) {
      expect(await verifyUserToken(jwt, jwksConfig, keySet)).toMatchObject({ kind: "user", sub, orgId: org });
    }
  });

  it("refuses a kid that points nowhere, and a key outside the set posing as a known kid", async () => {
    const payload = claims(uniqueSub());
    const nowhere = await sign(payload, "RS256", "rsa-404", rsa.privateKey);
    await expect(verifyUserToken(nowhere, jwksConfig, keySet)).rejects.toThrow(/No key matches/);
    const impostor = (await generateKeyPair("RS256")).privateKey;
    const posing = await sign(payload, "RS256", "rsa-1", impostor);
    await expect(verifyUserToken(posing, jwksConfig, keySet)).rejects.toThrow(AuthenticationError);
  });

  it("checks the claims as in secret mode", async () => {
    const sub = uniqueSub();
    for (const payload of [
      { ...claims(sub), aud: "another-service" },
      { ...claims(sub), iss: "https://evil.example" },
      { ...claims(sub), exp: now() - 60 },
      { ...claims(sub), sub: undefined },
    ]) {
      await expect(
        verifyUserToken(await sign(payload, "RS256", "rsa-1", rsa.privateKey), jwksConfig, keySet),
      ).rejects.toThrow(AuthenticationError);
    }
    const none = `${encodeJson({ alg: "none", kid: "rsa-1" })}.${encodeJson(claims(sub))}.`;
    await expect(verifyUserToken(none, jwksConfig, keySet)).rejects.toThrow(/algorithm is not allowed/);
  });

  it("refuses HS256 tokens signed with the public key as HMAC secret (key confusion)", async () => {
    const payload = claims(uniqueSub());
    const encoder = new TextEncoder();
    for (const secret of [rsa.pem, JSON.stringify(rsa.publicJwk), rsa.publicJwk.n as string]) {
      const bytes = encoder.encode(secret);
      const forged = await sign(payload, "HS256", "rsa-1", bytes);
      // The forgery is a well-signed HS256 token: a verifier that let HS256 through with these bytes would accept it.
      expect((await verifyUserToken(forged, { ...jwksConfig, secret: bytes })).sub).toBe(payload.sub);
      await expect(verifyUserToken(forged, jwksConfig, keySet)).rejects.toThrow(/algorithm is not allowed/);
      // Even with a secret in the configuration, JWKS mode allows no HMAC.
      await expect(verifyUserToken(forged, { ...jwksConfig, secret: bytes }, keySet)).rejects.toThrow(
        /algorithm is not allowed/,
      );
    }
  });

  it("fetches the key set from JWT_JWKS_URL: RS256 accepted through HTTP, HS256 refused", async () => {
    const jwksUrl = `https://idp.example.test/${crypto.randomUUID()}/.well-known/jwks.json`;
    const realFetch = globalThis.fetch;
    const fetchSpy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      return url === jwksUrl ? Response.json({ keys: [rsa.publicJwk] }) : realFetch(input, init);
    });
    const jwksEnv = envWith({ JWT_JWKS_URL: jwksUrl });
    const sub = uniqueSub();

    const rs256 = await sign(claims(sub), "RS256", "rsa-1", rsa.privateKey);
    const response = await whoami(rs256, jwksEnv);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ principal: "user", owner_id: sub });
    expect(fetchSpy.mock.calls.map(([input]) => (input instanceof Request ? input.url : String(input)))).toContain(
      jwksUrl,
    );
    expect(await createKey(rs256, {}, jwksEnv)).toMatchObject({ owner_id: sub, created_by: `user:${sub}` });

    // The deployment's own HS256 secret is still in this env, and must not work in JWKS mode.
    const hs256 = await token(sub);
    expect((await whoami(hs256)).status).toBe(200);
    expect(await expectUnauthorized(await whoami(hs256, jwksEnv))).toMatch(/algorithm is not allowed/);
    const confused = await sign(claims(sub), "HS256", "rsa-1", new TextEncoder().encode(rsa.pem));
    expect(await expectUnauthorized(await whoami(confused, jwksEnv))).toMatch(/algorithm is not allowed/);
  });

  it("answers 503 with Retry-After, not 401, while the key set cannot be fetched", async () => {
    const jwksUrl = `https://idp.example.test/${crypto.randomUUID()}/jwks.json`;
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      return url === jwksUrl ? new Response("upstream down", { status: 502 }) : realFetch(input, init);
    });
    const jwksEnv = envWith({ JWT_JWKS_URL: jwksUrl });
    const rs256 = await sign(claims(uniqueSub()), "RS256", "rsa-1", rsa.privateKey);
    const client = freshClient();
    for (let i = 0; i < 3; i++) {
      const response = await call("GET", "/v1/whoami", {
        headers: { authorization: `Bearer ${rs256}`, ...client },
        env: jwksEnv,
      });
      await expectProblem(response, 503, "identity_provider_unavailable");
      expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0);
    }
    expect(logs.events("identity_provider_unavailable")).toHaveLength(3);
  });

  /** Serves the key set at a fresh URL while `state.up`, else 502; counts the fetches. */
  function identityProvider(keys: JWK[]) {
    const url = `https://idp.example.test/${crypto.randomUUID()}/jwks.json`;
    const state = { up: true, fetches: 0 };
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      if ((input instanceof Request ? input.url : String(input)) !== url) return realFetch(input, init);
      state.fetches++;
      return state.up ? Response.json({ keys }) : new Response("upstream down", { status: 502 });
    });
    return { state, jwksEnv: envWith({ JWT_JWKS_URL: url }) };
  }
  const statusOf = async (jwt: string, testEnv: Env) => (await whoami(jwt, testEnv)).status;

  it("after a failed fetch, answers 503 at once for FAILURE_COOLDOWN_MS instead of fetching per request", async () => {
    const { state, jwksEnv } = identityProvider([rsa.publicJwk]);
    state.up = false;
    const rs256 = await sign(claims(uniqueSub()), "RS256", "rsa-1", rsa.privateKey);
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      const start = Date.now();
      for (let i = 0; i < 5; i++) expect(await statusOf(rs256, jwksEnv)).toBe(503);
      expect(state.fetches).toBe(1);

      vi.setSystemTime(start + FAILURE_COOLDOWN_MS + 1);
      expect(await statusOf(rs256, jwksEnv)).toBe(503);
      expect(state.fetches).toBe(2);

      state.up = true;
      vi.setSystemTime(start + 2 * (FAILURE_COOLDOWN_MS + 1));
      expect(await statusOf(rs256, jwksEnv)).toBe(200);
    } finally {
      vi.useRealTimers();
    }
  });

  it("keeps accepting tokens from the keys it last fetched while the provider is down, for STALE_IF_ERROR_MS", async () => {
    const { state, jwksEnv } = identityProvider([rsa.publicJwk]);
    const sub = uniqueSub();
    const longLived = { ...claims(sub), exp: now() + 3 * 3600 };
    const rs256 = await sign(longLived, "RS256", "rsa-1", rsa.privateKey);
    // Signed by a key the last fetched set does not hold (a key the provider might have added since).
    const newKey = await sign(longLived, "ES256", "ec-1", ec.privateKey);
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      const start = Date.now();
      expect(await statusOf(rs256, jwksEnv)).toBe(200);
      vi.setSystemTime(start + 9 * 60_000); // served from jose's cache: no fetch, so the set's age still counts from start
      expect(await statusOf(rs256, jwksEnv)).toBe(200);
      expect(state.fetches).toBe(1);

      state.up = false;
      vi.setSystemTime(start + 11 * 60_000); // past jose's 10-minute cache age: it refetches, and fails
      expect(await statusOf(rs256, jwksEnv)).toBe(200);
      expect(state.fetches).toBe(2);
      expect(await statusOf(newKey, jwksEnv)).toBe(503); // not 401: the key may be new
      // A forged token is still refused outright.
      const forged = await sign(longLived, "RS256", "rsa-1", (await generateKeyPair("RS256")).privateKey);
      expect(await statusOf(forged, jwksEnv)).toBe(401);

      vi.setSystemTime(start + STALE_IF_ERROR_MS + 1); // an hour after the last successful fetch: too old to trust
      expect(await statusOf(rs256, jwksEnv)).toBe(503);
    } finally {
      vi.useRealTimers();
    }
  });

  it("refuses every token when JWT_ISSUER or JWT_AUDIENCE is missing, unless JWT_ALLOW_ANY_* is exactly true", async () => {
    const { jwksEnv } = identityProvider([rsa.publicJwk]);
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    const sub = uniqueSub();
    // Signed by the shared provider's key, but for another application (or by another of its tenants).
    const otherApp = await sign({ ...claims(sub), aud: "another-app" }, "RS256", "rsa-1", rsa.privateKey);
    const otherIssuer = await sign(
      { ...claims(sub), iss: "https://tenant-b.idp.example" },
      "RS256",
      "rsa-1",
      rsa.privateKey,
    );

    const noAudience = { ...jwksEnv, JWT_AUDIENCE: "" };
    expect(await expectUnauthorized(await whoami(otherApp, noAudience))).toMatch(/not configured/);
    expect(logged).toHaveBeenCalledWith(expect.stringMatching(/without JWT_AUDIENCE .*JWT authentication is disabled/));
    const noIssuer = { ...jwksEnv, JWT_ISSUER: "  " };
    expect(await expectUnauthorized(await whoami(otherIssuer, noIssuer))).toMatch(/not configured/);
    expect(logged).toHaveBeenCalledWith(expect.stringMatching(/without JWT_ISSUER .*JWT authentication is disabled/));
    // Only the literal `true` opts out; anything else is reported and counts as false.
    const vague = { ...noAudience, JWT_ALLOW_ANY_AUDIENCE: "yes" };
    expect(await expectUnauthorized(await whoami(otherApp, vague))).toMatch(/not configured/);
    expect(logged).toHaveBeenCalledWith(expect.stringMatching(/JWT_ALLOW_ANY_AUDIENCE must be true or false/));

    expect(await statusOf(otherApp, { ...noAudience, JWT_ALLOW_ANY_AUDIENCE: "true" })).toBe(200);
    expect(await statusOf(otherIssuer, { ...noIssuer, JWT_ALLOW_ANY_ISSUER: "true" })).toBe(200);
    // Opting out of one check leaves the other in force.
    expect(await statusOf(otherIssuer, { ...noAudience, JWT_ALLOW_ANY_AUDIENCE: "true" })).toBe(401);
    expect(await statusOf(otherApp, { ...noIssuer, JWT_ALLOW_ANY_ISSUER: "true" })).toBe(401);
  });

  it("accepts only an https: key set URL (http: only for localhost)", () => {
    for (const [url, accepted] of [
      ["https://idp.example.test/jwks.json", true],
      ["http://localhost:9999/jwks.json", true],
      ["http://idp.example.test/jwks.json", false],
      ["ftp://idp.example.test/jwks.json", false],
      ["not a url", false],
    ] as const) {
      expect(loadConfig(envWith({ JWT_JWKS_URL: url })).jwt.jwksUrl !== null, url).toBe(accepted);
    }
  });
});

describe("token lifetime", () => {
  const secret = new TextEncoder().encode(env.JWT_SECRET);
  const signed = (payload: Record<string, unknown>) =>
    new SignJWT(payload).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(secret);

  it("refuses a token issued in the future beyond the clock tolerance, and accepts one within it", async () => {
    const sub = uniqueSub();
    expect((await whoami(await signed({ ...claims(sub), iat: now() + 20 }))).status).toBe(200);
    expect(await expectUnauthorized(await whoami(await signed({ ...claims(sub), iat: now() + 120 })))).toMatch(
      /iat claim is in the future/,
    );
  });

  it("caps exp - iat at JWT_MAX_AGE_SECONDS (default 24 h), and then requires iat", async () => {
    const sub = uniqueSub();
    const day = 86_400;
    expect((await whoami(await token(sub, { ttl: day }))).status).toBe(200);
    expect(await expectUnauthorized(await whoami(await token(sub, { ttl: day + 1 })))).toMatch(/lifetime/);
    // A token issued a year ago that stays valid for another minute is over the cap, not under it.
    const old = await signed({ ...claims(sub), iat: now() - 365 * day, exp: now() + 60 });
    expect(await expectUnauthorized(await whoami(old))).toMatch(/lifetime/);
    const { iat: _iat, ...withoutIat } = claims(sub);
    const noIat = await signed(withoutIat);
    expect(await expectUnauthorized(await whoami(noIat))).toMatch(/iat claim is required/);

    const hourCap = envWith({ JWT_MAX_AGE_SECONDS: "3600" });
    expect((await whoami(await token(sub, { ttl: 3600 }), hourCap)).status).toBe(200);
    expect((await whoami(await token(sub, { ttl: 3601 }), hourCap)).status).toBe(401);
    // 0: no cap, and iat optional again.
    const uncapped = envWith({ JWT_MAX_AGE_SECONDS: "0" });
    expect((await whoami(await token(sub, { ttl: 30 * day }), uncapped)).status).toBe(200);
    expect((await whoami(noIat, uncapped)).status).toBe(200);
  });

  it("reports an unusable JWT_MAX_AGE_SECONDS and keeps the default cap", () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    for (const value of ["-1", "1.5", "a day", String(400 * 86_400)]) {
      expect(loadConfig(envWith({ JWT_MAX_AGE_SECONDS: value })).jwt.maxAgeSeconds, value).toBe(86_400);
    }
    expect(logged).toHaveBeenCalledWith(expect.stringMatching(/JWT_MAX_AGE_SECONDS must be/));
  });
});

describe("invisible format and bidi control characters", () => {
  // Right-to-left override, zero-width space, byte order mark, the bidi isolates, Arabic letter mark.
  const FORMAT = ["\u202e", "\u200b", "\ufeff", "\u2066", "\u2067", "\u2068", "\u2069", "\u061c"];

  it("in a token's subject: 401", async () => {
    for (const char of FORMAT) {
      const response = await whoami(await token(`admin${char}-x`));
      expect(await expectUnauthorized(response), JSON.stringify(char)).toMatch(/subject/);
    }
  });

  it("in a token's org id: 401 naming the claim (a lookalike workspace is not quietly dropped)", async () => {
    for (const char of FORMAT) {
      const response = await whoami(await token(uniqueSub(), { org: `acme${char}` }));
      expect(await expectUnauthorized(response), JSON.stringify(char)).toMatch(/org_id claim is invalid/);
    }
    // Not a string at all: the same.
    const numeric = await token(uniqueSub(), { claims: { org_id: 42 } });
    expect(await expectUnauthorized(await whoami(numeric))).toMatch(/org_id/);
  });

  it("in a key name: 422 naming name, nothing stored", async () => {
    const jwt = await token(uniqueSub());
    for (const char of FORMAT) {
      const response = await call("POST", "/v1/keys", { auth: jwt, body: { name: `invoice${char}fdp.exe` } });
      const problem = await expectProblem(response, 422);
      expect(Object.keys(problem.errors as object), JSON.stringify(char)).toEqual(["name"]);
    }
    const list = await (await call("GET", "/v1/keys", { auth: jwt })).json<{ data: unknown[] }>();
    expect(list.data).toEqual([]);
  });
});
