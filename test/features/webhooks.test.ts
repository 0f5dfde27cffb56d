/**
 * Webhook endpoints over HTTP: registration (the secret shown once, refusals naming `url`, who may
 * register what), the events a key's changes emit through the outbox and the queue, signed as
 * Standard Webhooks says, and never to another owner's endpoint; the hot path enqueues nothing.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { verifySignature } from "../../src/keys/webhook-signature";
import { call, createKey, expectProblem, logsOf, token, uniqueSub } from "../helpers";
import { clearWebhooks, consume, deliveriesOf, hookEnv, receiver, recordingQueue } from "../webhook-harness";

afterEach(clearWebhooks);

async function register(auth: string, body: Record<string, unknown>, testEnv = hookEnv(recordingQueue())) {
  const response = await call("POST", "/v1/webhooks", { auth, body, env: testEnv });
  if (response.status !== 201) throw new Error(`register failed: ${response.status} ${await response.text()}`);
  return (await response.json()) as { id: string; secret: string; [field: string]: unknown };
}

const HOOK = "https://hooks.example.com/latchkey";

describe("registering an endpoint", () => {
  it("answers 201 with a whsec_ secret shown only once (no-store), stored only encrypted", async () => {
    const auth = await token(uniqueSub());
    const response = await call("POST", "/v1/webhooks", {
      auth,
      body: { url: HOOK, description: "audit sink" },
      env: hookEnv(recordingQueue()),
    });
    expect(response.status).toBe(201);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const created = (await response.json()) as { id: string; secret: string };
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(response.headers.get("location")).toBe(`/v1/webhooks/${created.id}`);

    const got = await (await call("GET", `/v1/webhooks/${created.id}`, { auth })).json();
    expect(got).toMatchObject({ id: created.id, url: HOOK, enabled: true, events: null, owner_type: "user" });
    expect(JSON.stringify(got)).not.toContain(created.secret.slice(6));
    const listed = await (await call("GET", "/v1/webhooks", { auth })).text();
    expect(listed).toContain(created.id);
    expect(listed).not.toContain(created.secret.slice(6));
    const row = await env.DB.prepare("SELECT * FROM webhook_endpoints WHERE id = ?").bind(created.id).first();
    expect(JSON.stringify(row)).not.toContain(created.secret.slice(6));
    expect(String(row?.secret)).toMatch(/^v1\./);
  });

  it("fails closed without WEBHOOK_SECRET_KEY: 500 configuration_error, nothing stored, the cause logged", async () => {
    const auth = await token(uniqueSub());
    const count = async () =>
      (await env.DB.prepare("SELECT count(*) AS n FROM webhook_endpoints").first<{ n: number }>())?.n;
    const before = await count();
    const logs = await logsOf(async () => {
      const response = await call("POST", "/v1/webhooks", {
        auth,
        body: { url: HOOK },
        env: hookEnv(recordingQueue(), { WEBHOOK_SECRET_KEY: undefined }),
      });
      await expectProblem(response, 500, "configuration_error");
    });
    expect(logs.join("\n")).toContain("WEBHOOK_SECRET_KEY");
    expect(await count()).toBe(before);
  });

  it.each([
    ["http://hooks.example.com/x", "https"],
    ["https://10.1.2.3/x", "private"],
    ["https://127.0.0.1/x", "private"],
    ["https://169.254.169.254/latest/meta-data", "private"],
    ["https://100.64.0.1/x", "private"],
    ["https://192.168.1.1/x", "private"],
    ["https://[fd00::1]/x", "private"],
    ["https://[fe80::1]/x", "private"],
    ["https://[::1]/x", "private"],
    ["https://[::ffff:10.0.0.1]/x", "private"],
    ["https://2130706433/x", "private"],
    ["https://localhost/x", "public host"],
    ["https://metadata.google.internal/x", "public host"],
    ["https://intranet/x", "public host"],
    ["https://user:pw@hooks.example.com/x", "user name"],
    ["http://127.0.0.1:8080/x", "https"],
    ["not a url", "absolute URL"],
  ])("refuses %s with a 422 naming url, and stores nothing", async (url, words) => {
    const auth = await token(uniqueSub());
    const before = await env.DB.prepare("SELECT count(*) AS n FROM webhook_endpoints").first<{ n: number }>();
    const body = await expectProblem(
      await call("POST", "/v1/webhooks", { auth, body: { url }, env: hookEnv(recordingQueue()) }),
      422,
    );
    expect(JSON.stringify(body)).toContain('"url"');
    expect(JSON.stringify(body)).toContain(words);
    const after = await env.DB.prepare("SELECT count(*) AS n FROM webhook_endpoints").first<{ n: number }>();
    expect(after?.n).toBe(before?.n);
  });

  it("takes http://127.0.0.1:<port> only where WEBHOOK_ALLOW_LOOPBACK is on (npm start), and nothing else private", async () => {
    const auth = await token(uniqueSub());
    const local = hookEnv(recordingQueue(), { WEBHOOK_ALLOW_LOOPBACK: "true" });
    expect(
      (await call("POST", "/v1/webhooks", { auth, body: { url: "http://127.0.0.1:8861/hook" }, env: local })).status,
    ).toBe(201);
    await expectProblem(
      await call("POST", "/v1/webhooks", { auth, body: { url: "http://10.0.0.1/hook" }, env: local }),
      422,
    );
    await expectProblem(
      await call("POST", "/v1/webhooks", { auth, body: { url: "http://localhost:8861/" }, env: local }),
      422,
    );
  });

  it("refuses a PATCH to a private URL (422 naming url) and keeps the old one", async () => {
    const auth = await token(uniqueSub());
    const { id } = await register(auth, { url: HOOK });
    const body = await expectProblem(
      await call("PATCH", `/v1/webhooks/${id}`, { auth, body: { url: "https://[fc00::5]/" } }),
      422,
    );
    expect(JSON.stringify(body)).toContain('"url"');
    expect(await (await call("GET", `/v1/webhooks/${id}`, { auth })).json()).toMatchObject({ url: HOOK });
  });

  it("lets a workspace admin register for the workspace and an operator deployment-wide; refuses the others (403) and API keys", async () => {
    const org = uniqueSub("org");
    const admin = await token(uniqueSub(), { org });
    const member = await token(uniqueSub(), { org, roles: [] });
    const operator = await token(uniqueSub(), { roles: ["operator"] });
    const person = await token(uniqueSub());
    expect((await register(admin, { url: HOOK, owner: "workspace" })).owner_id).toBe(org);
    expect((await register(operator, { url: HOOK, owner: "deployment" })).owner_type).toBe("deployment");
    await expectProblem(
      await call("POST", "/v1/webhooks", { auth: member, body: { url: HOOK, owner: "workspace" } }),
      403,
    );
    await expectProblem(
      await call("POST", "/v1/webhooks", { auth: person, body: { url: HOOK, owner: "deployment" } }),
      403,
    );
    const { key } = await createKey(person, { scopes: ["*"] });
    await expectProblem(await call("POST", "/v1/webhooks", { auth: key, body: { url: HOOK } }), 403);
  });

  it("shows, changes and deletes an endpoint only for those who manage it (404 to anyone else)", async () => {
    const owner = await token(uniqueSub());
    const stranger = await token(uniqueSub());
    const { id } = await register(owner, { url: HOOK });
    await expectProblem(await call("GET", `/v1/webhooks/${id}`, { auth: stranger }), 404);
    await expectProblem(await call("PATCH", `/v1/webhooks/${id}`, { auth: stranger, body: { enabled: false } }), 404);
    await expectProblem(await call("DELETE", `/v1/webhooks/${id}`, { auth: stranger }), 404);
    await expectProblem(await call("POST", `/v1/webhooks/${id}/rotate-secret`, { auth: stranger }), 404);
    expect(JSON.stringify(await (await call("GET", "/v1/webhooks", { auth: stranger })).json())).not.toContain(id);
    const patched = await call("PATCH", `/v1/webhooks/${id}`, {
      auth: owner,
      body: { enabled: false, events: ["key.revoked"], description: "x" },
    });
    expect(await patched.json()).toMatchObject({ enabled: false, events: ["key.revoked"], description: "x" });
    expect((await call("DELETE", `/v1/webhooks/${id}`, { auth: owner })).status).toBe(204);
    await expectProblem(await call("GET", `/v1/webhooks/${id}`, { auth: owner }), 404);
  });
});

describe("events", () => {
  it("delivers each change of a key, signed (Standard Webhooks), thin, to its owner's endpoint only", async () => {
    const queue = recordingQueue();
    const testEnv = hookEnv(queue);
    const sub = uniqueSub();
    const auth = await token(sub);
    const other = await token(uniqueSub());
    const mine = await register(auth, { url: HOOK }, testEnv);
    const theirs = await register(other, { url: "https://other.example.com/hook" }, testEnv);
    const operator = await register(
      await token(uniqueSub(), { roles: ["operator"] }),
      { url: "https://ops.example.com/", owner: "deployment" },
      testEnv,
    );

    const key = await createKey(auth, { name: "signed" }, testEnv);
    await call("PATCH", `/v1/keys/${key.id}`, { auth, body: { enabled: false }, env: testEnv });
    const rotated = (await (
      await call("POST", `/v1/keys/${key.id}/rotate`, { auth, body: {}, env: testEnv })
    ).json()) as { id: string; key: string };
    await call("DELETE", `/v1/keys/${rotated.id}`, { auth, env: testEnv });

    const target = receiver();
    const now = Date.now();
    const { acked } = await consume(queue, testEnv, target, now);
    const toMine = target.received.filter((r) => r.url === HOOK);
    expect(toMine.map((r) => JSON.parse(r.body).type)).toEqual([
      "key.created",
      "key.disabled",
      "key.rotated",
      "key.created",
      "key.revoked",
    ]);
    expect(acked.length).toBe(target.received.length);
    expect(target.received.filter((r) => r.url.startsWith("https://other.example.com"))).toEqual([]);
    expect(target.received.filter((r) => r.url === "https://ops.example.com/").length).toBe(5);
    expect(await deliveriesOf(theirs.id)).toEqual([]);

    for (const r of toMine) {
      const ok = await verifySignature(
        mine.secret,
        {
          id: r.headers["webhook-id"]!,
          timestamp: r.headers["webhook-timestamp"]!,
          signature: r.headers["webhook-signature"]!,
        },
        r.body,
        Math.floor(now / 1000),
      );
      expect(ok).toBe(true);
      expect(
        await verifySignature(
          operator.secret,
          {
            id: r.headers["webhook-id"]!,
            timestamp: r.headers["webhook-timestamp"]!,
            signature: r.headers["webhook-signature"]!,
          },
          r.body,
          Math.floor(now / 1000),
        ),
      ).toBe(false);
      expect(r.headers["webhook-id"]).toMatch(/^msg_[0-9a-f]{32}$/);
      expect(r.headers["content-type"]).toBe("application/json");
      expect(r.body).not.toContain(key.key);
      expect(r.body).not.toContain(rotated.key);
      expect(r.body).not.toMatch(/[0-9a-f]{64}/); // no hash
      expect(r.signal).toBeInstanceOf(AbortSignal); // the attempt's timeout
      expect(r.redirect).toBe("manual"); // a redirect could lead to a private address
    }
    const first = JSON.parse(toMine[0]!.body);
    expect(first).toMatchObject({
      type: "key.created",
      timestamp: expect.any(String),
      data: { key_id: key.id, owner: { type: "user", id: sub }, action: "created", actor: `user:${sub}` },
    });
  });

  it("dispatches each event once per endpoint: a second dispatch (the cron) records and enqueues nothing", async () => {
    const queue = recordingQueue();
    const testEnv = hookEnv(queue);
    const auth = await token(uniqueSub());
    const { id } = await register(auth, { url: HOOK }, testEnv);
    await createKey(auth, {}, testEnv);
    expect(queue.sent.length).toBe(1);
    const { createContext } = await import("../../src/context");
    const { createExecutionContext } = await import("cloudflare:test");
    expect(await createContext(testEnv, createExecutionContext()).dispatchWebhooks(Date.now())).toBe(0);
    expect(queue.sent.length).toBe(1);
    expect((await deliveriesOf(id)).length).toBe(1);
  });

  it("delivers the other branches' actions (expiring, expired, leaked, credits) written straight to the audit log", async () => {
    const queue = recordingQueue();
    const testEnv = hookEnv(queue);
    const sub = uniqueSub();
    const auth = await token(sub);
    const { id } = await register(auth, { url: HOOK }, testEnv);
    const key = await createKey(auth, {}, testEnv);
    queue.sent.splice(0);
    const actions = ["expiring", "expired", "leaked", "credits_low", "credits_exhausted", "no_such_action"];
    await env.DB.batch(
      actions.map((action, i) =>
        env.DB.prepare(
          "INSERT INTO key_events (id, key_id, owner_type, owner_id, action, actor, at, changes) VALUES (?, ?, 'user', ?, ?, 'service', ?, '{}')",
        ).bind(crypto.randomUUID(), key.id, sub, action, Date.now() + i),
      ),
    );
    const { createContext } = await import("../../src/context");
    const { createExecutionContext } = await import("cloudflare:test");
    await createContext(testEnv, createExecutionContext()).dispatchWebhooks(Date.now());
    const types = (await deliveriesOf(id)).map((d) => d.type);
    expect(types).toEqual([
      "key.created",
      "key.expiring",
      "key.expired",
      "key.leaked",
      "credits.low",
      "credits.exhausted",
    ]);
  });

  it("delivers only the subscribed types, and nothing to a disabled endpoint", async () => {
    const queue = recordingQueue();
    const testEnv = hookEnv(queue);
    const auth = await token(uniqueSub());
    const only = await register(auth, { url: HOOK, events: ["key.revoked"] }, testEnv);
    const off = await register(auth, { url: "https://off.example.com/" }, testEnv);
    await call("PATCH", `/v1/webhooks/${off.id}`, { auth, body: { enabled: false }, env: testEnv });
    const key = await createKey(auth, {}, testEnv);
    await call("DELETE", `/v1/keys/${key.id}`, { auth, env: testEnv });
    expect((await deliveriesOf(only.id)).map((d) => d.type)).toEqual(["key.revoked"]);
    expect(await deliveriesOf(off.id)).toEqual([]);
  });

  it("a workspace endpoint receives the workspace's keys' events, not a member's personal keys'", async () => {
    const queue = recordingQueue();
    const testEnv = hookEnv(queue);
    const org = uniqueSub("org");
    const admin = await token(uniqueSub(), { org });
    const ws = await register(admin, { url: HOOK, owner: "workspace" }, testEnv);
    await createKey(admin, { owner: "workspace" }, testEnv);
    await createKey(admin, {}, testEnv);
    const deliveries = await deliveriesOf(ws.id);
    expect(deliveries.length).toBe(1);
    expect(JSON.parse(deliveries[0]!.payload).data.owner).toEqual({ type: "workspace", id: org });
  });

  it("the hot path pays nothing: verifying a key enqueues nothing and writes no outbox row", async () => {
    const queue = recordingQueue();
    const testEnv = hookEnv(queue);
    const auth = await token(uniqueSub());
    await register(auth, { url: HOOK }, testEnv);
    const key = await createKey(auth, {}, testEnv);
    queue.sent.splice(0);
    const outbox = async () =>
      (await env.DB.prepare("SELECT count(*) AS n FROM webhook_outbox").first<{ n: number }>())?.n;
    const before = await outbox();
    const statements: string[] = [];
    const db = new Proxy(env.DB, {
      get(target, property) {
        const value = Reflect.get(target, property, target) as unknown;
        if (property === "prepare") return (sql: string) => (statements.push(sql), target.prepare(sql));
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const verifying = hookEnv(queue, { DB: db });
    for (let i = 0; i < 3; i++) {
      const verdict = await call("POST", "/v1/verify", { body: { key: key.key }, env: verifying });
      expect(((await verdict.json()) as { valid: boolean }).valid).toBe(true);
    }
    expect(statements.length).toBeGreaterThan(0); // the first verification read D1 and touched last use
    expect(statements.filter((sql) => /webhook/.test(sql))).toEqual([]);
    expect(queue.sent).toEqual([]);
    expect(await outbox()).toBe(before);
  });
});
