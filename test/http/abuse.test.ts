/**
 * Abuse resistance: brute-force damping with the real Workers rate limiting binding (miniflare
 * enforces it under the vitest plugin), the security headers on every response, and logs that never
 * hold a key, a JWT or an Authorization value, whatever happens (success, failed authentication,
 * KV or D1 faults, limiter failure).
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { generateKey } from "../../src/keys/format";
import type { Env } from "../../src/env";
import { NO_IP_CLIENT, RETRY_AFTER_SECONDS } from "../../src/http/limits";
import { isolateCache } from "../../src/service/verify";
import {
  type CreatedKey,
  call,
  captureLogs,
  logsOf,
  createKey,
  envWith,
  expectProblem,
  faultyDb,
  faultyKv,
  token,
  uniqueSub,
} from "../helpers";

const LIMIT = 100; // wrangler.toml: simple = { limit = 100, period = 60 }
const PERIOD_MS = 60_000;

/** A client address no other test uses (the limiter counts per CF-Connecting-IP). */
const uniqueIp = () =>
  `2001:db8:${[...crypto.getRandomValues(new Uint16Array(3))].map((n) => n.toString(16)).join(":")}::1`;

afterEach(() => vi.restoreAllMocks());

/** One character of the key's body changed: the checksum rejects it without touching storage. */
function mutate(key: string): string {
  const i = 10;
  return key.slice(0, i) + (key[i] === "a" ? "b" : "a") + key.slice(i + 1);
}

/** Failed authentications of every kind: malformed key, unknown key, forged, expired and foreign JWTs, junk. */
async function badCredentials(realKey: string): Promise<string[]> {
  return [
    `Bearer ${mutate(realKey)}`,
    `Bearer ${generateKey("lk")}`,
    `Api-Key ${generateKey("lk")}`,
    `Bearer ${await token(uniqueSub(), { secret: "another-secret-0123456789abcdef0123456789" })}`,
    `Bearer ${await token(uniqueSub(), { ttl: -3600 })}`,
    `Bearer ${await token(uniqueSub(), { audience: "someone-else" })}`,
    `Basic ${btoa("user:password")}`,
    "Bearer not-a-token",
  ];
}

/** A deterministic stand-in for a rate limiting binding: `allowed` calls per key, then refusals; records every key. */
function fakeLimiter(allowed: number) {
  const counts = new Map<string, number>();
  const keys: string[] = [];
  const binding = {
    limit: async ({ key }: RateLimitOptions) => {
      keys.push(key);
      counts.set(key, (counts.get(key) ?? 0) + 1);
      return { success: counts.get(key)! <= allowed };
    },
  } as RateLimit;
  return { binding, keys };
}

const randomHextet = () => crypto.getRandomValues(new Uint16Array(1))[0]!.toString(16);

