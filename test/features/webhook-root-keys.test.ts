/**
 * Root keys and webhooks over HTTP: a root key with keys:write registers an endpoint for one owner it
 * covers (`owner` + `owner_id`) or for owner patterns within its own (`owners`), stored with the
 * endpoint; the dispatcher delivers it the events of those owners only. The endpoint is the root key
 * chain's (the key and its rotations), invisible to anyone else; revoking the chain's last live key
 * deletes it, and an expired chain's endpoint is delivered nothing and purged by the cron. Others who
 * name an owner (a person, a key) may name only their own.
 */
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createContext } from "../../src/context";
import {
  call,
  captureLogs,
  createKey,
  expectProblem,
  token,
  uniqueSub,
  type CapturedLogs,
  type CreatedKey,
} from "../helpers";
import { clearWebhooks, consume, deliveriesOf, hookEnv, receiver, recordingQueue } from "../webhook-harness";

// The service's log lines (root key changes) are captured, not printed: the run stays quiet.
let quiet: CapturedLogs;
beforeEach(() => {
  quiet = captureLogs();
});
afterEach(() => quiet.restore());
afterEach(clearWebhooks);

const HOOK = "https://hooks.example.com/backend";
const operator = () => token(uniqueSub("op"), { roles: ["operator"] });

interface RootKeyBody {
  id: string;
  key: string;
}

interface EndpointBody {
  id: string;
  secret?: string;
  owner_type: string;
  owner_id: string;
  owners: string[] | null;
  [field: string]: unknown;
}

async function rootKey(body: Record<string, unknown> = {}, op?: string): Promise<RootKeyBody> {
  const response = await call("POST", "/v1/root-keys", {
    auth: op ?? (await operator()),
    body: { name: "backend", ...body },
  });
  expect(response.status, await response.clone().text()).toBe(201);
  return response.json();
}

async function register(auth: string, body: Record<string, unknown>, testEnv = hookEnv(recordingQueue())) {
  const response = await call("POST", "/v1/webhooks", { auth, body: { url: HOOK, ...body }, env: testEnv });
  expect(response.status, await response.clone().text()).toBe(201);
  return response.json<EndpointBody>();
}

const attempt = (auth: string, body: Record<string, unknown>) =>
  call("POST", "/v1/webhooks", { auth, body: { url: HOOK, ...body }, env: hookEnv(recordingQueue()) });

/** A key of `owner` made by the root key (so its audit events are that owner's). */
async function keyOf(root: string, owner: { type: string; id: string }, testEnv: ReturnType<typeof hookEnv>) {
  const response = await call("POST", "/v1/keys", {
    auth: root,
    body: { name: "customer key", owner: owner.type, owner_id: owner.id },
    env: testEnv,
  });
  expect(response.status, await response.clone().text()).toBe(201);
  return response.json<CreatedKey>();
}

const ownersOfDeliveries = async (endpointId: string) =>
  (await deliveriesOf(endpointId)).map((d) => JSON.parse(d.payload).data.owner as { type: string; id: string });

const endpointCount = async (id: string) =>
  (await env.DB.prepare("SELECT count(*) AS n FROM webhook_endpoints WHERE id = ?").bind(id).first<{ n: number }>())?.n;

