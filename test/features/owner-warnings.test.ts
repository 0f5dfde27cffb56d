/**
 * An owner's credits warn as a key's do: `credits_low` (below the owner's low_threshold, or 10 % of its
 * last set or refill) and `credits_exhausted` (at 0), each once per period, found by the owner's
 * counter (its clock: counterClock) and written by its alarm to the owner's audit log, as actor
 * `latchkey`; re-armed by an add, a set or a refill. Keys with limits of their own warn the owner
 * too (the owner's counter is asked from the key chain's). The warnings reach the webhooks of that
 * owner (and of the deployment, and of root keys covering it), never another owner's.
 */
import { createExecutionContext, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createContext } from "../../src/context";
import { ownerCounterName, ownerOfCounterName } from "../../src/keys/owner-usage";
import type { Owner } from "../../src/model";
import { counterClock } from "../../src/store/counter";
import { D1WarningStore } from "../../src/store/warnings";
import { call, captureLogs, createKey, token, uniqueSub, type CapturedLogs } from "../helpers";
import { clearWebhooks, deliveriesOf, hookEnv, recordingQueue } from "../webhook-harness";

let quiet: CapturedLogs;
beforeEach(() => {
  quiet = captureLogs();
});
afterEach(() => {
  quiet.restore();
  counterClock.now = () => Date.now();
});
afterEach(clearWebhooks);

interface OwnerEventView {
  action: string;
  actor: string;
  at: string;
  changes: Record<string, { old: unknown; new: unknown }>;
  ip: string | null;
}

const WARNINGS = ["credits_low", "credits_exhausted"];

/** A workspace, its admin and one key of its own without limits (it spends only the owner's credits). */
async function workspace(limits: Record<string, unknown>, keyBody: Record<string, unknown> = {}) {
  const org = uniqueSub("org");
  const admin = await token(uniqueSub(), { org });
  const owner: Owner = { type: "workspace", id: org };
  const path = `/v1/owners/workspace/${org}`;
  const put = await call("PUT", `${path}/limits`, { auth: admin, body: limits });
  expect(put.status, await put.clone().text()).toBe(200);
  const key = await createKey(admin, { owner: "workspace", ...keyBody });
  return { org, admin, owner, path, key, view: await put.json<Record<string, unknown>>() };
}

const counterOf = (owner: Owner) => env.USAGE_COUNTER!.get(env.USAGE_COUNTER!.idFromName(ownerCounterName(owner)));

/**
 * Waits until the owner's counter has nothing left to write, so its events are in D1: its own alarm
 * (set for now) writes them; if it has not within a few polls, the test runs it. Bounded: a write that
 * keeps failing leaves them kept. (Running the alarm while workerd runs it too makes workerd log a
 * cancelled alarm: the polls come first.)
 */
async function flush(owner: Owner): Promise<void> {
  const pending = () => runInDurableObject(counterOf(owner), (_, state) => state.storage.kv.get("pending_warnings"));
  for (let i = 0; i < 100; i++) {
    if ((await pending()) === undefined) return;
    if (i >= 20) await runDurableObjectAlarm(counterOf(owner));
    await scheduler.wait(10);
  }
}

/** The owner's warnings, oldest first (the low one first when both came in one step). */
async function warningsOf(admin: string, path: string): Promise<OwnerEventView[]> {
  const response = await call("GET", `${path}/events`, { auth: admin });
  expect(response.status).toBe(200);
  const { data } = await response.json<{ data: OwnerEventView[] }>();
  return data
    .filter((e) => WARNINGS.includes(e.action))
    .sort((a, b) => a.at.localeCompare(b.at) || WARNINGS.indexOf(a.action) - WARNINGS.indexOf(b.action));
}

const spend = async (key: string, cost: number) => {
  const response = await call("POST", "/v1/verify", { body: { key, cost } });
  expect(response.status).toBe(200);
  return response.json<{ code: string; owner_limits?: { credits?: { remaining: number } } }>();
};

describe("the owner's counter names", () => {
  it("map back to their owner; a key chain's name is no owner's", () => {
    for (const owner of [
      { type: "user", id: "cust_42" },
      { type: "workspace", id: "a:b:c" },
    ] as const) {
      expect(ownerOfCounterName(ownerCounterName(owner))).toEqual(owner);
    }
    expect(ownerOfCounterName(crypto.randomUUID())).toBeNull();
    expect(ownerOfCounterName("owner:team:x")).toBeNull();
    expect(ownerOfCounterName("owner:user:")).toBeNull();
  });
});

