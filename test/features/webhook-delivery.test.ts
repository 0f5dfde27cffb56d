/**
 * Webhook delivery by the queue consumer, against a local receiver with a controlled clock: the retry
 * schedule, a failing receiver that later succeeds, 410 disabling the endpoint, Retry-After, the
 * timeout, a rebinding-style private DNS answer refused at delivery, the secret rotation's two
 * signatures, the delivery log and the manual retry.
 */
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { createContext } from "../../src/context";
import { afterEach, describe, expect, it } from "vitest";
import { verifySignature } from "../../src/keys/webhook-signature";
import { MAX_ATTEMPTS } from "../../src/service/webhook-rules";
import { call, createKey, expectProblem, token, uniqueSub } from "../helpers";
import {
  type RecordingQueue,
  clearWebhooks,
  consume,
  deliveriesOf,
  hookEnv,
  receiver,
  recordingQueue,
} from "../webhook-harness";

afterEach(clearWebhooks);

const HOOK = "https://hooks.example.com/latchkey";

/** A person, their endpoint and one pending delivery (a key's creation) on the queue. */
async function oneDelivery(url = HOOK, vars = {}) {
  const queue = recordingQueue();
  const testEnv = hookEnv(queue, vars);
  const auth = await token(uniqueSub());
  const response = await call("POST", "/v1/webhooks", { auth, body: { url }, env: testEnv });
  const endpoint = (await response.json()) as { id: string; secret: string };
  await createKey(auth, {}, testEnv);
  const [delivery] = await deliveriesOf(endpoint.id);
  return { queue, testEnv, auth, endpoint, deliveryId: delivery!.id };
}

async function deliveryRow(id: string) {
  return env.DB.prepare("SELECT * FROM webhook_deliveries WHERE id = ?").bind(id).first<{
    status: string;
    attempts: number;
    last_status: number | null;
    last_error: string | null;
    next_attempt_at: number | null;
  }>();
}

async function again(queue: RecordingQueue, testEnv: Env, target: ReturnType<typeof receiver>, at: number, id: string) {
  return consume(queue, testEnv, target, at, [id]);
}
type Env = ReturnType<typeof hookEnv>;

describe("retries", () => {
  it("retries a failing receiver with exponential backoff (jitter fixed), then succeeds", async () => {
    const { queue, testEnv, deliveryId } = await oneDelivery();
    const target = receiver();
    target.answer = () => new Response("down", { status: 500 });
    let clock = Date.now();
    const first = await consume(queue, testEnv, target, clock);
    expect(first.retried[deliveryId]).toBe(30); // 30 s × (0.8 + 0.4 × 0.5)
    expect(await deliveryRow(deliveryId)).toMatchObject({
      status: "pending",
      attempts: 1,
      last_status: 500,
      next_attempt_at: clock + 30_000,
    });

    // A message that arrives early (a duplicate) waits for the schedule instead of attempting.
    const early = await again(queue, testEnv, target, clock + 10_000, deliveryId);
    expect(early.retried[deliveryId]).toBe(20);
    expect(target.received.length).toBe(1);

    clock += 30_000;
    const second = await again(queue, testEnv, target, clock, deliveryId);
    expect(second.retried[deliveryId]).toBe(90);
    clock += 90_000;
    expect((await again(queue, testEnv, target, clock, deliveryId)).retried[deliveryId]).toBe(270);

    target.answer = () => new Response(null, { status: 204 });
    clock += 270_000;
    const last = await again(queue, testEnv, target, clock, deliveryId);
    expect(last.acked).toEqual([deliveryId]);
    expect(await deliveryRow(deliveryId)).toMatchObject({
      status: "delivered",
      attempts: 4,
      last_status: 204,
      next_attempt_at: null,
    });
    // Every attempt carried the same webhook-id (the receiver dedupes by it).
    expect(new Set(target.received.map((r) => r.headers["webhook-id"]))).toEqual(new Set([deliveryId]));
  });

  it("gives up after the last attempt of a schedule that spans about a day", async () => {
    const { queue, testEnv, deliveryId } = await oneDelivery();
    const target = receiver();
    target.answer = () => new Response("no", { status: 503 });
    let clock = Date.now();
    let waited = 0;
    await consume(queue, testEnv, target, clock);
    for (let attempt = 2; attempt <= MAX_ATTEMPTS; attempt++) {
      const row = await deliveryRow(deliveryId);
      waited += row!.next_attempt_at! - clock;
      clock = row!.next_attempt_at!;
      await again(queue, testEnv, target, clock, deliveryId);
    }
    expect(target.received.length).toBe(MAX_ATTEMPTS);
    expect(await deliveryRow(deliveryId)).toMatchObject({ status: "failed", attempts: MAX_ATTEMPTS, last_status: 503 });
    expect(waited).toBeGreaterThan(18 * 3600_000);
    expect(waited).toBeLessThan(30 * 3600_000);
  });

  it("honours Retry-After (seconds or a date) when it asks for longer than the schedule", async () => {
    const { queue, testEnv, deliveryId } = await oneDelivery();
    const target = receiver();
    target.answer = () => new Response("slow down", { status: 429, headers: { "Retry-After": "3600" } });
    const clock = Date.now();
    expect((await consume(queue, testEnv, target, clock)).retried[deliveryId]).toBe(3600);
    expect((await deliveryRow(deliveryId))?.next_attempt_at).toBe(clock + 3600_000);
    target.answer = () =>
      new Response("later", {
        status: 503,
        headers: { "Retry-After": new Date(clock + 3600_000 + 7200_000).toUTCString() },
      });
    const next = await again(queue, testEnv, target, clock + 3600_000, deliveryId);
    expect(next.retried[deliveryId]).toBeGreaterThanOrEqual(7199);
    expect(next.retried[deliveryId]).toBeLessThanOrEqual(7200);
  });

  it("a timeout is a failed attempt, retried", async () => {
    const { queue, testEnv, deliveryId } = await oneDelivery();
    const target = receiver();
    target.answer = () => {
      throw new DOMException("The operation was aborted due to timeout", "TimeoutError");
    };
    expect((await consume(queue, testEnv, target, Date.now())).retried[deliveryId]).toBe(30);
    expect(await deliveryRow(deliveryId)).toMatchObject({
      status: "pending",
      last_error: "timeout",
      last_status: null,
    });
  });
});

