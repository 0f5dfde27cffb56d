/**
 * requireKey against a running latchkey, through the HTTP client: in a plain fetch handler, an
 * itty-router route, a Hono app and a Node http server — allow, deny by scope, deny by resource,
 * revoked, no key, an invalid resource id and latchkey unreachable.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { createClient, type VerifyVerdict } from "@latchkey/client";
import { requireKey, verdictOf, type GuardOptions } from "@latchkey/client/guard";
import { Hono } from "hono";
import { type IRequest, Router } from "itty-router";
import { BASE, token, uniqueSub } from "./helpers.js";

const verifier = createClient({ baseUrl: BASE });
const owner = createClient({ baseUrl: BASE, token: token(uniqueSub("guard")) });

const invoke: GuardOptions = { scope: "models:invoke", resource: (request) => request.params.id, verifier };

/** The four ways to mount the guard, each serving POST /models/:id/invoke and answering the verdict. */
type Mount = (path: string, headers: Record<string, string>) => Promise<Response>;

const plain: Mount = async (path, headers) => {
  const guard = requireKey({ ...invoke, resource: (request) => request.path.split("/")[2] });
  const request = new Request(`http://consumer.test${path}`, { method: "POST", headers });
  return (await guard(request)) ?? Response.json({ verdict: verdictOf(request) });
};

const itty: Mount = async (path, headers) => {
  const router = Router<IRequest>();
  router.post("/models/:id/invoke", requireKey(invoke), (request) =>
    Response.json({ verdict: (request as IRequest & { verdict: VerifyVerdict }).verdict }),
  );
  return (await router.fetch(new Request(`http://consumer.test${path}`, { method: "POST", headers }))) as Response;
};

const hono: Mount = async (path, headers) => {
  const app = new Hono<{ Variables: { verdict: VerifyVerdict } }>();
  app.post("/models/:id/invoke", requireKey(invoke).hono, (c) => c.json({ verdict: c.get("verdict") }));
  return app.request(path, { method: "POST", headers });
};

