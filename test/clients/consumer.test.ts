/**
 * latchkey over service bindings, in the Workers runtime: the example consumer (examples/consumer,
 * an auxiliary Worker whose routes are guarded by @latchkey/client's requireKey over a binding to
 * latchkey's KeyVerifier entrypoint) with keys made through latchkey's HTTP API, and the KeyService
 * RPC methods called through a real binding.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { NO_KEY_PROBLEM, VERDICT_PROBLEMS } from "../../packages/client/src/codes";
import { generateKey } from "../../src/keys/format";
import type { ProblemCode } from "../../src/problems";
import { isolateCache } from "../../src/service/verify";
import { call, createKey, expectProblem, token, uniqueSub } from "../helpers";

declare global {
  namespace Cloudflare {
    /** Types `exports` (cloudflare:workers): latchkey's entrypoints as loopback bindings. */
    interface GlobalProps {
      mainModule: typeof import("../../src/index");
    }
  }
}

/** KeyService through a loopback service binding: arguments, results and errors cross real RPC. */
const keys = exports.KeyService;

/** Calls the example consumer: an auxiliary Worker (vitest.config.ts) whose KEYS binds to latchkey's KeyVerifier. */
async function consumer(method: string, path: string, headers: Record<string, string> = {}): Promise<Response> {
  const binding = (env as Cloudflare.Env & { CONSUMER?: Fetcher }).CONSUMER;
  if (!binding) throw new Error("No CONSUMER binding: see miniflare.serviceBindings in vitest.config.ts");
  return binding.fetch(`https://consumer.test${path}`, { method, headers });
}

const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

/**
 * The message a KeyService call fails with. The handler is attached at once: workerd reports a
 * rejection that is handled later (as `expect(...).rejects` does) as unhandled.
 *
 * Even so, workerd logs each rejected call once as "uncaught exception; source = Uncaught (in
 * promise)", however promptly the caller handles it (cloudflare/workers-sdk#14736). Those entries, and
 * only those, are kept out of the test output in one place: test/rpc-noise.ts says why and how.
 */
function failure(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (error: Error) => error.message,
  );
}

/** The guard's problem: latchkey's code for the verdict (none sent: authentication_required), and the verdict. */
async function expectRefusal(response: Response, status: number, verdict: keyof typeof VERDICT_PROBLEMS | undefined) {
  const code = (verdict === undefined ? NO_KEY_PROBLEM : VERDICT_PROBLEMS[verdict]).code as ProblemCode;
  const body = await expectProblem(response, status, code);
  expect(body.verdict).toBe(verdict);
}

async function expectUnauthorized(
  response: Response,
  verdict: keyof typeof VERDICT_PROBLEMS | undefined,
): Promise<void> {
  await expectRefusal(response, 401, verdict);
  expect(response.headers.get("www-authenticate")).toMatch(/^Bearer realm=/);
}

async function expectForbidden(response: Response, verdict: keyof typeof VERDICT_PROBLEMS): Promise<void> {
  await expectRefusal(response, 403, verdict);
  expect(response.headers.get("www-authenticate")).toBeNull();
}

