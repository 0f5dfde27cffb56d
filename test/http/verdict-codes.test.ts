/**
 * One vocabulary for refusals: a verdict's code is UPPER_CASE (POST /v1/verify, the bindings), a
 * problem's code snake_case. The client package's VERDICT_PROBLEMS maps each refusing verdict to the
 * problem latchkey's own routes answer for it, and the route guard answers with that problem. Checked
 * here: every verdict maps, to a problem latchkey has (same status and title), latchkey's routes answer
 * the same code for the same verdict, and the guard does too.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { NO_KEY_PROBLEM, VERDICT_PROBLEMS, problemType as clientProblemType } from "../../packages/client/src/codes";
import { requireKey } from "../../packages/client/src/guard";
import type { VerifyResult } from "../../packages/client/src/types";
import { generateKey } from "../../src/keys/format";
import { PROBLEMS, type ProblemCode, problemType } from "../../src/problems";
import { call, createKey, expectProblem, token, uniqueSub } from "../helpers";

type Refusing = keyof typeof VERDICT_PROBLEMS;

/** The verdict codes the served document lists (VerifyRefusal and VerifyVerdict). */
async function documentedVerdicts(): Promise<string[]> {
  const doc = (await (await call("GET", "/openapi.json")).json()) as {
    components: { schemas: Record<string, { properties: { code: { enum: string[] } } }> };
  };
  return ["VerifyRefusal", "VerifyVerdict"].flatMap((name) => doc.components.schemas[name]!.properties.code.enum);
}

describe("VERDICT_PROBLEMS (packages/client/src/codes.ts)", () => {
  it("maps every refusing verdict latchkey gives, and nothing else", async () => {
    const refusing = (await documentedVerdicts()).filter((code) => code !== "VALID");
    expect(refusing.length).toBe(10);
    expect(Object.keys(VERDICT_PROBLEMS).sort()).toEqual([...refusing].sort());
  });

  it("maps each to one of latchkey's problems, with its status, title and type URI", () => {
    for (const [verdict, kind] of [...Object.entries(VERDICT_PROBLEMS), ["no key", NO_KEY_PROBLEM] as const]) {
      expect(kind.code, verdict).toMatch(/^[a-z]+(?:_[a-z]+)*$/);
      expect(Object.keys(PROBLEMS), verdict).toContain(kind.code);
      const served = PROBLEMS[kind.code as ProblemCode];
      expect({ status: kind.status, title: kind.title }, verdict).toEqual({
        status: served.status,
        title: served.title,
      });
      expect(clientProblemType(kind.code)).toBe(problemType(kind.code as ProblemCode));
    }
  });
});

describe("latchkey's own routes answer each verdict with the mapped code", () => {
  afterEach(() => vi.useRealTimers());

  const whoami = (key: string | null, headers: Record<string, string> = {}) =>
    call("GET", "/v1/whoami", key === null ? { headers } : { auth: key, headers });
  const expectCode = async (response: Response, verdict: Refusing | "no key") => {
    const kind = verdict === "no key" ? NO_KEY_PROBLEM : VERDICT_PROBLEMS[verdict];
    await expectProblem(response, kind.status, kind.code as ProblemCode);
  };

  it("dead keys, a missing key, a missing scope, and spent limits", async () => {
    const jwt = await token(uniqueSub());
    await expectCode(await whoami(null), "no key");
    await expectCode(await whoami("lk_nope"), "MALFORMED");
    await expectCode(await whoami(generateKey("lk")), "NOT_FOUND");

    const revoked = await createKey(jwt);
    await call("DELETE", `/v1/keys/${revoked.id}`, { auth: jwt });
    await expectCode(await whoami(revoked.key), "REVOKED");

    const disabled = await createKey(jwt);
    await call("PATCH", `/v1/keys/${disabled.id}`, { auth: jwt, body: { enabled: false } });
    await expectCode(await whoami(disabled.key), "DISABLED");

    const fenced = await createKey(jwt, { allowed_ips: ["192.0.2.0/24"] });
    await expectCode(await whoami(fenced.key, { "cf-connecting-ip": "198.51.100.1" }), "IP_NOT_ALLOWED");

    const reader = await createKey(jwt, { scopes: ["models:invoke"] });
    await expectCode(await call("GET", "/v1/keys", { auth: reader.key }), "INSUFFICIENT_SCOPE");

    const limited = await createKey(jwt, { ratelimits: [{ name: "m", limit: 1, duration_ms: 60_000 }] });
    expect((await whoami(limited.key)).status).toBe(200);
    await expectCode(await whoami(limited.key), "RATE_LIMITED");

    const spent = await createKey(jwt, { credits: { remaining: 1 } });
    expect((await whoami(spent.key)).status).toBe(200);
    await expectCode(await whoami(spent.key), "USAGE_EXCEEDED");

    const expiring = await createKey(jwt, { expires_at: new Date(Date.now() + 3_600_000).toISOString() });
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() + 3_600_001);
    await expectCode(await whoami(expiring.key), "EXPIRED");
  });
});

describe("the route guard answers with the same problems", () => {
  const request = (headers: Record<string, string>) =>
    new Request("https://api.example.com/models/m1/invoke", { method: "POST", headers });

  it("each refusing verdict: latchkey's code, type and title, the verdict in `verdict`", async () => {
    for (const [verdict, kind] of Object.entries(VERDICT_PROBLEMS)) {
      const answer = { valid: false, code: verdict, key_id: null } as unknown as VerifyResult;
      const guard = requireKey({ verifier: { verify: async () => answer } });
      const refused = await guard(request({ authorization: "Bearer lk_anything" }));
      expect(refused?.status, verdict).toBe(kind.status);
      expect(await refused!.json(), verdict).toMatchObject({
        type: problemType(kind.code as ProblemCode),
        title: kind.title,
        status: kind.status,
        code: kind.code,
        verdict,
      });
    }
  });

  it("no key: authentication_required, as latchkey's own routes", async () => {
    const guard = requireKey({ verifier: { verify: async () => ({}) as VerifyResult } });
    const refused = await guard(request({}));
    expect(await refused!.json()).toMatchObject({
      type: problemType("authentication_required"),
      code: "authentication_required",
      status: 401,
    });
  });
});