describe("410 Gone", () => {
  it("fails the delivery and disables the endpoint; later events are not delivered; enabling brings it back", async () => {
    const { queue, testEnv, auth, endpoint, deliveryId } = await oneDelivery();
    const target = receiver();
    target.answer = () => new Response("gone", { status: 410 });
    expect((await consume(queue, testEnv, target, Date.now())).acked).toEqual([deliveryId]);
    expect(await deliveryRow(deliveryId)).toMatchObject({ status: "failed", last_status: 410, attempts: 1 });
    const got = await (await call("GET", `/v1/webhooks/${endpoint.id}`, { auth })).json();
    expect(got).toMatchObject({ enabled: false, disabled_reason: "gone" });
    await createKey(auth, {}, testEnv);
    expect((await deliveriesOf(endpoint.id)).length).toBe(1);
    const enabled = await call("PATCH", `/v1/webhooks/${endpoint.id}`, { auth, body: { enabled: true }, env: testEnv });
    expect(await enabled.json()).toMatchObject({ enabled: true, disabled_reason: null });
    await createKey(auth, {}, testEnv);
    expect((await deliveriesOf(endpoint.id)).length).toBe(2);
  });
});

describe("addresses checked at delivery (DNS rebinding)", () => {
  it.each([["10.0.0.7"], ["169.254.169.254"], ["fd00::7"], ["127.0.0.1"]])(
    "refuses to post when the host now resolves to %s, and retries later",
    async (address) => {
      const { queue, testEnv, deliveryId } = await oneDelivery("https://rebind.example.com/hook");
      const target = receiver();
      target.dns["rebind.example.com"] = ["93.184.216.34", address];
      const result = await consume(queue, testEnv, target, Date.now());
      expect(target.received).toEqual([]);
      expect(result.retried[deliveryId]).toBe(30);
      expect(await deliveryRow(deliveryId)).toMatchObject({
        status: "pending",
        last_error: "address_refused",
        attempts: 1,
      });
    },
  );

  it("posts when every answer is public, and refuses when DNS has none", async () => {
    const { queue, testEnv, deliveryId } = await oneDelivery("https://public.example.com/hook");
    const target = receiver();
    target.dns["public.example.com"] = [];
    await consume(queue, testEnv, target, Date.now());
    expect(await deliveryRow(deliveryId)).toMatchObject({ last_error: "dns_failed" });
    target.dns["public.example.com"] = ["93.184.216.34", "2606:2800:220:1::1"];
    const row = await deliveryRow(deliveryId);
    await again(queue, testEnv, target, row!.next_attempt_at!, deliveryId);
    expect(target.received.length).toBe(1);
    expect(await deliveryRow(deliveryId)).toMatchObject({ status: "delivered" });
  });

  it("refuses a loopback endpoint once WEBHOOK_ALLOW_LOOPBACK is off", async () => {
    const { queue, deliveryId } = await oneDelivery("http://127.0.0.1:8869/hook", { WEBHOOK_ALLOW_LOOPBACK: "true" });
    const target = receiver();
    await consume(queue, hookEnv(queue), target, Date.now());
    expect(target.received).toEqual([]);
    expect(await deliveryRow(deliveryId)).toMatchObject({ last_error: "address_refused" });
  });
});

