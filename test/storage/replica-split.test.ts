/**
 * Which D1 instance answers what, over real requests (store/d1-session.ts, service/read-views.ts): a
 * stand-in D1 over the test database records, for every statement, the handle it was prepared on: the
 * binding (always the primary), a "first-primary" session (the primary), or a session that a replica
 * may serve ("first-unconstrained", or the client's bookmark). The views of management read a replica;
 * verification, its D1 fallback, the change feed, the re-check of the acting key or root key, idempotency
 * and every write and every read a write decides on, never; and a request that needs no view makes no
 * session at all, least of all a verification.
 */
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { createContext } from "../../src/context";
import type { Env } from "../../src/env";
import { generateKey } from "../../src/keys/format";
import { isolateCache } from "../../src/service/verify";
import { call, createKey, envWith, token, uniqueSub } from "../helpers";

type Via = "binding" | "first-primary" | "first-unconstrained" | "bookmark";

interface Query {
  readonly via: Via;
  readonly sql: string;
}

/** The test database, recording each statement with the handle it was prepared on, and each session made. */
function recordingDb(): { testEnv: Env; queries: Query[]; sessions: string[] } {
  const queries: Query[] = [];
  const sessions: string[] = [];
  const wrap = <T extends D1Database | D1DatabaseSession>(target: T, via: Via): T =>
    new Proxy(target, {
      get(t, prop) {
        if (prop === "withSession") {
          return (from: string) => {
            sessions.push(from);
            const kind: Via = from === "first-primary" || from === "first-unconstrained" ? from : "bookmark";
            return wrap((t as D1Database).withSession(from), kind);
          };
        }
        if (prop === "prepare") return (sql: string) => (queries.push({ via, sql }), t.prepare(sql));
        const value: unknown = Reflect.get(t, prop, t);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(t) : value;
      },
    });
  return { testEnv: envWith({ DB: wrap(env.DB, "binding") }), queries, sessions };
}

const onReplica = (q: Query) => q.via === "first-unconstrained" || q.via === "bookmark";
const compact = (sql: string) => sql.replace(/\s+/g, " ").slice(0, 90);

/** Statements whose answer is a security decision, or a write: never a replica's. */
const SECURITY = [
  /\bWHERE hash = \?/, // the verify fallback; a root key by hash
  /\bkey_changes\b/, // the change feed
  /\bidempotency_keys\b/,
  /\bwrite_guard\b/,
  /^\s*(INSERT|UPDATE|DELETE|WITH)\b/i,
];

