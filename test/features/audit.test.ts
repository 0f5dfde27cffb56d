/**
 * The audit log: one event per key a mutation changes, written in the same D1 batch as the change (a
 * failure injected into the batch lands neither), what an event holds (never a key, hash or JWT), the
 * read routes (filters, pagination, permissions), the RPC faces, and retention by the scheduled handler.
 */
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import type { Env } from "../../src/env";
import { sha256Hex } from "../../src/keys/hash";
import {
  d1Proxy,
  call,
  captureLogs,
  createKey,
  envWith,
  expectProblem,
  faultyDb,
  tableSnapshot,
  token,
  uniqueSub,
  type CapturedLogs,
} from "../helpers";

// The service's log lines (info on changes, warnings on refusals) are captured, not printed: the run stays quiet.
let quiet: CapturedLogs;
beforeEach(() => {
  quiet = captureLogs();
});
afterEach(() => quiet.restore());

interface EventView {
  id: string;
  key_id: string;
  action: string;
  actor: string;
  at: string;
  changes: Record<string, { old: unknown; new: unknown }>;
  ip: string | null;
  user_agent: string | null;
}
interface EventPage {
  data: EventView[];
  next_cursor: string | null;
}

const CLIENT = { "cf-connecting-ip": "198.51.100.23", "user-agent": "audit-test/1.0" };

async function events(keyId: string): Promise<EventView[]> {
  const { results } = await env.DB.prepare("SELECT * FROM key_events WHERE key_id = ? ORDER BY at, id")
    .bind(keyId)
    .all<Record<string, unknown>>();
  return results.map((row) => ({
    id: row.id as string,
    key_id: row.key_id as string,
    action: row.action as string,
    actor: row.actor as string,
    at: new Date(row.at as number).toISOString(),
    changes: JSON.parse(row.changes as string) as EventView["changes"],
    ip: row.ip as string | null,
    user_agent: row.user_agent as string | null,
  }));
}

async function eventRows(): Promise<number> {
  return (await env.DB.prepare("SELECT COUNT(*) AS n FROM key_events").first<{ n: number }>())?.n ?? 0;
}

async function person() {
  const sub = uniqueSub();
  return { sub, jwt: await token(sub) };
}