describe("who a client is", () => {
  const failFrom = (ip: string | null, testEnv: Env) =>
    call("GET", "/v1/whoami", {
      headers: { authorization: "Bearer not-a-token", ...(ip === null ? {} : { "cf-connecting-ip": ip }) },
      env: testEnv,
    });

  it("is its IPv6 /64, however the address is spelled; each failure is counted once, a success never", async () => {
    const main = fakeLimiter(1000);
    const testEnv = envWith({
      AUTH_FAILURE_LIMITER: main.binding,
      AUTH_FAILURE_LIMITER_NO_IP: fakeLimiter(1000).binding,
    });
    const [a, b] = [randomHextet(), randomHextet()];
    const pad = (h: string) => h.padStart(4, "0");
    const sameSlash64 = [
      `2001:db8:${a}:${b}::1`,
      `2001:0db8:${pad(a)}:${pad(b)}:0000:0000:0000:0001`,
      `2001:DB8:${a.toUpperCase()}:${b.toUpperCase()}::1`,
      `2001:db8:${a}:${b}:1::`,
      `2001:db8:${a}:${b}:ffff:ffff:ffff:ffff`,
      `2001:db8:${a}:${b}::192.0.2.1`,
    ];
    for (const ip of sameSlash64) await expectProblem(await failFrom(ip, testEnv), 401);
    expect(main.keys).toHaveLength(sameSlash64.length);
    expect(new Set(main.keys).size).toBe(1);

    const { key } = await createKey(await token(uniqueSub()));
    const success = await call("GET", "/v1/whoami", {
      auth: key,
      headers: { "cf-connecting-ip": sameSlash64[0]! },
      env: testEnv,
    });
    expect(success.status).toBe(200);
    expect(main.keys).toHaveLength(sameSlash64.length);

    // Other /64s (the next one, and one differing only in the top group) and IPv4 are other clients;
    // an IPv4-mapped IPv6 address is its IPv4 address.
    const firstOther = main.keys.length;
    const others = [
      `2001:db8:${a}:${(parseInt(b, 16) ^ 1).toString(16)}::1`,
      `2002:db8:${a}:${b}::1`,
      "192.0.2.1",
      "::ffff:192.0.2.1",
      "::1",
      "::",
    ];
    for (const ip of others) await expectProblem(await failFrom(ip, testEnv), 401);
    const [nextSlash64, otherTop, ipv4, mapped, loopback, unspecified] = main.keys.slice(firstOther);
    const clients = [main.keys[0], nextSlash64, otherTop, ipv4, loopback];
    expect(new Set(clients).size).toBe(clients.length);
    expect(mapped).toBe(ipv4);
    expect(unspecified).toBe(loopback); // ::1 and :: are in the same /64
  });

  it("shares one bucket across the spellings of its /64: the limit is reached across them", async () => {
    const testEnv = envWith({ AUTH_FAILURE_LIMITER: fakeLimiter(3).binding });
    const [a, b] = [randomHextet(), randomHextet()];
    for (const ip of [`2001:db8:${a}:${b}::1`, `2001:db8:${a}:${b}::2`, `2001:db8:${a}:${b}:abcd::`]) {
      await expectProblem(await failFrom(ip, testEnv), 401);
    }
    await expectProblem(await failFrom(`2001:db8:${a}:${b}:0:0:0:9`, testEnv), 429);
    await expectProblem(await failFrom(`2001:db8:${a}:${(parseInt(b, 16) ^ 1).toString(16)}::1`, testEnv), 401);
  });

  it("without CF-Connecting-IP is one client of its own, counted by AUTH_FAILURE_LIMITER_NO_IP when bound", async () => {
    // Without the stricter binding, the main limiter counts them, still under their own key.
    const fallback = fakeLimiter(1000);
    const noStricter = envWith({ AUTH_FAILURE_LIMITER: fallback.binding, AUTH_FAILURE_LIMITER_NO_IP: undefined });
    await expectProblem(await failFrom(null, noStricter), 401);
    expect(fallback.keys).toEqual([NO_IP_CLIENT]);

    const main = fakeLimiter(1000);
    const noIp = fakeLimiter(2);
    const testEnv = envWith({ AUTH_FAILURE_LIMITER: main.binding, AUTH_FAILURE_LIMITER_NO_IP: noIp.binding });
    // An hour in the past, so that this isolate's memory of the bucket being over its limit has lapsed
    // when the test ends: later tests send header-less requests.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() - 3_600_000 });
    try {
      await expectProblem(await failFrom(null, testEnv), 401);
      await expectProblem(await failFrom(null, testEnv), 401);
      await expectProblem(await failFrom(null, testEnv), 429);
    } finally {
      vi.useRealTimers();
    }
    expect(main.keys).toEqual([]);
    expect(noIp.keys).toEqual([NO_IP_CLIENT, NO_IP_CLIENT, NO_IP_CLIENT]);
    // A client that sends the bucket's name as its address is not in that bucket.
    await expectProblem(await failFrom(NO_IP_CLIENT, testEnv), 401);
    await expectProblem(await failFrom(uniqueIp(), testEnv), 401);
    expect(main.keys).toHaveLength(2);
    expect(main.keys).not.toContain(NO_IP_CLIENT);
  });
});

