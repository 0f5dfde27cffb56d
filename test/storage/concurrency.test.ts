/**
 * Concurrency within one isolate, where requests interleave at every storage await: hundreds of
 * simultaneous creates all persist with distinct ids and keys, and a revocation racing with
 * verifications wins from the moment DELETE answers.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/keys/hash";
import { isolateCache } from "../../src/service/verify";
import { D1KeyStore } from "../../src/store/d1";
import { type CreatedKey, call, createKey, tableSnapshot, token, uniqueSub } from "../helpers";

/** Lets timers and I/O run: a warm verification does no I/O, so a loop of them would starve everything else. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Yields to the event loop until `condition` holds (no time limit: the test's own timeout applies). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await tick();
}

async function isValid(key: string): Promise<boolean> {
  const response = await call("POST", "/v1/verify", { body: { key } });
  expect(response.status).toBe(200);
  return ((await response.json()) as { valid: boolean }).valid;
}

describe("concurrent creates", () => {
  it("300 simultaneous creates by people and by a key all persist, with distinct ids and keys", async () => {
    const jwts = await Promise.all([1, 2, 3].map(() => token(uniqueSub("crowd"))));
    const parent = await createKey(jwts[0]!, { scopes: ["keys:write", "keys:read", "models:invoke"] });
    const callers = [...jwts, parent.key];
    const before = await tableSnapshot();

    const responses = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        call("POST", "/v1/keys", { auth: callers[i % callers.length], body: { name: `crowd ${i}` } }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(300).fill(201));
    const created = (await Promise.all(responses.map((r) => r.json()))) as CreatedKey[];

    expect(new Set(created.map((c) => c.id)).size).toBe(300);
    expect(new Set(created.map((c) => c.key)).size).toBe(300);
    expect((await tableSnapshot()).rows).toBe(before.rows + 300);

    // Every response matches its own row: same id, same name, the hash of the key it returned.
    const { results } = await env.DB.prepare("SELECT id, name, hash FROM api_keys WHERE name LIKE 'crowd %'").all<{
      id: string;
      name: string;
      hash: string;
    }>();
    const rows = new Map(results.map((row) => [row.id, row]));
    for (const [i, c] of created.entries()) {
      expect(rows.get(c.id)).toEqual({ id: c.id, name: `crowd ${i}`, hash: await sha256Hex(c.key) });
    }

    // And each key works from a cold isolate (read back from D1, not from this isolate's memory).
    isolateCache.clear();
    const verdicts = await Promise.all(created.map((c) => isValid(c.key)));
    expect(verdicts.every(Boolean)).toBe(true);
  }, 30_000); // 600 requests: a guard against a hang, not a speed limit (a busy machine needs more than 5 s)
});

describe("revocation racing verification", () => {
  it("once DELETE has answered, no later request with that key succeeds at this location", async () => {
    for (let round = 0; round < 5; round++) {
      const jwt = await token(uniqueSub("race"));
      const victim = await createKey(jwt, { scopes: ["keys:read"] });
      if (round % 2 === 1) isolateCache.clear(); // odd rounds start cold, so probes race D1 and KV reads

      type Phase = "before" | "racing" | "after";
      let phase: Phase = "before";
      let stop = false;
      const outcomes: { started: Phase; finished: Phase; ok: boolean }[] = [];
      // From a client of their own: the late probes' failures must not put other tests' clients over a limit.
      const headers = { "cf-connecting-ip": `2001:db8:${crypto.randomUUID().slice(0, 4)}::${round}` };
      const probes = [
        () => isValid(victim.key),
        async () => (await call("GET", "/v1/whoami", { auth: victim.key, headers })).status === 200,
        async () => (await call("GET", "/v1/keys", { auth: victim.key, headers })).status === 200,
      ];
      const worker = async (w: number) => {
        for (let i = w; !stop; i++) {
          const started = phase;
          const ok = await probes[i % probes.length]!();
          outcomes.push({ started, finished: phase, ok });
          await tick();
        }
      };
      const workers = Array.from({ length: 12 }, (_, w) => worker(w));

      await until(() => outcomes.length >= 24);
      phase = "racing";
      const revoked = await call("DELETE", `/v1/keys/${victim.id}`, { auth: jwt });
      expect(revoked.status).toBe(204);
      phase = "after";
      await until(() => outcomes.filter((o) => o.started === "after").length >= 48);
      stop = true;
      await Promise.all(workers);

      // Requests that finished before DELETE was sent succeeded (the probes do test something)...
      const early = outcomes.filter((o) => o.finished === "before");
      expect(early.length).toBeGreaterThan(0);
      expect(early.every((o) => o.ok)).toBe(true);
      // ...and none that started after DELETE answered did.
      const late = outcomes.filter((o) => o.started === "after");
      expect(late.filter((o) => o.ok)).toEqual([]);

      // Another location (a fresh isolate) learns the revocation from D1 before answering.
      isolateCache.clear();
      expect(await isValid(victim.key)).toBe(false);
    }
  });

  it("simultaneous revocations of one key all succeed and keep the first revocation time", async () => {
    const jwt = await token(uniqueSub("revokers"));
    const victim = await createKey(jwt);
    const responses = await Promise.all(
      Array.from({ length: 25 }, () => call("DELETE", `/v1/keys/${victim.id}`, { auth: jwt })),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(25).fill(204));
    const row = await env.DB.prepare("SELECT revoked_at FROM api_keys WHERE id = ?")
      .bind(victim.id)
      .first<{ revoked_at: number }>();
    expect(row?.revoked_at).toBeGreaterThan(0);
    // A later revocation does not move it.
    expect((await call("DELETE", `/v1/keys/${victim.id}`, { auth: jwt })).status).toBe(204);
    const again = await env.DB.prepare("SELECT revoked_at FROM api_keys WHERE id = ?").bind(victim.id).first();
    expect(again).toEqual({ revoked_at: row?.revoked_at });
    expect(await isValid(victim.key)).toBe(false);

    // A repeated DELETE stops before the UPDATE; a racing one reaches it: the store keeps the first time
    // (with or without cascade), and the feed holds the revocation once.
    const store = new D1KeyStore(env.DB);
    for (const cascade of [false, true]) {
      const stored = await store.revoke(victim.id, row!.revoked_at + 60_000, cascade, {
        actor: "service",
        ip: null,
        userAgent: null,
      });
      expect(stored.map((r) => [r.id, r.revokedAt])).toEqual([[victim.id, row?.revoked_at]]);
    }
    const feed = await env.DB.prepare("SELECT COUNT(*) AS n FROM key_changes WHERE key_id = ? AND kind = 'revoked'")
      .bind(victim.id)
      .first<{ n: number }>();
    expect(feed?.n).toBe(1);
    const kept = await env.DB.prepare("SELECT revoked_at FROM api_keys WHERE id = ?").bind(victim.id).first();
    expect(kept).toEqual({ revoked_at: row?.revoked_at });
  });
});
