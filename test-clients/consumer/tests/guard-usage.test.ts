/**
 * requireKey against latchkey's own usage limits, through the HTTP client with its verify
 * cache on: a key over its rate limit gets 429 RATE_LIMITED with Retry-After and RateLimit-*, a key
 * out of credits 429 USAGE_EXCEEDED, and every request of a limited key reaches latchkey (is counted),
 * cache or not.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createClient, type VerifyVerdict } from "@latchkey/client";
import { requireKey, verdictOf } from "@latchkey/client/guard";
import { BASE, countingFetch, token, uniqueSub } from "./helpers.js";

const owner = createClient({ baseUrl: BASE, token: token(uniqueSub("usage")) });

function guarded(cost?: number) {
  const counting = countingFetch();
  const verifier = createClient({ baseUrl: BASE, fetch: counting.fetch, verifyCacheTtlMs: 10_000 });
  const guard = requireKey({ scope: "models:invoke", verifier, ...(cost === undefined ? {} : { cost }) });
  const call = async (key: string) => {
    const request = new Request("http://consumer.test/generate", {
      method: "POST",
      headers: { authorization: `Bearer ${key}` },
    });
    return { response: await guard(request), verdict: verdictOf(request) };
  };
  return { call, calls: counting.calls };
}

async function problemOf(response: Response | undefined, code: string) {
  assert.ok(response, "the request was let through");
  assert.equal(response.status, 429);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  const problem = (await response.json()) as { status: number; code: string; credits?: unknown; ratelimits?: unknown };
  assert.equal(problem.status, 429);
  assert.equal(problem.code, code);
  assert.equal(
    (problem as { verdict?: string }).verdict,
    code === "key_rate_limited" ? "RATE_LIMITED" : "USAGE_EXCEEDED",
  );
  return problem;
}

describe("requireKey against latchkey's usage limits", () => {
  it("answers 429 RATE_LIMITED with Retry-After and RateLimit-* once the key's rate limit is spent", async () => {
    const created = await owner.create({
      name: "two a minute",
      scopes: ["models:invoke"],
      ratelimits: [{ name: "per-minute", limit: 2, duration_ms: 60_000 }],
    });
    const { call, calls } = guarded();
    const first = await call(created.key);
    assert.equal(first.response, undefined);
    assert.deepEqual(
      (first.verdict as VerifyVerdict).ratelimits?.map((limit) => [limit.name, limit.limit, limit.remaining]),
      [["per-minute", 2, 1]],
    );
    assert.equal((await call(created.key)).response, undefined);
    const refused = await call(created.key);
    const problem = await problemOf(refused.response, "key_rate_limited");
    const headers = refused.response?.headers;
    const retryAfter = Number(headers?.get("retry-after"));
    // The next request comes within 60 s / 2 = 30 s: the guard's bound, from the verdict alone.
    assert.ok(retryAfter >= 1 && retryAfter <= 30, `Retry-After ${retryAfter}`);
    assert.equal(headers?.get("ratelimit-limit"), "2");
    assert.equal(headers?.get("ratelimit-remaining"), "0");
    const reset = Number(headers?.get("ratelimit-reset"));
    assert.ok(reset >= 1 && reset <= 60, `RateLimit-Reset ${reset}`);
    assert.equal((problem.ratelimits as { remaining: number }[])[0]?.remaining, 0);
    assert.equal(calls.length, 3, "each request of a limited key reached latchkey, despite the verify cache");
  });

  it("answers 429 USAGE_EXCEEDED, without Retry-After, when the credits do not cover the cost", async () => {
    const created = await owner.create({ name: "five credits", scopes: ["models:invoke"], credits: { remaining: 5 } });
    const { call, calls } = guarded(2);
    const spent: (number | undefined)[] = [];
    for (let i = 0; i < 2; i++) {
      const { response, verdict } = await call(created.key);
      assert.equal(response, undefined);
      spent.push((verdict as VerifyVerdict).credits?.remaining);
    }
    assert.deepEqual(spent, [3, 1]);
    const refused = await call(created.key);
    const problem = await problemOf(refused.response, "key_usage_exceeded");
    assert.equal(refused.response?.headers.get("retry-after"), null);
    assert.equal(refused.response?.headers.get("ratelimit-limit"), null);
    assert.deepEqual(problem.credits, { remaining: 1 });
    assert.equal(calls.length, 3);
    // A peek (cost 0) spends nothing; the one credit left still covers a request of cost 1.
    const peek = await createClient({ baseUrl: BASE }).verify(created.key, { cost: 0 });
    assert.equal(peek.code, "VALID");
    assert.equal((await guarded(1).call(created.key)).response, undefined);
    assert.equal((await owner.get(created.id)).credits?.remaining, 0);
  });
});
