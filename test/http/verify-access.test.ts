/**
 * Who may call POST /v1/verify: anyone, unless the deployment sets VERIFY_TOKEN, a service credential
 * compared in constant time. A wrong credential is a failed authentication like any other (counted,
 * 429 past the limit); a VERIFY_TOKEN too short to be a secret closes the route rather than opening it.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config";
import { generateKey } from "../../src/keys/format";
import { WWW_AUTHENTICATE } from "../../src/http/problem";
import { call, createKey, envWith, expectProblem, token, uniqueSub } from "../helpers";

const VERIFY_TOKEN = "verify-token-0123456789abcdef-0123456789";
const client = () => `2001:db8:${crypto.randomUUID().slice(0, 4)}::1`;

afterEach(() => vi.restoreAllMocks());

describe("POST /v1/verify with VERIFY_TOKEN set", () => {
  const withToken = () => envWith({ VERIFY_TOKEN });
  const verify = (key: string, authorization: string | null, testEnv = withToken(), ip = client()) =>
    call("POST", "/v1/verify", {
      body: { key },
      headers: { "cf-connecting-ip": ip, ...(authorization === null ? {} : { authorization }) },
      env: testEnv,
    });

  it("answers only a caller presenting Bearer <VERIFY_TOKEN>, compared in constant time", async () => {
    const { key } = await createKey(await token(uniqueSub()));
    const compare = vi.spyOn(crypto.subtle, "timingSafeEqual");
    for (const authorization of [
      null,
      "Bearer",
      `Bearer ${VERIFY_TOKEN.slice(0, -1)}`,
      `Bearer ${VERIFY_TOKEN}x`,
      `Bearer ${VERIFY_TOKEN.toUpperCase()}`,
      `Api-Key ${VERIFY_TOKEN}`,
      `Basic ${btoa(`user:${VERIFY_TOKEN}`)}`,
      `Bearer ${key}`, // a key is not the service credential
    ]) {
      const response = await verify(key, authorization);
      expect(response.headers.get("www-authenticate"), String(authorization)).toBe(WWW_AUTHENTICATE);
      expect((await expectProblem(response, 401, "verify_token_required")).detail).toMatch(/VERIFY_TOKEN/);
    }
    expect(compare).toHaveBeenCalled();
    for (const authorization of [`Bearer ${VERIFY_TOKEN}`, `bearer   ${VERIFY_TOKEN}`]) {
      const response = await verify(key, authorization);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ valid: true, code: "VALID" });
    }
    // The route stays open where VERIFY_TOKEN is not set.
    expect((await verify(key, null, envWith({}))).status).toBe(200);
  });

  it("counts a wrong credential as a failed authentication: 429 past the limit", async () => {
    const counted: string[] = [];
    const limiter = {
      limit: async ({ key }: RateLimitOptions) => (counted.push(key), { success: counted.length < 3 }),
    } as RateLimit;
    const testEnv = envWith({ VERIFY_TOKEN, AUTH_FAILURE_LIMITER: limiter });
    const ip = client();
    await expectProblem(await verify(generateKey("lk"), "Bearer wrong", testEnv, ip), 401, "verify_token_required");
    await expectProblem(await verify(generateKey("lk"), "Bearer wrong", testEnv, ip), 401, "verify_token_required");
    const limited = await verify(generateKey("lk"), "Bearer wrong", testEnv, ip);
    await expectProblem(limited, 429, "rate_limited");
    expect(limited.headers.get("retry-after")).toBe("60");
    expect(counted).toHaveLength(3);
  });

  it("is not metered per client: a trusted service verifies unknown keys for many users", async () => {
    const refuseAll = { limit: async () => ({ success: false }) } as RateLimit;
    const testEnv = envWith({ VERIFY_TOKEN, VERIFY_MISS_LIMITER: refuseAll });
    const ip = client();
    for (let i = 0; i < 3; i++) {
      const response = await verify(generateKey("lk"), `Bearer ${VERIFY_TOKEN}`, testEnv, ip);
      expect(await response.json()).toMatchObject({ valid: false, code: "NOT_FOUND" });
    }
  });

  it("fails closed when VERIFY_TOKEN is too short to be a secret: every request refused, the error logged", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    const short = "short-token";
    const testEnv = envWith({ VERIFY_TOKEN: short });
    expect(loadConfig(testEnv).verifyAccess).toEqual({ kind: "refused" });
    expect(logged).toHaveBeenCalledWith(expect.stringMatching(/VERIFY_TOKEN must be at least 32 characters/));
    const { key } = await createKey(await token(uniqueSub()));
    for (const authorization of [null, `Bearer ${short}`]) {
      await expectProblem(await verify(key, authorization, testEnv), 401, "verify_token_required");
    }
  });
});