describe("a root key registers endpoints for the owners it covers", () => {
  it("for one owner (owner + owner_id): the secret once, owned by the root key's chain, invisible to the owner", async () => {
    const root = await rootKey({ owners: ["user:*"] });
    const customer = uniqueSub("cust");
    const response = await attempt(root.key, { owner: "user", owner_id: customer, description: "billing sync" });
    expect(response.status, await response.clone().text()).toBe(201);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const created = await response.json<EndpointBody>();
    expect(created.secret).toMatch(/^whsec_/);
    expect(created).toMatchObject({ owner_type: "root", owner_id: root.id, owners: [`user:${customer}`] });

    const got = await (await call("GET", `/v1/webhooks/${created.id}`, { auth: root.key })).json<EndpointBody>();
    expect(got).toMatchObject({ id: created.id, owners: [`user:${customer}`] });
    expect(JSON.stringify(got)).not.toContain(created.secret!.slice(6));
    const listed = await (await call("GET", "/v1/webhooks", { auth: root.key })).json<{ data: EndpointBody[] }>();
    expect(listed.data.map((e) => e.id)).toEqual([created.id]);
    const row = await env.DB.prepare("SELECT created_by FROM webhook_endpoints WHERE id = ?")
      .bind(created.id)
      .first<{ created_by: string }>();
    expect(row?.created_by).toBe(`root:${root.id}`);

    // The customer does not see (nor manage) the backend's endpoint; another root key neither.
    const person = await token(customer);
    await expectProblem(await call("GET", `/v1/webhooks/${created.id}`, { auth: person }), 404);
    expect(await (await call("GET", "/v1/webhooks", { auth: person })).json()).toEqual({ data: [] });
    const other = await rootKey({ owners: ["user:*"] });
    await expectProblem(await call("GET", `/v1/webhooks/${created.id}`, { auth: other.key }), 404);
    await expectProblem(await call("DELETE", `/v1/webhooks/${created.id}`, { auth: other.key }), 404);
    expect(await endpointCount(created.id)).toBe(1);
  });

  it("delivers only the events of the owners the endpoint is for, never another owner's the root key covers", async () => {
    const queue = recordingQueue();
    const testEnv = hookEnv(queue);
    const root = await rootKey();
    const alice = { type: "user", id: uniqueSub("alice") };
    const bob = { type: "user", id: uniqueSub("bob") };
    const acme = { type: "workspace", id: uniqueSub("acme") };
    const one = await register(root.key, { owner: "user", owner_id: alice.id }, testEnv);
    const users = await register(root.key, { owners: ["user:*"] }, testEnv);
    const workspaces = await register(root.key, { owners: ["workspace:*"] }, testEnv);
    for (const owner of [alice, bob, acme]) await keyOf(root.key, owner, testEnv);
    // A person's own change reaches the root key's endpoint of that owner too.
    await createKey(await token(alice.id), {}, testEnv);

    expect(await ownersOfDeliveries(one.id)).toEqual([alice, alice]);
    expect(await ownersOfDeliveries(users.id)).toEqual([alice, bob, alice]);
    expect(await ownersOfDeliveries(workspaces.id)).toEqual([acme]);
    // And what is delivered is signed and sent as for any endpoint.
    const target = receiver();
    await consume(queue, testEnv, target, Date.now());
    expect(target.received.filter((r) => r.url === HOOK)).toHaveLength(6);
  });

  it("stores the patterns it was given: a later root key's wider cover never widens the endpoint", async () => {
    const queue = recordingQueue();
    const testEnv = hookEnv(queue);
    const acme = uniqueSub("acme");
    const narrow = await rootKey({ owners: [`workspace:${acme}`] });
    const endpoint = await register(narrow.key, { owners: [`workspace:${acme}`] }, testEnv);
    // The chain's key now covers more (as a row changed by hand would): the endpoint's patterns hold.
    await env.DB.prepare("UPDATE root_keys SET owners = ? WHERE id = ?")
      .bind(JSON.stringify(["workspace:*", "user:*"]), narrow.id)
      .run();
    const wide = await rootKey();
    await keyOf(wide.key, { type: "workspace", id: uniqueSub("beta") }, testEnv);
    await keyOf(wide.key, { type: "user", id: uniqueSub("someone") }, testEnv);
    await keyOf(wide.key, { type: "workspace", id: acme }, testEnv);
    expect(await ownersOfDeliveries(endpoint.id)).toEqual([{ type: "workspace", id: acme }]);
  });

  it("refuses what the root key may not: an owner or pattern outside its own, no owner, both forms, a wildcard id, deployment, missing scopes", async () => {
    const acme = uniqueSub("acme");
    const root = await rootKey({ owners: [`workspace:${acme}`] });
    const outside = await expectProblem(await attempt(root.key, { owner: "workspace", owner_id: "beta" }), 403);
    expect(JSON.stringify(outside)).toContain("owner_id");
    const wider = await expectProblem(await attempt(root.key, { owners: ["workspace:*"] }), 403);
    expect(JSON.stringify(wider)).toContain("owners");
    await expectProblem(await attempt(root.key, { owners: [`workspace:${acme}`, "user:x"] }), 403);
    const missing = await expectProblem(await attempt(root.key, {}), 422);
    expect(JSON.stringify(missing)).toContain("owner_id");
    const both = await expectProblem(
      await attempt(root.key, { owners: [`workspace:${acme}`], owner: "workspace", owner_id: acme }),
      422,
    );
    expect(JSON.stringify(both)).toContain("owners");
    await expectProblem(await attempt(root.key, { owners: ["workspace:ac*"] }), 422);
    await expectProblem(await attempt(root.key, { owner: "deployment" }), 403);

    const everyUser = await rootKey({ owners: ["user:*"] });
    // `*` as one owner's id would read as every user's: refused, not widened.
    const star = await expectProblem(await attempt(everyUser.key, { owner: "user", owner_id: "*" }), 422);
    expect(JSON.stringify(star)).toContain("owner_id");

    const reader = await rootKey({ scopes: ["keys:read"] });
    await expectProblem(await attempt(reader.key, { owners: ["user:*"] }), 403);
    expect((await call("GET", "/v1/webhooks", { auth: reader.key })).status).toBe(200);
    const writer = await rootKey({ scopes: ["keys:write"] });
    const made = await register(writer.key, { owners: ["user:*"] });
    await expectProblem(await call("GET", "/v1/webhooks", { auth: writer.key }), 403);
    await expectProblem(await call("GET", `/v1/webhooks/${made.id}`, { auth: writer.key }), 403);
    expect((await call("DELETE", `/v1/webhooks/${made.id}`, { auth: writer.key })).status).toBe(204);
  });

  it("changes, rotates and reads its endpoints like anyone's; a reader (keys:read) changes nothing (403)", async () => {
    const root = await rootKey();
    const endpoint = await register(root.key, { owners: ["user:*"] });
    const patched = await call("PATCH", `/v1/webhooks/${endpoint.id}`, {
      auth: root.key,
      body: { events: ["key.revoked"] },
    });
    expect(await patched.json()).toMatchObject({ events: ["key.revoked"], owners: ["user:*"] });
    const rotated = await call("POST", `/v1/webhooks/${endpoint.id}/rotate-secret`, { auth: root.key, body: {} });
    expect(rotated.status).toBe(200);
    expect(rotated.headers.get("cache-control")).toBe("no-store");
    const deliveries = await call("GET", `/v1/webhooks/${endpoint.id}/deliveries`, { auth: root.key });
    expect(await deliveries.json()).toEqual({ data: [], next_cursor: null });

    const reader = await rootKey({ scopes: ["keys:read"] });
    await expectProblem(
      await call("PATCH", `/v1/webhooks/${endpoint.id}`, { auth: reader.key, body: { enabled: false } }),
      403,
    );
    await expectProblem(await call("DELETE", `/v1/webhooks/${endpoint.id}`, { auth: reader.key }), 403);
    await expectProblem(await call("POST", `/v1/webhooks/${endpoint.id}/rotate-secret`, { auth: reader.key }), 403);
    expect(await (await call("GET", `/v1/webhooks/${endpoint.id}`, { auth: root.key })).json()).toMatchObject({
      enabled: true,
    });
  });
});

