/**
 * Webhooks and warnings with sharding by owner (D1_SHARDS=2, bindings DB and DB_1): the events of a key
 * or an owner in DB_1 enter DB_1's own outbox (its triggers fire while it holds the relay row, written
 * when an endpoint is registered) and reach the endpoints kept in DB, exactly once however many
 * dispatchers run; the counters' credit warnings (a key chain's and an owner's) land in the owner's
 * database; the expiry scan covers every database. With D1_SHARDS unset, DB_1 is never written.
 */
import { createExecutionContext, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createContext } from "../../src/context";
import type { Env } from "../../src/env";
import { ownerCounterName } from "../../src/keys/owner-usage";
import { ownerBucket } from "../../src/keys/shard";
import type { Owner } from "../../src/model";
import { counterWarnings } from "../../src/store/counter";
import { forgetShardMap } from "../../src/store/shards";
import { call, captureLogs, createKey, token, uniqueSub, type CapturedLogs } from "../helpers";
import { clearWebhooks, deliveriesOf, hookEnv, recordingQueue } from "../webhook-harness";

const databases = [env.DB, env.DB_1] as const;
const HOOK = "https://hooks.example.com/latchkey";

let quiet: CapturedLogs;
beforeEach(async () => {
  quiet = captureLogs();
  await env.DB_1.batch([env.DB_1.prepare("DELETE FROM webhook_relay"), env.DB_1.prepare("DELETE FROM webhook_outbox")]);
  // The counters' alarms run with the Worker's env: here they see two databases, as the requests do.
  counterWarnings.envFor = (counterEnv) => ({ ...counterEnv, D1_SHARDS: "2" });
});
afterEach(async () => {
  quiet.restore();
  counterWarnings.envFor = (counterEnv) => counterEnv;
  await clearWebhooks();
  await env.DB_1.batch([env.DB_1.prepare("DELETE FROM webhook_relay"), env.DB_1.prepare("DELETE FROM webhook_outbox")]);
  forgetShardMap();
});

/** An owner whose bucket defaults to DB_1 (bucket % 2 = 1). */
async function ownerInSecond(type: Owner["type"]): Promise<string> {
  for (;;) {
    const id = uniqueSub(type);
    if ((await ownerBucket({ type, id })) % 2 === 1) return id;
  }
}

function sharded(): { testEnv: Env; queue: ReturnType<typeof recordingQueue> } {
  const queue = recordingQueue();
  return { queue, testEnv: hookEnv(queue, { D1_SHARDS: "2", EXPIRY_WARNING_DAYS: "7" }) };
}

async function register(auth: string, testEnv: Env, body: Record<string, unknown> = {}): Promise<string> {
  const response = await call("POST", "/v1/webhooks", { auth, body: { url: HOOK, ...body }, env: testEnv });
  expect(response.status, await response.clone().text()).toBe(201);
  return (await response.json<{ id: string }>()).id;
}

const typesOf = async (endpoint: string) => (await deliveriesOf(endpoint)).map((d) => d.type);

async function eventsIn(db: D1Database, table: "key_events" | "owner_events", ownerId: string): Promise<string[]> {
  const { results } = await db
    .prepare(`SELECT action FROM ${table} WHERE owner_id = ? ORDER BY at, rowid`)
    .bind(ownerId)
    .all<{ action: string }>();
  return results.map((r) => r.action);
}

/** Waits until counter `name` has written what it kept (its own alarm, or the test's after a few polls). */
async function flush(name: string): Promise<void> {
  const counter = env.USAGE_COUNTER!.get(env.USAGE_COUNTER!.idFromName(name));
  const pending = () => runInDurableObject(counter, (_, state) => state.storage.kv.get("pending_warnings"));
  for (let i = 0; i < 100; i++) {
    if ((await pending()) === undefined) return;
    if (i >= 20) await runDurableObjectAlarm(counter);
    await scheduler.wait(10);
  }
}

const spend = async (key: string, cost: number, testEnv: Env) => {
  const response = await call("POST", "/v1/verify", { body: { key, cost }, env: testEnv });
  expect(response.status).toBe(200);
};

