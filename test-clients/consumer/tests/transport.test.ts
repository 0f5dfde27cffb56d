/**
 * The client's transport policy, with a scripted fetch instead of a server: retries on 503 with
 * Retry-After (bounded), safe create retries, timeouts, cancellation, and which verdicts the verify
 * cache may keep.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LatchkeyClient, LatchkeyError, VERIFY_CACHE_MAX_TTL_MS, type VerifyResult } from "@latchkey/client";

const BASE = "https://latchkey.example";

/** A fetch that answers from a script, one response per call, and records what it was asked. */
function scripted(...answers: (() => Response | Promise<Response>)[]) {
  const requests: Request[] = [];
  const fetcher: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    requests.push(request);
    const answer = answers.shift();
    if (!answer) throw new Error("unexpected request");
    return answer();
  };
  return { fetch: fetcher, requests };
}

const unavailable = (retryAfter?: string) => () =>
  new Response(JSON.stringify({ type: "about:blank", title: "Service Unavailable", status: 503 }), {
    status: 503,
    headers: { "Content-Type": "application/problem+json", ...(retryAfter ? { "Retry-After": retryAfter } : {}) },
  });
const ok =
  (body: unknown, status = 200) =>
  () =>
    Response.json(body, { status });

/** A verdict as latchkey shapes it: a live key's with its details, a dead or unknown key's without. */
function verdict(code: VerifyResult["code"], expires_at: string | null = null): VerifyResult {
  if (
    code !== "VALID" &&
    code !== "INSUFFICIENT_SCOPE" &&
    code !== "RESOURCE_NOT_ALLOWED" &&
    code !== "RATE_LIMITED" &&
    code !== "USAGE_EXCEEDED"
  )
    return { valid: false, code, key_id: code === "MALFORMED" || code === "NOT_FOUND" ? null : crypto.randomUUID() };
  return {
    valid: code === "VALID",
    code,
    key_id: crypto.randomUUID(),
    owner: { type: "user", id: "alice" },
    scopes: [],
    resources: null,
    expires_at,
    enabled: true,
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to fail");
}

describe("retries", () => {
  it("retries a 503 after its Retry-After, then succeeds", async () => {
    const script = scripted(unavailable("0"), unavailable("0"), ok({ data: [], next_cursor: null }));
    const client = new LatchkeyClient({ baseUrl: BASE, token: "t", fetch: script.fetch });
    assert.deepEqual(await client.list(), { data: [], next_cursor: null });
    assert.equal(script.requests.length, 3);
  });

  it("gives up after maxAttempts with the 503's problem and Retry-After", async () => {
    const script = scripted(unavailable("0"), unavailable("0"), unavailable("0"), ok({}));
    const client = new LatchkeyClient({ baseUrl: BASE, token: "t", fetch: script.fetch });
    const error = await rejection(client.get("x"));
    assert.ok(error instanceof LatchkeyError);
    assert.equal(error.status, 503);
    assert.equal(error.retryAfter, 0);
    assert.equal(error.problem.title, "Service Unavailable");
    assert.equal(script.requests.length, 3);
  });

  it("does not wait for a Retry-After beyond maxRetryDelayMs", { timeout: 5_000 }, async () => {
    const script = scripted(unavailable("3600"), ok({}));
    const client = new LatchkeyClient({ baseUrl: BASE, token: "t", fetch: script.fetch });
    const error = await rejection(client.get("x"));
    assert.ok(error instanceof LatchkeyError && error.retryAfter === 3600);
    assert.equal(script.requests.length, 1);
  });

  it("never retries other failures", async () => {
    for (const status of [400, 401, 403, 404, 422, 429, 500]) {
      const script = scripted(
        () => new Response(JSON.stringify({ type: "about:blank", title: "x", status }), { status }),
        ok({}),
      );
      const client = new LatchkeyClient({ baseUrl: BASE, token: "t", fetch: script.fetch });
      const error = await rejection(client.get("x"));
      assert.ok(error instanceof LatchkeyError && error.status === status);
      assert.equal(script.requests.length, 1, `status ${status} was retried`);
    }
  });

  it("retries a create with the same Idempotency-Key, so latchkey can answer the retry with the first result", async () => {
    const script = scripted(unavailable("0"), ok({ id: "k", key: "lk_x" }, 201));
    const client = new LatchkeyClient({ baseUrl: BASE, token: "t", fetch: script.fetch });
    await client.create({ name: "retried" });
    const [first, second] = script.requests.map((r) => r.headers.get("idempotency-key"));
    assert.ok(first);
    assert.equal(second, first);
    assert.deepEqual(await script.requests[1]?.json(), { name: "retried" });
  });

  it("retries a network failure, and reports one it cannot get past as status 0", async () => {
    const down = () => Promise.reject(new TypeError("fetch failed"));
    const recovered = scripted(down, ok({ data: [], next_cursor: null }));
    await new LatchkeyClient({ baseUrl: BASE, token: "t", fetch: recovered.fetch }).list();
    assert.equal(recovered.requests.length, 2);

    const never = scripted(down, down);
    const client = new LatchkeyClient({ baseUrl: BASE, token: "t", fetch: never.fetch, maxAttempts: 2 });
    const error = await rejection(client.list());
    assert.ok(error instanceof LatchkeyError);
    assert.equal(error.status, 0);
    assert.equal(error.unavailable, true);
    assert.equal(error.problem.title, "Network error");
  });
});

describe("time limits and cancellation", () => {
  /**
   * A fetch that never answers, but honours its signal as fetch does. Its timer stands in for the
   * open socket of a real request, which keeps Node's event loop alive (AbortSignal.timeout does not).
   */
  const hanging: typeof fetch = (_input, init) =>
    new Promise((_resolve, reject) => {
      const socket = setTimeout(() => reject(new Error("the test's fetch was never aborted")), 30_000);
      init?.signal?.addEventListener("abort", () => {
        clearTimeout(socket);
        reject(init.signal?.reason);
      });
    });

  it("times each attempt out, and says so", async () => {
    const client = new LatchkeyClient({ baseUrl: BASE, fetch: hanging, timeoutMs: 50, maxAttempts: 2 });
    const started = Date.now();
    const error = await rejection(client.verify("lk_x"));
    assert.ok(error instanceof LatchkeyError);
    assert.equal(error.status, 0);
    assert.equal(error.problem.title, "Timeout");
    assert.ok(Date.now() - started >= 100, "two attempts of 50 ms each");
  });

  it("stops at once when the caller aborts, with the caller's reason", async () => {
    for (const maxAttempts of [1, 3]) {
      const client = new LatchkeyClient({ baseUrl: BASE, fetch: hanging, timeoutMs: 60_000, maxAttempts });
      const controller = new AbortController();
      const reason = new Error("user went away");
      setTimeout(() => controller.abort(reason), 20);
      assert.equal(await rejection(client.verify("lk_x", {}, { signal: controller.signal })), reason);
    }
  });

  it("aborts a wait between retries too", { timeout: 5_000 }, async () => {
    const script = scripted(unavailable("5"), ok({}));
    const client = new LatchkeyClient({ baseUrl: BASE, token: "t", fetch: script.fetch });
    const controller = new AbortController();
    const reason = new Error("cancelled");
    setTimeout(() => controller.abort(reason), 20);
    assert.equal(await rejection(client.get("x", { signal: controller.signal })), reason);
    assert.equal(script.requests.length, 1);
  });
});

describe("the verify cache", () => {
  it("is off by default", async () => {
    const script = scripted(ok(verdict("VALID")), ok(verdict("VALID")));
    const client = new LatchkeyClient({ baseUrl: BASE, fetch: script.fetch });
    await client.verify("lk_a");
    await client.verify("lk_a");
    assert.equal(script.requests.length, 2);
  });

  it("refuses a TTL beyond latchkey's revocation bound", () => {
    assert.equal(VERIFY_CACHE_MAX_TTL_MS, 10_000);
    assert.throws(() => new LatchkeyClient({ baseUrl: BASE, verifyCacheTtlMs: 10_001 }), RangeError);
    assert.throws(() => new LatchkeyClient({ baseUrl: BASE, verifyCacheTtlMs: -1 }), RangeError);
    new LatchkeyClient({ baseUrl: BASE, verifyCacheTtlMs: 10_000 });
  });

  it("keeps only final verdicts: VALID, REVOKED, EXPIRED, MALFORMED", async () => {
    for (const code of ["VALID", "REVOKED", "EXPIRED", "MALFORMED"] as const) {
      const script = scripted(ok(verdict(code)));
      const client = new LatchkeyClient({ baseUrl: BASE, fetch: script.fetch, verifyCacheTtlMs: 5_000 });
      assert.equal((await client.verify("lk_a")).code, code);
      assert.equal((await client.verify("lk_a")).code, code);
      assert.equal(script.requests.length, 1, `${code} was not cached`);
    }
    for (const code of ["NOT_FOUND", "INSUFFICIENT_SCOPE", "RESOURCE_NOT_ALLOWED"] as const) {
      const script = scripted(ok(verdict(code)), ok(verdict("VALID")));
      const client = new LatchkeyClient({ baseUrl: BASE, fetch: script.fetch, verifyCacheTtlMs: 5_000 });
      assert.equal((await client.verify("lk_a")).code, code);
      assert.equal((await client.verify("lk_a")).code, "VALID", `${code} was cached`);
    }
  });

  it("never keeps the VALID verdict of a key with usage limits (each request must spend at latchkey)", async () => {
    const limited = { ...verdict("VALID"), credits: { remaining: 9 } } as VerifyResult;
    const script = scripted(ok(limited), ok(verdict("VALID")));
    const client = new LatchkeyClient({ baseUrl: BASE, fetch: script.fetch, verifyCacheTtlMs: 5_000 });
    assert.equal((await client.verify("lk_a")).code, "VALID");
    await client.verify("lk_a");
    assert.equal(script.requests.length, 2);
  });

  it("keys entries by key and checks, and expires them after the TTL", async () => {
    const script = scripted(ok(verdict("VALID")), ok(verdict("REVOKED")), ok(verdict("VALID")), ok(verdict("REVOKED")));
    const client = new LatchkeyClient({ baseUrl: BASE, fetch: script.fetch, verifyCacheTtlMs: 50 });
    assert.equal((await client.verify("lk_a")).code, "VALID");
    assert.equal((await client.verify("lk_b")).code, "REVOKED");
    assert.equal((await client.verify("lk_a", { scope: "models:invoke" })).code, "VALID");
    assert.equal(script.requests.length, 3);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal((await client.verify("lk_a")).code, "REVOKED");
    assert.equal(script.requests.length, 4);
  });

  it("never serves a VALID past the key's expiry", async () => {
    const soon = new Date(Date.now() + 40).toISOString();
    const script = scripted(ok(verdict("VALID", soon)), ok(verdict("EXPIRED")));
    const client = new LatchkeyClient({ baseUrl: BASE, fetch: script.fetch, verifyCacheTtlMs: 10_000 });
    assert.equal((await client.verify("lk_a")).code, "VALID");
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal((await client.verify("lk_a")).code, "EXPIRED");
  });

  it("hands out copies, so a caller cannot change what the cache holds", async () => {
    const script = scripted(ok(verdict("VALID")));
    const client = new LatchkeyClient({ baseUrl: BASE, fetch: script.fetch, verifyCacheTtlMs: 5_000 });
    const live = async () => {
      const result = await client.verify("lk_a");
      assert.ok(result.code === "VALID");
      return result;
    };
    (await live()).scopes.push("*");
    (await live()).scopes.push("*");
    assert.deepEqual((await live()).scopes, []);
    assert.equal(script.requests.length, 1);
  });

  it("is bounded: the oldest entries go first", async () => {
    const script = scripted(...Array.from({ length: 4 }, () => ok(verdict("VALID"))));
    const client = new LatchkeyClient({
      baseUrl: BASE,
      fetch: script.fetch,
      verifyCacheTtlMs: 5_000,
      verifyCacheMaxEntries: 2,
    });
    await client.verify("lk_a");
    await client.verify("lk_b");
    await client.verify("lk_c");
    await client.verify("lk_c");
    await client.verify("lk_b");
    assert.equal(script.requests.length, 3);
    await client.verify("lk_a");
    assert.equal(script.requests.length, 4);
  });
});