describe("anyone else naming an owner", () => {
  it("a person may name only themselves or their workspace (403 for another), and gives no patterns", async () => {
    const sub = uniqueSub();
    const org = uniqueSub("org");
    const admin = await token(sub, { org });
    const mine = await register(admin, { owner: "user", owner_id: sub });
    expect(mine).toMatchObject({ owner_type: "user", owner_id: sub, owners: null });
    expect(await register(admin, { owner: "workspace", owner_id: org })).toMatchObject({ owner_id: org });
    const other = await expectProblem(await attempt(admin, { owner_id: "someone-else" }), 403);
    expect(JSON.stringify(other)).toContain("owner_id");
    await expectProblem(await attempt(admin, { owner: "workspace", owner_id: "another-org" }), 403);
    const patterns = await expectProblem(await attempt(admin, { owners: ["user:*"] }), 403);
    expect(JSON.stringify(patterns)).toContain("owners");
    const { key } = await createKey(admin, { scopes: ["*"] });
    await expectProblem(await attempt(key, { owner_id: sub }), 403);
  });
});

describe("the endpoints of a root key's chain", () => {
  const rotate = async (op: string, id: string, grace: number) => {
    const response = await call("POST", `/v1/root-keys/${id}/rotate`, { auth: op, body: { grace_seconds: grace } });
    expect(response.status, await response.clone().text()).toBe(201);
    return response.json<RootKeyBody>();
  };

  it("pass to the rotation's replacement (the old key still sees them in its grace) and go when the last live key is revoked", async () => {
    const queue = recordingQueue();
    const testEnv = hookEnv(queue);
    const op = await operator();
    const first = await rootKey({}, op);
    const endpoint = await register(first.key, { owners: ["user:*"] }, testEnv);
    await keyOf(first.key, { type: "user", id: uniqueSub("cust") }, testEnv);
    expect(await deliveriesOf(endpoint.id)).toHaveLength(1);

    const second = await rotate(op, first.id, 3600);
    for (const auth of [first.key, second.key]) {
      const listed = await (await call("GET", "/v1/webhooks", { auth })).json<{ data: EndpointBody[] }>();
      expect(listed.data.map((e) => e.id)).toEqual([endpoint.id]);
    }
    // The old key revoked: the replacement lives on, and so do the endpoints.
    expect((await call("DELETE", `/v1/root-keys/${first.id}`, { auth: op })).status).toBe(204);
    expect(await endpointCount(endpoint.id)).toBe(1);
    await keyOf(second.key, { type: "user", id: uniqueSub("cust") }, testEnv);
    expect(await deliveriesOf(endpoint.id)).toHaveLength(2);

    // The last live key revoked: the endpoints and their delivery logs are gone, and nothing more is sent.
    expect((await call("DELETE", `/v1/root-keys/${second.id}`, { auth: op })).status).toBe(204);
    expect(await endpointCount(endpoint.id)).toBe(0);
    expect(await deliveriesOf(endpoint.id)).toEqual([]);
    await createKey(await token(uniqueSub()), {}, testEnv);
    expect(await deliveriesOf(endpoint.id)).toEqual([]);
  });

  it("of a chain whose keys all expired: nothing is dispatched, a pending attempt is dropped, the cron deletes them", async () => {
    const queue = recordingQueue();
    const testEnv = hookEnv(queue);
    const root = await rootKey();
    const endpoint = await register(root.key, { owners: ["user:*"] }, testEnv);
    const person = await token(uniqueSub());
    await createKey(person, {}, testEnv);
    const [pending] = await deliveriesOf(endpoint.id);
    queue.sent.splice(0);
    // The root key expires (its expiry passes).
    await env.DB.prepare("UPDATE root_keys SET expires_at = ? WHERE id = ?")
      .bind(Date.now() - 1000, root.id)
      .run();
    await createKey(person, {}, testEnv);
    expect(await deliveriesOf(endpoint.id)).toHaveLength(1);
    const target = receiver();
    await consume(queue, testEnv, target, Date.now(), [pending!.id]);
    expect(target.received).toEqual([]);
    expect((await deliveriesOf(endpoint.id))[0]).toMatchObject({ status: "failed", last_error: "endpoint_disabled" });

    await createContext(testEnv, createExecutionContext()).dispatchWebhooks(Date.now());
    expect(await endpointCount(endpoint.id)).toBe(0);
    expect(await deliveriesOf(endpoint.id)).toEqual([]);
  });
});