describe("webhooks with two databases (D1_SHARDS=2)", () => {
  it("delivers a DB_1 key's created and revoked events to its owner's endpoint, once, however many dispatchers run", async () => {
    const { testEnv } = sharded();
    const sub = await ownerInSecond("user");
    const auth = await token(sub);
    const endpoint = await register(auth, testEnv);
    const created = await createKey(auth, { name: "in DB_1" }, testEnv);
    expect((await call("DELETE", `/v1/keys/${created.id}`, { auth, env: testEnv })).status).toBe(204);
    expect(await eventsIn(env.DB_1, "key_events", sub)).toEqual(["created", "revoked"]);
    expect(await eventsIn(env.DB, "key_events", sub)).toEqual([]);

    // Two crons at once, then another: each event is in the delivery log once.
    const now = Date.now();
    await Promise.all([
      createContext(testEnv, createExecutionContext()).dispatchWebhooks(now),
      createContext(testEnv, createExecutionContext()).dispatchWebhooks(now),
    ]);
    await createContext(testEnv, createExecutionContext()).dispatchWebhooks(now);
    expect(await typesOf(endpoint)).toEqual(["key.created", "key.revoked"]);
    const payload = JSON.parse((await deliveriesOf(endpoint))[0]!.payload) as {
      data: { id?: string; key_id?: string };
    };
    expect(JSON.stringify(payload)).toContain(created.id);
    // DB_1's outbox is drained and its own cursor moved.
    const left = await env.DB_1.prepare("SELECT COUNT(*) AS n FROM webhook_outbox").first<{ n: number }>();
    expect(left?.n).toBe(0);
  });

  it("delivers an owner's credits.low to its endpoint and writes it to its own audit log in DB_1", async () => {
    const { testEnv } = sharded();
    const org = await ownerInSecond("workspace");
    const owner: Owner = { type: "workspace", id: org };
    const admin = await token(uniqueSub(), { org });
    const endpoint = await register(admin, testEnv, { owner: "workspace", events: ["credits.low"] });
    const put = await call("PUT", `/v1/owners/workspace/${org}/limits`, {
      auth: admin,
      body: { credits: { remaining: 10, low_threshold: 5 } },
      env: testEnv,
    });
    expect(put.status, await put.clone().text()).toBe(200);
    const key = await createKey(admin, { owner: "workspace" }, testEnv);
    await spend(key.key, 6, testEnv);
    await flush(ownerCounterName(owner));

    expect(await eventsIn(env.DB_1, "owner_events", org)).toContain("credits_low");
    expect(await eventsIn(env.DB, "owner_events", org)).toEqual([]);
    const log = await call("GET", `/v1/owners/workspace/${org}/events`, { auth: admin, env: testEnv });
    const { data } = await log.json<{ data: { action: string; actor: string }[] }>();
    expect(data.filter((e) => e.action === "credits_low")).toMatchObject([{ actor: "latchkey" }]);
    await createContext(testEnv, createExecutionContext()).dispatchWebhooks(Date.now());
    expect(await typesOf(endpoint)).toEqual(["credits.low"]);
  });

  it("writes a DB_1 key chain's credit warnings to its own database and delivers them", async () => {
    const { testEnv } = sharded();
    const sub = await ownerInSecond("user");
    const auth = await token(sub);
    const endpoint = await register(auth, testEnv, { events: ["credits.low", "credits.exhausted"] });
    const key = await createKey(auth, { credits: { remaining: 10 } }, testEnv);
    await spend(key.key, 10, testEnv);
    await flush(key.id);
    expect(await eventsIn(env.DB_1, "key_events", sub)).toEqual(["created", "credits_low", "credits_exhausted"]);
    expect(await eventsIn(env.DB, "key_events", sub)).toEqual([]);
    await createContext(testEnv, createExecutionContext()).dispatchWebhooks(Date.now());
    expect(await typesOf(endpoint)).toEqual(["credits.low", "credits.exhausted"]);
  });

  it("warns of a DB_1 key's expiry (the scan covers every database) and delivers the warning", async () => {
    const { testEnv } = sharded();
    const sub = await ownerInSecond("user");
    const auth = await token(sub);
    const endpoint = await register(auth, testEnv, { events: ["key.expiring"] });
    const expiresAt = Date.now() + 3 * 86_400_000;
    await createKey(auth, { expires_at: new Date(expiresAt).toISOString() }, testEnv);
    const app = createContext(testEnv, createExecutionContext());
    expect(await app.expiryWarnings(Date.now())).toBe(1);
    expect(await eventsIn(env.DB_1, "key_events", sub)).toEqual(["created", "expiring"]);
    await app.dispatchWebhooks(Date.now());
    expect(await typesOf(endpoint)).toEqual(["key.expiring"]);
  });
});

describe("webhooks with one database (D1_SHARDS unset)", () => {
  it("never writes the relay row nor DB_1's outbox", async () => {
    const queue = recordingQueue();
    const testEnv = hookEnv(queue);
    const sub = await ownerInSecond("user");
    const auth = await token(sub);
    const endpoint = await register(auth, testEnv);
    await createKey(auth, {}, testEnv);
    await createContext(testEnv, createExecutionContext()).dispatchWebhooks(Date.now());
    expect(await typesOf(endpoint)).toEqual(["key.created"]);
    for (const table of ["webhook_relay", "webhook_outbox"]) {
      const row = await env.DB_1.prepare(`SELECT COUNT(*) AS n FROM ${table}`).first<{ n: number }>();
      expect(row?.n).toBe(0);
    }
    expect((await env.DB.prepare("SELECT COUNT(*) AS n FROM webhook_relay").first<{ n: number }>())?.n).toBe(0);
  });
});
