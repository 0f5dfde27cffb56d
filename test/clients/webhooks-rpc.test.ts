/**
 * KeyService's webhook methods through a real (loopback) service binding: a trusted Worker registers,
 * lists, reads, changes, rotates, deletes endpoints and reads and retries deliveries for the owner it
 * names, under the same rules as HTTP (the same service): the secret shown once, the URL rules,
 * another owner's endpoint not found, and an input naming another owner, owner patterns or the
 * deployment refused.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { KeyService } from "../../src/rpc";
import { call, createKey, expectProblem, token, uniqueSub } from "../helpers";
import { clearWebhooks, deliveriesOf, hookEnv, recordingQueue } from "../webhook-harness";

afterEach(clearWebhooks);

const service = exports.KeyService as unknown as KeyService;
const HOOK = "https://hooks.example.com/worker";
const user = () => ({ type: "user", id: uniqueSub() }) as const;

/** The message a KeyService call fails with (the handler attached at once: test/clients/consumer.test.ts). */
function failure(pending: Promise<unknown>): Promise<string> {
  return pending.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (error: Error) => error.message,
  );
}

describe("KeyService webhook methods", () => {
  it("register (the secret once, stored encrypted), list, get, change, rotate and delete an owner's endpoint", async () => {
    const alice = user();
    const created = await service.createWebhook(alice, { url: HOOK, events: ["key.revoked"], description: "sync" });
    expect(created).toMatchObject({
      url: HOOK,
      owner_type: "user",
      owner_id: alice.id,
      owners: null,
      events: ["key.revoked"],
      description: "sync",
      enabled: true,
    });
    expect(created.secret).toMatch(/^whsec_/);
    const row = await env.DB.prepare("SELECT secret, created_by FROM webhook_endpoints WHERE id = ?")
      .bind(created.id)
      .first<{ secret: string; created_by: string }>();
    expect(row?.created_by).toBe("service");
    expect(row?.secret).not.toContain(created.secret.slice(6));

    const { secret, ...view } = created;
    expect(await service.getWebhook(alice, created.id)).toEqual(view);
    expect(await service.listWebhooks(alice)).toEqual({ data: [view] });
    expect(JSON.stringify(await service.listWebhooks(alice))).not.toContain(secret.slice(6));

    const changed = await service.updateWebhook(alice, created.id, { events: null, enabled: false });
    expect(changed).toMatchObject({ events: null, enabled: false, url: HOOK });
    const rotated = await service.rotateWebhookSecret(alice, created.id, { grace_seconds: 60 });
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(secret);
    expect(rotated.previous_secret_expires_at).not.toBeNull();

    expect(await service.deleteWebhook(alice, created.id)).toBeUndefined();
    expect(await failure(service.getWebhook(alice, created.id))).toMatch(/^\[not_found\] /);
    expect(await service.listWebhooks(alice)).toEqual({ data: [] });
  });

  it("acts as the HTTP API does on the same endpoints: a person sees the Worker's endpoint of their own keys, and the reverse", async () => {
    const sub = uniqueSub();
    const person = await token(sub);
    const overRpc = await service.createWebhook({ type: "user", id: sub }, { url: HOOK });
    const overHttp = await call("POST", "/v1/webhooks", {
      auth: person,
      body: { url: "https://hooks.example.com/person" },
      env: hookEnv(recordingQueue()),
    });
    expect(overHttp.status).toBe(201);
    const httpId = (await overHttp.json<{ id: string }>()).id;
    const listed = await (await call("GET", "/v1/webhooks", { auth: person })).json<{ data: { id: string }[] }>();
    expect(listed.data.map((e) => e.id).sort()).toEqual([overRpc.id, httpId].sort());
    expect((await service.listWebhooks({ type: "user", id: sub })).data.map((e) => e.id).sort()).toEqual(
      [overRpc.id, httpId].sort(),
    );
    // The same rules: another owner's endpoint is not found, on either face.
    const mallory = user();
    expect(await failure(service.getWebhook(mallory, httpId))).toMatch(/^\[not_found\] /);
    expect(await failure(service.deleteWebhook(mallory, overRpc.id))).toMatch(/^\[not_found\] /);
    await expectProblem(await call("GET", `/v1/webhooks/${overRpc.id}`, { auth: await token(mallory.id) }), 404);
  });

  it("reads the delivery log and retries a delivery; a disabled endpoint's retry is a conflict", async () => {
    const sub = uniqueSub();
    const owner = { type: "user", id: sub } as const;
    const endpoint = await service.createWebhook(owner, { url: HOOK });
    // A key of the owner, dispatched to a recording queue: one pending delivery.
    await createKey(await token(sub), {}, hookEnv(recordingQueue()));
    const [delivery] = await deliveriesOf(endpoint.id);
    const log = await service.webhookDeliveries(owner, endpoint.id, { limit: 10 });
    expect(log).toMatchObject({
      data: [{ id: delivery!.id, type: "key.created", status: "pending" }],
      next_cursor: null,
    });
    expect(await failure(service.webhookDeliveries(owner, endpoint.id, { limit: 0 }))).toMatch(
      /^\[invalid\] options: limit: /,
    );
    expect(await failure(service.webhookDeliveries(user(), endpoint.id))).toMatch(/^\[not_found\] /);

    await service.updateWebhook(owner, endpoint.id, { enabled: false });
    expect(await failure(service.retryWebhookDelivery(owner, endpoint.id, delivery!.id))).toMatch(/^\[conflict\] /);
    await service.updateWebhook(owner, endpoint.id, { enabled: true });
    expect(await failure(service.retryWebhookDelivery(owner, endpoint.id, "msg_unknown"))).toMatch(/^\[not_found\] /);
    const retried = await service.retryWebhookDelivery(owner, endpoint.id, delivery!.id);
    expect(retried).toMatchObject({ id: delivery!.id, status: "pending" });
    // Deleted at once, so the queued attempt finds nothing to send.
    await service.deleteWebhook(owner, endpoint.id);
  });

  it("refuses, changing nothing: another owner named in the input, owner patterns, the deployment, a private URL, a bad owner", async () => {
    const alice = user();
    expect(await failure(service.createWebhook(alice, { url: HOOK, owner_id: "someone-else" }))).toMatch(
      /^\[forbidden\] /,
    );
    expect(await failure(service.createWebhook(alice, { url: HOOK, owner: "workspace" }))).toMatch(/^\[forbidden\] /);
    expect(await failure(service.createWebhook(alice, { url: HOOK, owner: "deployment" }))).toMatch(/^\[forbidden\] /);
    expect(await failure(service.createWebhook(alice, { url: HOOK, owners: ["user:*"] }))).toMatch(/^\[forbidden\] /);
    expect(await failure(service.createWebhook(alice, { url: "https://10.0.0.1/hook" }))).toMatch(/^\[invalid\] .*url/);
    expect(await failure(service.createWebhook(alice, { url: "" }))).toMatch(/^\[invalid\] input: url: /);
    // @ts-expect-error an owner type latchkey does not have
    expect(await failure(service.createWebhook({ type: "team", id: "t" }, { url: HOOK }))).toMatch(
      /^\[invalid\] owner: /,
    );
    expect(await service.listWebhooks(alice)).toEqual({ data: [] });
    // Naming itself is fine.
    const own = await service.createWebhook(alice, { url: HOOK, owner: "user", owner_id: alice.id });
    expect(own.owner_id).toBe(alice.id);
  });
});
