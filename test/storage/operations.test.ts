/**
 * Operations: the request id (accepted or made, echoed, on every log line), verification counters
 * written to Analytics Engine (through a stand-in binding), and the purge Cron Trigger.
 */
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import { generateKey } from "../../src/keys/format";
import { sha256Hex as sha256 } from "../../src/keys/hash";
import { deadBefore, purgeBefore } from "../../src/keys/purge-horizon";
import { scrub } from "../../src/log";
import { isolateCache } from "../../src/service/verify";
import { PURGE_BATCH, PURGE_MAX_BATCHES, purgeDeadKeys } from "../../src/service/operations";
import type { StoreMaintenance } from "../../src/store/store";
import { call, captureLogs, createKey, envWith, faultyKv, token, uniqueSub, type CapturedLogs } from "../helpers";

// The service's log lines (info on changes, warnings on refusals) are captured, not printed: the run stays quiet.
let quiet: CapturedLogs;
beforeEach(() => {
  quiet = captureLogs();
});
afterEach(() => quiet.restore());

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("X-Request-Id", () => {
  it("echoes a well-formed id from the client and makes one otherwise, on every response", async () => {
    const given = await call("GET", "/healthz", { headers: { "x-request-id": "req-42.a:b" } });
    expect(given.headers.get("x-request-id")).toBe("req-42.a:b");
    for (const bad of ["has space", "x".repeat(129), "-leading", generateKey("lk")]) {
      const response = await call("GET", "/v1/keys", { headers: { "x-request-id": bad } });
      expect(response.status).toBe(401);
      expect(response.headers.get("x-request-id"), bad).toMatch(UUID);
    }
    const a = (await call("GET", "/nowhere")).headers.get("x-request-id");
    const b = (await call("GET", "/nowhere")).headers.get("x-request-id");
    expect(a).toMatch(UUID);
    expect(a).not.toBe(b);
  });

  it("is on every log line the request writes", async () => {
    const key = await createKey(await token(uniqueSub()));
    isolateCache.clear(); // so the lookup reaches the failing KV
    const logs = captureLogs();
    const response = await call("GET", "/v1/whoami", {
      auth: key.key,
      headers: { "x-request-id": "trace-kv-down" },
      env: envWith({ KEY_CACHE: faultyKv("reject") }),
    });
    logs.restore();
    expect(response.status).toBe(200);
    const lines = logs.lines();
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatchObject({ request_id: "trace-kv-down", level: "warn" });
  });

  it("log lines never carry anything shaped like a key or a JWT, even if passed in by mistake", async () => {
    const key = generateKey("sk_live");
    const jwt = await token("someone");
    expect(scrub(`failed for ${key} and ${jwt}.`)).toBe("failed for [redacted] and [redacted].");
  });
});

interface DataPoint {
  indexes?: string[];
  blobs?: string[];
  doubles?: number[];
}

/** Analytics Engine stand-in: records what is written. */
function analytics(): { dataset: AnalyticsEngineDataset; points: DataPoint[] } {
  const points: DataPoint[] = [];
  return { points, dataset: { writeDataPoint: (point?: DataPoint) => void points.push(point ?? {}) } };
}

describe("verification counters (Analytics Engine)", () => {
  it("writes one data point per verification with its outcome, owner and key id, never the key", async () => {
    const sub = uniqueSub();
    const key = await createKey(await token(sub), { scopes: ["models:invoke"] });
    const { dataset, points } = analytics();
    const counted = envWith({ VERIFY_ANALYTICS: dataset });
    await call("POST", "/v1/verify", { body: { key: key.key }, env: counted });
    await call("POST", "/v1/verify", { body: { key: key.key, scope: "billing:read" }, env: counted });
    await call("POST", "/v1/verify", { body: { key: "lk_nope" }, env: counted });
    await call("GET", "/v1/whoami", { auth: key.key, env: counted });
    expect(points).toEqual([
      { indexes: [`user:${sub}`], blobs: ["VALID", key.id], doubles: [1] },
      { indexes: [`user:${sub}`], blobs: ["INSUFFICIENT_SCOPE", key.id], doubles: [1] },
      { indexes: ["none"], blobs: ["MALFORMED", ""], doubles: [1] },
      { indexes: [`user:${sub}`], blobs: ["VALID", key.id], doubles: [1] },
    ]);
    expect(JSON.stringify(points)).not.toContain(key.key);
  });

  it("a failing dataset never fails a verification; without the binding nothing is written", async () => {
    const key = await createKey(await token(uniqueSub()));
    const broken = envWith({
      VERIFY_ANALYTICS: {
        writeDataPoint: () => {
          throw new Error("AE down");
        },
      },
    });
    const verdict = await call("POST", "/v1/verify", { body: { key: key.key }, env: broken });
    expect(await verdict.json()).toMatchObject({ valid: true });
  });
});

async function runCron(testEnv: Env, at = Date.now()): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ scheduledTime: at, cron: "17 3 * * *" }), testEnv, ctx);
  await waitOnExecutionContext(ctx);
}

const DAY = 24 * 60 * 60 * 1000;