async function userKey(body: Record<string, unknown>) {
  const sub = uniqueSub();
  const jwt = await token(sub);
  return { sub, jwt, ...(await createKey(jwt, body)) };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("the example consumer, guarded by latchkey over a service binding", () => {
  it("lets a key with the scope and resource in, and tells the route whose key it is", async () => {
    const { sub, id, key } = await userKey({ scopes: ["models:invoke", "metrics:read"], resources: ["m1"] });

    const invoked = await consumer("POST", "/models/m1/invoke", bearer(key));
    expect(invoked.status).toBe(200);
    expect(await invoked.json()).toEqual({
      model: "m1",
      output: "model m1 invoked",
      owner: { type: "user", id: sub },
      key_id: id,
    });

    for (const headers of [{ "api-key": key }, { authorization: `Api-Key ${key}` }, bearer(key)]) {
      const metrics = await consumer("GET", "/metrics", headers);
      expect(metrics.status).toBe(200);
      expect(await metrics.json()).toMatchObject({ owner: { type: "user", id: sub }, key_id: id });
    }
  });

  it("answers 403 INSUFFICIENT_SCOPE to a key without the route's scope", async () => {
    const { key } = await userKey({ scopes: ["metrics:read"] });

    await expectForbidden(await consumer("POST", "/models/m1/invoke", bearer(key)), "INSUFFICIENT_SCOPE");
    expect((await consumer("GET", "/metrics", bearer(key))).status).toBe(200);
  });

  it("answers 403 RESOURCE_NOT_ALLOWED to a key limited to other models", async () => {
    const { key } = await userKey({ scopes: ["models:*"], resources: ["m1", "m2"] });

    await expectForbidden(await consumer("POST", "/models/m3/invoke", bearer(key)), "RESOURCE_NOT_ALLOWED");
    expect((await consumer("POST", "/models/m2/invoke", bearer(key))).status).toBe(200);
  });

  it("answers 401 REVOKED once the key is revoked through latchkey's API, here and in a fresh isolate", async () => {
    const { jwt, id, key } = await userKey({ scopes: ["models:invoke"] });
    expect((await consumer("POST", "/models/m1/invoke", bearer(key))).status).toBe(200);

    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt })).status).toBe(204);

    await expectUnauthorized(await consumer("POST", "/models/m1/invoke", bearer(key)), "REVOKED");
    isolateCache.clear();
    await expectUnauthorized(await consumer("POST", "/models/m1/invoke", bearer(key)), "REVOKED");
  });

  it("answers 401 MALFORMED to a key with a wrong checksum and to a bearer token that is no key", async () => {
    const { key, jwt } = await userKey({ scopes: ["models:invoke"] });
    const last = key.at(-1) === "A" ? "B" : "A";

    await expectUnauthorized(await consumer("POST", "/models/m1/invoke", bearer(key.slice(0, -1) + last)), "MALFORMED");
    await expectUnauthorized(await consumer("POST", "/models/m1/invoke", bearer(jwt)), "MALFORMED");
  });

  it("answers 401 NOT_FOUND to a well-formed key latchkey never issued", async () => {
    await expectUnauthorized(await consumer("GET", "/metrics", bearer(generateKey("lk"))), "NOT_FOUND");
  });

  it("answers 401 EXPIRED once the key's expiry has passed", async () => {
    const expiresAt = Date.now() + 3_600_000;
    const { key } = await userKey({ scopes: ["metrics:read"], expires_at: new Date(expiresAt).toISOString() });
    expect((await consumer("GET", "/metrics", bearer(key))).status).toBe(200);

    vi.useFakeTimers({ toFake: ["Date"], now: expiresAt + 1 });
    await expectUnauthorized(await consumer("GET", "/metrics", bearer(key)), "EXPIRED");
  });

  it("answers 401 when no key, or no usable scheme, is sent", async () => {
    const { key } = await userKey({ scopes: ["metrics:read"] });
    const attempts: Record<string, string>[] = [
      {},
      { authorization: `Basic ${key}` },
      { authorization: "Bearer" },
      { "api-key": " " },
    ];
    for (const headers of attempts) {
      await expectUnauthorized(await consumer("GET", "/metrics", headers), undefined);
    }
  });

  it("answers 400, not 500, when the path's model id is no valid resource id", async () => {
    const { key } = await userKey({ scopes: ["models:invoke"] });
    await expectProblem(await consumer("POST", "/models/bad%20id/invoke", bearer(key)), 400);
  });

  it("binds an entrypoint that verifies but cannot manage keys", async () => {
    const { sub, id, key } = await userKey({ scopes: ["metrics:read"] });
    const owner = { type: "user", id: sub } as const;
    // What the consumer's KEYS is bound to (vitest.config.ts): management methods do not exist on it.
    const verifier = exports.KeyVerifier as unknown as Service<import("../../src/rpc").KeyService>;
    expect(await failure(verifier.revoke(owner, id))).toMatch(/revoke/);
    expect(await failure(verifier.create(owner, { name: "escalated" }))).toMatch(/create/);
    expect(await failure(verifier.list(owner))).toMatch(/list/);
    expect((await consumer("GET", "/metrics", bearer(key))).status).toBe(200);
  });

  it("answers 404 to an unknown route or method", async () => {
    const { key } = await userKey({ scopes: ["*"] });
    await expectProblem(await consumer("GET", "/models/m1/invoke", bearer(key)), 404);
    await expectProblem(await consumer("GET", "/admin", bearer(key)), 404);
  });
});