/** What a replica may answer: the views' own reads. */
const VIEWS = [
  /FROM api_keys WHERE \(/, // a page of keys
  /FROM api_keys WHERE id = \?/, // one key (GET /v1/keys/{id}, and the key of its events and usage)
  /FROM key_events WHERE/, // the audit log
  /FROM key_usage WHERE/, // usage
];

function expectPrimaryOnly(queries: readonly Query[]) {
  const replicated = queries.filter(onReplica).map((q) => compact(q.sql));
  expect(replicated, "statements a replica could answer").toEqual([]);
}

beforeEach(() => isolateCache.clear());

describe("the views read a replica", () => {
  it("list, get, the audit log and usage: in one session from the client's bookmark, else first-unconstrained", async () => {
    const jwt = await token(uniqueSub());
    const { id } = await createKey(jwt);
    const created = await call("POST", "/v1/keys", { auth: jwt, body: { name: "second" } });
    const bookmark = created.headers.get("Latchkey-Bookmark")!;

    for (const path of [`/v1/keys`, `/v1/keys/${id}`, `/v1/keys/${id}/events`, `/v1/events`, `/v1/keys/${id}/usage`]) {
      const { testEnv, queries, sessions } = recordingDb();
      expect(
        (await call("GET", path, { auth: jwt, env: testEnv, headers: { "Latchkey-Bookmark": bookmark } })).status,
      ).toBe(200);
      expect(sessions, path).toEqual([bookmark]);
      const views = queries.filter(onReplica);
      expect(views.length, path).toBeGreaterThan(0);
      for (const q of views)
        expect(
          VIEWS.some((view) => view.test(q.sql)),
          compact(q.sql),
        ).toBe(true);

      const fresh = recordingDb();
      expect((await call("GET", path, { auth: jwt, env: fresh.testEnv })).status).toBe(200);
      expect(fresh.sessions, path).toEqual(["first-unconstrained"]);
    }
  });

  it("for a key acting, its authentication (the D1 fallback, the feed) is the primary's; only the view is not", async () => {
    const jwt = await token(uniqueSub());
    const reader = await createKey(jwt, { scopes: ["keys:read"] });
    isolateCache.clear(); // cold: the key is read from D1, and the feed from its start
    const { testEnv, queries } = recordingDb();
    expect((await call("GET", "/v1/keys", { auth: reader.key, env: testEnv })).status).toBe(200);
    const security = queries.filter((q) => SECURITY.some((s) => s.test(q.sql)));
    expect(security.some((q) => /key_changes/.test(q.sql))).toBe(true);
    expect(security.filter(onReplica).map((q) => compact(q.sql))).toEqual([]);
    expect(queries.filter(onReplica).map((q) => /FROM api_keys WHERE \(/.test(q.sql))).toEqual([true]); // the page of keys, alone
  });

  it("an owner's limits, usage and events, webhooks and root keys are read from the views too", async () => {
    const op = await token(uniqueSub("op"), { roles: ["operator"] });
    const root = await call("POST", "/v1/root-keys", { auth: op, body: { name: "backend" } });
    const { id: rootId } = await root.json<{ id: string }>();
    const org = `org-${crypto.randomUUID()}`;
    const admin = await token(uniqueSub(), { org });
    for (const [auth, path] of [
      [op, "/v1/root-keys"],
      [op, `/v1/root-keys/${rootId}`],
      [admin, `/v1/owners/workspace/${org}/limits`],
      [admin, `/v1/owners/workspace/${org}/usage`],
      [admin, `/v1/owners/workspace/${org}/events`],
      [admin, "/v1/webhooks"],
    ] as const) {
      const { testEnv, queries } = recordingDb();
      expect((await call("GET", path, { auth, env: testEnv })).status, path).toBe(200);
      expect(queries.filter(onReplica).length, path).toBeGreaterThan(0);
      expect(
        queries.filter((q) => !onReplica(q)).map((q) => compact(q.sql)),
        path,
      ).toEqual([]);
    }
  });
});

describe("everything else stays on the primary", () => {
  it("a write makes no session a replica could answer: the re-check of the acting key, what it decides on, the write", async () => {
    const jwt = await token(uniqueSub());
    const writer = await createKey(jwt, { scopes: ["keys:read", "keys:write"] });
    const target = await createKey(writer.key, { name: "child" });
    const bookmark = (await call("GET", "/v1/keys", { auth: jwt })).headers.get("Latchkey-Bookmark")!;
    const writes: [string, string, unknown][] = [
      ["POST", "/v1/keys", { name: "another" }],
      ["PATCH", `/v1/keys/${target.id}`, { name: "renamed" }],
      ["POST", `/v1/keys/${target.id}/rotate`, {}],
      ["DELETE", `/v1/keys/${target.id}?cascade=true`, undefined],
    ];
    for (const [method, path, body] of writes) {
      isolateCache.clear();
      const { testEnv, queries, sessions } = recordingDb();
      const response = await call(method, path, {
        auth: writer.key,
        body,
        env: testEnv,
        headers: {
          "Latchkey-Bookmark": bookmark,
          ...(method === "POST" ? { "Idempotency-Key": crypto.randomUUID() } : {}),
        },
      });
      expect(response.status, `${method} ${path}`).toBeLessThan(300);
      expect(new Set(sessions), `${method} ${path}`).toEqual(new Set(["first-primary"]));
      expect(queries.filter((q) => q.via === "binding")).toEqual([]);
      // The acting key was read again, on the primary.
      expect(queries.some((q) => /FROM api_keys WHERE id = \?/.test(q.sql))).toBe(true);
      expectPrimaryOnly(queries);
      // The response's bookmark is the primary's after the write.
      expect(response.headers.get("Latchkey-Bookmark")! > bookmark).toBe(true);
    }
  });

  it("so do the writes of root keys, an owner's limits and webhooks, and the reads they decide on", async () => {
    const op = await token(uniqueSub("op"), { roles: ["operator"] });
    const org = `org-${crypto.randomUUID()}`;
    const admin = await token(uniqueSub(), { org });
    const root = await (
      await call("POST", "/v1/root-keys", { auth: op, body: { name: "backend" } })
    ).json<{ id: string }>();
    const hook = await call("POST", "/v1/webhooks", {
      auth: admin,
      body: { url: "https://hooks.example.com/latchkey", owner: "workspace" },
    });
    expect(hook.status, await hook.clone().text()).toBe(201);
    const { id: hookId } = await hook.json<{ id: string }>();
    const writes: [string, string, string, unknown][] = [
      [op, "POST", `/v1/root-keys/${root.id}/rotate`, {}],
      [op, "DELETE", `/v1/root-keys/${root.id}`, undefined],
      [
        admin,
        "PUT",
        `/v1/owners/workspace/${org}/limits`,
        { ratelimits: [{ name: "api", limit: 10, duration_ms: 1000 }] },
      ],
      [admin, "PATCH", `/v1/webhooks/${hookId}`, { description: "changed" }],
      [admin, "DELETE", `/v1/webhooks/${hookId}`, undefined],
    ];
    for (const [auth, method, path, body] of writes) {
      const { testEnv, queries, sessions } = recordingDb();
      const response = await call(method, path, { auth, body, env: testEnv });
      expect(response.status, `${method} ${path}: ${await response.clone().text()}`).toBeLessThan(300);
      expect(new Set(sessions), `${method} ${path}`).toEqual(new Set(["first-primary"]));
      expectPrimaryOnly(queries);
      expect(response.headers.get("Latchkey-Bookmark")).toMatch(/^[0-9a-f-]{59}$/);
    }
  });

  it("a root key is authenticated on the primary, in a read request as in a write", async () => {
    const op = await token(uniqueSub("op"), { roles: ["operator"] });
    const root = await (
      await call("POST", "/v1/root-keys", { auth: op, body: { name: "backend" } })
    ).json<{ key: string }>();
    const owner = `owner_type=user&owner_id=${uniqueSub()}`;
    const { testEnv, queries } = recordingDb();
    expect((await call("GET", `/v1/keys?${owner}`, { auth: root.key, env: testEnv })).status).toBe(200);
    const byHash = queries.filter((q) => /FROM root_keys WHERE hash = \?/.test(q.sql));
    expect(byHash.map((q) => q.via)).toEqual(["binding"]);
    expect(queries.filter(onReplica).map((q) => /FROM api_keys WHERE \(/.test(q.sql))).toEqual([true]); // the page of keys, alone
  });

  it("verification makes no session at all: POST /v1/verify, warm, cold or unknown", async () => {
    const { key } = await createKey(await token(uniqueSub()));
    for (const candidate of [key, key, generateKey("lk")]) {
      const { testEnv, queries, sessions } = recordingDb();
      expect((await call("POST", "/v1/verify", { body: { key: candidate }, env: testEnv })).status).toBe(200);
      expect(sessions).toEqual([]);
      expect(queries.every((q) => q.via === "binding")).toBe(true);
      isolateCache.clear();
    }
  });

  it("a management request that reads no view makes no session (a warm key's whoami)", async () => {
    const { key } = await createKey(await token(uniqueSub()));
    await call("GET", "/v1/whoami", { auth: key }); // warm
    const { testEnv, sessions } = recordingDb();
    expect((await call("GET", "/v1/whoami", { auth: key, env: testEnv })).status).toBe(200);
    expect(sessions).toEqual([]);
  });

  it("without a request session (RPC, the cron), the views read the primary through the binding", async () => {
    const sub = uniqueSub();
    await createKey(await token(sub));
    const { testEnv, queries, sessions } = recordingDb();
    const keys = createContext(testEnv, createExecutionContext()).keys;
    const actor = { kind: "user", sub, orgId: null, roles: [], workspaceAdmin: false, operator: false } as const;
    const page = await keys.list(actor, { limit: 10, include_revoked: false });
    expect(page.data).toHaveLength(1);
    expect(sessions).toEqual([]);
    expect(queries.map((q) => q.via)).toEqual(["binding"]);
  });
});
