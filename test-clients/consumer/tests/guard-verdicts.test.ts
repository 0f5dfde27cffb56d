/**
 * requireKey against a stand-in verifier (no server): each verdict latchkey can give becomes the
 * right answer — allow, deny by scope, deny by resource, revoked, rate-limited and usage-exceeded —
 * in a fetch handler, Hono and Node alike; the 429s carry Retry-After and RateLimit-* as latchkey's own
 * routes do; and the request's `cost` reaches the verifier.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { VerifyOptions, VerifyResult, VerifyVerdict } from "@latchkey/client";
import { requireKey, usageHeaders, verdictOf, type NodeResponseLike, type Verifier } from "@latchkey/client/guard";
import { Hono } from "hono";

const KEY = "lk_standin";

/** A verifier that answers every call with `answer` and records what it was asked. */
function standIn(answer: VerifyResult) {
  const calls: { key: string; options: VerifyOptions | undefined }[] = [];
  const verifier: Verifier = {
    async verify(key, options) {
      calls.push({ key, options });
      return structuredClone(answer);
    },
  };
  return { verifier, calls };
}

/** A live key's verdict, with `code` and whatever else the case needs. */
function live(code: VerifyVerdict["code"], extra: Partial<VerifyVerdict> = {}): VerifyVerdict {
  return {
    valid: code === "VALID",
    code,
    key_id: "0b7d2c1e-4f3a-4e8b-9c6d-5a4b3c2d1e0f",
    owner: { type: "user", id: "alice" },
    scopes: ["models:invoke"],
    resources: ["m1"],
    expires_at: null,
    enabled: true,
    ...extra,
  };
}

const request = (headers: Record<string, string> = { authorization: `Bearer ${KEY}` }) =>
  new Request("http://consumer.test/models/m1/invoke", { method: "POST", headers });

/** A refusal: latchkey's problem `code` (and its type URI) for the verdict, and the verdict in `verdict`. */
async function refusedWith(response: Response | undefined, status: number, verdict: string, code: string) {
  assert.ok(response, "the guard let the request through");
  assert.equal(response.status, status);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  const problem = (await response.json()) as { type: string; title: string; status: number; code?: string };
  assert.equal(problem.type, `https://latchkey.dev/problems/${code.replaceAll("_", "-")}`);
  assert.equal(problem.status, status);
  assert.equal(problem.code, code);
  assert.equal((problem as { verdict?: string }).verdict, verdict);
  return { problem, headers: response.headers };
}