describe("credit warnings of an owner", () => {
  it("writes credits_low once when crossing, then credits_exhausted at 0, to the owner's audit log; an add re-arms", async () => {
    const { admin, owner, path, key } = await workspace({ credits: { remaining: 100 } });
    expect((await spend(key.key, 90)).owner_limits?.credits?.remaining).toBe(10);
    await flush(owner);
    expect(await warningsOf(admin, path)).toEqual([]);
    await spend(key.key, 1);
    await spend(key.key, 1);
    await flush(owner);
    const low = await warningsOf(admin, path);
    expect(low).toHaveLength(1);
    expect(low[0]).toMatchObject({
      action: "credits_low",
      actor: "latchkey",
      ip: null,
      changes: { credits_remaining: { old: 10, new: 9 }, low_threshold: { old: null, new: 10 } },
    });
    await spend(key.key, 8);
    expect((await spend(key.key, 1)).code).toBe("USAGE_EXCEEDED"); // refused at 0
    await spend(key.key, 1);
    await flush(owner);
    expect((await warningsOf(admin, path)).map((e) => e.action)).toEqual(["credits_low", "credits_exhausted"]);
    // The key's own audit log has none: the credits are the owner's.
    const keyEvents = await (
      await call("GET", `/v1/keys/${key.id}/events`, { auth: admin })
    ).json<{
      data: { action: string }[];
    }>();
    expect(keyEvents.data.map((e) => e.action)).toEqual(["created"]);

    const add = await call("POST", `${path}/credits`, { auth: admin, body: { op: "increment", amount: 50 } });
    expect(add.status).toBe(200);
    await spend(key.key, 45);
    await flush(owner);
    expect((await warningsOf(admin, path)).map((e) => e.action)).toEqual([
      "credits_low",
      "credits_exhausted",
      "credits_low",
    ]);
  });

  it("not again in the period; a refill starts a new one", async () => {
    const day = Date.UTC(2031, 0, 10, 12);
    counterClock.now = () => day;
    const { admin, owner, path, key } = await workspace({
      credits: { remaining: 20, refill: { amount: 20, interval: "day" } },
    });
    await spend(key.key, 19); // 1 left: below 2 (10 % of 20)
    await spend(key.key, 1);
    for (let i = 0; i < 3; i++) await spend(key.key, 1); // refused at 0: nothing new
    await flush(owner);
    expect((await warningsOf(admin, path)).map((e) => e.action)).toEqual(["credits_low", "credits_exhausted"]);
    counterClock.now = () => day + 86_400_000; // the next day: refilled to 20
    expect((await spend(key.key, 17)).owner_limits?.credits?.remaining).toBe(3);
    await flush(owner);
    expect(await warningsOf(admin, path)).toHaveLength(2);
    await spend(key.key, 2);
    await flush(owner);
    expect((await warningsOf(admin, path)).map((e) => e.action)).toEqual([
      "credits_low",
      "credits_exhausted",
      "credits_low",
    ]);
  });

  it("takes the owner's low_threshold, set where its credits are set and shown in its view", async () => {
    const { admin, owner, path, key, view } = await workspace({ credits: { remaining: 100, low_threshold: 50 } });
    expect(view).toMatchObject({ credits: { remaining: 100, refill: null, low_threshold: 50 } });
    await spend(key.key, 50);
    await flush(owner);
    expect(await warningsOf(admin, path)).toEqual([]);
    await spend(key.key, 1);
    await flush(owner);
    expect((await warningsOf(admin, path)).map((e) => e.changes.low_threshold?.new)).toEqual([50]);
    const bad = await call("PUT", `${path}/limits`, {
      auth: admin,
      body: { credits: { remaining: 10, low_threshold: -1 } },
    });
    expect(bad.status).toBe(422);
    expect(JSON.stringify(await bad.json())).toContain("credits.low_threshold");
  });

  it("warns the owner when its keys have limits of their own (the key chain's counter asks the owner's)", async () => {
    const { admin, owner, path, key } = await workspace(
      { credits: { remaining: 10 } },
      { credits: { remaining: 1000 } },
    );
    for (let i = 0; i < 10; i++) expect((await spend(key.key, 1)).code).toBe("VALID");
    expect((await spend(key.key, 1)).code).toBe("USAGE_EXCEEDED");
    await flush(owner);
    expect((await warningsOf(admin, path)).map((e) => e.action)).toEqual(["credits_low", "credits_exhausted"]);
    const keyEvents = await (
      await call("GET", `/v1/keys/${key.id}/events`, { auth: admin })
    ).json<{
      data: { action: string }[];
    }>();
    expect(keyEvents.data.map((e) => e.action)).toEqual(["created"]);
  });

  it("is written once however often the alarm retries it", async () => {
    const { admin, owner, path } = await workspace({ credits: { remaining: 10 } });
    const store = new D1WarningStore(env.DB);
    const warning = { kind: "low" as const, period: 7, at: Date.now(), remaining: { old: 2, new: 0 }, threshold: 1 };
    await store.ownerCreditWarning(owner, warning);
    await store.ownerCreditWarning(owner, warning);
    await store.ownerCreditWarning(owner, { ...warning, kind: "exhausted" });
    expect((await warningsOf(admin, path)).map((e) => e.action)).toEqual(["credits_low", "credits_exhausted"]);
    // An owner without limits (cleared meanwhile) is warned of nothing.
    const other: Owner = { type: "workspace", id: uniqueSub("org") };
    await store.ownerCreditWarning(other, warning);
    const { n } = (await env.DB.prepare("SELECT count(*) AS n FROM owner_events WHERE owner_id = ?")
      .bind(other.id)
      .first<{ n: number }>())!;
    expect(n).toBe(0);
  });

  it("reaches the webhooks of that owner (key_id null), the deployment's and a covering root key's, never another owner's", async () => {
    const queue = recordingQueue();
    const testEnv = hookEnv(queue);
    const org = uniqueSub("org");
    const admin = await token(uniqueSub(), { org });
    const owner: Owner = { type: "workspace", id: org };
    const path = `/v1/owners/workspace/${org}`;
    const register = async (auth: string, body: Record<string, unknown>) => {
      const response = await call("POST", "/v1/webhooks", {
        auth,
        body: { url: "https://hooks.example.com/x", ...body },
        env: testEnv,
      });
      expect(response.status, await response.clone().text()).toBe(201);
      return (await response.json<{ id: string }>()).id;
    };
    const mine = await register(admin, { owner: "workspace", events: ["credits.low", "credits.exhausted"] });
    const everyone = await register(await token(uniqueSub(), { roles: ["operator"] }), { owner: "deployment" });
    const otherOrg = uniqueSub("org");
    const theirs = await register(await token(uniqueSub(), { org: otherOrg }), { owner: "workspace" });
    const op = await token(uniqueSub("op"), { roles: ["operator"] });
    const root = await (
      await call("POST", "/v1/root-keys", { auth: op, body: { name: "b", owners: [`workspace:${org}`] } })
    ).json<{ key: string }>();
    const backend = await register(root.key, { owners: [`workspace:${org}`] });
    const otherRoot = await (
      await call("POST", "/v1/root-keys", { auth: op, body: { name: "c", owners: [`workspace:${otherOrg}`] } })
    ).json<{ key: string }>();
    const otherBackend = await register(otherRoot.key, { owners: [`workspace:${otherOrg}`] });

    const put = await call("PUT", `${path}/limits`, {
      auth: admin,
      body: { credits: { remaining: 10 } },
      env: testEnv,
    });
    expect(put.status).toBe(200);
    const key = await createKey(admin, { owner: "workspace" }, testEnv);
    await spend(key.key, 10);
    await flush(owner);
    await createContext(testEnv, createExecutionContext()).dispatchWebhooks(Date.now());

    const payloads = async (id: string) => (await deliveriesOf(id)).map((d) => JSON.parse(d.payload));
    const credit = (body: { type: string }) => body.type.startsWith("credits.");
    const mineBodies = await payloads(mine);
    expect(mineBodies.map((b) => b.type)).toEqual(["credits.low", "credits.exhausted"]);
    expect(mineBodies[0]).toMatchObject({
      data: {
        key_id: null,
        owner: { type: "workspace", id: org },
        action: "credits_low",
        actor: "latchkey",
        changes: { credits_remaining: { old: 10, new: 0 } },
      },
    });
    expect((await payloads(everyone)).filter(credit).map((b) => b.type)).toEqual(["credits.low", "credits.exhausted"]);
    expect((await payloads(backend)).filter(credit).map((b) => b.type)).toEqual(["credits.low", "credits.exhausted"]);
    expect(await deliveriesOf(theirs)).toEqual([]);
    expect(await deliveriesOf(otherBackend)).toEqual([]);
    // Limits changes by people are in the owner's log but are not webhook events.
    expect((await payloads(everyone)).map((b) => b.data.action)).not.toContain("limits_updated");
  });
});