describe("secret rotation", () => {
  it("signs with the new and the old secret during the grace period, then with the new one only", async () => {
    const { queue, testEnv, auth, endpoint } = await oneDelivery();
    queue.sent.splice(0);
    const response = await call("POST", `/v1/webhooks/${endpoint.id}/rotate-secret`, {
      auth,
      body: { grace_seconds: 3600 },
      env: testEnv,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const rotated = (await response.json()) as { secret: string; previous_secret_expires_at: string };
    expect(rotated.secret).not.toBe(endpoint.secret);
    expect(Date.parse(rotated.previous_secret_expires_at)).toBeGreaterThan(Date.now());

    await createKey(auth, {}, testEnv);
    const target = receiver();
    const now = Date.now();
    await consume(queue, testEnv, target, now);
    const r = target.received[0]!;
    const headers = {
      id: r.headers["webhook-id"]!,
      timestamp: r.headers["webhook-timestamp"]!,
      signature: r.headers["webhook-signature"]!,
    };
    expect(headers.signature.split(" ")).toHaveLength(2);
    expect(await verifySignature(rotated.secret, headers, r.body, Math.floor(now / 1000))).toBe(true);
    expect(await verifySignature(endpoint.secret, headers, r.body, Math.floor(now / 1000))).toBe(true);

    await createKey(auth, {}, testEnv);
    const later = now + 3601_000;
    await consume(queue, testEnv, target, later);
    const s = target.received[1]!;
    const after = {
      id: s.headers["webhook-id"]!,
      timestamp: s.headers["webhook-timestamp"]!,
      signature: s.headers["webhook-signature"]!,
    };
    expect(after.signature.split(" ")).toHaveLength(1);
    expect(await verifySignature(rotated.secret, after, s.body, Math.floor(later / 1000))).toBe(true);
    expect(await verifySignature(endpoint.secret, after, s.body, Math.floor(later / 1000))).toBe(false);
  });
});

describe("the delivery log and manual retry", () => {
  it("lists status, attempts, last response and next attempt; a retry queues one more attempt", async () => {
    const { queue, testEnv, auth, endpoint, deliveryId } = await oneDelivery();
    const target = receiver();
    target.answer = () => new Response("no", { status: 500 });
    await consume(queue, testEnv, target, Date.now());
    const list = await call("GET", `/v1/webhooks/${endpoint.id}/deliveries`, { auth });
    const page = (await list.json()) as { data: Record<string, unknown>[] };
    expect(page.data).toEqual([
      expect.objectContaining({
        id: deliveryId,
        type: "key.created",
        status: "pending",
        attempts: 1,
        last_response_status: 500,
        next_attempt_at: expect.any(String),
      }),
    ]);
    const retry = await call("POST", `/v1/webhooks/${endpoint.id}/deliveries/${deliveryId}/retry`, {
      auth,
      env: testEnv,
    });
    expect(retry.status).toBe(202);
    expect(queue.sent).toEqual([deliveryId]);
    target.answer = () => new Response("ok");
    await consume(queue, testEnv, target, Date.now());
    expect(await deliveryRow(deliveryId)).toMatchObject({ status: "delivered", attempts: 2 });

    const stranger = await token(uniqueSub());
    await expectProblem(await call("GET", `/v1/webhooks/${endpoint.id}/deliveries`, { auth: stranger }), 404);
    await expectProblem(
      await call("POST", `/v1/webhooks/${endpoint.id}/deliveries/${deliveryId}/retry`, {
        auth: stranger,
        env: testEnv,
      }),
      404,
    );
  });

  it("a deleted endpoint's queued deliveries are dropped, not posted", async () => {
    const { queue, testEnv, auth, endpoint, deliveryId } = await oneDelivery();
    expect((await call("DELETE", `/v1/webhooks/${endpoint.id}`, { auth, env: testEnv })).status).toBe(204);
    const target = receiver();
    const result = await consume(queue, testEnv, target, Date.now());
    expect(result.acked).toEqual([deliveryId]);
    expect(target.received).toEqual([]);
  });
});

describe("the cron", () => {
  it("enqueues again a pending delivery whose message was lost, and forgets finished ones after 30 days", async () => {
    const { queue, testEnv, endpoint, deliveryId } = await oneDelivery();
    queue.sent.splice(0); // the message is lost
    const now = Date.now() + 11 * 60_000;
    const old = now - 31 * 86_400_000;
    await env.DB.prepare(
      "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, type, payload, status, attempts, created_at, updated_at) VALUES ('msg_old', ?, 'e', 'key.created', '{}', 'delivered', 1, ?, ?)",
    )
      .bind(endpoint.id, old, old)
      .run();
    await createContext(testEnv, createExecutionContext()).dispatchWebhooks(now);
    expect(queue.sent).toEqual([deliveryId]);
    expect((await deliveriesOf(endpoint.id)).map((d) => d.id)).toEqual([deliveryId]);
  });
});