describe("requireKey with a stand-in verifier", () => {
  it("allows a VALID verdict, attaches it, and asks for the scope, the resource and the cost", async () => {
    const valid = live("VALID", { credits: { remaining: 41 } });
    const { verifier, calls } = standIn(valid);
    const guard = requireKey({ scope: "models:invoke", resource: "m1", cost: 3, verifier });
    const incoming = request();
    assert.equal(await guard(incoming), undefined);
    assert.deepEqual(verdictOf(incoming), valid);
    assert.deepEqual(calls, [{ key: KEY, options: { scope: "models:invoke", resource: "m1", cost: 3 } }]);
  });

  it("takes the cost from the request when given a function, and sends none when it gives none", async () => {
    const { verifier, calls } = standIn(live("VALID"));
    const guard = requireKey({
      verifier,
      cost: (r) => {
        const tokens = new URL(r.url).searchParams.get("tokens");
        return tokens === null ? undefined : Number(tokens);
      },
    });
    const headers = { authorization: `Bearer ${KEY}` };
    assert.equal(await guard(new Request("http://consumer.test/x?tokens=250", { headers })), undefined);
    assert.equal(await guard(new Request("http://consumer.test/x", { headers })), undefined);
    assert.deepEqual(
      calls.map((call) => call.options),
      [{ cost: 250 }, {}],
    );
  });

  it("denies by scope and by resource with 403, and a revoked key with 401", async () => {
    const scope = await refusedWith(
      await requireKey({ scope: "x:y", verifier: standIn(live("INSUFFICIENT_SCOPE")).verifier })(request()),
      403,
      "INSUFFICIENT_SCOPE",
      "insufficient_scope",
    );
    assert.equal(scope.headers.get("www-authenticate"), null);
    await refusedWith(
      await requireKey({ resource: "m2", verifier: standIn(live("RESOURCE_NOT_ALLOWED")).verifier })(request()),
      403,
      "RESOURCE_NOT_ALLOWED",
      "forbidden",
    );
    const revoked = standIn({ valid: false, code: "REVOKED", key_id: "0b7d2c1e-4f3a-4e8b-9c6d-5a4b3c2d1e0f" });
    const gone = await refusedWith(
      await requireKey({ verifier: revoked.verifier })(request()),
      401,
      "REVOKED",
      "key_revoked",
    );
    assert.match(gone.headers.get("www-authenticate") ?? "", /^Bearer realm="api"/);
    assert.equal(gone.headers.get("retry-after"), null);
  });

  it("answers RATE_LIMITED with 429, Retry-After until the exhausted limit has a request, and RateLimit-*", async () => {
    const now = Date.now();
    const limited = live("RATE_LIMITED", {
      ratelimits: [
        // 10 a minute, empty, full again in 60 s: the next request comes within 6 s.
        { name: "per-minute", limit: 10, remaining: 0, reset: now + 60_000 },
        { name: "per-day", limit: 1000, remaining: 900, reset: now + 8_640_000 },
      ],
    });
    const { verifier } = standIn(limited);
    const refused = await refusedWith(
      await requireKey({ verifier })(request()),
      429,
      "RATE_LIMITED",
      "key_rate_limited",
    );
    assert.equal(refused.problem.title, "API key rate limited");
    assert.equal(refused.headers.get("retry-after"), "6");
    assert.equal(refused.headers.get("ratelimit-limit"), "10");
    assert.equal(refused.headers.get("ratelimit-remaining"), "0");
    assert.match(refused.headers.get("ratelimit-reset") ?? "", /^(59|60)$/);
    assert.equal(refused.headers.get("www-authenticate"), null);
    assert.deepEqual((refused.problem as { ratelimits?: unknown }).ratelimits, limited.ratelimits);
    assert.equal("credits" in refused.problem, false);
  });

  it("answers USAGE_EXCEEDED with 429 and RateLimit-*, without a Retry-After it cannot know", async () => {
    const now = Date.now();
    const spent = live("USAGE_EXCEEDED", {
      credits: { remaining: 2 },
      // Its rate limit is empty too, but waiting for it would not help: the credits are spent.
      ratelimits: [{ name: "per-second", limit: 5, remaining: 0, reset: now + 200 }],
    });
    const refused = await refusedWith(
      await requireKey({ verifier: standIn(spent).verifier })(request()),
      429,
      "USAGE_EXCEEDED",
      "key_usage_exceeded",
    );
    assert.equal(refused.headers.get("retry-after"), null);
    assert.deepEqual((refused.problem as { credits?: unknown }).credits, { remaining: 2 });
    assert.deepEqual((refused.problem as { ratelimits?: unknown }).ratelimits, spent.ratelimits);
    assert.equal(refused.headers.get("ratelimit-limit"), "5");
    assert.equal(refused.headers.get("ratelimit-remaining"), "0");
    assert.equal(refused.headers.get("ratelimit-reset"), "1");

    const creditsOnly = live("USAGE_EXCEEDED", { credits: { remaining: 0 } });
    const bare = await refusedWith(
      await requireKey({ verifier: standIn(creditsOnly).verifier })(request()),
      429,
      "USAGE_EXCEEDED",
      "key_usage_exceeded",
    );
    assert.deepEqual(
      [...bare.headers.keys()].sort(),
      ["content-type"],
      "a key without rate limits gets no RateLimit-* headers",
    );
  });

  it("answers 400 when latchkey refuses the cost (a binding's [invalid])", async () => {
    const refusing: Verifier = {
      verify: async () => {
        throw new Error("[invalid] options.cost: Must be at least 0");
      },
    };
    const response = await requireKey({ verifier: refusing, cost: -1 })(request());
    assert.ok(response);
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { detail: string }).detail, /cost/);
  });

  it("never lets a refused usage verdict through, even one claiming valid", async () => {
    const liar = standIn({ ...live("RATE_LIMITED"), valid: true });
    await refusedWith(
      await requireKey({ verifier: liar.verifier })(request()),
      429,
      "RATE_LIMITED",
      "key_rate_limited",
    );
  });

  it("answers the same 429 in Hono and in Node", async () => {
    const now = Date.now();
    const limited = live("RATE_LIMITED", {
      ratelimits: [{ name: "per-second", limit: 2, remaining: 0, reset: now + 1000 }],
    });
    const guard = requireKey({ verifier: standIn(limited).verifier });

    const app = new Hono();
    app.post("/x", guard.hono, (c) => c.text("in"));
    const hono = await app.request("/x", { method: "POST", headers: { authorization: `Bearer ${KEY}` } });
    const viaHono = await refusedWith(hono, 429, "RATE_LIMITED", "key_rate_limited");
    assert.equal(viaHono.headers.get("retry-after"), "1");
    assert.equal(viaHono.headers.get("ratelimit-limit"), "2");

    const written: { status: number; headers: Record<string, string>; body: string } = {
      status: 0,
      headers: {},
      body: "",
    };
    const res: NodeResponseLike = {
      set statusCode(status: number) {
        written.status = status;
      },
      get statusCode() {
        return written.status;
      },
      setHeader: (name, value) => (written.headers[name.toLowerCase()] = value),
      end: (body) => (written.body = body),
    };
    let nextCalled = false;
    const outcome = await guard.node({ method: "POST", url: "/x", headers: { "api-key": KEY } }, res, () => {
      nextCalled = true;
    });
    assert.equal(outcome, null);
    assert.equal(nextCalled, false);
    assert.equal(written.status, 429);
    assert.equal(written.headers["retry-after"], "1");
    assert.equal(written.headers["ratelimit-remaining"], "0");
    assert.equal((JSON.parse(written.body) as { code: string }).code, "key_rate_limited");
    assert.equal((JSON.parse(written.body) as { verdict: string }).verdict, "RATE_LIMITED");
  });
});