describe("each mutation writes exactly one event per key it changes", () => {
  it("create, update, disable, enable, rotate and revoke, with actor, changes, ip and user agent", async () => {
    const { sub, jwt } = await person();
    const created = await call("POST", "/v1/keys", {
      auth: jwt,
      body: { name: "ci", scopes: ["models:invoke"], metadata: { team: "ml" } },
      headers: CLIENT,
    });
    const { id, key } = await created.json<{ id: string; key: string }>();
    const [creation] = await events(id);
    expect(await events(id)).toHaveLength(1);
    expect(creation).toMatchObject({
      key_id: id,
      action: "created",
      actor: `user:${sub}`,
      ip: "198.51.100.23",
      user_agent: "audit-test/1.0",
      changes: {
        name: { old: null, new: "ci" },
        scopes: { old: null, new: ["models:invoke"] },
        metadata: { old: null, new: { team: "ml" } },
        enabled: { old: null, new: true },
        owner: { old: null, new: `user:${sub}` },
      },
    });

    const patch = (body: unknown) => call("PATCH", `/v1/keys/${id}`, { auth: jwt, body, headers: CLIENT });
    expect((await patch({ name: "deploys", scopes: ["models:invoke", "metrics:read"], expires_at: null })).status).toBe(
      200,
    );
    expect((await events(id)).slice(1)).toEqual([
      expect.objectContaining({
        action: "updated",
        actor: `user:${sub}`,
        // Only what changed (expires_at was already null), each with its old and new value.
        changes: {
          name: { old: "ci", new: "deploys" },
          scopes: { old: ["models:invoke"], new: ["models:invoke", "metrics:read"] },
        },
      }),
    ]);

    expect((await patch({ enabled: false })).status).toBe(200);
    expect((await patch({ enabled: true, name: "again" })).status).toBe(200);
    expect((await patch({})).status).toBe(200);
    const [, , disabled, enabled] = await events(id);
    expect(disabled).toMatchObject({ action: "disabled", changes: { enabled: { old: true, new: false } } });
    expect(enabled).toMatchObject({
      action: "enabled",
      changes: { enabled: { old: false, new: true }, name: { old: "deploys", new: "again" } },
    });
    expect(await events(id)).toHaveLength(4);

    const rotated = await call("POST", `/v1/keys/${id}/rotate`, { auth: jwt, body: { grace_seconds: 60 } });
    const replacement = await rotated.json<{ id: string; key: string }>();
    const rotation = (await events(id))[4];
    expect(rotation).toMatchObject({
      action: "rotated",
      changes: { expires_at: { old: null, new: expect.any(String) }, rotated_to: { old: null, new: replacement.id } },
    });
    expect(await events(id)).toHaveLength(5);
    expect(await events(replacement.id)).toEqual([
      expect.objectContaining({
        action: "created",
        changes: expect.objectContaining({ rotated_from: { old: null, new: id }, name: { old: null, new: "again" } }),
      }),
    ]);

    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt })).status).toBe(204);
    expect((await call("DELETE", `/v1/keys/${id}`, { auth: jwt })).status).toBe(204); // no second event
    const all = await events(id);
    expect(all).toHaveLength(6);
    expect(all[5]).toMatchObject({
      action: "revoked",
      changes: { revoked_at: { old: null, new: expect.any(String) } },
    });

    // Never a key, a hash or a JWT, anywhere in the log.
    const { results } = await env.DB.prepare("SELECT * FROM key_events").all();
    const log = JSON.stringify(results);
    for (const secret of [key, replacement.key, await sha256Hex(key), await sha256Hex(replacement.key), jwt]) {
      expect(log).not.toContain(secret);
    }
  });

  it("names a key actor key:<id>, and a trusted Worker service (no ip)", async () => {
    const { jwt } = await person();
    const manager = await createKey(jwt, { scopes: ["keys:write"] });
    const made = await createKey(manager.key, {});
    expect((await events(made.id))[0]).toMatchObject({ actor: `key:${manager.id}` });

    const owner = { type: "user", id: uniqueSub() } as const;
    const viaRpc = await exports.KeyService.create(owner, { name: "rpc" });
    await exports.KeyService.update(owner, viaRpc.id, { enabled: false });
    expect(await events(viaRpc.id)).toEqual([
      expect.objectContaining({ action: "created", actor: "service", ip: null, user_agent: null }),
      expect.objectContaining({ action: "disabled", actor: "service", ip: null, user_agent: null }),
    ]);
  });
});

describe("concurrent changes of one key", () => {
  it("all land, and each event's old values are the ones it replaced (no lost update)", async () => {
    const { jwt } = await person();
    const { id } = await createKey(jwt, { name: "n0" });
    const names = ["n1", "n2", "n3", "n4", "n5"];
    const responses = await Promise.all(
      names.map((name) => call("PATCH", `/v1/keys/${id}`, { auth: jwt, body: { name } })),
    );
    // Each succeeds, or (after three tries against concurrent writers) is a 409 asking to retry.
    for (const response of responses) expect([200, 409]).toContain(response.status);
    const updates = (await events(id)).filter((e) => e.action === "updated");
    expect(updates.length).toBe(responses.filter((r) => r.status === 200).length);
    let previous = "n0";
    for (const update of updates) {
      expect(update.changes.name?.old).toBe(previous);
      previous = update.changes.name?.new as string;
    }
    const view = await (await call("GET", `/v1/keys/${id}`, { auth: jwt })).json<{ name: string }>();
    expect(view.name).toBe(previous);
  });
});

describe("concurrent rotations of one key", () => {
  it("store exactly one replacement and its events per 201, never an orphan from a lost race", async () => {
    const { jwt } = await person();
    const { id } = await createKey(jwt);
    const responses = await Promise.all(
      Array.from({ length: 5 }, () =>
        call("POST", `/v1/keys/${id}/rotate`, { auth: jwt, body: { grace_seconds: 600 } }),
      ),
    );
    for (const response of responses) expect([201, 409]).toContain(response.status);
    const made = responses.filter((r) => r.status === 201).length;
    expect(made).toBeGreaterThan(0);
    const replacements = await env.DB.prepare("SELECT COUNT(*) AS n FROM api_keys WHERE rotated_from = ?")
      .bind(id)
      .first<{ n: number }>();
    expect(replacements?.n).toBe(made);
    expect((await events(id)).filter((e) => e.action === "rotated")).toHaveLength(made);
  });
});