let server: ReturnType<typeof createServer>;
let nodeBase = "";
before(async () => {
  const guard = requireKey({ ...invoke, resource: (request) => request.path.split("/")[2] });
  server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const verdict = await guard.node(req, res);
    if (verdict === null) return;
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ verdict: (req as IncomingMessage & { verdict?: VerifyVerdict }).verdict }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  nodeBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

const node: Mount = (path, headers) => fetch(nodeBase + path, { method: "POST", headers });

const mounts: Record<string, Mount> = { "a fetch handler": plain, "itty-router": itty, Hono: hono, "Node http": node };

async function problem(response: Response, status: number) {
  assert.equal(response.status, status);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  const body = (await response.json()) as { status: number; title: string; code?: string; verdict?: string };
  assert.equal(body.status, status);
  return body;
}

/** A refusal's problem code and verdict. */
const pick = (body: { code?: string; verdict?: string }) => [body.code, body.verdict];

for (const [name, mount] of Object.entries(mounts)) {
  describe(`requireKey in ${name}`, () => {
    it("lets a key with the scope and resource in, with the verdict attached", async () => {
      const created = await owner.create({ name: "guarded", scopes: ["models:invoke"], resources: ["m1"] });
      const attempts: Record<string, string>[] = [
        { authorization: `Bearer ${created.key}` },
        { authorization: `Api-Key ${created.key}` },
        { "api-key": created.key },
      ];
      for (const headers of attempts) {
        const response = await mount("/models/m1/invoke", headers);
        assert.equal(response.status, 200);
        const { verdict } = (await response.json()) as { verdict: VerifyVerdict };
        assert.deepEqual(verdict, {
          valid: true,
          code: "VALID",
          key_id: created.id,
          owner: { type: "user", id: created.owner_id },
          scopes: ["models:invoke"],
          resources: ["m1"],
          expires_at: null,
          enabled: true,
        });
      }
    });

    it("answers 403 INSUFFICIENT_SCOPE and 403 RESOURCE_NOT_ALLOWED", async () => {
      const metrics = await owner.create({ name: "metrics only", scopes: ["metrics:read"] });
      const scoped = await problem(await mount("/models/m1/invoke", { authorization: `Bearer ${metrics.key}` }), 403);
      assert.equal(scoped.code, "insufficient_scope");
      assert.equal(scoped.verdict, "INSUFFICIENT_SCOPE");

      const m1 = await owner.create({ name: "m1 only", scopes: ["models:invoke"], resources: ["m1"] });
      const response = await mount("/models/m2/invoke", { authorization: `Bearer ${m1.key}` });
      assert.equal(response.headers.get("www-authenticate"), null);
      assert.deepEqual(pick(await problem(response, 403)), ["forbidden", "RESOURCE_NOT_ALLOWED"]);
    });

    it("answers 401 REVOKED once the key is revoked", async () => {
      const created = await owner.create({ name: "to revoke", scopes: ["models:invoke"] });
      assert.equal((await mount("/models/m1/invoke", { authorization: `Bearer ${created.key}` })).status, 200);
      await owner.revoke(created.id);
      const response = await mount("/models/m1/invoke", { authorization: `Bearer ${created.key}` });
      assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer realm="api"/);
      assert.deepEqual(pick(await problem(response, 401)), ["key_revoked", "REVOKED"]);
    });

    it("answers 401 without a key, and with a key that is not one", async () => {
      const none = await problem(await mount("/models/m1/invoke", {}), 401);
      assert.equal(none.code, "authentication_required");
      const basic = await mount("/models/m1/invoke", { authorization: "Basic abc" });
      assert.equal((await problem(basic, 401)).code, "authentication_required");
      assert.deepEqual(pick(await problem(await mount("/models/m1/invoke", { "api-key": "lk_nope" }), 401)), [
        "key_malformed",
        "MALFORMED",
      ]);
    });

    it("answers 400, not 500, when the path names no valid resource id", async () => {
      const created = await owner.create({ name: "any", scopes: ["models:invoke"] });
      await problem(await mount("/models/bad%20id/invoke", { authorization: `Bearer ${created.key}` }), 400);
    });
  });
}

describe("requireKey when latchkey cannot answer", () => {
  it("answers 503 with Retry-After", async () => {
    // Port 9 (discard) on loopback: nothing listens, so every attempt fails to connect.
    const down = createClient({ baseUrl: "http://127.0.0.1:9", maxAttempts: 1, timeoutMs: 2_000 });
    const guard = requireKey({ scope: "models:invoke", verifier: down });
    const response = await guard(new Request("http://consumer.test/", { headers: { "api-key": "lk_x" } }));
    assert.ok(response);
    assert.equal(response.headers.get("retry-after"), "5");
    await problem(response, 503);
  });

  it("answers 503 with latchkey's Retry-After when latchkey limits this server's verifications (429)", async () => {
    const limited: typeof fetch = async () =>
      new Response(JSON.stringify({ type: "about:blank", title: "Too Many Requests", status: 429 }), {
        status: 429,
        headers: { "Content-Type": "application/problem+json", "Retry-After": "17" },
      });
    const guard = requireKey({ scope: "models:invoke", verifier: createClient({ baseUrl: BASE, fetch: limited }) });
    const response = await guard(new Request("http://consumer.test/", { headers: { "api-key": "lk_x" } }));
    assert.ok(response);
    assert.equal(response.headers.get("retry-after"), "17");
    assert.equal(response.headers.get("www-authenticate"), null);
    await problem(response, 503);
  });

  it("needs exactly one of verifier and binding", () => {
    assert.throws(() => requireKey({ scope: "x:y" }), TypeError);
    assert.throws(() => requireKey({ scope: "x:y", verifier, binding: () => verifier }), TypeError);
  });
});