describe("usageHeaders", () => {
  const now = 1_800_000_000_000;

  it("waits for every exhausted limit: the longest of their next requests, at least 1 s", () => {
    const verdict = live("RATE_LIMITED", {
      ratelimits: [
        { name: "burst", limit: 5, remaining: 0, reset: now + 2_000 },
        { name: "hourly", limit: 100, remaining: 0, reset: now + 3_600_000 },
        { name: "daily", limit: 1000, remaining: 0, reset: now + 100 },
      ],
    });
    // hourly: 3,600 s / 100 = 36 s; burst: 0.4 s; daily: 0.1 ms.
    assert.equal(usageHeaders(verdict, now)["Retry-After"], "36");
    // This server's clock may run ahead of latchkey's: a reset already past still means "retry in 1 s".
    const skewed = live("RATE_LIMITED", {
      ratelimits: [{ name: "burst", limit: 5, remaining: 0, reset: now - 500 }],
    });
    assert.equal(usageHeaders(skewed, now)["Retry-After"], "1");
  });

  it("reports the tightest limit, and never a negative reset", () => {
    const verdict = live("VALID", {
      ratelimits: [
        { name: "a", limit: 100, remaining: 50, reset: now + 30_000 },
        { name: "b", limit: 10, remaining: 3, reset: now - 5_000 },
        { name: "c", limit: 1000, remaining: 999, reset: now + 1_000 },
      ],
    });
    assert.deepEqual(usageHeaders(verdict, now), {
      "RateLimit-Limit": "10",
      "RateLimit-Remaining": "3",
      "RateLimit-Reset": "0",
    });
  });

  it("says nothing for a key without rate limits", () => {
    assert.deepEqual(usageHeaders(live("VALID"), now), {});
    assert.deepEqual(usageHeaders(live("USAGE_EXCEEDED", { credits: { remaining: 0 } }), now), {});
  });
});