describe("KeyService RPC", () => {
  const owner = () => ({ type: "user", id: uniqueSub() }) as const;

  it("verify gives the same verdict as POST /v1/verify", async () => {
    const { key } = await userKey({ scopes: ["models:invoke"], resources: ["m1"] });
    const cases = [
      [key, {}],
      [key, { scope: "models:invoke", resource: "m1" }],
      [key, { scope: "metrics:read" }],
      [key, { resource: "m2" }],
      [generateKey("lk"), {}],
      ["lk_nope", {}],
    ] as const;
    for (const [candidate, options] of cases) {
      const http = await call("POST", "/v1/verify", { body: { key: candidate, ...options } });
      expect(http.status).toBe(200);
      expect(await keys.verify(candidate, options)).toEqual(await http.json());
    }
  });

  it("creates, gets, lists and revokes a key for an owner", async () => {
    const alice = owner();
    const created = await keys.create(alice, {
      name: "from a Worker",
      scopes: ["models:invoke"],
      resources: ["m1"],
      metadata: { plan: "pro", seats: 3, tags: ["a"] },
    });
    expect(created).toMatchObject({
      name: "from a Worker",
      owner_type: "user",
      owner_id: alice.id,
      scopes: ["models:invoke"],
      resources: ["m1"],
      created_by: "service",
      revoked_at: null,
      metadata: { plan: "pro", seats: 3, tags: ["a"] },
    });
    expect(created.key.startsWith(created.start)).toBe(true);

    const { key: plaintext, ...view } = created;
    expect(await keys.get(alice, created.id)).toEqual(view);
    expect(await keys.list(alice)).toEqual({ data: [view], next_cursor: null });
    expect(await keys.list(owner())).toEqual({ data: [], next_cursor: null });
    expect(await keys.verify(plaintext, { scope: "models:invoke", resource: "m1" })).toMatchObject({
      valid: true,
      key_id: created.id,
      owner: alice,
    });

    expect(await keys.revoke(alice, created.id)).toBeUndefined();
    expect(await keys.verify(plaintext)).toMatchObject({ valid: false, code: "REVOKED" });
    expect((await keys.get(alice, created.id)).revoked_at).not.toBeNull();
    expect((await keys.list(alice)).data).toEqual([]);
    expect((await keys.list(alice, { include_revoked: true })).data.map((k) => k.id)).toEqual([created.id]);
  });

  it("sees keys made through the HTTP API, and those keys see revocations made over RPC", async () => {
    const { sub, id, key } = await userKey({ scopes: ["metrics:read"] });
    const person = { type: "user", id: sub } as const;
    expect((await keys.list(person)).data.map((k) => k.id)).toEqual([id]);

    await keys.revoke(person, id);
    await expectUnauthorized(await consumer("GET", "/metrics", bearer(key)), "REVOKED");
  });

  it("rejects invalid input with [invalid] naming the field, and stores nothing", async () => {
    const alice = owner();
    expect(await failure(keys.create(alice, { name: "" }))).toMatch(/^\[invalid\] input: name: Must not be empty$/);
    expect(await failure(keys.create(alice, { name: "x", scopes: ["Not A Scope"] }))).toMatch(
      /^\[invalid\] input: scopes\.0: /,
    );
    // @ts-expect-error an owner type latchkey does not have
    expect(await failure(keys.create({ type: "team", id: "t1" }, { name: "x" }))).toMatch(/^\[invalid\] owner: type: /);
    expect(await failure(keys.create(alice, { name: "x", owner: "workspace" }))).toMatch(/^\[invalid\] owner: /);
    // RPC can carry what JSON cannot; metadata must still be JSON, or it would not read back as it was sent.
    for (const value of [new Date(0), new Map([["a", 1]]), 1n, undefined, Number.NaN]) {
      expect(await failure(keys.create(alice, { name: "x", metadata: { value } }))).toMatch(
        /^\[invalid\] input: metadata\.value: /,
      );
    }
    const reserved = JSON.parse('{"name":"x","metadata":{"__proto__":{"admin":true}}}') as { name: string };
    expect(await failure(keys.create(alice, reserved))).toMatch(/^\[invalid\] input: metadata\.__proto__: /);
    expect(await failure(keys.list(alice, { limit: 0 }))).toMatch(
      /^\[invalid\] options: limit: Must be a whole number between 1 and 100$/,
    );
    expect(await failure(keys.verify(generateKey("lk"), { scope: "BAD" }))).toMatch(/^\[invalid\] options: scope: /);
    expect(await keys.list(alice, { include_revoked: true })).toEqual({ data: [], next_cursor: null });
  });

  it("answers [not_found] for an unknown id and for another owner's key, which stays valid", async () => {
    const alice = owner();
    const mallory = owner();
    const created = await keys.create(alice, { name: "alice's" });

    expect(await failure(keys.get(alice, crypto.randomUUID()))).toMatch(/^\[not_found\] No such key$/);
    expect(await failure(keys.get(alice, "not-a-uuid"))).toMatch(/^\[not_found\] /);
    expect(await failure(keys.get(mallory, created.id))).toMatch(/^\[not_found\] No such key$/);
    expect(await failure(keys.revoke(mallory, created.id))).toMatch(/^\[not_found\] No such key$/);
    expect(await failure(keys.get({ type: "workspace", id: alice.id }, created.id))).toMatch(/^\[not_found\] /);

    expect(await keys.verify(created.key)).toMatchObject({ valid: true, key_id: created.id });
  });

  it("exposes its methods only: the helper that builds the service is not callable over the binding", async () => {
    // RPC would run any public method, TypeScript's `private` included: it would hand out the service itself.
    const stub = keys as unknown as Record<string, () => Promise<unknown>>;
    expect(await failure(stub.keys!())).toMatch(/does not implement "keys"/);
  });
});

describe("the example consumer and the key lifecycle", () => {
  it("checks a key's IP allow-list against CF-Connecting-IP, and refuses a disabled key", async () => {
    const { jwt, id, key } = await userKey({ scopes: ["models:invoke"], allowed_ips: ["203.0.113.0/24"] });
    const from = (ip?: string) =>
      consumer("POST", "/models/m1/invoke", { ...bearer(key), ...(ip ? { "cf-connecting-ip": ip } : {}) });

    expect((await from("203.0.113.9")).status).toBe(200);
    await expectUnauthorized(await from("198.51.100.1"), "IP_NOT_ALLOWED");
    await expectUnauthorized(await from(), "IP_NOT_ALLOWED");

    expect((await call("PATCH", `/v1/keys/${id}`, { auth: jwt, body: { enabled: false } })).status).toBe(200);
    await expectUnauthorized(await from("203.0.113.9"), "DISABLED");
  });
});