/**
 * D1 whose audit-event inserts fail inside the batch (the statement names a column key_events lacks; not
 * a missing table, which latchkey rightly answers as a schema behind the build, 500).
 */
function failingEventsDb(): D1Database {
  return d1Proxy(env.DB, {
    get(target, prop) {
      if (prop === "prepare") {
        return (sql: string) =>
          target.prepare(sql.replace("INSERT INTO key_events (", "INSERT INTO key_events (injected_fault, "));
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe("a change never lands without its event, nor the reverse", () => {
  it.each([
    ["create", "POST", () => "/v1/keys", { name: "never" }],
    ["update", "PATCH", (id: string) => `/v1/keys/${id}`, { name: "never", scopes: ["a:b"] }],
    ["disable", "PATCH", (id: string) => `/v1/keys/${id}`, { enabled: false }],
    ["rotate", "POST", (id: string) => `/v1/keys/${id}/rotate`, { grace_seconds: 0 }],
    ["revoke", "DELETE", (id: string) => `/v1/keys/${id}`, undefined],
  ] as const)(
    "%s: an event insert failing in the batch is a 503 and leaves D1 as it was",
    async (_, method, path, body) => {
      const { jwt } = await person();
      const { id, key } = await createKey(jwt);
      const failing = envWith({ DB: failingEventsDb() });
      const snapshot = await tableSnapshot();
      const before = await eventRows();

      const logs = captureLogs();
      const response = await call(method, path(id), { auth: jwt, body, env: failing });
      logs.restore();
      await expectProblem(response, 503);
      expect(logs.lines()).toMatchObject([{ level: "error", event: "storage_unavailable" }]);
      expect(await tableSnapshot()).toEqual(snapshot);
      expect(await eventRows()).toBe(before);
      // The key still works as it was, here and in a fresh isolate.
      const verdict = await call("POST", "/v1/verify", { body: { key } });
      expect(await verdict.json()).toMatchObject({ code: "VALID" });

      // The same request with a working D1 lands both.
      const again = await call(method, path(id), { auth: jwt, body });
      expect(again.status).toBeLessThan(300);
      expect(await eventRows()).toBe(before + (method === "POST" && path(id).endsWith("rotate") ? 2 : 1));
    },
  );
});

describe("import", () => {
  const legacyHash = () => sha256Hex(`sk_live_${crypto.randomUUID().replace(/-/g, "").slice(0, 24)}`);
  const importKeys = (jwt: string, keys: Record<string, unknown>[], testEnv?: Env) =>
    call("POST", "/v1/keys/import", {
      auth: jwt,
      // The suite enables two formats: each item names its own.
      body: { keys: keys.map((key) => ({ format: "opaque", ...key })) },
      headers: CLIENT,
      env: { ...(testEnv ?? envWith({})), IMPORT_ALLOWED: "personal" },
    });

  it("writes one `imported` event per imported key, in input order, and none for a conflict", async () => {
    const { sub, jwt } = await person();
    const [first, second] = [await legacyHash(), await legacyHash()];
    const earlier = await importKeys(jwt, [{ hash: first, name: "first", scopes: ["models:invoke"] }]);
    expect(earlier.status).toBe(200);
    const firstId = (await earlier.json<{ results: { id: string }[] }>()).results[0]!.id;
    const before = await eventRows();

    // A hash already stored and a hash repeated in the batch are conflicts: only `second` is imported.
    const batch = await importKeys(jwt, [
      { hash: first, name: "again" },
      { hash: second, name: "second" },
      { hash: second, name: "repeat" },
    ]);
    const body = await batch.json<{ results: { status: string; id: string | null }[] }>();
    expect(body.results.map((r) => r.status)).toEqual(["conflict", "imported", "conflict"]);
    expect(await eventRows()).toBe(before + 1);

    const [imported] = await events(body.results[1]!.id!);
    expect(await events(body.results[1]!.id!)).toHaveLength(1);
    expect(imported).toMatchObject({
      action: "imported",
      actor: `user:${sub}`,
      ip: CLIENT["cf-connecting-ip"],
      user_agent: CLIENT["user-agent"],
    });
    expect(imported!.changes).toMatchObject({
      name: { old: null, new: "second" },
      scopes: { old: null, new: ["*"] },
      enabled: { old: null, new: true },
      format: { old: null, new: "opaque" },
      owner: { old: null, new: `user:${sub}` },
    });
    expect((await events(firstId)).map((e) => [e.action, e.changes.name?.new])).toEqual([["imported", "first"]]);
    expect(JSON.stringify(await events(body.results[1]!.id!))).not.toContain(second);
  });

  it("an event insert failing in the batch is a 503 that imports nothing", async () => {
    const { jwt } = await person();
    const snapshot = await tableSnapshot();
    const before = await eventRows();
    const logs = captureLogs();
    const response = await importKeys(
      jwt,
      [{ hash: await legacyHash(), name: "never" }],
      envWith({ DB: failingEventsDb() }),
    );
    logs.restore();
    await expectProblem(response, 503);
    expect(logs.lines()).toMatchObject([{ level: "error", event: "storage_unavailable" }]);
    expect(await tableSnapshot()).toEqual(snapshot);
    expect(await eventRows()).toBe(before);
  });
});

describe("GET /v1/keys/{id}/events and GET /v1/events", () => {
  it("list the caller's events newest first, filtered by action and time, paginated by cursor", async () => {
    const { jwt } = await person();
    const a = await createKey(jwt, { name: "a" });
    const b = await createKey(jwt, { name: "b" });
    for (const name of ["a1", "a2", "a3"]) await call("PATCH", `/v1/keys/${a.id}`, { auth: jwt, body: { name } });
    await call("DELETE", `/v1/keys/${b.id}`, { auth: jwt });
    const other = await createKey(await token(uniqueSub()));

    const one = await (await call("GET", `/v1/keys/${a.id}/events`, { auth: jwt })).json<EventPage>();
    expect(one.data.map((e) => e.action)).toEqual(["updated", "updated", "updated", "created"]);
    expect(one.data.map((e) => e.changes.name?.new)).toEqual(["a3", "a2", "a1", "a"]);
    expect(one.next_cursor).toBeNull();

    const all = await (await call("GET", "/v1/events", { auth: jwt })).json<EventPage>();
    expect(all.data).toHaveLength(6);
    expect(new Set(all.data.map((e) => e.key_id))).toEqual(new Set([a.id, b.id]));
    expect(all.data.map((e) => e.key_id)).not.toContain(other.id);
    const times = all.data.map((e) => Date.parse(e.at));
    expect([...times].sort((x, y) => y - x)).toEqual(times);

    const revoked = await (await call("GET", "/v1/events?action=revoked", { auth: jwt })).json<EventPage>();
    expect(revoked.data.map((e) => [e.key_id, e.action])).toEqual([[b.id, "revoked"]]);

    // Pagination: pages of 4 and 2, no overlap, the same events in the same order.
    const first = await (await call("GET", "/v1/events?limit=4", { auth: jwt })).json<EventPage>();
    expect(first.data).toHaveLength(4);
    const second = await (
      await call("GET", `/v1/events?limit=4&cursor=${first.next_cursor}`, { auth: jwt })
    ).json<EventPage>();
    expect(second.next_cursor).toBeNull();
    expect([...first.data, ...second.data]).toEqual(all.data);

    // A time range: since is inclusive, until exclusive.
    const pivot = all.data[2]!.at;
    const since = await (await call("GET", `/v1/events?since=${pivot}`, { auth: jwt })).json<EventPage>();
    expect(since.data.every((e) => Date.parse(e.at) >= Date.parse(pivot))).toBe(true);
    expect(since.data.length).toBeGreaterThanOrEqual(3);
    const until = await (await call("GET", `/v1/events?until=${pivot}`, { auth: jwt })).json<EventPage>();
    expect(until.data.every((e) => Date.parse(e.at) < Date.parse(pivot))).toBe(true);
    expect(since.data.length + until.data.length).toBe(6);
  });

  it("are 404 for other owners' keys, 403 for a key without keys:read, 400 for a bad query", async () => {
    const { jwt } = await person();
    const other = await createKey(await token(uniqueSub()));
    await expectProblem(await call("GET", `/v1/keys/${other.id}/events`, { auth: jwt }), 404);
    const writer = await createKey(jwt, { scopes: ["keys:write"] });
    expect((await expectProblem(await call("GET", "/v1/events", { auth: writer.key }), 403)).detail).toMatch(
      /keys:read/,
    );
    const reader = await createKey(jwt, { scopes: ["keys:read"] });
    const page = await (await call("GET", `/v1/keys/${writer.id}/events`, { auth: reader.key })).json<EventPage>();
    expect(page.data.map((e) => e.action)).toEqual(["created"]);
    for (const query of ["action=deleted", "since=yesterday", "limit=0", "cursor=nope", "secret=1"]) {
      await expectProblem(await call("GET", `/v1/events?${query}`, { auth: jwt }), 400);
    }
  });

  it("show a workspace key's events to every member of the workspace", async () => {
    const org = uniqueSub("org");
    const alice = await token(uniqueSub(), { org });
    const bob = await token(uniqueSub(), { org });
    const shared = await createKey(alice, { owner: "workspace" });
    const page = await (await call("GET", "/v1/events", { auth: bob })).json<EventPage>();
    expect(page.data.map((e) => e.key_id)).toEqual([shared.id]);
  });

  it("show ip and user_agent only to the owner and workspace admins, never to keys nor members", async () => {
    const read = async (path: string, auth: string) => {
      const response = await call("GET", path, { auth });
      expect(response.status, `${path}: ${await response.clone().text()}`).toBe(200);
      return (await response.json<EventPage>()).data;
    };
    const origins = (page: EventView[]) => page.map((e) => [e.ip, e.user_agent]);
    const CHANGER = [CLIENT["cf-connecting-ip"], CLIENT["user-agent"]];

    // A personal key: its owner sees where each change came from; a keys:read key of the same owner does not.
    const { jwt } = await person();
    const made = await call("POST", "/v1/keys", { auth: jwt, body: { name: "p" }, headers: CLIENT });
    const { id } = await made.json<{ id: string }>();
    const reader = await createKey(jwt, { scopes: ["keys:read"] });
    for (const path of [`/v1/keys/${id}/events`, "/v1/events?action=created"]) {
      expect(origins((await read(path, jwt)).filter((e) => e.key_id === id)), path).toEqual([CHANGER]);
      const seen = (await read(path, reader.key)).filter((e) => e.key_id === id);
      expect(seen, path).toHaveLength(1);
      expect(origins(seen), path).toEqual([[null, null]]);
    }

    // A workspace key: admins see it, a member without the admin role and a workspace key do not.
    const org = uniqueSub("org");
    const admin = await token(uniqueSub(), { org });
    const otherAdmin = await token(uniqueSub(), { org });
    const member = await token(uniqueSub(), { org, roles: ["member"] });
    const shared = await call("POST", "/v1/keys", {
      auth: admin,
      body: { name: "shared", owner: "workspace" },
      headers: CLIENT,
    });
    const sharedId = (await shared.json<{ id: string }>()).id;
    const orgReader = await createKey(admin, { owner: "workspace", scopes: ["keys:read"] });
    for (const path of [`/v1/keys/${sharedId}/events`, "/v1/events"]) {
      const only = (page: EventView[]) => page.filter((e) => e.key_id === sharedId);
      expect(origins(only(await read(path, otherAdmin))), path).toEqual([CHANGER]);
      expect(origins(only(await read(path, member))), path).toEqual([[null, null]]);
      expect(origins(only(await read(path, orgReader.key))), path).toEqual([[null, null]]);
    }
    // A member's own personal keys stay theirs to read in full.
    const own = await call("POST", "/v1/keys", { auth: member, body: { name: "own" }, headers: CLIENT });
    const ownId = (await own.json<{ id: string }>()).id;
    expect(origins(await read(`/v1/keys/${ownId}/events`, member))).toEqual([CHANGER]);

    // RPC acts as the owner: it reads them.
    const rpc = await exports.KeyService.keyEvents({ type: "workspace", id: org }, sharedId);
    expect(origins(rpc.data as EventView[])).toEqual([CHANGER]);
  });

  it("are read over RPC as over HTTP", async () => {
    const owner = { type: "user", id: uniqueSub() } as const;
    const made = await exports.KeyService.create(owner, { name: "rpc" });
    await exports.KeyService.rotate(owner, made.id, { grace_seconds: 10 });
    const keyEvents = await exports.KeyService.keyEvents(owner, made.id);
    expect(keyEvents.data.map((e) => e.action)).toEqual(["rotated", "created"]);
    const all = await exports.KeyService.listEvents(owner, { action: "created" });
    expect(all.data).toHaveLength(2);
  });
});

describe("retention", () => {
  async function seedEvents(count: number, ageDays: number): Promise<string> {
    const tag = uniqueSub("purge");
    await env.DB.prepare(
      `INSERT INTO key_events (id, key_id, owner_type, owner_id, action, actor, at, changes)
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
       SELECT ? || '-' || i, ?, 'user', ?, 'updated', 'service', ?, '{}' FROM n`,
    )
      .bind(count, tag, crypto.randomUUID(), tag, Date.now() - ageDays * 86_400_000)
      .run();
    return tag;
  }
  const remaining = async (tag: string) =>
    (await env.DB.prepare("SELECT COUNT(*) AS n FROM key_events WHERE owner_id = ?").bind(tag).first<{ n: number }>())
      ?.n ?? 0;

  async function runCron(testEnv: Env): Promise<void> {
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "17 * * * *", scheduledTime: Date.now() }), testEnv, ctx);
    await waitOnExecutionContext(ctx);
  }

  it("the scheduled handler deletes events older than AUDIT_RETENTION_DAYS, in bounded batches", async () => {
    const old = await seedEvents(2500, 91);
    const kept = await seedEvents(3, 89);
    let deletes = 0;
    const counting = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "prepare") {
          return (sql: string) => {
            if (sql.startsWith("DELETE FROM key_events")) deletes++;
            return target.prepare(sql);
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    await runCron(envWith({ DB: counting }));
    expect(await remaining(old)).toBe(0);
    expect(await remaining(kept)).toBe(3);
    expect(deletes).toBe(3); // 1000 + 1000 + 500

    // A retention that makes no sense is refused (logged), and the default kept: nothing more goes.
    for (const days of ["0", "-5", "1.5", "ninety"]) {
      const logs = captureLogs();
      await runCron(envWith({ AUDIT_RETENTION_DAYS: days }));
      logs.restore();
      expect(
        logs.events("configuration_invalid").map((line) => line.problem),
        days,
      ).toEqual(["AUDIT_RETENTION_DAYS must be a whole number from 1 to 3650; using 90"]);
    }
    expect(await remaining(kept)).toBe(3);
    // A shorter retention, from the configuration.
    await runCron(envWith({ AUDIT_RETENTION_DAYS: "30" }));
    expect(await remaining(kept)).toBe(0);
  });

  it("a failing task is logged by name and does not fail the trigger", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      await runCron(envWith({ DB: faultyDb("reject") }));
      expect(errors.mock.calls.map((c) => String(c[0]))).toContainEqual(
        expect.stringMatching(/"event":"scheduled_task_failed","task":"audit retention","error":/),
      );
    } finally {
      errors.mockRestore();
    }
  });
});

describe("cascading revocation", () => {
  it("writes one revoked event per newly revoked key, in the same write, and none for a key already revoked", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    const parent = await createKey(jwt, { name: "parent" });
    const child = await createKey(parent.key, { name: "child" });
    const grandchild = await createKey(child.key, { name: "grandchild" });
    expect((await call("DELETE", `/v1/keys/${grandchild.id}`, { auth: jwt, headers: CLIENT })).status).toBe(204);
    const response = await call("DELETE", `/v1/keys/${parent.id}?cascade=true`, { auth: jwt, headers: CLIENT });
    expect(response.status).toBe(204);
    for (const id of [parent.id, child.id, grandchild.id]) {
      const revoked = (await events(id)).filter((e) => e.action === "revoked");
      expect(revoked, id).toHaveLength(1);
      expect(revoked[0]).toMatchObject({ actor: `user:${sub}`, ip: CLIENT["cf-connecting-ip"] });
      expect(revoked[0]?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
  });
});