describe("brute force", () => {
  it("limits a client's failed authentications with 429 + Retry-After, without slowing anyone's valid traffic", async () => {
    const jwt = await token(uniqueSub("victim"));
    const valid = await createKey(jwt, { scopes: ["keys:read", "keys:write"] });
    const bad = await badCredentials(valid.key);

    // The limiter counts in fixed 60 s windows: if one rolls over mid-scenario, replay with new clients.
    for (let attempt = 1; ; attempt++) {
      const attacker = uniqueIp();
      const bystander = uniqueIp();
      const as = (ip: string, authorization: string) => ({ headers: { authorization, "cf-connecting-ip": ip } });
      const window = Math.floor(Date.now() / PERIOD_MS);

      const failures: number[] = [];
      for (let i = 0; i < LIMIT; i++) {
        failures.push((await call("GET", "/v1/whoami", as(attacker, bad[i % bad.length]!))).status);
      }
      const limited = await call("GET", "/v1/keys", as(attacker, bad[0]!));
      const limitedAgain = await call("POST", "/v1/keys", {
        ...as(attacker, `Bearer ${generateKey("lk")}`),
        body: { name: "x" },
      });
      // Successful traffic from the limited client is not slowed: keys, JWTs, and key verification.
      const keyFromAttacker = await call("GET", "/v1/whoami", as(attacker, `Bearer ${valid.key}`));
      const apiKeyFromAttacker = await call("GET", "/v1/keys", as(attacker, `Api-Key ${valid.key}`));
      const jwtFromAttacker = await call("POST", "/v1/keys", {
        ...as(attacker, `Bearer ${jwt}`),
        body: { name: "ok" },
      });
      const verifyFromAttacker = await call("POST", "/v1/verify", {
        headers: { "cf-connecting-ip": attacker },
        body: { key: valid.key },
      });
      // Other clients are not affected by the attacker's limit.
      const bystanderFails = await call("GET", "/v1/whoami", as(bystander, bad[1]!));
      const bystanderSucceeds = await call("GET", "/v1/whoami", as(bystander, `Bearer ${valid.key}`));
      const stillLimited = await call("GET", "/v1/whoami", as(attacker, bad[2]!));

      if (Math.floor(Date.now() / PERIOD_MS) !== window && attempt < 3) continue;

      expect(failures).toEqual(Array(LIMIT).fill(401));
      for (const response of [limited, limitedAgain, stillLimited]) {
        await expectProblem(response, 429);
        expect(response.headers.get("retry-after")).toBe(String(RETRY_AFTER_SECONDS));
      }
      expect(keyFromAttacker.status).toBe(200);
      expect(apiKeyFromAttacker.status).toBe(200);
      expect(jwtFromAttacker.status).toBe(201);
      expect(await verifyFromAttacker.json()).toMatchObject({ valid: true });
      await expectProblem(bystanderFails, 401);
      expect(bystanderSucceeds.status).toBe(200);
      return;
    }
  }, 60_000);

  it("answers a client already over its limit with 429 without asking the binding again", async () => {
    const real = env.AUTH_FAILURE_LIMITER!;
    let asked = 0;
    const counting = envWith({
      AUTH_FAILURE_LIMITER: { limit: (options: RateLimitOptions) => (asked++, real.limit(options)) } as RateLimit,
    });
    const client = uniqueIp();
    const fail = () =>
      call("GET", "/v1/whoami", {
        headers: { authorization: "Bearer not-a-token", "cf-connecting-ip": client },
        env: counting,
      });
    let first: Response | undefined;
    for (let i = 0; i <= 2 * LIMIT && !first; i++) {
      const response = await fail();
      if (response.status === 429) first = response;
    }
    expect(first?.status).toBe(429);
    const askedWhenLimited = asked;
    for (let i = 0; i < 5; i++) await expectProblem(await fail(), 429);
    expect(asked).toBe(askedWhenLimited);
    // Another client is still asked about, and still gets its plain 401.
    const other = await call("GET", "/v1/whoami", {
      headers: { authorization: "Bearer not-a-token", "cf-connecting-ip": uniqueIp() },
      env: counting,
    });
    await expectProblem(other, 401);
    expect(asked).toBe(askedWhenLimited + 1);
  });

  it("a failing limiter fails open: a failed authentication is still a plain 401, never a 500", async () => {
    const broken = envWith({
      AUTH_FAILURE_LIMITER: { limit: () => Promise.reject(new Error("limiter down")) } as unknown as RateLimit,
    });
    const logs = captureLogs();
    const response = await call("GET", "/v1/whoami", {
      auth: generateKey("lk"),
      headers: { "cf-connecting-ip": uniqueIp() },
      env: broken,
    });
    logs.restore();
    await expectProblem(response, 401, "key_not_found");
    expect(logs.events("rate_limiter_failed")).toMatchObject([{ level: "warn", error: "limiter down" }]);
  });
});

interface Seen {
  label: string;
  status: number;
  headers: Headers;
  text: string;
}

/**
 * Exercises every route and every kind of answer (success, 400, 401, 403, 404, 405, 413, 415, 422,
 * 429, 503, with KV and D1 faults), returning what the client saw and every secret that was used.
 */