describe("the purge Cron Trigger", () => {
  async function keysFor(sub: string) {
    const jwt = await token(sub);
    const live = await createKey(jwt);
    const revokedLongAgo = await createKey(jwt);
    const revokedRecently = await createKey(jwt);
    const expiredLongAgo = await createKey(jwt);
    const now = Date.now();
    await env.DB.batch([
      env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(now - 31 * DAY, revokedLongAgo.id),
      env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(now - 29 * DAY, revokedRecently.id),
      env.DB.prepare("UPDATE api_keys SET expires_at = ? WHERE id = ?").bind(now - 31 * DAY, expiredLongAgo.id),
    ]);
    return { live, revokedLongAgo, revokedRecently, expiredLongAgo };
  }
  const exists = async (id: string) =>
    (await env.DB.prepare("SELECT 1 AS x FROM api_keys WHERE id = ?").bind(id).first()) !== null;

  it("deletes keys revoked or expired more than PURGE_AFTER_DAYS ago, and nothing else", async () => {
    const keys = await keysFor(uniqueSub());
    const logs = captureLogs();
    await runCron(envWith({ PURGE_AFTER_DAYS: "30" }));
    logs.restore();
    expect(await exists(keys.live.id)).toBe(true);
    expect(await exists(keys.revokedRecently.id)).toBe(true);
    expect(await exists(keys.revokedLongAgo.id)).toBe(false);
    expect(await exists(keys.expiredLongAgo.id)).toBe(false);
    expect(logs.events("purge_done")[0]?.purged).toBeGreaterThanOrEqual(2);
  });

  it("deletes the usage counts of the keys it deletes, and only theirs", async () => {
    const keys = await keysFor(uniqueSub());
    const usage = (id: string) =>
      env.DB.prepare("INSERT INTO key_usage (key_id, hour, outcome, count) VALUES (?, 0, 'VALID', 3)").bind(id);
    await env.DB.batch([usage(keys.live.id), usage(keys.revokedLongAgo.id), usage(keys.revokedRecently.id)]);
    const counted = async (id: string) =>
      (await env.DB.prepare("SELECT 1 AS x FROM key_usage WHERE key_id = ?").bind(id).first()) !== null;
    const logs = captureLogs();
    await runCron(envWith({ PURGE_AFTER_DAYS: "30" }));
    logs.restore();
    expect(await counted(keys.revokedLongAgo.id)).toBe(false);
    expect(await counted(keys.live.id)).toBe(true);
    expect(await counted(keys.revokedRecently.id)).toBe(true);
  });

  it("deletes exactly the keys deadBefore names (the rule npm run move-bucket drops a key by)", async () => {
    const sub = uniqueSub();
    const keys = await keysFor(sub);
    const jwt = await token(sub);
    const expiresLater = await createKey(jwt);
    const expiresSoon = await createKey(jwt);
    const at = Date.now();
    await env.DB.batch([
      env.DB.prepare("UPDATE api_keys SET revoked_at = ?, expires_at = ? WHERE id = ?").bind(
        at - 40 * DAY,
        at + DAY,
        expiresLater.id,
      ),
      env.DB.prepare("UPDATE api_keys SET expires_at = ? WHERE id = ?").bind(at + DAY, expiresSoon.id),
    ]);
    const ids = [...Object.values(keys), expiresLater, expiresSoon].map((key) => key.id);
    const list = ids.map(() => "?").join(", ");
    const { results: rows } = await env.DB.prepare(
      `SELECT id, revoked_at, expires_at FROM api_keys WHERE id IN (${list})`,
    )
      .bind(...ids)
      .all<{ id: string; revoked_at: number | null; expires_at: number | null }>();
    const logs = captureLogs();
    await runCron(envWith({ PURGE_AFTER_DAYS: "30" }), at);
    logs.restore();
    for (const row of rows) expect(await exists(row.id), row.id).toBe(!deadBefore(row, purgeBefore(at, 30)));
    expect(rows.filter((row) => deadBefore(row, purgeBefore(at, 30)))).toHaveLength(3);
  });

  it("is off by default: without PURGE_AFTER_DAYS nothing is deleted", async () => {
    const keys = await keysFor(uniqueSub());
    await runCron(envWith({}));
    expect(await exists(keys.revokedLongAgo.id)).toBe(true);
    expect(await exists(keys.expiredLongAgo.id)).toBe(true);
  });

  it("forgets Idempotency-Keys older than 24 hours", async () => {
    const sub = uniqueSub();
    const jwt = await token(sub);
    await call("POST", "/v1/keys", { auth: jwt, body: { name: "x" }, headers: { "Idempotency-Key": "old" } });
    await call("POST", "/v1/keys", { auth: jwt, body: { name: "x" }, headers: { "Idempotency-Key": "new" } });
    await env.DB.prepare("UPDATE idempotency_keys SET created_at = created_at - ? WHERE caller = ? AND key_hash = ?")
      .bind(2 * DAY, `user:${sub}`, await sha256("old"))
      .run();
    const logs = captureLogs();
    await runCron(envWith({ PURGE_AFTER_DAYS: "30" }));
    logs.restore();
    const { results } = await env.DB.prepare("SELECT key_hash FROM idempotency_keys WHERE caller = ?")
      .bind(`user:${sub}`)
      .all<{ key_hash: string }>();
    expect(results.map((r) => r.key_hash)).toEqual([await sha256("new")]);
  });

  it("works in bounded batches and stops when a batch is not full", async () => {
    const calls: number[] = [];
    const endless: StoreMaintenance = {
      checkSchema: async () => {},
      purge: async (_before, _idempotency, limit) => {
        calls.push(limit);
        return limit;
      },
    };
    const logs = captureLogs();
    expect(await purgeDeadKeys(endless, 30, Date.now())).toBe(PURGE_BATCH * PURGE_MAX_BATCHES);
    expect(calls).toEqual(Array(PURGE_MAX_BATCHES).fill(PURGE_BATCH));
    calls.length = 0;
    let left = PURGE_BATCH + 7;
    const finite: StoreMaintenance = {
      checkSchema: async () => {},
      purge: async (_before, _idempotency, limit) => {
        calls.push(limit);
        const deleted = Math.min(left, limit);
        left -= deleted;
        return deleted;
      },
    };
    expect(await purgeDeadKeys(finite, 30, Date.now())).toBe(PURGE_BATCH + 7);
    logs.restore();
    expect(calls).toHaveLength(2);
  });
});
