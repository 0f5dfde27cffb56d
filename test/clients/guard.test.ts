/**
 * The route guard of @latchkey/client (packages/client/src/guard.ts) as a unit, with a stub verifier:
 * what its options see of the request in every framework. test-clients runs it against a real latchkey.
 */
import { describe, expect, it } from "vitest";
import { type GuardRequest, requireKey } from "../../packages/client/src/guard";
import type { VerifyOptions, VerifyResult } from "../../packages/client/src/types";

const KEY = "lk_test_0123456789abcdef";

/** A verifier that answers `result` and records what it was asked. */
function stub(result: Partial<VerifyResult> = {}) {
  const asked: VerifyOptions[] = [];
  const verifier = {
    verify: async (_key: string, options: VerifyOptions = {}): Promise<VerifyResult> => {
      asked.push(options);
      return {
        valid: true,
        code: "VALID",
        key_id: "key_1",
        owner: { type: "user", id: "alice" },
        scopes: ["models:invoke"],
        resources: null,
        expires_at: null,
        enabled: true,
        ...result,
      } as VerifyResult;
    },
  };
  return { verifier, asked };
}

/** The request each option saw, by mounting the guard in `mount`. */
async function seen(mount: (options: Parameters<typeof requireKey>[0]) => Promise<unknown>): Promise<GuardRequest> {
  const { verifier } = stub();
  let request: GuardRequest | undefined;
  await mount({
    verifier,
    resource: (r) => {
      request = r;
      return r.path.split("/")[2];
    },
  });
  if (!request) throw new Error("the resource option was not called");
  return request;
}

describe("requireKey: the request its options see", () => {
  it("in a fetch handler: `path` is the path without the query, `url` the full URL", async () => {
    const request = await seen((options) =>
      requireKey(options)(
        new Request("https://api.example.com/models/m1/invoke?v=2", { headers: { authorization: `Bearer ${KEY}` } }),
      ),
    );
    expect(request.path).toBe("/models/m1/invoke");
    expect(request.url).toBe("https://api.example.com/models/m1/invoke?v=2");
  });

  it("in Node, where req.url is the path and query: `path` is its path, `url` the full URL", async () => {
    const { verifier, asked } = stub();
    const req = {
      method: "POST",
      url: "/models/m7/invoke?v=2",
      headers: { host: "api.example.com", authorization: `Bearer ${KEY}` },
    };
    const res = { statusCode: 200, setHeader: () => undefined, end: () => undefined };
    let request: GuardRequest | undefined;
    const guard = requireKey({
      verifier,
      resource: (r) => {
        request = r;
        return r.path.split("/")[2];
      },
    });
    expect(await guard.node(req, res)).toMatchObject({ code: "VALID" });
    expect(request?.path).toBe("/models/m7/invoke");
    expect(request?.url).toBe("http://api.example.com/models/m7/invoke?v=2");
    expect(asked).toEqual([{ resource: "m7" }]);
    // The Host header a client sends does not change the path.
    const forged = { ...req, headers: { ...req.headers, host: "evil.example/other" } };
    await guard.node(forged, res);
    expect(request?.path).toBe("/models/m7/invoke");
  });

  it("in Hono: `path` and `url` as in a fetch handler, the router's params", async () => {
    const raw = new Request("https://api.example.com/models/m3/invoke", {
      headers: { authorization: `Bearer ${KEY}` },
    });
    let params: GuardRequest["params"] = {};
    const request = await seen(async (options) => {
      const guard = requireKey({
        ...options,
        resource: (r) => {
          params = r.params;
          return options.resource instanceof Function ? options.resource(r) : undefined;
        },
      });
      await guard.hono({ req: { raw, param: () => ({ id: "m3" }) }, env: {}, set: () => undefined }, async () => {});
    });
    expect(request.path).toBe("/models/m3/invoke");
    expect(request.url).toBe("https://api.example.com/models/m3/invoke");
    expect(params).toEqual({ id: "m3" });
  });
});