async function tour(): Promise<{ seen: Seen[]; secrets: string[] }> {
  const seen: Seen[] = [];
  const secrets: string[] = [];
  const record = async (label: string, response: Response) => {
    seen.push({ label, status: response.status, headers: response.headers, text: await response.text() });
  };
  const ip = uniqueIp();
  const jwt = await token(uniqueSub("tour"), { org: uniqueSub("org") });
  const expired = await token(uniqueSub(), { ttl: -3600 });
  const forged = await token(uniqueSub(), { secret: "forged-secret-0123456789abcdef0123456789ab" });
  secrets.push(jwt, expired, forged);

  const createResponse = await call("POST", "/v1/keys", {
    auth: jwt,
    body: { name: "tour", scopes: ["keys:read", "keys:write", "models:invoke"] },
  });
  const created = (await createResponse.clone().json()) as CreatedKey;
  await record("create (JWT)", createResponse);
  const narrowResponse = await call("POST", "/v1/keys", {
    auth: created.key,
    body: { name: "narrow", scopes: ["models:invoke"] },
  });
  const narrow = (await narrowResponse.clone().json()) as CreatedKey;
  await record("create (key)", narrowResponse);
  const doomed = await createKey(jwt);
  secrets.push(created.key, narrow.key, doomed.key);
  const unknown = generateKey("lk");
  const junk = `Bearer junk-${crypto.randomUUID()}-${crypto.randomUUID()}`;
  secrets.push(unknown, mutate(created.key), junk);

  await record("health", await call("GET", "/healthz"));
  await record("openapi", await call("GET", "/openapi.json"));
  await record("whoami (JWT)", await call("GET", "/v1/whoami", { auth: jwt }));
  await record("whoami (key)", await call("GET", "/v1/whoami", { auth: created.key }));
  await record(
    "whoami (Api-Key)",
    await call("GET", "/v1/whoami", { headers: { authorization: `Api-Key ${created.key}` } }),
  );
  await record("list", await call("GET", "/v1/keys", { auth: jwt }));
  await record("get", await call("GET", `/v1/keys/${created.id}`, { auth: created.key }));
  await record(
    "verify valid",
    await call("POST", "/v1/verify", { body: { key: created.key, scope: "models:invoke" } }),
  );
  await record("verify scope", await call("POST", "/v1/verify", { body: { key: narrow.key, scope: "keys:read" } }));
  await record("revoke", await call("DELETE", `/v1/keys/${doomed.id}`, { auth: jwt }));
  await record("verify revoked", await call("POST", "/v1/verify", { body: { key: doomed.key } }));
  await record("400 query", await call("GET", "/v1/keys?limit=0", { auth: jwt }));
  await record("401 revoked key", await call("GET", "/v1/whoami", { auth: doomed.key }));
  await record("401 unknown key", await call("GET", "/v1/whoami", { auth: unknown }));
  await record("401 mutated key", await call("GET", "/v1/keys", { auth: mutate(created.key) }));
  await record("401 expired JWT", await call("GET", "/v1/keys", { auth: expired }));
  await record("401 forged JWT", await call("GET", "/v1/keys", { auth: forged }));
  await record("401 junk", await call("GET", "/v1/keys", { headers: { authorization: junk } }));
  await record("403 scope", await call("GET", "/v1/keys", { auth: narrow.key }));
  await record("404", await call("GET", `/v1/keys/${crypto.randomUUID()}`, { auth: jwt }));
  await record("405", await call("PUT", "/v1/keys", { auth: jwt }));
  await record("413", await call("POST", "/v1/verify", { body: { key: "x".repeat(20_000) } }));
  await record("415", await call("POST", "/v1/verify", { raw: JSON.stringify({ key: created.key }) }));
  await record("422", await call("POST", "/v1/keys", { auth: jwt, body: { name: "" } }));
  // At most 2 x LIMIT failures reach a 429, even if the limiter's 60 s window rolls over once.
  for (let i = 0; i <= 2 * LIMIT; i++) {
    const authorization = `Bearer ${mutate(created.key)}`;
    const response = await call("GET", "/v1/whoami", { headers: { authorization, "cf-connecting-ip": ip } });
    if (response.status === 429 || i === 2 * LIMIT) {
      await record("429", response);
      break;
    }
  }

  for (const fault of ["throw", "reject"] as const) {
    const kvDown = envWith({ KEY_CACHE: faultyKv(fault) });
    isolateCache.clear();
    await record("KV down: verify", await call("POST", "/v1/verify", { body: { key: created.key }, env: kvDown }));
    isolateCache.clear();
    await record("KV down: whoami", await call("GET", "/v1/whoami", { auth: created.key, env: kvDown }));
    const kvMade = await call("POST", "/v1/keys", { auth: created.key, body: { name: "kv down" }, env: kvDown });
    secrets.push(((await kvMade.clone().json()) as CreatedKey).key);
    await record("KV down: create", kvMade);
    await record("KV down: revoke", await call("DELETE", `/v1/keys/${narrow.id}`, { auth: created.key, env: kvDown }));

    const allDown = envWith({ DB: faultyDb(fault), KEY_CACHE: faultyKv(fault) });
    isolateCache.clear();
    await record("D1 down: verify", await call("POST", "/v1/verify", { body: { key: created.key }, env: allDown }));
    isolateCache.clear();
    await record("D1 down: whoami", await call("GET", "/v1/whoami", { auth: created.key, env: allDown }));
    await record(
      "D1 down: create",
      await call("POST", "/v1/keys", { auth: jwt, body: { name: "nope" }, env: allDown }),
    );
    await record("D1 down: list", await call("GET", "/v1/keys", { auth: jwt, env: allDown }));
  }
  const limiterDown = envWith({
    AUTH_FAILURE_LIMITER: { limit: () => Promise.reject(new Error("limiter down")) } as unknown as RateLimit,
  });
  await record(
    "limiter down",
    await call("GET", "/v1/keys", {
      headers: { authorization: junk, "cf-connecting-ip": uniqueIp() },
      env: limiterDown,
    }),
  );
  return { seen, secrets };
}

describe("a tour of every route and outcome", () => {
  let seen: Seen[];
  let secrets: string[];
  let lines: string[];
  beforeAll(async () => {
    lines = await logsOf(async () => {
      ({ seen, secrets } = await tour());
    });
  }, 60_000);

  it("every response has nosniff, and every response carrying a secret has Cache-Control: no-store", () => {
    const statuses = new Set(seen.map((s) => s.status));
    for (const status of [200, 201, 204, 400, 401, 403, 404, 405, 413, 415, 422, 429, 503]) {
      expect(statuses, `a ${status} was exercised`).toContain(status);
    }
    let carryingSecrets = 0;
    for (const { label, headers, text } of seen) {
      expect(headers.get("x-content-type-options"), label).toBe("nosniff");
      if (secrets.some((secret) => text.includes(secret))) {
        carryingSecrets++;
        expect(headers.get("cache-control"), label).toBe("no-store");
      }
      // Only the OpenAPI document is cacheable; everything else is no-store.
      if (label !== "openapi") expect(headers.get("cache-control"), label).toBe("no-store");
    }
    expect(carryingSecrets).toBeGreaterThanOrEqual(3); // the creates
    // Only a create's 201 ever shows a key.
    for (const { label, status, text } of seen) {
      if (status !== 201)
        expect(
          secrets.filter((s) => text.includes(s)),
          label,
        ).toEqual([]);
    }
  });

  it("every log line is one JSON object with a level, an event and the request's id", () => {
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      expect(parsed, line).toMatchObject({
        level: expect.stringMatching(/^(info|warn|error)$/),
        event: expect.stringMatching(/^[a-z_]+$/),
        request_id: expect.any(String),
      });
    }
  });

  it("no key, JWT or Authorization value appears in any log line", () => {
    // The tour did log (KV and D1 faults, the limiter), so the scan below is not vacuous.
    expect(lines.some((line) => line.includes("KV"))).toBe(true);
    expect(lines.some((line) => line.includes("D1"))).toBe(true);
    expect(lines.some((line) => line.includes("rate_limiter_failed"))).toBe(true);
    // Each secret, and its distinctive parts (a key's body, a JWT's payload and signature).
    const needles = secrets.flatMap((secret) => [
      secret,
      ...secret.split(/[._ ]/).filter((part) => part.length >= 20 && !part.startsWith("eyJhbGci")),
    ]);
    expect(needles.length).toBeGreaterThan(secrets.length);
    for (const line of lines) {
      const leaked = needles.filter((needle) => line.includes(needle));
      expect(leaked, `log line leaks a secret: ${line.slice(0, 80)}`).toEqual([]);
    }
  });
});
